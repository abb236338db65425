package dirlock_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veilmatch/veilmatch/internal/dirlock"
)

// helperDirEnv tells TestHelperHoldLock, run in a child process, which
// directory to lock; with helperExitEnv set, the child exits once it has the
// lock instead of blocking.
const (
	helperDirEnv  = "VEILMATCH_DIRLOCK_HELPER_DIR"
	helperExitEnv = "VEILMATCH_DIRLOCK_HELPER_EXIT"
)

func acquire(t *testing.T, dir string) *dirlock.Lock {
	t.Helper()
	l, err := dirlock.Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire(%s): %v", dir, err)
	}
	t.Cleanup(func() { l.Release() })
	return l
}

// wantLocked checks that Acquire(dir) fails with ErrLocked naming pid.
func wantLocked(t *testing.T, dir string, pid int) error {
	t.Helper()
	l, err := dirlock.Acquire(dir)
	if err == nil {
		l.Release()
		t.Fatalf("Acquire(%s) succeeded while pid %d holds the lock", dir, pid)
	}
	if !errors.Is(err, dirlock.ErrLocked) {
		t.Fatalf("Acquire(%s) = %v, want an error wrapping ErrLocked", dir, err)
	}
	for _, want := range []string{"data directory " + dir, fmt.Sprintf("is in use by pid %d ", pid), " since "} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	return err
}

func TestAcquireTwiceInProcess(t *testing.T) {
	dir := t.TempDir()
	acquire(t, dir)
	err := wantLocked(t, dir, os.Getpid())
	host, _ := os.Hostname()
	if !strings.Contains(err.Error(), " on host "+host+" ") {
		t.Errorf("error %q does not name host %q", err, host)
	}
	if !strings.Contains(err.Error(), "("+os.Args[0]) {
		t.Errorf("error %q does not contain the command line %q", err, os.Args[0])
	}
}

