// Package dirlock keeps two veilmatch processes (hub or key server) from
// opening the same data directory at the same time.
//
// A process calls [Acquire] on its data directory before touching anything
// in it and keeps the returned [Lock] until it exits. The lock is an
// operating system advisory lock on the file LOCK in the directory (flock on
// unix, LockFileEx on windows), so the kernel drops it when the process
// dies: a crash never leaves a stale lock behind, and there is nothing to
// clean up by hand. The LOCK file itself stays in place; only the lock on it
// comes and goes.
//
// The holder of the lock records who it is in the LOCK file (pid, command
// line, host name and the time it took the lock) so that a second process
// can say who holds the directory:
//
//	data directory /x is in use by pid 1234 (veilmatch dev --dir /x) on host h since 2026-11-30T10:00:00Z
//
// The command line is stored in clear text in the LOCK file and shown in
// error messages. That is safe because veilmatch never takes secrets in
// command-line flags (they come from files, the environment or Vault);
// keep it that way.
//
// Advisory locks only work between processes that use them, and they are
// unreliable on some network file systems (an NFS mount may emulate flock
// with per-process POSIX locks). Keep data directories on a local disk.
package dirlock

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// FileName is the name of the lock file that [Acquire] creates in the data
// directory.
const FileName = "LOCK"

// ErrLocked is wrapped by the error [Acquire] returns when another process,
// or another [Lock] in this process, holds the directory.
var ErrLocked = errors.New("dirlock: directory in use")

// errHeld is returned by the platform tryLock when someone else holds the
// lock.
var errHeld = errors.New("lock held")

const (
	// maxCommand bounds the command line recorded in the lock file.
	maxCommand = 200
	// maxHolderSize bounds how much of a lock file is read back.
	maxHolderSize = 64 << 10
	// holderReadAttempts and holderRetryDelay give a holder that has just
	// taken the lock a moment to write its information.
	holderReadAttempts = 5
	holderRetryDelay   = 10 * time.Millisecond
)

// Lock holds an exclusive lock on a data directory until [Lock.Release] is
// called or the process exits. It is safe for concurrent use.
type Lock struct {
	mu   sync.Mutex
	f    *os.File // nil once released
	path string
}

// holder is what the lock holder records in the lock file, as one JSON
// object.
type holder struct {
	PID     int    `json:"pid"`
	Command string `json:"command"`
	Host    string `json:"host"`
	Since   string `json:"since"` // RFC 3339
}

// Acquire locks dir for this process, creating dir/LOCK (mode 0600) if it
// does not exist. dir itself must already exist: Acquire does not create it.
//
// If the directory is already locked, by another process or by another Lock
// in this process, Acquire fails at once (it never waits) with an error
// wrapping [ErrLocked] that names the holder as recorded in the lock file:
// its pid, command line, host name and the time it took the lock. If that
// record cannot be read, the error says the directory is held by another
// process.
//
// After taking the lock, Acquire replaces the content of the lock file with
// this process's own record (see the package comment about the command
// line) and syncs it to disk.
func Acquire(dir string) (*Lock, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("dirlock: data directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("dirlock: data directory %s is not a directory", dir)
	}
	path := filepath.Join(dir, FileName)
	// No O_TRUNC: the file may hold the current holder's record.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("dirlock: open lock file: %w", err)
	}
	if err := tryLock(f); err != nil {
		if errors.Is(err, errHeld) {
			h := readHolder(f)
			f.Close()
			return nil, &lockedError{dir: dir, path: path, holder: h}
		}
		f.Close()
		return nil, fmt.Errorf("dirlock: lock %s: %w", path, err)
	}
	if err := writeHolder(f, newHolder()); err != nil {
		// Closing the file drops the lock.
		f.Close()
		return nil, fmt.Errorf("dirlock: write lock file %s: %w", path, err)
	}
	return &Lock{f: f, path: path}, nil
}

// Release drops the lock so another process can acquire the directory. The
// lock file stays in place: deleting it would race with another process
// that has opened it and is about to lock it. Calling Release again, or on
// a nil Lock, does nothing and returns nil.
func (l *Lock) Release() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	f := l.f
	l.f = nil
	var errs []error
	if err := unlock(f); err != nil {
		errs = append(errs, fmt.Errorf("dirlock: unlock %s: %w", l.path, err))
	}
	// Closing the last descriptor drops the lock even if unlock failed.
	if err := f.Close(); err != nil {
		errs = append(errs, fmt.Errorf("dirlock: close %s: %w", l.path, err))
	}
	return errors.Join(errs...)
}

// newHolder describes this process.
func newHolder() holder {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	return holder{
		PID:     os.Getpid(),
		Command: truncate(strings.Join(os.Args, " "), maxCommand),
		Host:    host,
		Since:   time.Now().UTC().Format(time.RFC3339),
	}
}

// writeHolder replaces the content of the locked file f with h.
func writeHolder(f *os.File, h holder) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		return err
	}
	return f.Sync()
}

// readHolder reads the record of whoever holds the lock on f, or returns
// nil if there is no valid record. A holder that has only just taken the
// lock may not have written its record yet, so a missing or partial record
// is read again a few times before giving up.
func readHolder(f *os.File) *holder {
	for i := 0; ; i++ {
		if h, err := parseHolder(io.NewSectionReader(f, 0, maxHolderSize)); err == nil {
			return h
		}
		if i+1 == holderReadAttempts {
			return nil
		}
		time.Sleep(holderRetryDelay)
	}
}

// parseHolder parses and checks a lock file's record.
func parseHolder(r io.Reader) (*holder, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var h holder
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, err
	}
	if h.PID <= 0 {
		return nil, fmt.Errorf("bad pid %d", h.PID)
	}
	if _, err := time.Parse(time.RFC3339, h.Since); err != nil {
		return nil, err
	}
	return &h, nil
}

// lockedError is returned by Acquire when the directory is held. It wraps
// ErrLocked.
type lockedError struct {
	dir, path string
	holder    *holder // nil if the holder's record is unreadable
}

func (e *lockedError) Error() string {
	if e.holder == nil {
		return fmt.Sprintf("data directory %s is held by another process (no readable holder information in %s)", e.dir, e.path)
	}
	h := e.holder
	return fmt.Sprintf("data directory %s is in use by pid %d (%s) on host %s since %s",
		e.dir, h.PID, printable(h.Command), printable(h.Host), printable(h.Since))
}

func (e *lockedError) Unwrap() error { return ErrLocked }

// truncate shortens s to at most n bytes plus "...", without splitting a
// UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// printable replaces control and other non-printable characters, which a
// lock file could carry into a terminal, with their quoted form.
func printable(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsPrint(r) || r == ' ' {
			b.WriteRune(r)
		} else {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
	}
	return b.String()
}
