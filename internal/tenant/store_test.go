package tenant_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/tenant"
)

var testNow = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

// openStore starts an embedded JetStream and opens a tenant store on it. It
// also returns the bucket, to look at what is stored.
func openStore(tb testing.TB) (*tenant.Store, jetstream.KeyValue) {
	tb.Helper()
	ns, err := eventlog.StartEmbedded(eventlog.EmbeddedOptions{StoreDir: tb.TempDir(), ServerName: "tenant-test"})
	require.NoError(tb, err)
	tb.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	nc, err := eventlog.ConnectEmbedded(ns, "tenant-test")
	require.NoError(tb, err)
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(tb, err)
	ctx := testContext(tb)
	s, err := tenant.OpenStore(ctx, js, 1, func() time.Time { return testNow })
	require.NoError(tb, err)
	kv, err := js.KeyValue(ctx, tenant.Bucket)
	require.NoError(tb, err)
	return s, kv
}

func testContext(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// keysOf returns the tenant's keys of kind.
func keysOf(t tenant.Tenant, kind string) []tenant.Key {
	var out []tenant.Key
	for _, k := range t.Keys {
		if k.Kind == kind {
			out = append(out, k)
		}
	}
	return out
}

func TestCreate(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, kv := openStore(t)

	c, err := s.Create(ctx, "Acme Corp", tenant.Limits{EventsPerSecond: 50})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(c.Tenant.ID, "tn_"), c.Tenant.ID)
	require.Equal(t, "Acme Corp", c.Tenant.Name)
	require.Equal(t, testNow, c.Tenant.CreatedAt)
	require.Equal(t, tenant.Limits{EventsPerSecond: 50, Burst: 50, MaxEventBytes: 32 << 10, MaxBatchBytes: 500 << 10, MaxBatchEvents: 2500, Weight: 1},
		c.Tenant.Limits, "limits get their defaults")
	require.True(t, strings.HasPrefix(c.WriteKey, "wk_"), c.WriteKey)
	require.True(t, strings.HasPrefix(c.APIKey, "ak_"), c.APIKey)
	require.NotEqual(t, c.WriteKey, c.APIKey)

	got, err := s.Get(ctx, c.Tenant.ID)
	require.NoError(t, err)
	require.Equal(t, c.Tenant, got)
	require.Len(t, got.Keys, 2)

	// The write key is public and stored as it is.
	wks := keysOf(got, tenant.KindWrite)
	require.Len(t, wks, 1)
	require.Equal(t, c.WriteKey, wks[0].Secret)
	require.Empty(t, wks[0].Hash)
	require.Equal(t, c.WriteKey[:8], wks[0].Prefix)

	// The API key is stored only as its hash.
	aks := keysOf(got, tenant.KindAPI)
	require.Len(t, aks, 1)
	require.Empty(t, aks[0].Secret)
	require.Equal(t, tenant.HashKey(c.APIKey), aks[0].Hash)
	require.Equal(t, c.APIKey[:8], aks[0].Prefix)
	require.True(t, got.HasAPIKey(c.APIKey))
	require.False(t, got.HasAPIKey(c.WriteKey), "a write key is not an API key")
	require.False(t, got.HasAPIKey(c.APIKey+"x"))
	require.False(t, got.HasAPIKey(""))

	// Nothing in the bucket holds the API secret.
	lister, err := kv.ListKeys(ctx)
	require.NoError(t, err)
	for k := range lister.Keys() {
		e, err := kv.Get(ctx, k)
		require.NoError(t, err)
		require.NotContains(t, string(e.Value()), c.APIKey, "key %s stores the API secret", k)
	}
}

func TestCreateRefusesTakenNames(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, _ := openStore(t)

	_, err := s.Create(ctx, "acme", tenant.Limits{})
	require.NoError(t, err)
	for _, name := range []string{"acme", "ACME", "Acme", "acme "} {
		_, err := s.Create(ctx, name, tenant.Limits{})
		require.ErrorIs(t, err, tenant.ErrNameTaken, "name %q", name)
	}
	_, err = s.Create(ctx, "acme2", tenant.Limits{})
	require.NoError(t, err)

	ts, err := s.List(ctx)
	require.NoError(t, err)
	require.Len(t, ts, 2, "a refused create leaves nothing behind")
}

