package config

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLoadPrecedence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	require.NoError(t, os.WriteFile(path, []byte("http: \":9000\"\nlog:\n  partitions: 8\n  durability: strict\ncollect:\n  ack_timeout: 2s\n"), 0o600))
	env := map[string]string{"CONTRAIL_PARTITIONS": "4", "CONTRAIL_DATA_DIR": "/env"}
	cfg, rest, err := Load(flag.NewFlagSet("t", flag.ContinueOnError),
		[]string{"--config", path, "--data-dir", "/flag", "extra"}, func(k string) string { return env[k] })
	require.NoError(t, err)
	require.Equal(t, []string{"extra"}, rest)
	require.Equal(t, ":9000", cfg.HTTPAddr, "file overrides default")
	require.Equal(t, 4, cfg.Log.Partitions, "env overrides file")
	require.Equal(t, "/flag", cfg.DataDir, "flag overrides env")
	require.Equal(t, DurabilityStrict, cfg.Log.Durability)
	require.Equal(t, 2*time.Second, cfg.Collect.AckTimeout)
}

func TestLoadErrors(t *testing.T) {
	f := func(name string, args []string, env map[string]string, file string) {
		t.Helper()
		if file != "" {
			path := filepath.Join(t.TempDir(), "c.yaml")
			require.NoError(t, os.WriteFile(path, []byte(file), 0o600))
			args = append(args, "--config="+path)
		}
		_, _, err := Load(flag.NewFlagSet("t", flag.ContinueOnError), args, func(k string) string { return env[k] })
		require.Error(t, err, name)
	}
	f("bad durability", []string{"--durability", "maybe"}, nil, "")
	f("bad partitions env", nil, map[string]string{"CONTRAIL_PARTITIONS": "x"}, "")
	f("zero partitions", []string{"--partitions", "0"}, nil, "")
	f("unknown yaml key", nil, nil, "htp: x\n")
	f("bad proxy", []string{"--trusted-proxies", "10.0.0.0/8,nope"}, nil, "")
	f("cache too small", []string{"--cache-bytes", "1048576"}, nil, "")
	f("negative report cache", []string{"--report-cache-bytes", "-1"}, nil, "")
	f("missing file", []string{"--config", "/nonexistent.yaml"}, nil, "")
}

func TestTrustedProxies(t *testing.T) {
	c := Collect{TrustedProxies: []string{"10.0.0.0/8", "127.0.0.1", " "}}
	ps, err := c.ParseTrustedProxies()
	require.NoError(t, err)
	require.Len(t, ps, 2)
	require.Equal(t, "127.0.0.1/32", ps[1].String())
}

// The example file in deploy/ must load and hold exactly the defaults.
func TestExampleConfigIsTheDefaults(t *testing.T) {
	cfg, _, err := Load(flag.NewFlagSet("t", flag.ContinueOnError), []string{"--config", "../../deploy/contrail.example.yaml"}, func(string) string { return "" })
	require.NoError(t, err)
	want := Default()
	want.Collect.TrustedProxies = []string{}
	require.Equal(t, want, cfg)
}
