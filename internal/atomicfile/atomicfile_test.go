package atomicfile_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/veilmatch/veilmatch/internal/atomicfile"
)

// entries returns the names in dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// TestWriteFile: it creates and replaces, with the mode asked for, and
// leaves no temporary file behind.
func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	for _, content := range []string{"first", "second, longer"} {
		if err := atomicfile.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Fatalf("read back %q, %v; want %q", got, err, content)
		}
	}
	if runtime.GOOS != "windows" {
		if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
			t.Errorf("mode %04o, want 0600", st.Mode().Perm())
		}
	}
	if names := entries(t, dir); len(names) != 1 {
		t.Errorf("directory holds %v, want the file only", names)
	}
}

// TestWriteFileMissingDir fails clearly and creates nothing.
func TestWriteFileMissingDir(t *testing.T) {
	err := atomicfile.WriteFile(filepath.Join(t.TempDir(), "missing", "f"), []byte("x"), 0o600)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want ErrNotExist", err)
	}
}

// TestCreate: it makes a new file whole, never replaces one, and of
// concurrent creators exactly one wins.
func TestCreate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "oprf.key")
	if err := atomicfile.Create(path, []byte("key one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.Create(path, []byte("key two"), 0o600); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second create: %v, want ErrExist", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "key one" {
		t.Fatalf("the key was replaced: %q", got)
	}
	if names := entries(t, dir); len(names) != 1 {
		t.Errorf("directory holds %v, want the key only", names)
	}

	race := filepath.Join(dir, "race.key")
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = atomicfile.Create(race, []byte{byte(i)}, 0o600) })
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, fs.ErrExist):
			t.Errorf("a losing create: %v, want ErrExist", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d creators won, want 1", wins)
	}
	if names := entries(t, dir); len(names) != 2 {
		t.Errorf("directory holds %v, want the two keys only", names)
	}
}
