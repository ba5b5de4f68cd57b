package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/config"
	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/lead"
	"github.com/contrailhq/contrail/internal/report"
	"github.com/contrailhq/contrail/internal/shard"
	"github.com/contrailhq/contrail/internal/store"
	"github.com/contrailhq/contrail/internal/tenant"
	"github.com/contrailhq/contrail/internal/visitor"
)

// waitProcessed polls the status API until every shard has applied the
// last message of its partition.
func waitProcessed(t *testing.T, url, token string) {
	t.Helper()
	waitFor(t, 60*time.Second, "the shards catch up", func() bool {
		req, err := http.NewRequest("GET", url+"/api/v1/status", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var st struct {
			Partitions []struct {
				Position, Last, Lag, Parked uint64
			} `json:"partitions"`
		}
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&st) != nil || len(st.Partitions) == 0 {
			return false
		}
		for _, p := range st.Partitions {
			if p.Lag != 0 || p.Position != p.Last || p.Parked != 0 {
				return false
			}
		}
		return true
	})
}

// checkProcessing replays the stopped node's EVENTS log through fresh
// visitor processors, without interruption, and requires the node's
// visitor state and LEADS outputs to be the same: nothing was lost or
// applied twice across the kills.
//
// It then replays the node's LEADS log, each message id once (what the lead
// shards' high-water marks do), through fresh lead processors, and
// requires every lead's profile and timeline to be the node's. It returns
// the score of lead scored.
func checkProcessing(t *testing.T, dataDir, tenantID, scored string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l, closeLog := openStoppedLog(t, ctx, dataDir)
	defer closeLog()
	def := config.Default()

	// The uninterrupted run: every EVENTS message in order, per partition.
	ref, err := store.Open(t.TempDir(), nil)
	require.NoError(t, err)
	defer ref.Close()
	vcfg := visitor.DefaultConfig()
	vcfg.Partitions, vcfg.LeadPartitions = def.Log.Partitions, def.Log.LeadPartitions
	m := visitor.NewMetrics(prometheus.NewRegistry())
	procs := make([]*visitor.Processor, def.Log.Partitions)
	for p := range procs {
		procs[p], err = visitor.New(vcfg, p, m)
		require.NoError(t, err)
	}
	wantLeads := leadSeqs{} // what the visitor shards should have sent to LEADS
	messages := 0
	err = l.ReadAll(ctx, func(msg eventlog.Message) error {
		messages++
		evs, err := event.DecodeBatch(msg.Data)
		if err != nil {
			return err
		}
		outs, _, err := shard.ApplyLocal(ctx, ref, eventlog.StreamEvents, msg.Partition, msg.Seq, procs[msg.Partition], evs)
		if err != nil {
			return err
		}
		for _, o := range outs {
			if strings.HasPrefix(o.Subject, eventlog.LeadsPrefix) {
				if err := wantLeads.add(o.Subject, msg.Partition, o.Data); err != nil {
					return err
				}
			}
		}
		return nil
	})
	require.NoError(t, err)

	// The node's state, key by key, against the reference.
	got, err := store.Open(filepath.Join(dataDir, "state"), nil)
	require.NoError(t, err)
	defer got.Close()
	gotKV, wantKV := dumpVisitorState(t, got), dumpVisitorState(t, ref)
	require.NotEmpty(t, wantKV)
	diff := diffKV(wantKV, gotKV)
	require.Empty(t, firstFew(diff), "%d visitor state keys differ from an uninterrupted run", len(diff))
	checkReports(t, ctx, tenantID, def.Log.Partitions, ref, got)

	// LEADS holds exactly the visitor outputs of the uninterrupted run:
	// each message id once (JetStream dedup) or repeated with the same data
	// (a replay after the dedup window, which the lead shard's high-water
	// mark drops), and per subject, tenant and visitor partition the same
	// events in the same order. (A tenant's events parked and replayed
	// reach LEADS later, under other ids, but in their order.)
	gotLeads := leadSeqs{}
	seen := map[string][]byte{}
	leadMsgs := 0
	last, err := l.StreamLastSeq(ctx, eventlog.StreamLeads)
	require.NoError(t, err)
	readLeads(t, ctx, l, last, func(msg eventlog.Message) error {
		// The API's writes and the lead shards' own outputs are checked
		// below, by the lead state they make.
		if !strings.HasPrefix(msg.MsgID, "vis.") && !strings.HasPrefix(msg.MsgID, "vis-") {
			return nil
		}
		leadMsgs++
		if prev, ok := seen[msg.MsgID]; ok {
			if !bytes.Equal(prev, msg.Data) {
				return fmt.Errorf("LEADS message %s stored twice with different data", msg.MsgID)
			}
			return nil
		}
		seen[msg.MsgID] = msg.Data
		up, _, _, err := shard.ParseOutputID(msg.MsgID)
		if err != nil {
			return err
		}
		p, err := strconv.Atoi(up[strings.IndexByte(up, '.')+1:])
		if err != nil {
			return err
		}
		return gotLeads.add(msg.Subject, p, msg.Data)
	})
	require.NotEmpty(t, wantLeads, "the load makes lead events")
	leadDiff := diffKV(wantLeads.flat(), gotLeads.flat())
	require.Empty(t, firstFew(leadDiff), "%d LEADS event sequences (per subject and tenant) differ from an uninterrupted run", len(leadDiff))
	t.Logf("processing: %d EVENTS messages replayed; %d visitor state keys equal; %d LEADS messages (%d distinct) equal",
		messages, len(wantKV), leadMsgs, len(seen))

	lprocs := make([]*lead.Processor, def.Log.LeadPartitions)
	lm := lead.NewMetrics(prometheus.NewRegistry())
	for q := range lprocs {
		lprocs[q], err = lead.New(lead.Config{Partitions: def.Log.LeadPartitions, EventPartitions: def.Log.Partitions}, q, lm)
		require.NoError(t, err)
	}
	require.Positive(t, last, "the load makes LEADS messages")
	applied := map[string]bool{}
	readLeads(t, ctx, l, last, func(msg eventlog.Message) error {
		if applied[msg.MsgID] {
			return nil
		}
		applied[msg.MsgID] = true
		evs, err := event.DecodeBatch(msg.Data)
		if err != nil {
			return err
		}
		_, _, err = shard.ApplyLocal(ctx, ref, eventlog.StreamLeads, msg.Partition, msg.Seq, lprocs[msg.Partition], evs)
		return err
	})
	gotLeadKV, wantLeadKV := dumpState(t, got, "l/"), dumpState(t, ref, "l/")
	require.NotEmpty(t, wantLeadKV)
	diff = diffKV(wantLeadKV, gotLeadKV)
	require.Empty(t, firstFew(diff), "%d lead state keys (profiles, timelines) differ from an uninterrupted run", len(diff))
	rd := lead.NewReader(got, def.Log.LeadPartitions)
	ld, err := rd.Get(ctx, tenantID, scored)
	require.NoError(t, err)
	t.Logf("leads: %d LEADS messages replayed; %d lead state keys equal", len(applied), len(wantLeadKV))
	return ld.Score
}

