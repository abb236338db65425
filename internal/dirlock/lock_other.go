//go:build !windows && (!unix || aix || (solaris && !illumos))

package dirlock

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

// tryLock fails: this platform has no lock that the kernel drops when the
// process dies, and running without one would let two processes share a
// data directory.
func tryLock(*os.File) error {
	return fmt.Errorf("directory locking on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

func unlock(*os.File) error { return nil }
