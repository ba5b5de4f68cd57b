package dashboard

import (
	"fmt"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/campaign"
)

func TestSessionSeal(t *testing.T) {
	k, err := newSealer("admin-token")
	require.NoError(t, err)
	now := time.Unix(1_800_000_000, 0)
	s := session{Key: "ak_secret", Tenant: "tn_1", Nonce: "n1", Expires: now.Add(time.Hour).Unix()}
	v, err := k.seal(s)
	require.NoError(t, err)
	require.NotContains(t, v, "ak_secret", "the key is sealed, not merely encoded")
	got, err := k.open(v, now)
	require.NoError(t, err)
	require.Equal(t, s, got)

	_, err = k.open(v, now.Add(2*time.Hour))
	require.ErrorContains(t, err, "expired")
	b := []byte(v)
	b[len(b)/2] ^= 1
	_, err = k.open(string(b), now)
	require.Error(t, err, "a tampered cookie does not open")
	other, err := newSealer("another-token")
	require.NoError(t, err)
	_, err = other.open(v, now)
	require.Error(t, err, "rotating the admin token ends the sessions")
	_, err = newSealer("")
	require.Error(t, err)

	tok := k.token("session", "n1")
	require.True(t, k.checkToken("session", "n1", tok))
	require.False(t, k.checkToken("session", "n2", tok), "another session's token")
	require.False(t, k.checkToken("signin", "n1", tok), "a token is for one purpose")
	require.False(t, k.checkToken("session", "n1", ""))
	require.False(t, k.checkToken("session", "", k.token("session", "")))
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/leads?q=a": "/leads?q=a", "": "/", "//evil.example": "/", "/\\evil.example": "/",
		"https://evil.example/": "/", "leads": "/", "/report": "/report",
	} {
		require.Equal(t, want, safeNext(in), in)
	}
}

func TestSecureRequest(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1:8080": true, "localhost:8080": true, "[::1]:8080": true, "app.localhost": true,
		"10.0.0.5:8080": false, "contrail.example.com": false,
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Host = host
		require.Equal(t, want, secureRequest(r), host)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Host = "contrail.example.com"
	r.Header.Set("X-Forwarded-Proto", "https")
	require.True(t, secureRequest(r))
}

func TestPickSpan(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	require.NoError(t, err)
	now := time.Date(2026, 11, 23, 14, 30, 0, 0, paris)
	sp, err := pickSpan(url.Values{}, now, paris)
	require.NoError(t, err)
	require.Equal(t, "today", sp.Key)
	require.Equal(t, time.Date(2026, 11, 23, 0, 0, 0, 0, paris), sp.From, "today starts at the tenant's midnight")
	require.Equal(t, "hour", sp.Interval)

	sp, err = pickSpan(url.Values{"range": {"30d"}}, now, paris)
	require.NoError(t, err)
	require.Equal(t, time.Date(2026, 10, 25, 0, 0, 0, 0, paris), sp.From)
	require.Equal(t, "day", sp.Interval)

	sp, err = pickSpan(url.Values{"from": {"2026-11-01"}, "to": {"2026-11-01"}}, now, paris)
	require.NoError(t, err)
	require.Equal(t, 24*time.Hour, sp.To.Sub(sp.From), "a custom range runs through its last day")
	require.Equal(t, "hour", sp.Interval)

	for _, q := range []url.Values{{"range": {"forever"}}, {"from": {"2026-11-02"}, "to": {"2026-11-01"}}, {"from": {"yesterday"}, "to": {"2026-11-01"}}, {"from": {"2020-01-01"}, "to": {"2026-01-01"}}} {
		_, err := pickSpan(q, now, paris)
		require.Error(t, err, "%v", q)
	}
}