func TestCreateSameNameConcurrently(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, _ := openStore(t)

	const n = 8
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		wins []tenant.Created
		errs []error
	)
	for i := range n {
		wg.Go(func() {
			name := "Racer"
			if i%2 == 1 {
				name = "racer" // names differ only in case
			}
			c, err := s.Create(ctx, name, tenant.Limits{})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			wins = append(wins, c)
		})
	}
	wg.Wait()
	require.Len(t, wins, 1, "exactly one create must win")
	require.Len(t, errs, n-1)
	for _, err := range errs {
		require.ErrorIs(t, err, tenant.ErrNameTaken)
	}
	ts, err := s.List(ctx)
	require.NoError(t, err)
	require.Len(t, ts, 1)
	require.Equal(t, wins[0].Tenant.ID, ts[0].ID)
}

func TestCreateValidates(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, _ := openStore(t)

	for _, name := range []string{"", " acme", "-acme", "_acme", ".acme", "a/b", "a:b", "acme!", "ac\nme", "zürich", strings.Repeat("a", 65)} {
		_, err := s.Create(ctx, name, tenant.Limits{})
		require.ErrorIs(t, err, tenant.ErrInvalidName, "name %q", name)
	}
	for _, name := range []string{"a", "7", "my shop-1.x_y", strings.Repeat("b", 64)} {
		_, err := s.Create(ctx, name, tenant.Limits{})
		require.NoError(t, err, "name %q", name)
	}

	_, err := s.Create(ctx, "neg", tenant.Limits{DailyQuota: -1})
	require.Error(t, err, "negative limits")
	_, err = s.Get(ctx, "neg")
	require.ErrorIs(t, err, tenant.ErrNotFound, "a refused create must not reserve the name")
}

func TestGet(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, _ := openStore(t)

	c, err := s.Create(ctx, "My Shop", tenant.Limits{})
	require.NoError(t, err)
	for _, key := range []string{c.Tenant.ID, "My Shop", "my shop", "MY SHOP"} {
		got, err := s.Get(ctx, key)
		require.NoError(t, err, "get %q", key)
		require.Equal(t, c.Tenant.ID, got.ID, "get %q", key)
	}
	for _, key := range []string{"nope", "tn_nope", "", "tn_", "bad key*"} {
		_, err := s.Get(ctx, key)
		require.ErrorIs(t, err, tenant.ErrNotFound, "get %q", key)
	}
}

// TestGetByNameLikeAnID shows that a valid name starting with "tn_" cannot
// be found by name: Get takes it for an id.
func TestGetByNameLikeAnID(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, _ := openStore(t)

	c, err := s.Create(ctx, "tn_shop", tenant.Limits{})
	require.NoError(t, err, "tn_shop is a valid name")
	got, err := s.Get(ctx, "tn_shop")
	require.NoError(t, err, "a tenant must be found by its name")
	require.Equal(t, c.Tenant.ID, got.ID)
}

func TestList(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, _ := openStore(t)

	ts, err := s.List(ctx)
	require.NoError(t, err)
	require.Empty(t, ts)

	for _, name := range []string{"delta", "alpha", "charlie", "bravo"} {
		_, err := s.Create(ctx, name, tenant.Limits{})
		require.NoError(t, err)
	}
	ts, err = s.List(ctx)
	require.NoError(t, err)
	var names []string
	for _, tn := range ts {
		names = append(names, tn.Name)
		require.Len(t, tn.Keys, 2)
	}
	require.Equal(t, []string{"alpha", "bravo", "charlie", "delta"}, names)
}

