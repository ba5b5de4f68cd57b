package deliver

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/shard"
)

// A receiver that processes each request, then is too slow to answer the
// first two: every attempt carries the same key, so it does the work once.
func TestWebhookTimeoutRetriesWithSameKey(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var processed []string // keys the receiver acted on, deduplicated
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 0 {
			mu.Lock()
			processed = append(processed, r.Header.Get("Idempotency-Key"))
			mu.Unlock()
		}
		if n < 2 {
			select { // past the attempt timeout
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	cfg := testConfig()
	cfg.Timeout = 100 * time.Millisecond
	cfg.HandoverWait = time.Millisecond
	s := startSender(t, openStore(t), cfg, Deps{})
	s.Deliver(t.Context(), []shard.External{hook(t, "k-timeout", "", rc.srv.URL)})

	res := waitResult(t, s, "k-timeout")
	require.Equal(t, StatusDelivered, res.Status)
	require.Equal(t, 3, res.Attempts)
	require.Equal(t, http.StatusOK, res.HTTPStatus)
	require.Empty(t, res.Error)
	require.False(t, res.FirstAttempt.IsZero())
	require.False(t, res.DeliveredAt.Before(res.FirstAttempt))

	reqs := rc.all()
	require.Len(t, reqs, 3)
	for _, r := range reqs {
		require.Equal(t, "k-timeout", r.header.Get("Idempotency-Key"))
		require.Equal(t, "k-timeout", r.header.Get("webhook-id"))
	}
	mu.Lock()
	require.Equal(t, []string{"k-timeout"}, processed)
	mu.Unlock()
	require.Equal(t, 2.0, testutil.ToFloat64(s.metrics.attempts.WithLabelValues("t1", KindWebhook, outcomeRetry)))
	require.Equal(t, 1.0, testutil.ToFloat64(s.metrics.attempts.WithLabelValues("t1", KindWebhook, outcomeOK)))
}

func TestWebhookRetryAfter(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, n int) {
		if n == 0 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	cfg := testConfig()
	cfg.MaxBackoff = time.Minute // the cap must not cut the server's second
	s := startSender(t, openStore(t), cfg, Deps{})
	require.Empty(t, s.Deliver(t.Context(), []shard.External{hook(t, "k-ra", "", rc.srv.URL)}))

	res := waitResult(t, s, "k-ra")
	require.Equal(t, StatusDelivered, res.Status)
	require.Equal(t, 2, res.Attempts)
	reqs := rc.all()
	require.Len(t, reqs, 2)
	require.GreaterOrEqual(t, reqs[1].at.Sub(reqs[0].at), time.Second)
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f := func(v string, want time.Duration, wantOK bool) {
		t.Helper()
		got, ok := parseRetryAfter(v, now)
		require.Equal(t, wantOK, ok, v)
		require.Equal(t, want, got, v)
	}
	f("", 0, false)
	f("0", 0, true)
	f(" 7 ", 7*time.Second, true)
	f("-3", 0, false)
	f("soon", 0, false)
	f(now.Add(90*time.Second).Format(http.TimeFormat), 90*time.Second, true)
	f(now.Add(-time.Hour).Format(http.TimeFormat), 0, true)
	f("99999999999999999", time.Duration(1<<32)*time.Second, true)
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	s := &Sender{cfg: Config{BaseBackoff: time.Second, MaxBackoff: 10 * time.Second}}
	require.Equal(t, 10*time.Second, s.backoff(1, outcome{retry: true, retryAfter: time.Hour, hasRetryAfter: true}))
	require.Equal(t, 3*time.Second, s.backoff(1, outcome{retry: true, retryAfter: 3 * time.Second, hasRetryAfter: true}))
	for n := 1; n <= 100; n++ {
		ceil := min(time.Second<<min(n-1, 10), 10*time.Second)
		for range 20 {
			d := s.backoff(n, outcome{retry: true})
			require.GreaterOrEqual(t, d, time.Duration(0))
			require.LessOrEqual(t, d, ceil, "attempt %d", n)
		}
	}
}

func TestWebhookFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		status       int
		wantAttempts int
	}{
		{"400 fails at once", http.StatusBadRequest, 1},
		{"404 fails at once", http.StatusNotFound, 1},
		{"302 is not followed", http.StatusFound, 1},
		{"503 fails after max attempts", http.StatusServiceUnavailable, 3},
		{"408 fails after max attempts", http.StatusRequestTimeout, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
				if tc.status == http.StatusFound {
					w.Header().Set("Location", "http://127.0.0.1:1/")
				}
				w.WriteHeader(tc.status)
			})
			cfg := testConfig()
			cfg.MaxAttempts = 3
			s := startSender(t, openStore(t), cfg, Deps{})
			key := "k-" + strconv.Itoa(tc.status)
			require.Empty(t, s.Deliver(t.Context(), []shard.External{hook(t, key, "", rc.srv.URL)}))

			res := waitResult(t, s, key)
			require.Equal(t, StatusFailed, res.Status)
			require.Equal(t, tc.wantAttempts, res.Attempts)
			require.Equal(t, tc.status, res.HTTPStatus)
			require.Contains(t, res.Error, "http "+strconv.Itoa(tc.status))
			require.Len(t, rc.all(), tc.wantAttempts)
			require.Equal(t, 1.0, testutil.ToFloat64(s.metrics.failed.WithLabelValues("t1", KindWebhook)))
			require.Equal(t, 1.0, testutil.ToFloat64(s.metrics.attempts.WithLabelValues("t1", KindWebhook, outcomeFailed)))
			require.Equal(t, float64(tc.wantAttempts-1), testutil.ToFloat64(s.metrics.attempts.WithLabelValues("t1", KindWebhook, outcomeRetry)))
		})
	}
}

