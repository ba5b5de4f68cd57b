package event

import "strings"

// Commands that lead shards send to visitor shards on EVENTS (TypeCommand
// events; Event holds the name, AnonymousID the visitor).
const (
	// CmdLink links the visitor to Enrichment.LeadID, as a form fill that
	// resolved by email does; the visitor's anonymous history then goes
	// to the lead as a back-fill.
	CmdLink = "link"
	// CmdEraseVisitor erases the visitor's state and history and
	// suppresses its later events.
	CmdEraseVisitor = "erase_visitor"
)

// NormalizeEmail returns the canonical form of an email used as a lookup
// key: trimmed and lower-cased; "" when it does not look like an email.
func NormalizeEmail(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	at := strings.IndexByte(s, '@')
	if at <= 0 || at != strings.LastIndexByte(s, '@') || at == len(s)-1 || len(s) > 254 || strings.ContainsAny(s, " \t\r\n/") {
		return ""
	}
	return s
}

// EmailPartition returns the LEADS partition (of q) that indexes a
// tenant's normalized email.
func EmailPartition(tenant, email string, q int) int { return Partition(tenant, "email:"+email, q) }
