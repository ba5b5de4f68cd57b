package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/api"
	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/shard"
	"github.com/contrailhq/contrail/internal/tenant"
)

const adminToken = "test-admin-token"

// deadAPI is the admin API over a real embedded JetStream.
type deadAPI struct {
	url string
	log *eventlog.Log
}

func startDeadAPI(t *testing.T) (*deadAPI, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	ns, err := eventlog.StartEmbedded(eventlog.EmbeddedOptions{StoreDir: t.TempDir(), ServerName: "api-test"})
	require.NoError(t, err)
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	nc, err := eventlog.ConnectEmbedded(ns, "api-test")
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	l, err := eventlog.Open(ctx, nc, eventlog.Options{Partitions: 4, DuplicateWindow: time.Minute})
	require.NoError(t, err)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	tenants, err := tenant.OpenStore(ctx, js, 1, nil)
	require.NoError(t, err)

	mux := http.NewServeMux()
	api.New(api.Deps{AdminToken: adminToken, Tenants: tenants, Log: l, Dead: l}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &deadAPI{url: srv.URL, log: l}, ctx
}

// do sends a request with token (none when "") and returns the status and
// the body.
func (d *deadAPI) do(t *testing.T, token, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, d.url+path, strings.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

// errCode returns the stable code of an error answer.
func errCode(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Error api.Error `json:"error"`
	}
	require.NoError(t, json.Unmarshal(body, &e), "body: %s", body)
	return e.Error.Code
}

type listAnswer struct {
	Messages []struct {
		Seq       uint64 `json:"seq"`
		Subject   string `json:"subject"`
		Tenant    string `json:"tenant"`
		Time      time.Time
		Reason    string `json:"reason"`
		Stream    string `json:"stream"`
		Partition int    `json:"partition"`
		SourceSeq uint64 `json:"source_seq"`
		Events    []struct {
			Type      string `json:"type"`
			MessageID string `json:"messageId"`
			Tenant    string `json:"tenant"`
		} `json:"events"`
		Error string `json:"error"`
	} `json:"messages"`
	NextAfter *uint64 `json:"next_after"`
}

func (d *deadAPI) list(t *testing.T, query string) listAnswer {
	t.Helper()
	st, b := d.do(t, adminToken, "GET", "/api/v1/dead"+query, "")
	require.Equal(t, http.StatusOK, st, "body: %s", b)
	var out listAnswer
	require.NoError(t, json.Unmarshal(b, &out), "body: %s", b)
	return out
}

func (d *deadAPI) replay(t *testing.T, body string) api.ReplayResult {
	t.Helper()
	st, b := d.do(t, adminToken, "POST", "/api/v1/dead/replay", body)
	require.Equal(t, http.StatusOK, st, "body: %s", b)
	var out api.ReplayResult
	require.NoError(t, json.Unmarshal(b, &out), "body: %s", b)
	return out
}

// publishDead stores a reject of e as a visitor shard does.
func publishDead(t *testing.T, ctx context.Context, l *eventlog.Log, subjectTenant string, data []byte, srcSeq uint64) uint64 {
	t.Helper()
	seq, err := l.Publish(ctx, eventlog.DeadPrefix+subjectTenant, "dead.visitor.1."+strconv.FormatUint(srcSeq, 10)+".0", data,
		map[string]string{
			shard.HeaderReason: "rejected " + strconv.FormatUint(srcSeq, 10), shard.HeaderStream: eventlog.StreamEvents,
			shard.HeaderPartition: "1", shard.HeaderSeq: strconv.FormatUint(srcSeq, 10),
		})
	require.NoError(t, err)
	return seq
}

func seqs(a listAnswer) []uint64 {
	var out []uint64
	for _, m := range a.Messages {
		out = append(out, m.Seq)
	}
	return out
}

func TestDeadAPI(t *testing.T) {
	t.Parallel()
	d, ctx := startDeadAPI(t)

	st, b := d.do(t, adminToken, "POST", "/api/v1/tenants", `{"name":"acme"}`)
	require.Equal(t, http.StatusCreated, st, "body: %s", b)
	var acme struct{ ID string }
	require.NoError(t, json.Unmarshal(b, &acme))

	track := func(msgID string) []byte {
		now := time.Now().UTC().Truncate(time.Microsecond)
		return event.EncodeBatch([]event.Event{{
			Tenant: acme.ID, Type: event.TypeTrack, MessageID: msgID, AnonymousID: "anon-" + msgID,
			Event: "Clicked", Timestamp: now, ReceivedAt: now,
		}})
	}
	first := publishDead(t, ctx, d.log, acme.ID, track("m1"), 10)
	garbage := publishDead(t, ctx, d.log, eventlog.DeadUnknownTenant, []byte("not a log message"), 11)
	second := publishDead(t, ctx, d.log, acme.ID, track("m2"), 12)
	third := publishDead(t, ctx, d.log, acme.ID, track("m3"), 13)

	t.Run("admin token required", func(t *testing.T) {
		for _, r := range []struct{ method, path, body string }{
			{"GET", "/api/v1/dead", ""},
			{"POST", "/api/v1/dead/replay", `{"seqs":[1]}`},
		} {
			for _, tok := range []string{"", "wrong"} {
				st, b := d.do(t, tok, r.method, r.path, r.body)
				require.Equal(t, http.StatusUnauthorized, st, "%s %s with %q", r.method, r.path, tok)
				require.Equal(t, api.CodeUnauthorized, errCode(t, b))
			}
		}
		list := d.list(t, "")
		require.Len(t, list.Messages, 4, "nothing was replayed without the token")
	})

	t.Run("bad requests", func(t *testing.T) {
		cases := []struct {
			method, path, body string
			status             int
			code               string
		}{
			{"GET", "/api/v1/dead?after=x", "", 400, api.CodeInvalidRequest},
			{"GET", "/api/v1/dead?after=-1", "", 400, api.CodeInvalidRequest},
			{"GET", "/api/v1/dead?limit=0", "", 400, api.CodeInvalidRequest},
			{"GET", "/api/v1/dead?limit=1001", "", 400, api.CodeInvalidRequest},
			{"GET", "/api/v1/dead?limit=ten", "", 400, api.CodeInvalidRequest},
			{"GET", "/api/v1/dead?tenant=nope", "", 404, api.CodeNotFound},
			{"POST", "/api/v1/dead/replay", ``, 400, api.CodeInvalidRequest},
			{"POST", "/api/v1/dead/replay", `{}`, 400, api.CodeInvalidRequest},
			{"POST", "/api/v1/dead/replay", `{"seqs":[]}`, 400, api.CodeInvalidRequest},
			{"POST", "/api/v1/dead/replay", `{"seqs":[0]}`, 400, api.CodeInvalidRequest},
			{"POST", "/api/v1/dead/replay", `{"seqs":[1],"tenant":"acme"}`, 400, api.CodeInvalidRequest},
			{"POST", "/api/v1/dead/replay", `{"all":true}`, 400, api.CodeInvalidRequest},
			{"POST", "/api/v1/dead/replay", `{"tenant":"acme"}`, 400, api.CodeInvalidRequest},
			{"POST", "/api/v1/dead/replay", `{"seqs":"1"}`, 400, api.CodeInvalidRequest},
			{"POST", "/api/v1/dead/replay", `{"seq":[1]}`, 400, api.CodeInvalidRequest},
			{"POST", "/api/v1/dead/replay", `{"tenant":"nope","all":true}`, 404, api.CodeNotFound},
			{"POST", "/api/v1/dead/replay", `{"seqs":[` + strings.Repeat("1,", 1000) + `1]}`, 400, api.CodeInvalidRequest},
			{"DELETE", "/api/v1/dead", "", 404, api.CodeNotFound},
		}
		for _, c := range cases {
			st, b := d.do(t, adminToken, c.method, c.path, c.body)
			require.Equal(t, c.status, st, "%s %s %s: %s", c.method, c.path, c.body, b)
			require.Equal(t, c.code, errCode(t, b), "%s %s %s", c.method, c.path, c.body)
		}
		require.Len(t, d.list(t, "").Messages, 4, "a bad request replays nothing")
	})

	t.Run("list", func(t *testing.T) {
		all := d.list(t, "")
		require.Equal(t, []uint64{first, garbage, second, third}, seqs(all))
		require.NotNil(t, all.NextAfter)
		require.Equal(t, third, *all.NextAfter)
		m := all.Messages[0]
		require.Equal(t, "dead."+acme.ID, m.Subject)
		require.Equal(t, acme.ID, m.Tenant)
		require.Equal(t, "rejected 10", m.Reason)
		require.Equal(t, eventlog.StreamEvents, m.Stream)
		require.Equal(t, 1, m.Partition)
		require.Equal(t, uint64(10), m.SourceSeq)
		require.Empty(t, m.Error)
		require.Len(t, m.Events, 1)
		require.Equal(t, "track", m.Events[0].Type)
		require.Equal(t, "m1", m.Events[0].MessageID)
		require.Equal(t, acme.ID, m.Events[0].Tenant)

		bad := all.Messages[1]
		require.Equal(t, eventlog.DeadUnknownTenant, bad.Tenant)
		require.Empty(t, bad.Events, "unreadable data has no events")
		require.NotEmpty(t, bad.Error)

		// A tenant by name or id; pages follow next_after.
		require.Equal(t, []uint64{first, second, third}, seqs(d.list(t, "?tenant=acme")))
		require.Equal(t, []uint64{first, second, third}, seqs(d.list(t, "?tenant="+acme.ID)))
		page := d.list(t, "?tenant=acme&limit=2")
		require.Equal(t, []uint64{first, second}, seqs(page))
		page = d.list(t, "?tenant=acme&limit=2&after="+strconv.FormatUint(*page.NextAfter, 10))
		require.Equal(t, []uint64{third}, seqs(page))
		page = d.list(t, "?tenant=acme&after="+strconv.FormatUint(*page.NextAfter, 10))
		require.Empty(t, page.Messages)
		require.Nil(t, page.NextAfter, "next_after is left out of an empty page")
		require.Equal(t, []uint64{garbage}, seqs(d.list(t, "?tenant=unknown")))
	})

	t.Run("replay", func(t *testing.T) {
		res := d.replay(t, `{"seqs":[`+strconv.FormatUint(first, 10)+`,`+strconv.FormatUint(garbage, 10)+`,9999]}`)
		require.Equal(t, 1, res.ReplayedMessages)
		require.Equal(t, 1, res.ReplayedEvents)
		require.Len(t, res.Errors, 2)
		require.Equal(t, garbage, res.Errors[0].Seq)
		require.Equal(t, api.CodeNotReplayable, res.Errors[0].Code)
		require.Equal(t, uint64(9999), res.Errors[1].Seq)
		require.Equal(t, api.CodeNotFound, res.Errors[1].Code)
		require.Equal(t, []uint64{garbage, second, third}, seqs(d.list(t, "")))

		res = d.replay(t, `{"tenant":"acme","all":true}`)
		require.Equal(t, api.ReplayResult{ReplayedMessages: 2, ReplayedEvents: 2, Errors: []api.ReplayError{}}, res)
		require.Equal(t, []uint64{garbage}, seqs(d.list(t, "")), "the unreadable message stays")

		res = d.replay(t, `{"tenant":"acme","all":true}`)
		require.Equal(t, api.ReplayResult{Errors: []api.ReplayError{}}, res, "nothing left to replay")

		var ids []string
		require.NoError(t, d.log.ReadAll(ctx, func(m eventlog.Message) error {
			es, err := event.DecodeBatch(m.Data)
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(m.MsgID, "replay."), m.MsgID)
			for _, e := range es {
				ids = append(ids, e.MessageID)
			}
			return nil
		}))
		require.Equal(t, []string{"m1", "m2", "m3"}, ids)
	})
}

func TestDeadAPIResponseShape(t *testing.T) {
	t.Parallel()
	d, _ := startDeadAPI(t)
	st, b := d.do(t, adminToken, "GET", "/api/v1/dead", "")
	require.Equal(t, http.StatusOK, st)
	require.JSONEq(t, `{"messages":[]}`, string(b), "an empty DEAD lists as an empty array")
	st, b = d.do(t, adminToken, "POST", "/api/v1/dead/replay", `{"seqs":[5]}`)
	require.Equal(t, http.StatusOK, st)
	var res map[string]any
	require.NoError(t, json.NewDecoder(bytes.NewReader(b)).Decode(&res))
	require.EqualValues(t, 0, res["replayed_messages"])
	require.EqualValues(t, 0, res["replayed_events"])
	require.Len(t, res["errors"], 1)
}
