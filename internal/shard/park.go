package shard

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/store"
)

// Parking (DESIGN.md §5, Scheduling; docs/fairness.md).
//
// A shard sets a tenant's events aside in PARKED, on the subject
// eventlog.ParkedSubject(tenant, stream, partition), when the tenant is
// paused, or, with fair scheduling, when the shard has fallen behind and
// the tenant sends more than its weighted share. From the first event set
// aside to the moment the shard has replayed them all, every event of that
// tenant in the partition goes the same way (an episode), so the tenant's
// own order holds: events before the episode were applied directly, those
// in it are applied from PARKED in log order, and those after it directly
// again.
//
// Exactly once: the parked messages are outputs of the main message,
// published before its commit under deterministic ids; the episode's
// bookkeeping commits with the main message and with each replayed one.
// A parked message carries the main sequence it came from; replay skips
// any from before the episode began (left by an attempt that crashed
// before its commit and was then decided otherwise) or at or below the
// last one applied (a duplicate stored past JetStream's dedup window).

// TenantPolicy tells the shards how to treat a tenant's events; the app's
// tenant cache implements it.
type TenantPolicy interface {
	// Policy returns whether the tenant is paused and its processing
	// weight (at least 1).
	Policy(tenant string) (paused bool, weight int)
}

// Reasons for parking, the "reason" label of the parked metric.
const (
	ParkPaused   = "paused"
	ParkOverflow = "overflow"
)

// HeaderOrigin on a PARKED message is the sequence of the main log message
// its events came from.
const HeaderOrigin = "Contrail-Origin-Seq"

// episode is a shard's state for one tenant whose events it parks.
type episode struct {
	// Active: the tenant's events go to PARKED.
	Active bool   `json:"active"`
	Reason string `json:"reason,omitempty"`
	// Start is the main sequence of the episode's first parked events,
	// Diverted that of its last, Replayed that of the last parked
	// message applied.
	Start    uint64 `json:"start"`
	Diverted uint64 `json:"diverted"`
	Replayed uint64 `json:"replayed"`
	// ParkedPos is the PARKED sequence of the last parked message applied
	// or skipped: replay resumes after it.
	ParkedPos uint64 `json:"parked_pos"`
	// Backlog counts the events parked and not replayed.
	Backlog int64 `json:"backlog"`
}

// parkKey is where a shard keeps a tenant's episode.
func parkKey(stream string, p int, tenant string) []byte {
	return []byte(parkPrefix(stream, p) + tenant)
}

func parkPrefix(stream string, p int) string {
	return "\x00park/" + stream + "/" + strconv.Itoa(p) + "/"
}

// loadEpisodes reads a shard's episodes.
func (s *shard) loadEpisodes() (map[string]*episode, error) {
	lower := []byte(parkPrefix(s.stream, s.partition))
	it, err := s.rt.deps.Store.NewIter(lower, store.PrefixEnd(lower))
	if err != nil {
		return nil, fmt.Errorf("reading parked tenants: %w", err)
	}
	defer func() { _ = it.Close() }()
	eps := map[string]*episode{}
	for it.First(); it.Valid(); it.Next() {
		var ep episode
		if err := json.Unmarshal(it.Value(), &ep); err != nil {
			return nil, fmt.Errorf("reading parked tenant %q: %w", it.Key()[len(lower):], err)
		}
		eps[string(it.Key()[len(lower):])] = &ep
	}
	return eps, it.Error()
}

// saveEpisode writes a tenant's episode into the message's transaction.
func (s *shard) saveEpisode(tx *Tx, tenant string, ep *episode) {
	b, _ := json.Marshal(ep) // plain struct: cannot fail
	tx.Set(parkKey(s.stream, s.partition, tenant), b)
}

// policy returns a tenant's pause state and weight.
func (r *Runtime) policy(tenant string) (paused bool, weight int) {
	if r.deps.Tenants == nil {
		return false, 1
	}
	paused, weight = r.deps.Tenants.Policy(tenant)
	return paused, max(weight, 1)
}

// shares tracks each tenant's part of a shard's recent input: counts
// decay by half each time the total passes shareWindow events, so the
// map holds only tenants seen lately.
type shares struct {
	counts map[string]float64
	total  float64
}

const shareWindow = 20000

