// Package atomicfile writes files so that a crash leaves either the old
// content or the new, never a mix, and never a file half written: state
// that must survive (an agency's rows, an auditor's last checkpoint, the
// quota report cursor) and key files that must never be replaced.
//
// Both functions write a temporary file in the target's directory, sync
// it, put it in place in one step and sync the directory, so the result
// survives a power failure.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// WriteFile replaces path with data, atomically and durably: afterwards
// path holds data with mode perm, and after a crash it holds either data or
// what it held before.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	tmp, err := writeTemp(path, data, perm)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("atomicfile: replace %s: %w", path, err)
	}
	return syncDir(path)
}

// Create writes data with mode perm to a new file at path, and fails with
// an error matching fs.ErrExist if path exists. The file appears whole or
// not at all: no reader, and no crash, ever sees it half written. Use it for
// keys, which must never be replaced silently.
func Create(path string, data []byte, perm fs.FileMode) error {
	tmp, err := writeTemp(path, data, perm)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	// A hard link fails if path exists, so of two creators one wins, and
	// the file it makes is already complete.
	if err := os.Link(tmp, path); err != nil {
		return fmt.Errorf("atomicfile: create %s: %w", path, err)
	}
	return syncDir(path)
}

// writeTemp writes data to a new temporary file beside path, with mode
// perm, synced and closed, and returns its name.
func writeTemp(path string, data []byte, perm fs.FileMode) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("atomicfile: write %s: %w", path, err)
	}
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("atomicfile: write %s: %w", path, err)
	}
	return f.Name(), nil
}

// syncDir syncs the directory of path, so that a new or renamed entry in
// it survives a crash.
func syncDir(path string) error {
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("atomicfile: sync directory of %s: %w", path, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil && !errors.Is(err, errors.ErrUnsupported) {
		return fmt.Errorf("atomicfile: sync directory of %s: %w", path, err)
	}
	return nil
}
