// Package deliver sends the external effects of trigger campaigns: webhook
// calls and emails (DESIGN.md §8). *Sender implements shard.Sender.
//
// A shard hands a log message's effects to Deliver before it commits.
// Deliver waits a short while (Config.HandoverWait) and returns those not
// done yet; the shard writes them to the Pebble outbox with its commit and
// then calls Spilled. The Sender keeps delivering every effect it accepted,
// whether it finished in time or spilled, and deletes an effect's outbox
// entry once the effect is done: delivered, or failed for good. At start,
// and every Config.RescanInterval, Run reads the outbox and takes over the
// entries it does not hold (those a previous process spilled).
//
// Guarantees:
//
//   - At least once, with a stable key. Every attempt of an effect, in this
//     process or a later one, carries the same idempotency key
//     (Idempotency-Key and webhook-id for webhooks, Message-ID and
//     X-Contrail-Key for emails), so that a receiver can drop repeats. An
//     effect is never attempted twice at once.
//   - Done is recorded. An effect's Result is written to Pebble before its
//     outbox entry is deleted; an effect handed over again after that (a
//     shard replaying a message, an outbox entry read back) is not sent
//     again.
//   - Order. Effects with the same Order key are done one after the other,
//     in the order they were handed over, across Deliver calls and across
//     the switch from memory to the outbox. After a restart, the entries
//     read back from the outbox are ordered by Job.Order, then Job.At and
//     Job.Step, and go before anything handed over since.
//   - Bounded concurrency: Config.Workers attempts at once in all,
//     Config.PerEndpointConcurrency per URL host (or per SMTP server), and
//     per tenant its Deps.TenantConcurrency, or else
//     Config.PerTenantConcurrency. Retries wait without holding a slot.
//   - Fair to tenants. Tenants with effects ready take turns, one attempt
//     each, and within a tenant its endpoints take turns; with the tenant
//     limit below Config.Workers, a tenant whose receivers fail or hang
//     cannot take the workers from the others.
//   - Webhooks never reach a private address (loopback, RFC 1918, link-local,
//     CGNAT...) unless Config.AllowPrivateNetworks: the check runs on the
//     address actually dialled, after DNS resolution.
//
// Every method of *Sender is safe for concurrent use.
package deliver
