//go:build windows

package dirlock

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// Windows byte-range locks are mandatory: while one handle holds a range,
// reads of that range through other handles fail. So the lock covers one
// byte far beyond any content (locking past the end of a file is allowed),
// leaving the holder's record readable by a process that fails to lock.
const (
	lockOffsetLow  = 0
	lockOffsetHigh = 0x7fffffff
	lockLen        = 1
)

// tryLock takes an exclusive LockFileEx lock on f without waiting. The lock
// belongs to the handle, so another handle on the same file, even in this
// process, cannot take it; the system drops it when the handle is closed,
// including when the process dies.
func tryLock(f *os.File) error {
	return control(f, func(h windows.Handle) error {
		ol := windows.Overlapped{Offset: lockOffsetLow, OffsetHigh: lockOffsetHigh}
		err := windows.LockFileEx(h, windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, lockLen, 0, &ol)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, windows.ERROR_LOCK_VIOLATION):
			return errHeld
		default:
			return os.NewSyscallError("LockFileEx", err)
		}
	})
}

// unlock drops the lock on f.
func unlock(f *os.File) error {
	return control(f, func(h windows.Handle) error {
		ol := windows.Overlapped{Offset: lockOffsetLow, OffsetHigh: lockOffsetHigh}
		return os.NewSyscallError("UnlockFileEx", windows.UnlockFileEx(h, 0, lockLen, 0, &ol))
	})
}

// control runs fn on f's handle.
func control(f *os.File, fn func(h windows.Handle) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var fnErr error
	if err := rc.Control(func(fd uintptr) { fnErr = fn(windows.Handle(fd)) }); err != nil {
		return err
	}
	return fnErr
}
