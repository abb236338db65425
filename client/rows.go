package client

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/veilmatch/veilmatch/internal/atomicfile"
)

// The rows behind a version's entries are kept beside the list's JSON
// state, in a binary file per upload (rows/LIST/UPLOAD_ID), written once,
// before the JSON that names the upload: an answer about a list of a
// million entries maps its matches to rows after reading one file and one
// string conversion, not after parsing megabytes of JSON. The file is the
// magic line, then for each entry, in entry-reference order, its line
// (uvarint), the length of its value (uvarint) and the value.
const rowsMagic = "veilmatch rows 1\n"

// rowsPath is where the rows of upload uploadID of list are kept.
func (s *stateDir) rowsPath(list, uploadID string) string {
	return filepath.Join(s.dir, "rows", list, uploadID)
}

// encodeRows is the rows file of es.
func encodeRows(es []localEntry) []byte {
	n := len(rowsMagic)
	for _, e := range es {
		n += 2*binary.MaxVarintLen64 + len(e.Value)
	}
	b := append(make([]byte, 0, n), rowsMagic...)
	for _, e := range es {
		b = binary.AppendUvarint(b, uint64(e.Line))
		b = binary.AppendUvarint(b, uint64(len(e.Value)))
		b = append(b, e.Value...)
	}
	return b
}

// decodeRows parses a rows file. The values share one string.
func decodeRows(data []byte) ([]localEntry, error) {
	if len(data) < len(rowsMagic) || string(data[:len(rowsMagic)]) != rowsMagic {
		return nil, errors.New("not a rows file")
	}
	str := string(data)
	out := []localEntry{}
	for i := len(rowsMagic); i < len(data); {
		line, n := binary.Uvarint(data[i:])
		if n <= 0 {
			return nil, fmt.Errorf("entry %d: bad line at byte %d", len(out), i)
		}
		i += n
		size, n := binary.Uvarint(data[i:])
		if n <= 0 || size > uint64(len(data)-i-n) {
			return nil, fmt.Errorf("entry %d: bad value length at byte %d", len(out), i)
		}
		i += n
		out = append(out, localEntry{Line: int(line), Value: str[i : i+int(size)]})
		i += int(size)
	}
	return out, nil
}

// saveRows writes the rows of each of l's versions that has none on disk
// yet. An upload's rows never change, so a file that exists is kept.
func (s *stateDir) saveRows(l *localList) error {
	for _, v := range []*localVersion{l.Current, l.Pending} {
		if v == nil {
			continue
		}
		path := s.rowsPath(l.Name, v.UploadID)
		if _, err := os.Stat(path); err == nil {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		if err := atomicfile.WriteFile(path, encodeRows(v.Entries), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// loadRows reads the rows of each of l's versions whose JSON state did not
// hold them (every version saved since rows files were introduced).
func (s *stateDir) loadRows(l *localList) error {
	for _, v := range []*localVersion{l.Current, l.Pending} {
		if v == nil || v.Entries != nil {
			continue
		}
		path := s.rowsPath(l.Name, v.UploadID)
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("rows of upload %s: %w", v.UploadID, err)
		}
		if v.Entries, err = decodeRows(data); err != nil {
			return fmt.Errorf("rows of upload %s (%s): %w", v.UploadID, path, err)
		}
	}
	return nil
}

// pruneRows removes the rows files of l's uploads other than its current
// and pending ones.
func (s *stateDir) pruneRows(l *localList) error {
	dir := filepath.Dir(s.rowsPath(l.Name, "x"))
	files, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, f := range files {
		if strings.HasPrefix(f.Name(), ".") {
			continue // a file being written
		}
		if (l.Current == nil || f.Name() != l.Current.UploadID) && (l.Pending == nil || f.Name() != l.Pending.UploadID) {
			if err := os.Remove(filepath.Join(dir, f.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}