func TestFlowAndSteps(t *testing.T) {
	spec, err := campaign.Parse([]byte(`name: x
triggers: [{type: lead_created}]
flow:
  - {type: change_score, change: 5}
  - type: choice
    branches:
      - if: lead.score > 1
        flow: [{type: add_to_list, list: Hot}, {type: wait, duration: 1h}]
    default: [{type: call_webhook, url: "https://crm.example/h"}]
`))
	require.NoError(t, err)
	c := campaign.Campaign{Spec: spec}
	var got []string
	for _, f := range flowOf(c, nil) {
		got = append(got, strings.Repeat("  ", f.Depth)+f.Type+" "+f.What)
	}
	require.Equal(t, []string{"change_score score +5", "choice if lead.score > 1 · else", "  add_to_list Hot", "  wait 1h", "  call_webhook POST https://crm.example/h"}, got)

	st, ok := stepAt(spec, "flow[1].branches[0].flow[1]")
	require.True(t, ok)
	require.Equal(t, "wait", st.Type)
	st, ok = stepAt(spec, "flow[1].default[0]")
	require.True(t, ok)
	require.Equal(t, "call_webhook", st.Type)
	for _, bad := range []string{"flow[9]", "flow[0].branches[0].flow[0]", "flow[1].branches[3].flow[0]", "flow[1].flow[0]", ""} {
		_, ok := stepAt(spec, bad)
		require.False(t, ok, bad)
	}
}

func TestPlaceProblems(t *testing.T) {
	lines := placeProblems("a: 1\r\nb: 2\nc: 3", []campaign.FieldError{
		{Path: "b", Message: "bad b", At: &campaign.Position{Line: 2, Column: 1}},
		{Path: "triggers[0].constraint", Message: "syntax", Column: 7, Line: 1, At: &campaign.Position{Line: 3}},
		{Message: "somewhere", At: &campaign.Position{Line: 99}},
	})
	require.Len(t, lines, 3)
	require.Equal(t, []string{"somewhere"}, lines[0].Problems, "a line past the end goes on the first")
	require.Equal(t, []string{"b: bad b"}, lines[1].Problems)
	require.Equal(t, []string{"triggers[0].constraint: syntax (at column 7 of the expression)"}, lines[2].Problems)
	require.Equal(t, "a: 1", lines[0].Text)
}

func TestFormats(t *testing.T) {
	require.Equal(t, "9,999", formatNum(9999))
	require.Equal(t, "12.3k", formatNum(12_345))
	require.Equal(t, "4.5M", formatNum(4_500_000))
	require.Equal(t, "2B", formatNum(2_000_000_000))
	require.Equal(t, "-1,234", formatInt(-1234))
	require.Equal(t, "33.3%", formatPct(1.0/3))
	require.Equal(t, "1m 05s", formatSeconds(65))
	require.Equal(t, "2h 00m", formatSeconds(7200))
	require.Equal(t, int64(50), niceCeil(41))
	require.Equal(t, int64(1), niceCeil(0))
	require.Equal(t, int64(1000), niceCeil(1000))
	require.Equal(t, "/report?filter=page%3A%2Fx&range=7d", withQuery("/report?range=7d", "filter", "page:/x"))
	require.Equal(t, "/report", withQuery("/report?filter=a", "filter", ""))
}

func TestChartEscapes(t *testing.T) {
	c := drawChart([]time.Time{time.Unix(0, 0).UTC(), time.Unix(3600, 0).UTC()}, []int64{3, 7}, "hour", `<script>`)
	require.Equal(t, int64(10), c.Total)
	require.NotContains(t, string(c.SVG), "<script>")
	require.Contains(t, string(c.SVG), "&lt;script&gt; over time, 10 in all")
	require.Contains(t, string(c.SVG), "<title>01:00: 7</title>")
}

func TestReportCache(t *testing.T) {
	var c reportCache
	now := time.Unix(1_800_000_000, 0)
	_, ok := c.get("tn_a?range=today", now)
	require.False(t, ok)
	c.put("tn_a?range=today", reportView{Metric: "visitors"}, now.Add(4*time.Second))
	v, ok := c.get("tn_a?range=today", now.Add(3*time.Second))
	require.True(t, ok)
	require.Equal(t, "visitors", v.Metric)
	_, ok = c.get("tn_b?range=today", now)
	require.False(t, ok, "another tenant's report is another entry")
	_, ok = c.get("tn_a?range=today", now.Add(4*time.Second))
	require.False(t, ok, "expired")
	for i := range maxCachedReports + 10 {
		c.put(fmt.Sprint(i), reportView{}, now.Add(time.Hour))
	}
	require.LessOrEqual(t, len(c.entries), maxCachedReports, "bounded")
}
