package deliver

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/shard"
)

// tenantHook is a webhook effect of tenant to url; the receiver finds the
// tenant in X-Tenant.
func tenantHook(tb testing.TB, tenant, key, url string) shard.External {
	tb.Helper()
	j := Job{Kind: KindWebhook, Tenant: tenant, Key: key, URL: url, Body: `{"key":"` + key + `"}`,
		Headers: map[string]string{"X-Tenant": tenant}}
	return shard.External{Key: key, Payload: payload(tb, j)}
}

// routeHosts returns a client that sends a request for host name h (port
// 80) to the test server hosts[h]: made-up names give one test server
// many endpoints, as many receivers' hosts would.
func routeHosts(tb testing.TB, hosts map[string]*httptest.Server) *http.Client {
	tb.Helper()
	var d net.Dialer
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			srv, ok := hosts[host]
			if !ok {
				return nil, fmt.Errorf("no test server for %s", addr)
			}
			return d.DialContext(ctx, network, srv.Listener.Addr().String())
		},
	}
	tb.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// concurrency counts a receiver's calls in progress per tenant, and the
// most seen at once.
type concurrency struct {
	mu       sync.Mutex
	now, max map[string]int
}

func newConcurrency() *concurrency {
	return &concurrency{now: map[string]int{}, max: map[string]int{}}
}

func (c *concurrency) enter(tenant string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now[tenant]++
	c.max[tenant] = max(c.max[tenant], c.now[tenant])
}

func (c *concurrency) leave(tenant string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now[tenant]--
}

func (c *concurrency) get(tenant string) (now, most int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now[tenant], c.max[tenant]
}

// requireIdle checks the Sender keeps no scheduling bookkeeping once
// nothing is ready or in progress.
func requireIdle(t *testing.T, s *Sender) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	require.Empty(t, s.tenants)
	require.Empty(t, s.endpoints)
	require.Empty(t, s.ring)
	require.Zero(t, s.running)
	require.Zero(t, testutil.CollectAndCount(s.metrics.tenantActive), "no tenant series left")
}

// A receiver that holds every call sees at most the tenant's limit of
// calls of a tenant at once: its own (TenantConcurrency), or the node's
// default (PerTenantConcurrency) when it has none.
func TestTenantConcurrencyLimit(t *testing.T) {
	t.Parallel()
	conc := newConcurrency()
	gate := make(chan struct{})
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		tenant := r.Header.Get("X-Tenant")
		conc.enter(tenant)
		defer conc.leave(tenant)
		select {
		case <-gate:
			w.WriteHeader(http.StatusNoContent)
		case <-r.Context().Done():
		}
	})
	cfg := testConfig()
	cfg.Workers, cfg.PerEndpointConcurrency = 64, 64 // only the tenant limits bind
	cfg.PerTenantConcurrency = 5
	cfg.HandoverWait = time.Millisecond
	s := startSender(t, openStore(t), cfg, Deps{TenantConcurrency: func(tenant string) int {
		if tenant == "small" {
			return 3
		}
		return 0 // the node's default
	}})

	var effects []shard.External
	var keys []string
	for i := range 12 {
		for _, tenant := range []string{"small", "other"} {
			key := fmt.Sprintf("%s-%02d", tenant, i)
			keys = append(keys, key)
			effects = append(effects, tenantHook(t, tenant, key, rc.srv.URL))
		}
	}
	s.Deliver(t.Context(), effects)

	require.Eventually(t, func() bool {
		small, _ := conc.get("small")
		other, _ := conc.get("other")
		return small == 3 && other == 5
	}, 15*time.Second, 2*time.Millisecond, "each tenant reaches its limit")
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(s.metrics.throttled.WithLabelValues("small")) > 0 &&
			testutil.ToFloat64(s.metrics.throttled.WithLabelValues("other")) > 0
	}, 15*time.Second, 2*time.Millisecond, "the dispatcher held both tenants back")
	require.Equal(t, 3.0, testutil.ToFloat64(s.metrics.tenantActive.WithLabelValues("small")))
	require.Equal(t, 5.0, testutil.ToFloat64(s.metrics.tenantActive.WithLabelValues("other")))

	close(gate)
	for _, k := range keys {
		require.Equal(t, StatusDelivered, waitResult(t, s, k).Status, k)
	}
	requireOnce(t, rc, keys...)
	_, most := conc.get("small")
	require.Equal(t, 3, most)
	_, most = conc.get("other")
	require.Equal(t, 5, most)
	require.Eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.tenants) == 0
	}, 15*time.Second, 2*time.Millisecond)
	requireIdle(t, s)
}