func TestReleaseThenAcquire(t *testing.T) {
	dir := t.TempDir()
	l := acquire(t, dir)
	if err := l.Release(); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	// The lock file stays in place after Release.
	if _, err := os.Stat(filepath.Join(dir, dirlock.FileName)); err != nil {
		t.Fatalf("lock file after Release: %v", err)
	}
	l2 := acquire(t, dir)
	wantLocked(t, dir, os.Getpid())
	if err := l2.Release(); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

func TestLockFileContent(t *testing.T) {
	dir := t.TempDir()
	// A stale record left by an earlier holder, longer than the new one, is
	// replaced entirely.
	path := filepath.Join(dir, dirlock.FileName)
	if err := os.WriteFile(path, bytes.Repeat([]byte("x"), 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Second)
	acquire(t, dir)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		PID     int    `json:"pid"`
		Command string `json:"command"`
		Host    string `json:"host"`
		Since   string `json:"since"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		t.Fatalf("lock file %q: %v", b, err)
	}
	if dec.More() {
		t.Fatalf("lock file %q has data after the JSON object", b)
	}
	if h.PID != os.Getpid() {
		t.Errorf("pid = %d, want %d", h.PID, os.Getpid())
	}
	if want := strings.Join(os.Args, " "); len(want) <= 200 && h.Command != want {
		t.Errorf("command = %q, want %q", h.Command, want)
	}
	if host, _ := os.Hostname(); h.Host != host {
		t.Errorf("host = %q, want %q", h.Host, host)
	}
	since, err := time.Parse(time.RFC3339, h.Since)
	if err != nil || since.Before(before.Truncate(time.Second)) || since.After(time.Now()) {
		t.Errorf("since = %q (%v), want an RFC 3339 time of now", h.Since, err)
	}
}

func TestNewLockFileMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no unix permissions on windows")
	}
	dir := t.TempDir()
	acquire(t, dir)
	fi, err := os.Stat(filepath.Join(dir, dirlock.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("lock file mode = %v, want 0600", fi.Mode().Perm())
	}
}

func TestUnreadableHolder(t *testing.T) {
	dir := t.TempDir()
	acquire(t, dir)
	if err := os.WriteFile(filepath.Join(dir, dirlock.FileName), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := dirlock.Acquire(dir)
	if err == nil {
		l.Release()
		t.Fatal("Acquire succeeded while the directory is locked")
	}
	if !errors.Is(err, dirlock.ErrLocked) {
		t.Fatalf("Acquire = %v, want an error wrapping ErrLocked", err)
	}
	if !strings.Contains(err.Error(), "held by another process") || !strings.Contains(err.Error(), dir) {
		t.Errorf("error %q does not say %s is held by another process", err, dir)
	}
}

func TestControlCharactersInHolder(t *testing.T) {
	dir := t.TempDir()
	acquire(t, dir)
	rec := `{"pid":42,"command":"evil\u001b[2Jcmd\nline","host":"h\r","since":"2026-11-30T10:00:00Z"}`
	if err := os.WriteFile(filepath.Join(dir, dirlock.FileName), []byte(rec), 0o600); err != nil {
		t.Fatal(err)
	}
	err := wantLocked(t, dir, 42)
	if strings.ContainsAny(err.Error(), "\x1b\n\r") {
		t.Errorf("error %q carries control characters from the lock file", err)
	}
	want := `data directory ` + dir + ` is in use by pid 42 (evil\x1b[2Jcmd\nline) on host h\r since 2026-11-30T10:00:00Z`
	if err.Error() != want {
		t.Errorf("error = %q\nwant    %q", err, want)
	}
}

func TestAcquireConcurrent(t *testing.T) {
	dir := t.TempDir()
	const n = 16
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		locks []*dirlock.Lock
	)
	for range n {
		wg.Go(func() {
			l, err := dirlock.Acquire(dir)
			if err != nil {
				if !errors.Is(err, dirlock.ErrLocked) {
					t.Errorf("Acquire: %v", err)
				}
				return
			}
			mu.Lock()
			locks = append(locks, l)
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, l := range locks {
		if err := l.Release(); err != nil {
			t.Error(err)
		}
	}
	if len(locks) != 1 {
		t.Fatalf("%d of %d concurrent Acquire calls succeeded, want 1", len(locks), n)
	}
}

func TestMissingDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	l, err := dirlock.Acquire(dir)
	if err == nil {
		l.Release()
		t.Fatal("Acquire on a missing directory succeeded")
	}
	if errors.Is(err, dirlock.ErrLocked) {
		t.Errorf("Acquire on a missing directory = %v, must not wrap ErrLocked", err)
	}
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), dir) {
		t.Errorf("Acquire on a missing directory = %v, want a not-exist error naming %s", err, dir)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Acquire created the missing directory (stat: %v)", err)
	}
}

func TestNotADirectory(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := dirlock.Acquire(file)
	if err == nil {
		l.Release()
		t.Fatal("Acquire on a regular file succeeded")
	}
	if errors.Is(err, dirlock.ErrLocked) || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Acquire on a regular file = %v, want a not-a-directory error", err)
	}
}

// TestHelperHoldLock is not a test: run as a child process by
// startHolder, it locks the directory named by helperDirEnv, prints
// "locked" and blocks until killed (or exits if helperExitEnv is set).
func TestHelperHoldLock(t *testing.T) {
	dir := os.Getenv(helperDirEnv)
	if dir == "" {
		t.Skip("helper process for TestChildHoldsLock")
	}
	if _, err := dirlock.Acquire(dir); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	fmt.Println("locked")
	if os.Getenv(helperExitEnv) != "" {
		os.Exit(0)
	}
	for {
		time.Sleep(time.Hour)
	}
}

// startHolder starts a child process that holds the lock on dir and returns
// once it has the lock.
func startHolder(t *testing.T, dir string) *exec.Cmd {
	t.Helper()
	// The timeout ends the child even if this process dies without
	// killing it.
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldLock$", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), helperDirEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	lines := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			if s.Text() == "locked" {
				lines <- s.Text()
				return
			}
		}
		close(lines)
	}()
	select {
	case _, ok := <-lines:
		if !ok {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child exited without taking the lock: %s", stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("child did not take the lock within 30s")
	}
	return cmd
}

func TestChildHoldsLock(t *testing.T) {
	dir := t.TempDir()
	cmd := startHolder(t, dir)
	err := wantLocked(t, dir, cmd.Process.Pid)
	if !strings.Contains(err.Error(), "TestHelperHoldLock") {
		t.Errorf("error %q does not show the child's command line", err)
	}

	// Killing the holder (no Release, no cleanup: a crash) frees the lock.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	l := acquire(t, dir)
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
}

func TestChildBlockedByParent(t *testing.T) {
	dir := t.TempDir()
	acquire(t, dir)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldLock$", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), helperDirEnv+"="+dir, helperExitEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("child locked a directory this process holds: %s", out)
	}
	if want := fmt.Sprintf("is in use by pid %d ", os.Getpid()); !strings.Contains(string(out), want) {
		t.Errorf("child output %q does not contain %q", out, want)
	}
}