func TestSetLimits(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, _ := openStore(t)
	c, err := s.Create(ctx, "acme", tenant.Limits{})
	require.NoError(t, err)

	bad := []tenant.Limits{
		{EventsPerSecond: -1}, {Burst: -1}, {MaxEventBytes: -1}, {MaxBatchBytes: -1}, {MaxBatchEvents: -1}, {DailyQuota: -5},
		{MaxEventBytes: 2 << 20}, {MaxBatchBytes: 17 << 20}, {MaxEventBytes: 64 << 10, MaxBatchBytes: 32 << 10},
	}
	for _, l := range bad {
		_, err := s.SetLimits(ctx, "acme", l)
		require.Error(t, err, "limits %+v", l)
	}
	got, err := s.Get(ctx, c.Tenant.ID)
	require.NoError(t, err)
	require.Equal(t, tenant.DefaultLimits(), got.Limits, "refused limits change nothing")

	tn, err := s.SetLimits(ctx, "ACME", tenant.Limits{EventsPerSecond: 0.5, DailyQuota: 1000, MaxBatchEvents: 10})
	require.NoError(t, err)
	want := tenant.Limits{EventsPerSecond: 0.5, Burst: 1, MaxEventBytes: 32 << 10, MaxBatchBytes: 500 << 10, MaxBatchEvents: 10, DailyQuota: 1000, Weight: 1}
	require.Equal(t, want, tn.Limits)
	got, err = s.Get(ctx, c.Tenant.ID)
	require.NoError(t, err)
	require.Equal(t, want, got.Limits)
	require.Equal(t, c.Tenant.Keys, got.Keys, "limits leave the keys alone")

	_, err = s.SetLimits(ctx, "nope", tenant.Limits{})
	require.ErrorIs(t, err, tenant.ErrNotFound)
}

func TestAddAndRevokeKeys(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, _ := openStore(t)
	c, err := s.Create(ctx, "acme", tenant.Limits{})
	require.NoError(t, err)

	tn, wk, wsecret, err := s.AddKey(ctx, "acme", tenant.KindWrite)
	require.NoError(t, err)
	require.Equal(t, tenant.KindWrite, wk.Kind)
	require.Equal(t, wsecret, wk.Secret)
	require.True(t, strings.HasPrefix(wsecret, "wk_"))
	require.Len(t, tn.Keys, 3)

	tn, ak, asecret, err := s.AddKey(ctx, c.Tenant.ID, tenant.KindAPI)
	require.NoError(t, err)
	require.Equal(t, tenant.KindAPI, ak.Kind)
	require.Empty(t, ak.Secret)
	require.True(t, strings.HasPrefix(asecret, "ak_"))
	require.Len(t, tn.Keys, 4)
	require.True(t, tn.HasAPIKey(asecret))
	require.True(t, tn.HasAPIKey(c.APIKey), "the first API key still works")

	_, _, _, err = s.AddKey(ctx, "acme", "admin")
	require.Error(t, err, "unknown kind")
	_, _, _, err = s.AddKey(ctx, "nope", tenant.KindWrite)
	require.ErrorIs(t, err, tenant.ErrNotFound)

	tn, err = s.RevokeKey(ctx, "acme", ak.ID)
	require.NoError(t, err)
	require.Len(t, tn.Keys, 3)
	require.False(t, tn.HasAPIKey(asecret))
	tn, err = s.RevokeKey(ctx, "acme", wk.ID)
	require.NoError(t, err)
	require.Len(t, tn.Keys, 2)

	got, err := s.Get(ctx, "acme")
	require.NoError(t, err)
	require.Equal(t, c.Tenant.Keys, got.Keys, "back to the first two keys")

	_, err = s.RevokeKey(ctx, "acme", wk.ID)
	require.ErrorIs(t, err, tenant.ErrKeyNotFound, "a key is revoked once")
	_, err = s.RevokeKey(ctx, "nope", wk.ID)
	require.ErrorIs(t, err, tenant.ErrNotFound)
}