// With one worker, attempts go one at a time in the order the scheduler
// picks: tenants take turns, and a tenant's endpoints take turns, however
// many endpoints a tenant has. Served by endpoint, "many" would get two
// turns for every one of "few".
func TestTenantsTakeTurns(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []string
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		mu.Lock()
		got = append(got, r.Header.Get("Idempotency-Key"))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	cfg := testConfig()
	cfg.Workers = 1
	s := startSender(t, openStore(t), cfg, Deps{HTTPClient: routeHosts(t, map[string]*httptest.Server{
		"h1.test": rc.srv, "h2.test": rc.srv, "h3.test": rc.srv,
	})})

	var effects []shard.External
	for _, k := range []string{"many-h1-0", "many-h1-1", "many-h1-2", "many-h2-0", "many-h2-1", "many-h2-2"} {
		effects = append(effects, tenantHook(t, "many", k, "http://"+k[5:7]+".test/hook"))
	}
	for _, k := range []string{"few-0", "few-1", "few-2"} {
		effects = append(effects, tenantHook(t, "few", k, "http://h3.test/hook"))
	}
	require.Empty(t, s.Deliver(t.Context(), effects))

	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{
		"many-h1-0", "few-0", "many-h2-0", "few-1", "many-h1-1", "few-2", "many-h2-1", "many-h1-2", "many-h2-2",
	}, got)
	requireIdle(t, s)
}

// Tenant "hang" has receivers that hold every call past the test, tenant
// "fail" receivers that answer 500 to everything, both on many hosts, and
// both handed over first. With four workers, "good" still gets all its
// webhooks through, once each, while the other two are still at it:
// served by endpoint, "hang" would take every worker for a minute.
func TestTenantFailingReceiversDoNotStarveOthers(t *testing.T) {
	t.Parallel()
	conc := newConcurrency()
	hang := newReceiver(t, func(_ http.ResponseWriter, r *http.Request, _ int) {
		conc.enter("hang")
		defer conc.leave("hang")
		<-r.Context().Done() // until the attempt times out, or the test ends
	})
	fail := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		conc.enter("fail")
		defer conc.leave("fail")
		w.WriteHeader(http.StatusInternalServerError)
	})
	good := newReceiver(t, ok)

	hosts := map[string]*httptest.Server{"good.test": good.srv}
	var effects []shard.External
	var hangKeys, failKeys, goodKeys []string
	for i := range 6 {
		h := fmt.Sprintf("hang-%d.test", i)
		hosts[h] = hang.srv
		key := fmt.Sprintf("hang-%d", i)
		hangKeys = append(hangKeys, key)
		effects = append(effects, tenantHook(t, "hang", key, "http://"+h+"/hook"))
	}
	for i := range 6 {
		h := fmt.Sprintf("fail-%d.test", i)
		hosts[h] = fail.srv
		for j := range 2 {
			key := fmt.Sprintf("fail-%d-%d", i, j)
			failKeys = append(failKeys, key)
			effects = append(effects, tenantHook(t, "fail", key, "http://"+h+"/hook"))
		}
	}
	for i := range 20 {
		key := fmt.Sprintf("good-%02d", i)
		goodKeys = append(goodKeys, key)
		effects = append(effects, tenantHook(t, "good", key, "http://good.test/hook"))
	}

	cfg := testConfig()
	cfg.Workers = 4
	cfg.PerTenantConcurrency = 2
	cfg.Timeout = time.Minute   // far beyond the waits below
	cfg.MaxAttempts = 1_000_000 // "fail" never gives up during the test
	cfg.HandoverWait = time.Millisecond
	s := startSender(t, openStore(t), cfg, Deps{HTTPClient: routeHosts(t, hosts)})
	s.Deliver(t.Context(), effects)

	for _, k := range goodKeys {
		res := waitResult(t, s, k)
		require.Equal(t, StatusDelivered, res.Status, k)
		require.Equal(t, 1, res.Attempts, k)
	}
	requireOnce(t, good, goodKeys...)
	for _, k := range append(hangKeys, failKeys...) {
		_, done, err := s.Result(k)
		require.NoError(t, err)
		require.False(t, done, "%s is not done while its receiver hangs or fails", k)
	}

	require.Eventually(t, func() bool {
		return testutil.ToFloat64(s.metrics.attempts.WithLabelValues("fail", KindWebhook, outcomeRetry)) > 0 &&
			testutil.ToFloat64(s.metrics.throttled.WithLabelValues("hang")) > 0
	}, 15*time.Second, 2*time.Millisecond, "fail retries, and hang is held at its limit")
	require.Eventually(t, func() bool { return len(hang.all()) == 2 }, 15*time.Second, 2*time.Millisecond)
	require.Equal(t, 2.0, testutil.ToFloat64(s.metrics.tenantActive.WithLabelValues("hang")))
	require.Zero(t, testutil.ToFloat64(s.metrics.attempts.WithLabelValues("hang", KindWebhook, outcomeRetry)),
		"no attempt of hang has ended")
	_, most := conc.get("hang")
	require.Equal(t, 2, most)
	_, most = conc.get("fail")
	require.LessOrEqual(t, most, 2)
	require.Len(t, hang.all(), 2, "hang never had more than its limit of calls")
}
