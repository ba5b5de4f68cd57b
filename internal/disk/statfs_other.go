//go:build !(linux || darwin)

package disk

import (
	"errors"
	"fmt"
)

// Statfs is not implemented on this platform: set the floor to 0 to run
// without a disk guard.
func Statfs(dir string) (Space, error) {
	return Space{}, fmt.Errorf("statfs %s: %w", dir, errors.ErrUnsupported)
}