func TestConcurrentUpdatesAllLand(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, _ := openStore(t)
	c, err := s.Create(ctx, "acme", tenant.Limits{})
	require.NoError(t, err)

	const n = 10
	var wg sync.WaitGroup
	ids := make(chan string, n)
	for i := range n {
		wg.Go(func() {
			kind := tenant.KindWrite
			if i%2 == 1 {
				kind = tenant.KindAPI
			}
			_, k, _, err := s.AddKey(ctx, c.Tenant.ID, kind)
			if err != nil {
				t.Errorf("add key %d: %v", i, err)
				return
			}
			ids <- k.ID
		})
	}
	wg.Wait()
	close(ids)

	got, err := s.Get(ctx, c.Tenant.ID)
	require.NoError(t, err)
	require.Len(t, got.Keys, n+2, "every concurrent AddKey must land")
	have := map[string]bool{}
	for _, k := range got.Keys {
		have[k.ID] = true
	}
	for id := range ids {
		require.True(t, have[id], "key %s is missing", id)
	}
}

// startCache runs a cache over s until the test ends and waits until it is loaded.
func startCache(tb testing.TB, s *tenant.Store) *tenant.Cache {
	tb.Helper()
	c := tenant.NewCache(s, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		require.NoError(tb, <-done)
	})
	select {
	case <-c.Loaded():
	case err := <-done:
		require.FailNow(tb, "cache stopped before it loaded", "err: %v", err)
	case <-time.After(10 * time.Second):
		require.FailNow(tb, "cache did not load in 10s")
	}
	return c
}

// eventually waits until cond holds.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	require.Eventually(tb, cond, 10*time.Second, 5*time.Millisecond, what)
}

func TestCacheFollowsTheStore(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, _ := openStore(t)

	before, err := s.Create(ctx, "before", tenant.Limits{})
	require.NoError(t, err)
	c := startCache(t, s)

	// Tenants that existed when Run began are there once Loaded is closed.
	got, ok := c.ByWriteKey(before.WriteKey)
	require.True(t, ok)
	require.Equal(t, before.Tenant.ID, got.ID)
	got, ok = c.ByID(before.Tenant.ID)
	require.True(t, ok)
	require.Equal(t, "before", got.Name)
	got, ok = c.ByAPIKey(before.APIKey)
	require.True(t, ok)
	require.Equal(t, before.Tenant.ID, got.ID)
	_, ok = c.ByWriteKey(before.APIKey)
	require.False(t, ok, "an API key is not a write key")
	_, ok = c.ByAPIKey(before.WriteKey)
	require.False(t, ok, "a write key is not an API key")
	_, ok = c.ByWriteKey("wk_unknown")
	require.False(t, ok)

	// A tenant created afterwards shows up.
	after, err := s.Create(ctx, "after", tenant.Limits{})
	require.NoError(t, err)
	eventually(t, "new tenant in the cache", func() bool {
		got, ok := c.ByWriteKey(after.WriteKey)
		return ok && got.ID == after.Tenant.ID
	})

	// A new key shows up, and a revoked one disappears.
	_, k, secret, err := s.AddKey(ctx, "before", tenant.KindWrite)
	require.NoError(t, err)
	eventually(t, "added write key in the cache", func() bool {
		_, ok := c.ByWriteKey(secret)
		return ok
	})
	_, err = s.RevokeKey(ctx, "before", k.ID)
	require.NoError(t, err)
	eventually(t, "revoked write key gone from the cache", func() bool {
		_, ok := c.ByWriteKey(secret)
		return !ok
	})
	_, ok = c.ByWriteKey(before.WriteKey)
	require.True(t, ok, "the other write key still works")

	// Limits reach the cache too.
	_, err = s.SetLimits(ctx, "after", tenant.Limits{DailyQuota: 5})
	require.NoError(t, err)
	eventually(t, "new limits in the cache", func() bool {
		got, ok := c.ByID(after.Tenant.ID)
		return ok && got.Limits.DailyQuota == 5
	})
}

