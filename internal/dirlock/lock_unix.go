// syscall.Flock does not exist on aix and on solaris other than illumos.

//go:build unix && !aix && (!solaris || illumos)

package dirlock

import (
	"errors"
	"os"
	"syscall"
)

// tryLock takes an exclusive flock on f without waiting. flock locks belong
// to the open file description, so a second open of the same file, even in
// this process, cannot take the lock; the kernel drops it when the last
// descriptor is closed, including when the process dies.
func tryLock(f *os.File) error {
	return control(f, func(fd uintptr) error {
		for {
			err := syscall.Flock(int(fd), syscall.LOCK_EX|syscall.LOCK_NB)
			switch {
			case err == nil:
				return nil
			case errors.Is(err, syscall.EINTR):
				continue
			case errors.Is(err, syscall.EWOULDBLOCK), errors.Is(err, syscall.EAGAIN):
				return errHeld
			default:
				return os.NewSyscallError("flock", err)
			}
		}
	})
}

// unlock drops the flock on f.
func unlock(f *os.File) error {
	return control(f, func(fd uintptr) error {
		for {
			err := syscall.Flock(int(fd), syscall.LOCK_UN)
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			return os.NewSyscallError("flock", err)
		}
	})
}

// control runs fn on f's descriptor.
func control(f *os.File, fn func(fd uintptr) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var fnErr error
	if err := rc.Control(func(fd uintptr) { fnErr = fn(fd) }); err != nil {
		return err
	}
	return fnErr
}