func TestWebhookConnectionErrorRetries(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, ok)
	url := rc.srv.URL
	rc.srv.Close() // nothing listens any more
	cfg := testConfig()
	cfg.MaxAttempts = 2
	s := startSender(t, openStore(t), cfg, Deps{})
	s.Deliver(t.Context(), []shard.External{hook(t, "k-conn", "", url)})
	res := waitResult(t, s, "k-conn")
	require.Equal(t, StatusFailed, res.Status)
	require.Equal(t, 2, res.Attempts)
	require.Contains(t, res.Error, "giving up after 2 attempts")
}

// The receiver checks the signature the Standard Webhooks way, with its
// own code.
func TestWebhookSignature(t *testing.T) {
	t.Parallel()
	key := []byte("0123456789abcdef0123456789abcdef")
	secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	rc := newReceiver(t, ok)
	s := startSender(t, openStore(t), testConfig(), Deps{
		Now: func() time.Time { return now },
		Secret: func(tenant string) (string, bool) {
			return secret, tenant == "t1"
		},
	})
	signed := hook(t, "k-signed", "", rc.srv.URL)
	j := Job{Kind: KindWebhook, Tenant: "t2", Key: "k-unsigned", URL: rc.srv.URL + "/x?q=1", Method: http.MethodPut,
		Body: "a=1", ContentType: "application/x-www-form-urlencoded",
		Headers: map[string]string{"X-Campaign": "welcome", "User-Agent": "spoofed", "webhook-id": "other"}}
	unsigned := shard.External{Key: "k-unsigned", Payload: payload(t, j)}
	require.Empty(t, s.Deliver(t.Context(), []shard.External{signed, unsigned}))

	reqs := rc.all()
	require.Len(t, reqs, 2)
	byKey := map[string]*recorded{}
	for _, r := range reqs {
		byKey[r.header.Get("webhook-id")] = r
	}

	r := byKey["k-signed"]
	require.NotNil(t, r)
	ts := r.header.Get("webhook-timestamp")
	require.Equal(t, strconv.FormatInt(now.Unix(), 10), ts)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("k-signed." + ts + "."))
	mac.Write(r.body)
	require.Equal(t, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)), r.header.Get("webhook-signature"))
	require.Equal(t, `{"key":"k-signed"}`, string(r.body))
	require.Equal(t, "application/json", r.header.Get("Content-Type"))
	require.Equal(t, "Contrail-Webhook/1", r.header.Get("User-Agent"))

	r = byKey["k-unsigned"]
	require.NotNil(t, r, "a job's headers must not replace the webhook-id")
	require.Empty(t, r.header.Get("webhook-signature"))
	require.Equal(t, "k-unsigned", r.header.Get("Idempotency-Key"))
	require.Equal(t, "application/x-www-form-urlencoded", r.header.Get("Content-Type"))
	require.Equal(t, "welcome", r.header.Get("X-Campaign"))
	require.Equal(t, "Contrail-Webhook/1", r.header.Get("User-Agent"))
	require.Equal(t, "a=1", string(r.body))
}

func TestSignMatchesStandardWebhooksExample(t *testing.T) {
	t.Parallel()
	// The example of the Standard Webhooks specification.
	key, err := signingKey("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	require.NoError(t, err)
	got := sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	require.Equal(t, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", got)

	_, err = signingKey("whsec_not base64!")
	require.Error(t, err)
}

func TestWebhookBadSecretFailsAtOnce(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, ok)
	s := startSender(t, openStore(t), testConfig(), Deps{
		Secret: func(string) (string, bool) { return "whsec_%%%", true },
	})
	s.Deliver(t.Context(), []shard.External{hook(t, "k-badsecret", "", rc.srv.URL)})
	res := waitResult(t, s, "k-badsecret")
	require.Equal(t, StatusFailed, res.Status)
	require.Contains(t, res.Error, "webhook secret")
	require.Empty(t, rc.all())
}

func TestJobTimeout(t *testing.T) {
	t.Parallel()
	f := func(ms int, def, want time.Duration) {
		t.Helper()
		j := Job{TimeoutMS: ms}
		require.Equal(t, want, j.timeout(def), ms)
	}
	f(0, 10*time.Second, 10*time.Second)
	f(-5, 10*time.Second, 10*time.Second)
	f(250, 10*time.Second, 250*time.Millisecond)
	f(30_000, 10*time.Second, 30*time.Second)
	f(1<<62, 10*time.Second, time.Minute)
	f(90_000, 2*time.Minute, 90*time.Second)
	f(1<<62, 2*time.Minute, 2*time.Minute)
}
