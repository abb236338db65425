package client

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestRowsRoundTrip(t *testing.T) {
	for _, es := range [][]localEntry{
		{},
		{{Line: 2, Value: "+447700900123"}},
		{{Line: 2, Value: "+447700900123"}, {Line: 1 << 40, Value: ""}, {Line: 7, Value: strings.Repeat("é", 300)}},
	} {
		f, err := decodeRows(mustEncode(t, es))
		if err != nil {
			t.Fatalf("decodeRows(encodeRows(%v)): %v", es, err)
		}
		if !reflect.DeepEqual(all(f), es) {
			t.Errorf("decodeRows(encodeRows(%v)) = %v", es, all(f))
		}
		if _, ok := f.entry(uint64(len(es))); ok {
			t.Errorf("entry %d of %d exists", len(es), len(es))
		}
	}
}

// mustEncode is encodeRows, failing tb on an error.
func mustEncode(tb testing.TB, es []localEntry) []byte {
	tb.Helper()
	b, err := encodeRows(es)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// all decodes every entry of t.
func all(t rowTable) []localEntry {
	out := []localEntry{}
	for ref := range uint64(t.len()) {
		e, _ := t.entry(ref)
		out = append(out, e)
	}
	return out
}

func TestRowsCorrupt(t *testing.T) {
	good := mustEncode(t, []localEntry{{Line: 2, Value: "+447700900123"}, {Line: 3, Value: "+447700900456"}})
	head := len(rowsMagic) + 4 + 4*3
	swapped := append([]byte{}, good...)
	copy(swapped[len(rowsMagic)+4+4:], []byte{100, 0, 0, 0}) // entry 1 starts after entry 2
	badLine := append([]byte{}, good...)
	for i := head; i < head+10; i++ {
		badLine[i] = 0xff // a line number that never ends
	}
	for name, data := range map[string][]byte{
		"no magic":          []byte("{\"entries\":[]}"),
		"truncated":         good[:len(good)-3],
		"too many entries":  append(append([]byte(rowsMagic), 0xff, 0xff, 0xff, 0x7f), good[len(rowsMagic)+4:]...),
		"trailing bytes":    append(append([]byte{}, good...), 0),
		"offsets disorder":  swapped,
		"line never ending": badLine,
	} {
		if es, err := decodeRows(data); err == nil {
			t.Errorf("%s: decodeRows = %v, want an error", name, es)
		}
	}
}

// TestStateRows: the rows of a list's versions are kept in rows files, not
// in its JSON; state written before rows files is read and, saved again,
// moves its rows out; a superseded version's rows file goes; a missing one
// is an error naming the upload.
func TestStateRows(t *testing.T) {
	s, err := openState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	v1 := &localVersion{Kind: "phone", KeyID: "k1", UploadID: "u1", Digest: "d1", Entries: []localEntry{{Line: 2, Value: "+447700900123"}}}
	legacy, err := json.Marshal(localList{Name: "s", Current: v1})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.listPath("s"), legacy, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := s.loadList("s")
	if err != nil || !reflect.DeepEqual(all(l.Current.rows()), v1.Entries) {
		t.Fatalf("legacy state: %+v, %v", l, err)
	}
	if err := s.saveList(l); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(s.listPath("s")); strings.Contains(string(data), "+447700900123") || strings.Contains(string(data), "entries") {
		t.Errorf("the JSON state still holds the rows: %s", data)
	}

	v2 := &localVersion{Kind: "phone", KeyID: "k1", UploadID: "u2", Digest: "d2", Entries: []localEntry{{Line: 3, Value: "+447700900456"}, {Line: 4, Value: "+447700900789"}}}
	if err := s.saveList(&localList{Name: "s", Current: v1, Pending: v2}); err != nil {
		t.Fatal(err)
	}
	if err := s.saveList(&localList{Name: "s", Current: v2}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.rowsPath("s", "u1")); !os.IsNotExist(err) {
		t.Errorf("the rows of the superseded upload remain: %v", err)
	}
	l, err = s.loadList("s")
	if err != nil || l.Pending != nil || !reflect.DeepEqual(all(l.Current.rows()), v2.Entries) {
		t.Fatalf("loadList = %+v, %v; want upload u2's rows", l, err)
	}

	if err := os.Remove(s.rowsPath("s", "u2")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.loadList("s"); err == nil || !strings.Contains(err.Error(), "upload u2") {
		t.Errorf("loadList without its rows file: %v; want an error naming the upload", err)
	}
	if err := s.removeList("s"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.dir, "rows", "s")); !os.IsNotExist(err) {
		t.Errorf("removeList left the rows directory: %v", err)
	}
}

// FuzzDecodeRows: a rows file on disk is the agency's own, but a damaged
// one must be an error, never a panic, and every entry of one accepted
// must decode.
func FuzzDecodeRows(f *testing.F) {
	f.Add(mustEncode(f, nil))
	f.Add(mustEncode(f, []localEntry{{Line: 2, Value: "+447700900123"}, {Line: 300, Value: "a@b.example"}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		rows, err := decodeRows(data)
		if err != nil {
			return
		}
		all(rows)
		if back := mustEncode(t, all(rows)); len(back) > len(data) {
			t.Errorf("re-encoded %d entries in %d bytes, more than the %d read", rows.len(), len(back), len(data))
		}
	})
}

// TestReadRowsCache checks that a rows file is decoded once while it is
// unchanged, and read again once it is replaced or gone.
func TestReadRowsCache(t *testing.T) {
	s, err := openState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	path := s.rowsPath("suspects", "u1")
	write := func(es []localEntry) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, mustEncode(t, es), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	first := []localEntry{{Line: 2, Value: "+447700900123"}}
	write(first)
	a, err := s.readRows(path)
	if err != nil || !reflect.DeepEqual(all(a), first) {
		t.Fatalf("readRows = %v, %v; want %v", all(a), err, first)
	}
	if b, err := s.readRows(path); err != nil || b != a {
		t.Fatalf("an unchanged file was decoded again (%p, then %p, %v)", a, b, err)
	}
	second := []localEntry{{Line: 2, Value: "+447700900999"}, {Line: 3, Value: "+447700900123"}}
	write(second)
	if b, err := s.readRows(path); err != nil || !reflect.DeepEqual(all(b), second) {
		t.Fatalf("after the file was replaced readRows = %v, %v; want %v", all(b), err, second)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := s.readRows(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("readRows of a removed file: %v, want not exist", err)
	}
}
