package enrichtest

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWriteCountryDBErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	err := WriteCountryDB(filepath.Join(dir, "a.mmdb"), map[string]string{"not a network": "US"})
	require.ErrorContains(t, err, `parsing network "not a network"`)

	err = WriteCountryDB(filepath.Join(dir, "missing", "a.mmdb"), map[string]string{"192.0.2.0/24": "US"})
	require.ErrorContains(t, err, "creating country database")

	require.NoError(t, WriteCountryDB(filepath.Join(dir, "empty.mmdb"), nil))
}
