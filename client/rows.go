package client

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/veilmatch/veilmatch/internal/atomicfile"
)

// The rows behind a version's entries are kept beside the list's JSON
// state, in a binary file per upload (rows/LIST/UPLOAD_ID), written once,
// before the JSON that names the upload. An answer about a list of a
// million entries reads the file and decodes the matched entries only,
// not megabytes of JSON. The file is the magic line; the number of
// entries n (uint32, little-endian); n+1 offsets (uint32) into the data
// that follow them; and the data: for each entry, in entry-reference
// order, its line (uvarint) and its value, up to the next offset; an entry
// with a label (an image's path) has its value, a NUL byte (no value holds
// one), then the label.
const rowsMagic = "veilmatch rows 2\n"

// rowTable is the rows of a version, by entry reference.
type rowTable interface {
	// entry returns the row of entry ref, or false if there is none.
	entry(ref uint64) (localEntry, bool)
	// len is the number of entries.
	len() int
}

// entrySlice is a rowTable in memory.
type entrySlice []localEntry

func (es entrySlice) entry(ref uint64) (localEntry, bool) {
	if ref >= uint64(len(es)) {
		return localEntry{}, false
	}
	return es[ref], true
}

func (es entrySlice) len() int { return len(es) }

// rowsFile is a rowTable read from a rows file, decoded entry by entry.
type rowsFile struct {
	offs []byte // n+1 offsets
	data []byte
}

func (f *rowsFile) len() int { return len(f.offs)/4 - 1 }

func (f *rowsFile) entry(ref uint64) (localEntry, bool) {
	if ref >= uint64(f.len()) {
		return localEntry{}, false
	}
	from := binary.LittleEndian.Uint32(f.offs[4*ref:])
	to := binary.LittleEndian.Uint32(f.offs[4*ref+4:])
	e := f.data[from:to]
	line, n := binary.Uvarint(e)
	value, label, _ := strings.Cut(string(e[n:]), "\x00")
	return localEntry{Line: int(line), Value: value, Label: label}, true
}

// rowsPath is where the rows of upload uploadID of list are kept.
func (s *stateDir) rowsPath(list, uploadID string) string {
	return filepath.Join(s.dir, "rows", list, uploadID)
}

// encodeRows is the rows file of es, or an error if its offsets, 32 bits,
// cannot span it (more than 4 GiB of rows).
func encodeRows(es []localEntry) ([]byte, error) {
	head := len(rowsMagic) + 4 + 4*(len(es)+1)
	size := head
	for _, e := range es {
		size += binary.MaxVarintLen64 + len(e.Value) + 1 + len(e.Label)
	}
	if uint64(len(es)) >= math.MaxUint32 || uint64(size-head) > math.MaxUint32 {
		return nil, fmt.Errorf("%d entries in about %d bytes: too many for a rows file (4 GiB)", len(es), size-head)
	}
	b := append(make([]byte, 0, size), rowsMagic...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(es)))
	b = b[:head]
	off := 0
	for i, e := range es {
		binary.LittleEndian.PutUint32(b[len(rowsMagic)+4+4*i:], uint32(off))
		n := len(b)
		b = binary.AppendUvarint(b, uint64(e.Line))
		b = append(b, e.Value...)
		if e.Label != "" {
			b = append(b, 0)
			b = append(b, e.Label...)
		}
		off += len(b) - n
	}
	binary.LittleEndian.PutUint32(b[head-4:], uint32(off))
	return b, nil
}

// decodeRows checks a rows file's structure (not its entries, decoded when
// asked for) and returns its table.
func decodeRows(data []byte) (*rowsFile, error) {
	if len(data) < len(rowsMagic)+4 || string(data[:len(rowsMagic)]) != rowsMagic {
		return nil, errors.New("not a rows file")
	}
	n := uint64(binary.LittleEndian.Uint32(data[len(rowsMagic):]))
	head := uint64(len(rowsMagic)) + 4 + 4*(n+1)
	if uint64(len(data)) < head {
		return nil, fmt.Errorf("%d entries, but the file ends in their offsets", n)
	}
	f := &rowsFile{offs: data[len(rowsMagic)+4 : head], data: data[head:]}
	off := func(i uint64) uint64 { return uint64(binary.LittleEndian.Uint32(f.offs[4*i:])) }
	if off(0) != 0 || off(n) != uint64(len(f.data)) {
		return nil, fmt.Errorf("the offsets do not span the data (%d to %d of %d bytes)", off(0), off(n), len(f.data))
	}
	for i := range n {
		if off(i+1) <= off(i) || off(i+1) > uint64(len(f.data)) {
			return nil, fmt.Errorf("entry %d: offsets out of order", i)
		}
		if _, k := binary.Uvarint(f.data[off(i):off(i+1)]); k <= 0 {
			return nil, fmt.Errorf("entry %d: bad line number", i)
		}
	}
	return f, nil
}

// saveRows writes the rows of each of l's versions that has none on disk
// yet. An upload's rows never change, so a file that exists is kept; a
// version read from its rows file has one.
func (s *stateDir) saveRows(l *localList) error {
	for _, v := range []*localVersion{l.Current, l.Pending} {
		if v == nil || v.file != nil {
			continue
		}
		path := s.rowsPath(l.Name, v.UploadID)
		if _, err := os.Stat(path); err == nil {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		data, err := encodeRows(v.Entries)
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(path, data, 0o600); err != nil {
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
		var err error
		if v.file, err = s.readRows(path); err != nil {
			return fmt.Errorf("rows of upload %s (%s): %w", v.UploadID, path, err)
		}
	}
	return nil
}

// readRows returns the rows file at path decoded, from the cache if stat
// says it is the file decoded then.
func (s *stateDir) readRows(path string) (*rowsFile, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	s.rowsMu.Lock()
	c, ok := s.rows[path]
	s.rowsMu.Unlock()
	if ok && os.SameFile(c.info, info) && c.info.Size() == info.Size() && c.info.ModTime().Equal(info.ModTime()) {
		return c.file, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, err := decodeRows(data)
	if err != nil {
		return nil, err
	}
	s.rowsMu.Lock()
	defer s.rowsMu.Unlock()
	if s.rows == nil {
		s.rows = map[string]cachedRows{}
	}
	for p := range s.rows {
		if len(s.rows) < cachedRowsFiles {
			break
		}
		delete(s.rows, p)
	}
	s.rows[path] = cachedRows{info, f}
	return f, nil
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