func TestCacheOfEmptyStoreLoads(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, _ := openStore(t)
	c := startCache(t, s)
	_, ok := c.ByWriteKey("wk_anything")
	require.False(t, ok)

	created, err := s.Create(ctx, "first", tenant.Limits{})
	require.NoError(t, err)
	eventually(t, "first tenant in the cache", func() bool {
		_, ok := c.ByWriteKey(created.WriteKey)
		return ok
	})
}

func TestCacheSkipsUndecodableTenants(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, kv := openStore(t)
	good, err := s.Create(ctx, "good", tenant.Limits{})
	require.NoError(t, err)
	_, err = kv.Put(ctx, "t.tn_broken", []byte("{not json"))
	require.NoError(t, err)

	c := startCache(t, s)
	_, ok := c.ByWriteKey(good.WriteKey)
	require.True(t, ok, "one bad record must not hide the others")
	_, ok = c.ByID("tn_broken")
	require.False(t, ok)

	// Deleting a tenant's record removes it from the cache.
	require.NoError(t, kv.Delete(ctx, "t."+good.Tenant.ID))
	eventually(t, "deleted tenant gone from the cache", func() bool {
		_, ok := c.ByWriteKey(good.WriteKey)
		return !ok
	})
	raw, err := json.Marshal(good.Tenant)
	require.NoError(t, err)
	_, err = kv.Put(ctx, "t."+good.Tenant.ID, raw)
	require.NoError(t, err)
	eventually(t, "restored tenant back in the cache", func() bool {
		_, ok := c.ByWriteKey(good.WriteKey)
		return ok
	})
}

func TestLimitsValidatedWithDefaults(t *testing.T) {
	// A batch limit below the default event limit would leave an
	// inconsistent pair once defaults are applied.
	require.Error(t, tenant.Limits{MaxBatchBytes: 16 << 10}.WithDefaults().Validate())
	require.NoError(t, tenant.Limits{MaxBatchBytes: 16 << 10, MaxEventBytes: 8 << 10}.WithDefaults().Validate())
}

// TestSetPaused: pausing records when; pausing again keeps that time;
// resuming clears it.
func TestSetPaused(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, _ := openStore(t)
	c, err := s.Create(ctx, "acme", tenant.Limits{})
	require.NoError(t, err)
	require.False(t, c.Tenant.IsPaused())

	tn, err := s.SetPaused(ctx, "acme", true)
	require.NoError(t, err)
	require.True(t, tn.IsPaused())
	require.NotNil(t, tn.PausedAt)
	first := *tn.PausedAt
	tn, err = s.SetPaused(ctx, c.Tenant.ID, true)
	require.NoError(t, err)
	require.Equal(t, first, *tn.PausedAt, "pausing again keeps the first pause time")

	tn, err = s.SetPaused(ctx, "acme", false)
	require.NoError(t, err)
	require.False(t, tn.IsPaused())
	require.Nil(t, tn.PausedAt)
	got, err := s.Get(ctx, "acme")
	require.NoError(t, err)
	require.False(t, got.IsPaused(), "the resume is stored")
	require.Len(t, got.PastPauses, 1)
	require.Equal(t, first, got.PastPauses[0].From)

	// The shards judge a message by the time the log stored it.
	t0 := testNow
	tn = tenant.Tenant{PastPauses: []tenant.Pause{{From: t0, To: t0.Add(time.Minute)}}}
	require.True(t, tn.WasPausedAt(t0), "stored during a past pause")
	require.False(t, tn.WasPausedAt(t0.Add(-time.Second)), "stored before it")
	require.False(t, tn.WasPausedAt(t0.Add(time.Minute)), "stored after the resume")
	now := t0.Add(time.Hour)
	tn.PausedAt = &now
	require.True(t, tn.WasPausedAt(now.Add(time.Second)), "stored during the current pause")
	require.False(t, tn.WasPausedAt(now.Add(-time.Second)))

	_, err = s.SetPaused(ctx, "nobody", true)
	require.ErrorIs(t, err, tenant.ErrNotFound)
}
