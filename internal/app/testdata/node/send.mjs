// send.mjs drives a Contrail collector with the real Segment Node SDK.
//
//   CONTRAIL_HOST=http://127.0.0.1:8080 CONTRAIL_WRITE_KEY=wk_... node send.mjs
//
// It sends identify, page and track calls, waits for closeAndFlush, and
// prints one JSON object on stdout: the messageIds it sent, the events as
// they went over the wire (from the SDK's http_request event) and the HTTP
// statuses it got. It exits non-zero when a call failed.
import { Analytics } from '@segment/analytics-node'

const host = process.env.CONTRAIL_HOST
const writeKey = process.env.CONTRAIL_WRITE_KEY
const run = process.env.CONTRAIL_RUN || 'node'
if (!host || !writeKey) {
  console.error('set CONTRAIL_HOST and CONTRAIL_WRITE_KEY')
  process.exit(2)
}

const analytics = new Analytics({
  writeKey,
  host,
  path: '/v1/batch',
  flushAt: 2, // several requests, not one
  maxEventsInBatch: 2,
  flushInterval: 50,
  maxRetries: 0, // the collector must answer right the first time
})

const sent = []
const statuses = []
const errors = []
analytics.on('http_request', (req) => {
  for (const e of JSON.parse(req.body).batch) sent.push(e)
})
analytics.on('http_response', (res) => statuses.push(res.status))
analytics.on('error', (err) => errors.push(String(err && (err.reason || err.code || err))))

const messageIds = []
const done = (err, ctx) => {
  if (err) errors.push(String(err))
  if (ctx) messageIds.push(ctx.event.messageId)
}

const anon = `${run}-anon-1`
analytics.identify({
  userId: `${run}-user-1`,
  anonymousId: anon,
  traits: { email: 'grace@example.com', name: 'Grace', plan: 'enterprise' },
}, done)
analytics.page({
  anonymousId: anon,
  name: 'Docs',
  properties: { path: '/docs', url: 'https://example.com/docs', title: 'Docs' },
}, done)
analytics.track({
  userId: `${run}-user-1`,
  anonymousId: anon,
  event: 'Order Completed',
  properties: { orderId: 'o-17', total: 99.5, products: [{ sku: 'a', qty: 2 }] },
  context: { ip: '198.51.100.23', locale: 'fr-FR' },
}, done)
analytics.track({
  userId: `${run}-user-2`,
  event: 'Report Exported',
  timestamp: new Date('2022-02-03T04:05:06.789Z'),
  properties: { format: 'csv' },
}, done)

await analytics.closeAndFlush({ timeout: 20000 })
process.stdout.write(JSON.stringify({ messageIds, sent, statuses, errors }) + '\n')
process.exit(errors.length > 0 || messageIds.length !== 4 ? 1 : 0)
