// Package diskspace tells how much room a file system has left, so that the
// service refuses work (and reports not ready) before a full disk makes it
// fail half way.
package diskspace

import (
	"fmt"
	"syscall"
)

// Free is the number of bytes an unprivileged process may still write on
// the file system that holds path.
func Free(path string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("free space of %s: %w", path, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}