// readLeads calls fn with every LEADS message up to sequence last, in
// stream order.
func readLeads(t *testing.T, ctx context.Context, l *eventlog.Log, last uint64, fn func(eventlog.Message) error) {
	t.Helper()
	if last == 0 {
		return
	}
	errDone := fmt.Errorf("done")
	err := l.ReadStream(ctx, eventlog.StreamLeads, eventlog.LeadsPrefix, -1, eventlog.Start{}, func(msg eventlog.Message) error {
		if err := fn(msg); err != nil {
			return err
		}
		if msg.Seq >= last {
			return errDone
		}
		return nil
	})
	if err != errDone {
		require.NoError(t, err)
	}
}

// leadSeqs holds the encoded events sent to LEADS, in order, per subject,
// tenant and visitor partition they came from.
type leadSeqs map[string][][]byte

func (ls leadSeqs) add(subject string, from int, data []byte) error {
	return event.EachEvent(data, func(e *event.Event) error {
		k := subject + "/" + e.Tenant + "/" + strconv.Itoa(from)
		ls[k] = append(ls[k], event.AppendRecord(nil, e))
		return nil
	})
}

// flat returns one entry per sequence, for diffKV.
func (ls leadSeqs) flat() map[string][]byte {
	out := map[string][]byte{}
	for k, recs := range ls {
		out[k] = bytes.Join(recs, []byte{0xff, 0x00, 0xff})
	}
	return out
}

// dumpState returns the keys and values of st under prefix.
func dumpState(t *testing.T, st *store.Store, prefix string) map[string][]byte {
	upper := []byte(prefix)
	upper[len(upper)-1]++
	it, err := st.NewIter([]byte(prefix), upper)
	require.NoError(t, err)
	out := map[string][]byte{}
	for it.First(); it.Valid(); it.Next() {
		out[string(it.Key())] = bytes.Clone(it.Value())
	}
	require.NoError(t, it.Close())
	return out
}

// scoreWorker adds 1 to a lead's score through the API until the load
// stops, counting the answers: 200 applied, 202 stored (applied later),
// and the requests whose fate is unknown (cut by a kill).
type scoreWorker struct {
	client                     *http.Client
	token, tenant, lead        string
	applied, accepted, unknown atomic.Int64
}

