//go:build linux || darwin

package disk

import (
	"fmt"
	"syscall"
)

// Statfs reports the space of the file system holding dir. Free counts the
// blocks an unprivileged process may use, not those reserved for root.
func Statfs(dir string) (Space, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return Space{}, fmt.Errorf("statfs %s: %w", dir, err)
	}
	bsize := uint64(st.Bsize)
	return Space{Free: uint64(st.Bavail) * bsize, Total: uint64(st.Blocks) * bsize}, nil
}
