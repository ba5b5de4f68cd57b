package campaign

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Run statuses.
const (
	RunRunning   = "running"
	RunWaiting   = "waiting"       // on a wait step's timer
	RunAwaiting  = "waiting_event" // on a wait_for_event step
	RunCompleted = "completed"
	RunFailed    = "failed"
	RunRemoved   = "removed"
)

// Run is one lead's way through one version of a campaign.
type Run struct {
	ID       string    `json:"id"`
	Campaign string    `json:"campaign"`
	Version  int       `json:"version"`
	Lead     string    `json:"lead"`
	Status   string    `json:"status"`
	PC       int       `json:"pc"`
	Started  time.Time `json:"started_at"`
	Updated  time.Time `json:"updated_at"`
	// Due is when the current wait ends (or the awaited activity times
	// out).
	Due time.Time `json:"due,omitzero"`
	// TimedOut says whether the last wait_for_event timed out.
	TimedOut bool `json:"timed_out,omitempty"`
	// Trigger is the activity that started the run, for {{event.x}}.
	Trigger json.RawMessage `json:"trigger,omitempty"`
	// Tokens are a campaign request's tokens, for {{run.x}}.
	Tokens map[string]string `json:"tokens,omitempty"`
	Steps  []StepRecord      `json:"steps"`
	Error  string            `json:"error,omitempty"`
}

// StepRecord is a step a run took.
type StepRecord struct {
	PC     int       `json:"pc"`
	Path   string    `json:"path"`
	Type   string    `json:"type"`
	At     time.Time `json:"at"`
	Result string    `json:"result"`
	// Key is an external effect's idempotency key; its delivery result is
	// read from the sender.
	Key string `json:"key,omitempty"`
}

func (r *Run) active() bool {
	return r.Status == RunRunning || r.Status == RunWaiting || r.Status == RunAwaiting
}

// Key layout of the campaign state in a lead shard, under "c/<q>/":
//
//	r/<tenant>/<lead>/<run>        a run (JSON)
//	ar/<tenant>/<lead>/<run>       the lead's active runs
//	rc/<tenant>/<campaign>/<run>   every run of a campaign → its lead
//	q/<tenant>/<lead>/<campaign>   the lead's qualification for a campaign
//	t/<due><tenant>\x00<lead>\x00<run>   a timer, by due time (µs, 8 bytes)
//	s/<tenant>/<campaign>/<name>   a counter (entered, completed, …)
//	e/<tenant>/<lead>              the lead's recent email sends
type keys struct{ prefix string }

func newKeys(q int) keys { return keys{prefix: "c/" + strconv.Itoa(q) + "/"} }

// KeyPrefix is the prefix of partition q's campaign state.
func KeyPrefix(q int) string { return newKeys(q).prefix }

func (k keys) run(tenant, lead, run string) []byte {
	return []byte(k.prefix + "r/" + tenant + "/" + lead + "/" + run)
}
func (k keys) runs(tenant, lead string) []byte {
	return []byte(k.prefix + "r/" + tenant + "/" + lead + "/")
}
func (k keys) activeRun(tenant, lead, run string) []byte {
	return []byte(k.prefix + "ar/" + tenant + "/" + lead + "/" + run)
}
func (k keys) activeRuns(tenant, lead string) []byte {
	return []byte(k.prefix + "ar/" + tenant + "/" + lead + "/")
}
func (k keys) campaignRun(tenant, campaign, run string) []byte {
	return []byte(k.prefix + "rc/" + tenant + "/" + campaign + "/" + run)
}
func (k keys) campaignRuns(tenant, campaign string) []byte {
	return []byte(k.prefix + "rc/" + tenant + "/" + campaign + "/")
}
func (k keys) qual(tenant, lead, campaign string) []byte {
	return []byte(k.prefix + "q/" + tenant + "/" + lead + "/" + campaign)
}
func (k keys) quals(tenant, lead string) []byte {
	return []byte(k.prefix + "q/" + tenant + "/" + lead + "/")
}
func (k keys) timers() []byte { return []byte(k.prefix + "t/") }
func (k keys) timer(due time.Time, tenant, lead, run string) []byte {
	b := binary.BigEndian.AppendUint64([]byte(k.prefix+"t/"), uint64(max(due.UnixMicro(), 0)))
	return append(b, tenant+"\x00"+lead+"\x00"+run...)
}
func (k keys) stat(tenant, campaign, name string) []byte {
	return []byte(k.prefix + "s/" + tenant + "/" + campaign + "/" + name)
}
func (k keys) stats(tenant, campaign string) []byte {
	return []byte(k.prefix + "s/" + tenant + "/" + campaign + "/")
}
func (k keys) emails(tenant, lead string) []byte {
	return []byte(k.prefix + "e/" + tenant + "/" + lead)
}

// qualification is what a lead's entries into a campaign leave behind.
type qualification struct {
	Runs   int    `json:"n"`
	Last   int64  `json:"last"` // µs
	Active string `json:"active,omitempty"`
}

// timerEntry is the value of a timer key.
type timerEntry struct {
	Tenant string    `json:"tenant"`
	Lead   string    `json:"lead"`
	Run    string    `json:"run"`
	PC     int       `json:"pc"`
	Due    time.Time `json:"due"`
}

// TimerFired is the argument of the campaign_timer command.
type TimerFired struct {
	Run string    `json:"run"`
	PC  int       `json:"pc"`
	Due time.Time `json:"due"`
}

// Request is the argument of the campaign_request command.
type Request struct {
	Campaign string            `json:"campaign"`
	Tokens   map[string]string `json:"tokens,omitempty"`
}

// Commands the engine handles (lead.CommandPrefix + name).
const (
	CmdTimer   = "campaign_timer"
	CmdRequest = "campaign_request"
)

// Stat names.
const (
	statEntered   = "entered"
	statCompleted = "completed"
	statFailed    = "failed"
	statRemoved   = "removed"
	statWaiting   = "waiting"
)

func statDone(pc int) string { return "done." + strconv.Itoa(pc) }
func statAt(pc int) string   { return "at." + strconv.Itoa(pc) }

func decodeRun(b []byte) (*Run, error) {
	var r Run
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decoding run: %w", err)
	}
	return &r, nil
}
