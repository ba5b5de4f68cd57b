package shard

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
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
// Exactly once: whether a message parks a tenant's events depends only on
// committed state. An episode is decided at the end of a message, commits
// with it and applies from the next one; it ends when a replayed message
// commits the last parked events. So every attempt of a message parks the
// same events and publishes the same outputs under the same ids. That
// needs "committed" to mean "survives a crash", and the store's commits do
// not (Pebble keeps them in memory until something syncs): so while
// decisions are in play, a shard starts a message only once its earlier
// commits are durable, and a pause episode's start and an episode's end
// are durable before anything depends on them, PARKED's purge included
// (shard.settle). The parked messages are outputs of the main message,
// published before its commit under deterministic ids; the episode's
// bookkeeping commits with the main message and with each replayed one. A
// parked message carries the main sequence it came from, and replay skips
// any at or below the last one applied (a duplicate stored past
// JetStream's dedup window).

// TenantPolicy tells the shards how to treat a tenant's events; the app's
// tenant cache implements it.
type TenantPolicy interface {
	// Policy returns whether the tenant is paused now and its processing
	// weight (at least 1).
	Policy(tenant string) (paused bool, weight int)
	// PausedAt reports whether the tenant was paused at t, the time the
	// log stored a message: a message is judged the same at every
	// attempt.
	PausedAt(tenant string, t time.Time) bool
}

// Reasons for parking, the "reason" label of the parked metric.
const (
	ParkPaused   = "paused"
	ParkOverflow = "overflow"
)

// Headers on a PARKED message: the sequence of the main log message its
// events came from, and their indexes in it, as runs "first+count,...".
const (
	HeaderOrigin      = "Contrail-Origin-Seq"
	HeaderOriginIndex = "Contrail-Origin-Index"
)

// parseIndexes reads a HeaderOriginIndex value.
func parseIndexes(h string) ([]int, error) {
	if h == "" {
		return nil, nil
	}
	var out []int
	for run := range strings.SplitSeq(h, ",") {
		a, b, ok := strings.Cut(run, "+")
		first, err1 := strconv.Atoi(a)
		n, err2 := strconv.Atoi(b)
		if !ok || err1 != nil || err2 != nil || first < 0 || n < 1 || n > 1<<20 {
			return nil, fmt.Errorf("bad %s %q", HeaderOriginIndex, h)
		}
		for i := range n {
			out = append(out, first+i)
		}
	}
	return out, nil
}

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
	// runs are the events' indexes in the main message: first, count.
	runs [][2]int
}

// parking gathers what one main message parks and the decisions it made.
type parking struct {
	groups []parkGroup
	index  map[string]int
	// undo holds the episodes as they were before the message started
	// one (nil: there was none), to restore if it does not commit.
	undo map[string]*episode
}

func (pk *parking) reset() {
	pk.groups = pk.groups[:0]
	clear(pk.index)
	clear(pk.undo)
}

func (pk *parking) add(tenant string, rec []byte, index int) {
	i, ok := pk.index[tenant]
	if !ok {
		i = len(pk.groups)
		pk.index[tenant] = i
		if i < cap(pk.groups) {
			pk.groups = pk.groups[:i+1]
			g := &pk.groups[i]
			g.tenant, g.count, g.frames, g.runs = tenant, 0, g.frames[:0], g.runs[:0]
		} else {
			pk.groups = append(pk.groups, parkGroup{tenant: tenant})
		}
	}
	g := &pk.groups[i]
	g.count++
	g.frames = event.AppendRecordFrame(g.frames, rec)
	if r := len(g.runs) - 1; r >= 0 && g.runs[r][0]+g.runs[r][1] == index {
		g.runs[r][1]++
	} else {
		g.runs = append(g.runs, [2]int{index, 1})
	}
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
			Headers: map[string]string{HeaderOrigin: origin, HeaderOriginIndex: formatRuns(g.runs)},
		})
	}
	return out
}

// parks reports whether the events of tenant in main message m go to
// PARKED: the tenant has an active episode, or the log stored m while the
// tenant was paused, which starts one. Every attempt of a message (a
// replay after a crash, say) must decide the same, or it would publish
// other outputs under the same ids; the tenant cache alone cannot promise
// that (a pause may reach it between two attempts). So a pause episode is
// committed on its own before the message publishes anything, and none
// starts with the first message after the shard (re)starts: an earlier
// attempt of that message, if any, did not start one either, or it would
// be committed.
func (s *shard) parks(tenant string, m *eventlog.Message) (bool, error) {
	if ep := s.eps[tenant]; ep != nil && ep.Active {
		return true, nil
	}
	if s.fresh || s.rt.deps.Tenants == nil || !s.rt.deps.Tenants.PausedAt(tenant, m.Time) {
		return false, nil
	}
	ep := s.begin(tenant, ParkPaused, m.Seq, 0)
	b, _ := json.Marshal(ep) // plain struct: cannot fail
	batch := s.rt.deps.Store.NewBatch()
	defer func() { _ = batch.Close() }()
	if err := batch.Set(parkKey(s.stream, s.partition, tenant), b, nil); err != nil {
		return false, fmt.Errorf("starting to park %s: %w", tenant, err)
	}
	if err := s.rt.deps.Store.Commit(batch); err != nil {
		return false, fmt.Errorf("starting to park %s: %w", tenant, err)
	}
	s.committed = s.rt.commits.Add(1)
	if err := s.settle(); err != nil { // before the message publishes
		return false, fmt.Errorf("starting to park %s: %w", tenant, err)
	}
	return true, nil
}

// begin starts an episode of tenant with main message seq: its events
// are parked from there on.
func (s *shard) begin(tenant, reason string, seq uint64, age time.Duration) *episode {
	if _, saved := s.park.undo[tenant]; !saved {
		var old *episode
		if ep := s.eps[tenant]; ep != nil {
			c := *ep
			old = &c
		}
		s.park.undo[tenant] = old
	}
	ep := s.eps[tenant]
	if ep == nil {
		ep = &episode{}
		s.eps[tenant] = ep
	}
	ep.Active, ep.Reason, ep.Start, ep.Diverted, ep.Replayed = true, reason, seq, seq-1, seq-1
	s.rt.logger.Info("parking a tenant's events", "stream", s.stream, "partition", s.partition,
		"tenant", tenant, "reason", reason, "from_seq", seq, "lag", age.Round(time.Millisecond))
	return ep
}

// startOverflow decides, at the end of main message seq, which of the
// tenants it applied directly are parked from the next message on: with
// fair scheduling, when the message was older than the lag threshold,
// those over their weighted share. The decision commits with the message,
// so the next message is judged the same at every attempt.
func (s *shard) startOverflow(tx *Tx, seq uint64, age time.Duration) {
	if !s.rt.cfg.Fair || age <= s.rt.cfg.FairLag {
		return
	}
	for _, r := range s.recvs {
		tenant := r.tenant
		if ep := s.eps[tenant]; ep != nil && ep.Active || !s.shares.over(tenant, s.weight) {
			continue
		}
		s.saveEpisode(tx, tenant, s.begin(tenant, ParkOverflow, seq+1, age))
	}
}

// rollback restores the episodes a message started and did not commit.
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

func (s *shard) weight(tenant string) int {
	_, w := s.rt.policy(tenant)
	return w
}

func formatRuns(runs [][2]int) string {
	b := make([]byte, 0, len(runs)*12)
	for i, r := range runs {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(r[0]), 10)
		b = append(b, '+')
		b = strconv.AppendInt(b, int64(r[1]), 10)
	}
	return string(b)
}