func (s *scoreWorker) work(ctx context.Context, l *crashLoader) {
	for ctx.Err() == nil && !l.stopping.Load() {
		time.Sleep(20 * time.Millisecond)
		url := l.url.Load().(string) + "/api/v1/leads/" + s.lead + "/score?tenant=" + s.tenant
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(`{"change":1}`))
		if err != nil {
			return
		}
		req.Header.Set("Authorization", "Bearer "+s.token)
		resp, err := s.client.Do(req)
		if err != nil {
			s.unknown.Add(1)
			select {
			case <-l.upC():
			case <-ctx.Done():
			}
			continue
		}
		_ = resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			s.applied.Add(1)
		case http.StatusAccepted:
			s.accepted.Add(1)
		case http.StatusNotFound: // the lead is not created yet
		default:
			s.unknown.Add(1)
		}
	}
}

// diffKV lists the keys missing from got, extra in it, or with other
// values than in want, sorted.
func diffKV(want, got map[string][]byte) []string {
	var diff []string
	for k, v := range want {
		if g, ok := got[k]; !ok {
			diff = append(diff, "missing "+k)
		} else if !bytes.Equal(g, v) {
			diff = append(diff, "differs "+k)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			diff = append(diff, "extra "+k)
		}
	}
	sort.Strings(diff)
	return diff
}

// openStoppedLog opens a stopped node's JetStream store in this process;
// closing it lets another open the same store.
func openStoppedLog(t *testing.T, ctx context.Context, dataDir string) (*eventlog.Log, func()) {
	t.Helper()
	ns, err := eventlog.StartEmbedded(eventlog.EmbeddedOptions{
		StoreDir: filepath.Join(dataDir, "jetstream"), ServerName: "contrail-crash",
	})
	require.NoError(t, err)
	nc, err := eventlog.ConnectEmbedded(ns, "crash-check")
	require.NoError(t, err)
	closeLog := func() {
		nc.Close()
		ns.Shutdown()
		ns.WaitForShutdown()
	}
	def := config.Default().Log
	l, err := eventlog.Open(ctx, nc, eventlog.Options{
		Partitions: def.Partitions, LeadPartitions: def.LeadPartitions,
		MaxAge: def.MaxAge, MaxBytes: def.MaxBytes, DuplicateWindow: def.DuplicateWindow,
	})
	if err != nil {
		closeLog()
	}
	require.NoError(t, err)
	return l, closeLog
}

// dumpVisitorState returns every visitor-shard key of st ("v/...").
// dumpVisitorState returns the visitor shards' keys and values, but for the
// web-report rollups and their hit logs: their sketches do not encode
// canonically (the same visitors can encode differently after a restart),
// and a parked tenant's records are keyed by when they were replayed, so
// checkReports compares what they answer instead.
func dumpVisitorState(t *testing.T, st *store.Store) map[string][]byte {
	it, err := st.NewIter([]byte("v/"), []byte("v0"))
	require.NoError(t, err)
	out := map[string][]byte{}
	for it.First(); it.Valid(); it.Next() {
		k := string(it.Key())
		if rest := k[strings.IndexByte(k[2:], '/')+3:]; strings.HasPrefix(rest, "r/") || strings.HasPrefix(rest, "rh/") {
			continue
		}
		out[strings.Clone(k)] = bytes.Clone(it.Value())
	}
	require.NoError(t, it.Close())
	return out
}

// checkReports compares the web reports of the node with those of the
// uninterrupted run: every count equal, unique visitors equal to within
// the sketches' rounding.
func checkReports(t *testing.T, ctx context.Context, tenantID string, partitions int, want, got *store.Store) {
	t.Helper()
	pol := func(string) report.Policy { return visitor.PolicyOf(tenant.Settings{}) }
	qw, qg := report.NewQuerier(want, partitions, pol, report.DefaultCacheBytes), report.NewQuerier(got, partitions, pol, report.DefaultCacheBytes)
	r := report.Range{From: time.Now().Add(-24 * time.Hour), To: time.Now().Add(time.Hour)}
	sw, err := qw.Summary(ctx, tenantID, r, nil)
	require.NoError(t, err)
	sg, err := qg.Summary(ctx, tenantID, r, nil)
	require.NoError(t, err)
	require.Positive(t, sw.Pageviews)
	near := func(want, got int64, what string) {
		t.Helper()
		require.InDelta(t, float64(want), float64(got), 0.01*float64(want)+0.5, "%s: unique visitors", what)
	}
	near(sw.Visitors, sg.Visitors, "summary")
	sw.Visitors, sg.Visitors = 0, 0
	require.Equal(t, sw, sg, "the report summary differs from an uninterrupted run")
	for _, name := range report.DimNames() {
		d, _ := report.ParseDim(name)
		tw, err := qw.Top(ctx, tenantID, d, r, nil, 1000)
		require.NoError(t, err)
		tg, err := qg.Top(ctx, tenantID, d, r, nil, 1000)
		require.NoError(t, err)
		require.Len(t, tg, len(tw), "rows of top %s", name)
		for i := range tw {
			near(tw[i].Visitors, tg[i].Visitors, name+" "+tw[i].Value)
			tw[i].Visitors, tg[i].Visitors = 0, 0
		}
		require.Equal(t, tw, tg, "top %s differs from an uninterrupted run", name)
	}
}
