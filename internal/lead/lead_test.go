package lead_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/lead"
	"github.com/contrailhq/contrail/internal/shard"
	"github.com/contrailhq/contrail/internal/store"
)

// leadShard is one lead processor (Q = 1) over a store of its own, fed
// directly, as a visitor shard's outputs would feed it.
type leadShard struct {
	tb   testing.TB
	st   *store.Store
	proc *lead.Processor
	seq  uint64
}

func newLeadShard(tb testing.TB) *leadShard {
	tb.Helper()
	st, err := store.Open(tb.TempDir(), nil)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = st.Close() })
	proc, err := lead.New(lead.Config{Partitions: 1, EventPartitions: 1}, 0, lead.NewMetrics(prometheus.NewRegistry()))
	require.NoError(tb, err)
	return &leadShard{tb: tb, st: st, proc: proc}
}

// apply commits events as the next LEADS message and returns each one's
// error.
func (s *leadShard) apply(events []event.Event) []error {
	s.seq++
	_, errs, err := shard.ApplyLocal(context.Background(), s.st, eventlog.StreamLeads, 0, s.seq, s.proc, events)
	require.NoError(s.tb, err)
	return errs
}

// leadEvent is an event of a known lead as a visitor shard hands it on.
func leadEvent(leadID string, typ event.Type, name string, at time.Time) event.Event {
	e := event.Event{
		Tenant: testTenant, Type: typ, AnonymousID: "dev-" + leadID[len(leadID)-4:], Timestamp: at, ReceivedAt: at,
	}
	e.Enrichment.LeadID, e.Enrichment.SessionID = leadID, "s1"
	switch typ {
	case event.TypePage:
		e.Enrichment.Path = name
		e.Properties = []byte(`{"path":"` + name + `","title":"Docs"}`)
	default:
		e.Event = name
		e.Properties = []byte(`{"plan":"pro"}`)
	}
	return e
}

func TestTimelinePages(t *testing.T) {
	s := newLeadShard(t)
	id := event.LeadID(testTenant, "pager")
	start := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	var msg []event.Event
	for i := range 250 {
		typ, name := event.TypePage, fmt.Sprintf("/p%d", i)
		if i%5 == 0 {
			typ, name = event.TypeTrack, fmt.Sprintf("t%d", i)
		}
		msg = append(msg, leadEvent(id, typ, name, start.Add(time.Duration(i)*time.Second)))
	}
	for _, err := range s.apply(msg) {
		require.NoError(t, err)
	}
	rd := lead.NewReader(s.st, 1)
	ctx := context.Background()

	f := func(types []string, size int, want []int) {
		t.Helper()
		var got []int
		cursor := ""
		for {
			page, next, err := rd.Activities(ctx, testTenant, id, lead.ActivityQuery{Limit: size, Cursor: cursor, Types: types})
			require.NoError(t, err)
			got = append(got, len(page))
			if next == "" {
				break
			}
			cursor = next
		}
		require.Equal(t, want, got, "page sizes of types %v by %d", types, size)
	}
	f(nil, 100, []int{100, 100, 51}) // and the create_lead activity
	f(nil, 251, []int{251})
	f([]string{lead.ActTrack}, 20, []int{20, 20, 10})
	f([]string{"TRACK", lead.ActCreateLead}, 100, []int{51})
	f([]string{lead.ActFillForm}, 10, []int{0})

	page, _, err := rd.Activities(ctx, testTenant, id, lead.ActivityQuery{Limit: 3})
	require.NoError(t, err)
	require.Equal(t, []string{"/p249", "/p248", "/p247"}, []string{page[0].Page, page[1].Page, page[2].Page})
	_, _, err = rd.Activities(ctx, testTenant, id, lead.ActivityQuery{Limit: 3, Cursor: "not-a-cursor"})
	require.ErrorIs(t, err, lead.ErrBadCursor)
	_, _, err = rd.Activities(ctx, testTenant, event.LeadID(testTenant, "nobody"), lead.ActivityQuery{Limit: 3})
	require.ErrorIs(t, err, lead.ErrNotFound)
}

func TestRefusedInputs(t *testing.T) {
	s := newLeadShard(t)
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	noLead := event.Event{Tenant: testTenant, Type: event.TypePage, AnonymousID: "a", Timestamp: at, ReceivedAt: at}
	noEmail := event.Event{Tenant: testTenant, Type: event.TypeForm, Name: "f", AnonymousID: "a", Timestamp: at, ReceivedAt: at, Traits: []byte(`{"email":"nope"}`)}
	unknown, err := lead.Command(testTenant, event.LeadID(testTenant, "u"), "frobnicate", struct{}{}, "c1", at)
	require.NoError(t, err)
	known := leadEvent(event.LeadID(testTenant, "u"), event.TypePage, "/", at)
	errs := s.apply([]event.Event{noLead, noEmail, known, unknown})
	require.ErrorIs(t, errs[0], lead.ErrNoLead)
	require.Error(t, errs[1], "a form fill without a usable email")
	require.NoError(t, errs[2])
	require.ErrorContains(t, errs[3], "frobnicate")

	// A refused input leaves nothing behind; the others apply.
	l, err := lead.NewReader(s.st, 1).ByUserID(context.Background(), testTenant, "u")
	require.NoError(t, err)
	require.Equal(t, 2, l.Activities, "create_lead and the page")
}

func TestCommandEvent(t *testing.T) {
	at := time.Date(2026, 11, 23, 10, 0, 0, 123456789, time.FixedZone("x", 3600))
	c, err := lead.Command(testTenant, "ld_x", lead.CmdScore, lead.ScoreChange{Change: 3}, "m1", at)
	require.NoError(t, err)
	require.Equal(t, event.TypeCommand, c.Type)
	require.Equal(t, lead.CmdScore, c.Event)
	require.Equal(t, "ld_x", c.Enrichment.LeadID)
	require.JSONEq(t, `{"change":3}`, string(c.Properties))
	require.Equal(t, at.UTC().Truncate(time.Microsecond), c.Timestamp, "commands keep µs, as activity keys do")
	require.Equal(t, eventlog.LeadsSubject(lead.Partition(testTenant, "ld_x", 5)), lead.Subject(testTenant, "ld_x", 5))

	// The event survives the log encoding.
	back, err := event.DecodeBatch(event.EncodeBatch([]event.Event{c}))
	require.NoError(t, err)
	require.Equal(t, c.Enrichment.LeadID, back[0].Enrichment.LeadID)
	require.Equal(t, c.Event, back[0].Event)
}