func (sh *shares) add(tenant string, n int) {
	if sh.counts == nil {
		sh.counts = map[string]float64{}
	}
	sh.counts[tenant] += float64(n)
	sh.total += float64(n)
	if sh.total < shareWindow {
		return
	}
	sh.total = 0
	for k, v := range sh.counts {
		if v /= 2; v < 1 {
			delete(sh.counts, k)
			continue
		}
		sh.counts[k] = v
		sh.total += v
	}
}

// over reports whether tenant's part of the recent input is more than its
// weighted fair share. A tenant alone is at its share, not over it:
// parking it would only add work.
func (sh *shares) over(tenant string, weight func(string) int) bool {
	if sh.total <= 0 {
		return false
	}
	sum := 0
	for k := range sh.counts {
		sum += weight(k)
	}
	if sum == 0 {
		return false
	}
	return sh.counts[tenant]/sh.total > float64(weight(tenant))/float64(sum)
}

// parkGroup gathers the frames of one tenant's events that a main message
// parks.
type parkGroup struct {
	tenant string
	count  int
	frames []byte
}

// parking gathers what one main message parks and the decisions it made.
type parking struct {
	groups []parkGroup
	index  map[string]int
	// decided caches the decision per tenant for the message.
	decided map[string]bool
	// undo holds the episodes as they were before the message changed
	// them (nil: there was none), to restore if it does not commit.
	undo map[string]*episode
}

func (pk *parking) reset() {
	pk.groups = pk.groups[:0]
	clear(pk.index)
	clear(pk.decided)
	clear(pk.undo)
}

func (pk *parking) add(tenant string, rec []byte) {
	i, ok := pk.index[tenant]
	if !ok {
		i = len(pk.groups)
		pk.index[tenant] = i
		if i < cap(pk.groups) {
			pk.groups = pk.groups[:i+1]
			g := &pk.groups[i]
			g.tenant, g.count, g.frames = tenant, 0, g.frames[:0]
		} else {
			pk.groups = append(pk.groups, parkGroup{tenant: tenant})
		}
	}
	g := &pk.groups[i]
	g.count++
	g.frames = event.AppendRecordFrame(g.frames, rec)
}

// outputs returns the PARKED messages of a main message.
func (pk *parking) outputs(stream string, p int, seq uint64) []Output {
	out := make([]Output, 0, len(pk.groups))
	origin := strconv.FormatUint(seq, 10)
	for _, g := range pk.groups {
		msg := event.AppendHeader(make([]byte, 0, len(g.frames)+11), g.count)
		out = append(out, Output{
			Subject: eventlog.ParkedSubject(g.tenant, stream, p),
			Data:    append(msg, g.frames...),
			Headers: map[string]string{HeaderOrigin: origin},
		})
	}
	return out
}

// diverts decides whether the events of tenant in main message seq go to
// PARKED, starting an episode when the tenant is paused or, with fair
// scheduling, when the message is older than the lag threshold and the
// tenant is at or over its share.
func (s *shard) diverts(tenant string, seq uint64, age time.Duration) bool {
	if d, ok := s.park.decided[tenant]; ok {
		return d
	}
	d := s.decide(tenant, seq, age)
	s.park.decided[tenant] = d
	return d
}

func (s *shard) decide(tenant string, seq uint64, age time.Duration) bool {
	ep := s.eps[tenant]
	if ep != nil && ep.Active {
		return true
	}
	paused, _ := s.rt.policy(tenant)
	reason := ""
	switch {
	case paused:
		reason = ParkPaused
	case s.rt.cfg.Fair && age > s.rt.cfg.FairLag && s.shares.over(tenant, s.weight):
		reason = ParkOverflow
	default:
		return false
	}
	if _, saved := s.park.undo[tenant]; !saved {
		var old *episode
		if ep != nil {
			c := *ep
			old = &c
		}
		s.park.undo[tenant] = old
	}
	if ep == nil {
		ep = &episode{}
		s.eps[tenant] = ep
	}
	ep.Active, ep.Reason, ep.Start = true, reason, seq
	s.rt.logger.Info("parking a tenant's events", "stream", s.stream, "partition", s.partition,
		"tenant", tenant, "reason", reason, "seq", seq, "lag", age.Round(time.Millisecond))
	return true
}

func (s *shard) weight(tenant string) int {
	_, w := s.rt.policy(tenant)
	return w
}

// rollback restores the episodes a message changed and did not commit.
func (s *shard) rollback() {
	for t, old := range s.park.undo {
		if old == nil {
			delete(s.eps, t)
		} else {
			s.eps[t] = old
		}
	}
	clear(s.park.undo)
}
