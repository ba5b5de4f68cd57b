package app_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"

	"github.com/contrailhq/contrail/internal/config"
	"github.com/contrailhq/contrail/internal/enrich/enrichtest"
	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/eventlog"
)

// The tenant's IP policy applies before the event is stored (in the log,
// the address and context.ip are anonymized or gone), and the country is
// resolved from the full address first.
func TestIPPolicyAndCountry(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "country.mmdb")
	require.NoError(t, enrichtest.WriteCountryDB(db, map[string]string{"203.0.113.0/24": "FR", "2001:db8::/32": "DE"}))
	n := startNode(t, func(c *config.Config) { c.Process.GeoIPDB = db })
	ids := map[string]string{}
	keys := map[string]string{}
	for _, policy := range []string{"keep", "anonymize", "drop"} {
		id, wk, _ := createTenant(t, n, "ip-"+policy)
		ids[policy], keys[policy] = id, wk
		require.Equal(t, http.StatusOK, adminDo(t, n, http.MethodPatch, "/api/v1/tenants/"+id+"/settings", map[string]any{"ip_policy": policy}, nil))
	}
	for _, policy := range []string{"keep", "anonymize", "drop"} {
		resp := send(t, n, collectReq{basicKey: keys[policy], body: batchBody(t, nil,
			map[string]any{"type": "page", "anonymousId": "a", "messageId": "v4", "context": map[string]any{"ip": "203.0.113.77", "locale": "fr"}},
			map[string]any{"type": "track", "event": "E", "anonymousId": "a", "messageId": "v6", "context": map[string]any{"ip": "2001:db8:1:2:3:4:5:6"}},
		)})
		require.Equal(t, 2, resp.Accepted, "%s: %+v", policy, resp)
	}
	all := readAll(t, n)
	want := map[string][2]string{ // policy → stored ip of v4, v6
		"keep":      {"203.0.113.77", "2001:db8:1:2:3:4:5:6"},
		"anonymize": {"203.0.113.0", "2001:db8:1::"},
		"drop":      {"", ""},
	}
	for policy, ips := range want {
		got := byMessageID(t, all, ids[policy])
		for i, mid := range []string{"v4", "v6"} {
			e := got[mid].Event
			require.Equal(t, ips[i], e.IP, "%s %s", policy, mid)
			ctxIP := gjson.GetBytes(e.Context, "ip")
			if ips[i] == "" {
				require.False(t, ctxIP.Exists(), "%s %s: context.ip must be gone: %s", policy, mid, e.Context)
			} else {
				require.Equal(t, ips[i], ctxIP.Str, "%s %s: context.ip", policy, mid)
			}
			require.Equal(t, []string{"FR", "DE"}[i], e.Enrichment.Country, "%s %s: country from the full address", policy, mid)
		}
		require.Equal(t, "fr", gjson.GetBytes(got["v4"].Event.Context, "locale").Str, "the rest of the context is kept")
	}
}

// Events of known leads reach the LEADS stream enriched, the anonymous
// history first as back-fill; anonymous events never do.
func TestKnownLeadEventsReachLeads(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	id, wk, _ := createTenant(t, n, "leads")
	ua := "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
	ctx := map[string]any{"userAgent": ua, "library": map[string]any{"name": "analytics.js"}}
	resp := send(t, n, collectReq{basicKey: wk, body: batchBody(t, nil,
		map[string]any{"type": "page", "anonymousId": "anon-1", "messageId": "p1", "context": ctx,
			"properties": map[string]any{"url": "https://shop.example/pricing?utm_source=news&utm_campaign=fall", "referrer": "https://www.google.com/"}},
		map[string]any{"type": "page", "anonymousId": "anon-2", "messageId": "other", "context": ctx},
	)})
	require.Equal(t, 2, resp.Accepted)
	resp = send(t, n, collectReq{basicKey: wk, body: batchBody(t, nil,
		map[string]any{"type": "identify", "anonymousId": "anon-1", "userId": "u-1", "messageId": "i1", "context": ctx},
		map[string]any{"type": "track", "event": "Bought", "anonymousId": "anon-1", "messageId": "t1", "context": ctx},
	)})
	require.Equal(t, 2, resp.Accepted)
	caughtUp(t, n)

	var got []event.Event
	l := n.Node.Log()
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errDone := errors.New("done")
	err := l.ReadStream(c, eventlog.StreamLeads, eventlog.LeadsPrefix, -1, eventlog.Start{}, func(m eventlog.Message) error {
		return event.EachEvent(m.Data, func(e *event.Event) error {
			if e.Tenant == id {
				got = append(got, cloneEvent(e))
			}
			if len(got) == 3 {
				return errDone
			}
			return nil
		})
	})
	require.ErrorIs(t, err, errDone)
	lead := event.LeadID(id, "u-1")
	require.Equal(t, []string{"p1", "i1", "t1"}, []string{got[0].MessageID, got[1].MessageID, got[2].MessageID})
	for i, e := range got {
		require.Equal(t, lead, e.Enrichment.LeadID, "event %d", i)
		require.Equal(t, i == 0, e.Enrichment.Backfill, "event %d", i)
		require.Equal(t, got[0].Enrichment.SessionID, e.Enrichment.SessionID, "one session")
	}
	x := got[0].Enrichment
	require.Equal(t, "/pricing", x.Path)
	require.Equal(t, "news", x.UTMSource)
	require.Equal(t, "fall", x.UTMCampaign)
	require.Equal(t, "search", x.Channel)
	require.Equal(t, "mobile", x.Device)
	require.Equal(t, "iOS", x.OS)
	require.True(t, x.NewSession)
}
