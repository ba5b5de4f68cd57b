package lead

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/eventlog"
)

// Commands on LEADS (event.TypeCommand, Event is the name). The API writes
// patch, score, list_add, list_remove, merge and erase; lead shards write
// absorb and index_set/index_unset to one another.
const (
	CmdPatch      = "patch"
	CmdScore      = "score"
	CmdListAdd    = "list_add"
	CmdListRemove = "list_remove"
	CmdMerge      = "merge"
	CmdErase      = "erase"
	cmdAbsorb     = "absorb"
	cmdIndexSet   = "index_set"
	cmdIndexUnset = "index_unset"
)

// Patch is the argument of a patch command: fields to set (a null value
// removes one), and the contact flags.
type Patch struct {
	Traits       map[string]json.RawMessage `json:"traits,omitempty"`
	Email        *string                    `json:"email,omitempty"`
	Unsubscribed *bool                      `json:"unsubscribed,omitempty"`
	DoNotContact *bool                      `json:"do_not_contact,omitempty"`
}

// ScoreChange is the argument of a score command.
type ScoreChange struct {
	Change int64 `json:"change"`
}

// ListChange is the argument of list_add and list_remove.
type ListChange struct {
	List string `json:"list"`
}

// MergeInto is the argument of a merge command, sent to the loser.
type MergeInto struct {
	Winner string `json:"winner"`
	// By names who asked for the merge, for the audit.
	By string `json:"by,omitempty"`
}

// absorb carries a merged lead's profile and activities to the winner.
// A large timeline goes in several parts; the profile travels with the
// first and Final marks the last.
type absorb struct {
	Loser      string     `json:"loser"`
	Profile    *record    `json:"profile,omitempty"`
	Activities []Activity `json:"activities,omitempty"`
	Final      bool       `json:"final,omitempty"`
}

// indexEntry is the argument of index_set and index_unset.
type indexEntry struct {
	Email string `json:"email"`
	Lead  string `json:"lead"`
}

// Command returns the command event name with arguments args for a lead,
// as the API puts it on LEADS. The time is the command's event time.
func Command(tenant, lead, name string, args any, messageID string, now time.Time) (event.Event, error) {
	b, err := json.Marshal(args)
	if err != nil {
		return event.Event{}, fmt.Errorf("encoding %s command: %w", name, err)
	}
	now = now.UTC().Truncate(time.Microsecond)
	e := event.Event{
		Tenant: tenant, Type: event.TypeCommand, Event: name, MessageID: messageID,
		Timestamp: now, ReceivedAt: now, Properties: b,
	}
	e.Enrichment.LeadID = lead
	return e, nil
}

// Subject returns the LEADS subject of a lead of a tenant with q partitions.
func Subject(tenant, lead string, q int) string {
	return eventlog.LeadsSubject(Partition(tenant, lead, q))
}

// Partition returns the LEADS partition of a lead.
func Partition(tenant, lead string, q int) int { return event.Partition(tenant, lead, q) }

// EmailLeadID is the id of a lead first known by its email (a form fill
// from a person without a userId). It cannot collide with a userId's:
// userIds hold no NUL.
func EmailLeadID(tenant, email string) string { return event.LeadID(tenant, "\x00email:"+email) }
