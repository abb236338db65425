package sqlite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/store"
	"github.com/veilmatch/veilmatch/server/store/internal/matchrow"
	"github.com/veilmatch/veilmatch/server/store/storetest"
)

// openTemp opens a store in a new temporary directory and returns it with
// its path. The caller closes it.
func openTemp(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hub.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	return s, path
}

// closeOnCleanup closes s when the test ends.
func closeOnCleanup(t testing.TB, s *Store) {
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
}

// raw is a store that shows its tables to the conformance suite.
type raw struct{ *Store }

// QueryRaw implements storetest.Raw.
func (r raw) QueryRaw(ctx context.Context, query string, args []any, row func(scan func(...any) error) error) error {
	return r.view(ctx, "query raw", func(tx *sql.Tx) error { return mtx{tx}.Query(ctx, query, args, row) })
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, _ := openTemp(t)
		return raw{s}
	})
}

// token returns a deterministic token for label.
func token(label string) []byte {
	h := sha256.Sum256([]byte("sqlite test " + label))
	return h[:]
}

// entries returns n entries with tokens label/0 … label/n-1 and refs 0 … n-1.
func entries(label string, n int) []store.Entry {
	es := make([]store.Entry, n)
	for i := range es {
		es[i] = store.Entry{Token: token(fmt.Sprint(label, "/", i)), Ref: uint64(i)}
	}
	return es
}

// publish uploads es in batches of batch entries as a new version of the
// owner's list and commits it.
func publish(t testing.TB, s *Store, owner, name, kind string, es []store.Entry, batch int) store.List {
	t.Helper()
	return storetest.Publish(t, s, owner, name, store.List{Kind: kind, KeyID: "k1"}, es, batch)
}

// reopen closes s and opens the database at path again.
func reopen(t *testing.T, s *Store, path string) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, s)
	return s
}

func TestRestart(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	l := publish(t, s, "a", "l", "phone", entries("x", 10), 3)
	m := publish(t, s, "b", "m", "phone", entries("x", 5), 3)
	if err := s.BeginUpload(ctx, store.Upload{Owner: "a", List: "open", ID: "u", Meta: store.List{Kind: "phone", KeyID: "k1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutBatch(ctx, "a", "open", "u", 1, entries("y", 2)); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, path)
	got, err := s.GetList(ctx, "a", "l")
	if err != nil || got.ID != l.ID || got.Entries != 10 || !got.CommittedAt.Equal(l.CommittedAt) {
		t.Errorf("GetList after restart = %+v, %v; want %+v", got, err, l)
	}
	n := 0
	if err := s.Overlaps(ctx, l.ID, func(ref uint64, cp int64) error {
		if cp != m.ID || ref >= 5 {
			t.Errorf("overlap (%d, %d), want refs 0…4 with list %d", ref, cp, m.ID)
		}
		n++
		return nil
	}); err != nil || n != 5 {
		t.Errorf("Overlaps after restart: %d pairs, %v; want 5", n, err)
	}
	// The interrupted upload resumes where it was.
	seqs, committed, err := s.UploadStatus(ctx, "a", "open", "u")
	if err != nil || committed || len(seqs) != 1 || seqs[0] != 1 {
		t.Errorf("UploadStatus after restart = %v, %v, %v; want [1], false", seqs, committed, err)
	}
	if dup, err := s.PutBatch(ctx, "a", "open", "u", 1, entries("y", 2)); err != nil || !dup {
		t.Errorf("PutBatch of a held batch after restart = %v, %v; want duplicate", dup, err)
	}
	// New versions get new ids after a restart too.
	l2 := publish(t, s, "a", "l", "phone", entries("z", 1), 1)
	if l2.ID <= m.ID {
		t.Errorf("new version id %d, want above %d", l2.ID, m.ID)
	}
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
	}{
		{"missing directory", filepath.Join(dir, "missing", "hub.db")},
		{"parent is a file", filepath.Join(file, "hub.db")},
		{"path is a directory", dir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(context.Background(), tt.path)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.HasPrefix(err.Error(), "open store ") {
				t.Errorf("error %q does not name the operation", err)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open created the missing directory: %v", err)
	}

	t.Run("odd characters", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "a dir?x=1#%", "hub 1?.db")
		if err := os.Mkdir(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		s, err := Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		closeOnCleanup(t, s)
		publish(t, s, "a", "l", "phone", entries("x", 1), 1)
		if _, err := os.Stat(path + "-wal"); err != nil {
			t.Errorf("the log is not beside the database: %v", err)
		}
	})
}

func TestFileMode(t *testing.T) {
	s, path := openTemp(t)
	closeOnCleanup(t, s)
	publish(t, s, "a", "l", "phone", entries("x", 3), 3)
	for _, p := range []string{path, path + "-wal"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v, want no group or other access", filepath.Base(p), fi.Mode().Perm())
		}
	}
}

func TestPragmas(t *testing.T) {
	s, _ := openTemp(t)
	closeOnCleanup(t, s)
	tests := []struct {
		pragma string
		db     *sql.DB
		want   string
	}{
		{"journal_mode", s.w, "wal"},
		{"foreign_keys", s.w, "1"},
		{"secure_delete", s.w, "1"},
		{"busy_timeout", s.w, fmt.Sprint(busyTimeout.Milliseconds())},
		{"secure_delete", s.r, "1"},
		{"query_only", s.r, "1"},
		{"busy_timeout", s.r, fmt.Sprint(busyTimeout.Milliseconds())},
	}
	for _, tt := range tests {
		name := "writer " + tt.pragma
		if tt.db == s.r {
			name = "reader " + tt.pragma
		}
		t.Run(name, func(t *testing.T) {
			var got string
			if err := tt.db.QueryRow("PRAGMA " + tt.pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("PRAGMA %s = %s, want %s", tt.pragma, got, tt.want)
			}
		})
	}
}

func TestSchemaVersion(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	var v int
	if err := s.r.QueryRow(`SELECT version FROM schema_version`).Scan(&v); err != nil || v != len(migrations) {
		t.Fatalf("schema version %d, %v; want %d", v, err, len(migrations))
	}
	if _, err := s.w.Exec(`UPDATE schema_version SET version = ?`, len(migrations)+1); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(ctx, path); err == nil {
		s.Close()
		t.Fatal("Open of a database from a newer version succeeded")
	} else if !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open: %v, want an error about a newer schema", err)
	}
}

// fileHashes returns the SHA-256 of the database file and of its log.
func fileHashes(t *testing.T, path string) [2][32]byte {
	t.Helper()
	var h [2][32]byte
	for i, p := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		h[i] = sha256.Sum256(b)
	}
	return h
}

func TestCheckWritesNothing(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	closeOnCleanup(t, s)
	es := entries("x", 50)
	l := publish(t, s, "a", "l", "phone", es, 7)
	// An open upload, so the log holds uncommitted-list pages as well.
	if err := s.BeginUpload(ctx, store.Upload{Owner: "b", List: "m", ID: "u", Meta: store.List{Kind: "phone", KeyID: "k1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutBatch(ctx, "b", "m", "u", 0, es[:10]); err != nil {
		t.Fatal(err)
	}
	tokens := [][]byte{es[3].Token, token("unknown"), es[49].Token}
	for i := range 500 {
		tokens = append(tokens, token(fmt.Sprint("probe ", i)))
	}
	before := fileHashes(t, path)
	var got []int
	for range 3 {
		got = got[:0]
		if err := s.Check(ctx, "phone", "k1", tokens, func(i int, cp int64) error {
			if cp != l.ID {
				t.Errorf("match in list %d, want %d", cp, l.ID)
			}
			got = append(got, i)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 2 || got[0] != 0 || got[1] != 2 {
		t.Errorf("Check matched indexes %v, want [0 2]", got)
	}
	if after := fileHashes(t, path); after != before {
		t.Error("Check changed the database or its log")
	}
}

// fileContains reports whether the database file or its log contains b.
func fileContains(t *testing.T, path string, b []byte) bool {
	t.Helper()
	for _, p := range []string{path, path + "-wal"} {
		data, err := os.ReadFile(p)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		if bytes.Contains(data, b) {
			return true
		}
	}
	return false
}

func TestDeleteErasesFromFiles(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	closeOnCleanup(t, s)
	keep := publish(t, s, "b", "keep", "phone", entries("keep", 300), 100)
	gone := entries("gone", 300)
	publish(t, s, "a", "gone", "phone", gone, 100)
	// A second, open upload of the same list is erased too.
	if err := s.BeginUpload(ctx, store.Upload{Owner: "a", List: "gone", ID: "u2", Meta: store.List{Kind: "phone", KeyID: "k1"}}); err != nil {
		t.Fatal(err)
	}
	staged := entries("staged", 50)
	if _, err := s.PutBatch(ctx, "a", "gone", "u2", 0, staged); err != nil {
		t.Fatal(err)
	}
	erased := append(gone, staged...)
	for _, e := range erased {
		if !fileContains(t, path, e.Token) {
			t.Fatal("a stored token is not in the files; the test cannot see erasure")
		}
	}
	n, err := s.DeleteList(ctx, "a", "gone", nil)
	if err != nil || n != uint64(len(erased)) {
		t.Fatalf("DeleteList = %d, %v; want %d", n, err, len(erased))
	}
	for i, e := range erased {
		if fileContains(t, path, e.Token) {
			t.Fatalf("erased token %d is still in the files", i)
		}
	}
	for _, e := range entries("keep", 300) {
		if !fileContains(t, path, e.Token) {
			t.Fatal("a kept token is missing from the files")
		}
	}
	if got, err := s.GetList(ctx, "b", "keep"); err != nil || got.ID != keep.ID {
		t.Errorf("GetList(keep) = %+v, %v", got, err)
	}
}

// TestDeleteErasesMatches: deleting a list leaves no row of its matches —
// pairs, match sets, events, alerts, retractions — in either direction.
func TestDeleteErasesMatches(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	closeOnCleanup(t, s)
	shared := entries("shared", 3)
	keep := publish(t, s, "b", "keep", "phone", shared, 100)
	gone := publish(t, s, "a", "gone", "phone", shared, 100)
	rec := &audit.Record{Time: time.Now(), DecisionID: "d", Caller: "c", Agency: "b", Action: audit.ActionAlert, Result: audit.ResultAllowed}
	if _, err := s.AppendAlertDecision(ctx, rec, nil, []store.Alerted{{ListID: keep.ID, Ref: shared[0].Ref, CounterpartyListID: gone.ID}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Retract(ctx, "a", "gone", shared[1].Ref, "test", time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	count := func() (n int) {
		t.Helper()
		for _, q := range []string{
			`SELECT count(*) FROM matches WHERE list_id = ?1 OR cp_list_id = ?1`,
			`SELECT count(*) FROM match_sets WHERE list_id = ?1 OR cp_list_id = ?1`,
			`SELECT count(*) FROM match_events WHERE list_id = ?1 OR cp_list_id = ?1`,
			`SELECT count(*) FROM alerted WHERE list_id = ?1 OR cp_list_id = ?1`,
			`SELECT count(*) FROM retractions WHERE list_id = ?1`,
		} {
			var c int
			if err := s.r.QueryRowContext(ctx, q, gone.ID).Scan(&c); err != nil {
				t.Fatal(err)
			}
			n += c
		}
		return n
	}
	if count() == 0 {
		t.Fatal("the list has no match rows; the test cannot see erasure")
	}
	if _, err := s.DeleteList(ctx, "a", "gone", nil); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 0 {
		t.Errorf("%d rows of the deleted list's matches remain", n)
	}
}

// TestRepublishErasesFromFiles: the tokens of a superseded version leave
// the database file and its write-ahead log when the new version commits.
func TestRepublishErasesFromFiles(t *testing.T) {
	s, path := openTemp(t)
	closeOnCleanup(t, s)
	old := entries("old", 300)
	publish(t, s, "a", "l", "phone", old, 100)
	for _, e := range old {
		if !fileContains(t, path, e.Token) {
			t.Fatal("a stored token is not in the files; the test cannot see erasure")
		}
	}
	publish(t, s, "a", "l", "phone", entries("new", 300), 100)
	for i, e := range old {
		if fileContains(t, path, e.Token) {
			t.Fatalf("token %d of the superseded version is still in the files", i)
		}
	}
}

func TestQueryPlans(t *testing.T) {
	s, _ := openTemp(t)
	closeOnCleanup(t, s)
	tests := []struct {
		name  string
		query string
		args  []any
		want  []string
	}{
		{"match", matchrow.PairsSQL("phone", "?8, a.ref, l.id, b.ref", matchFrom), []any{1 << posBits, 2<<posBits - 1, "a", "phone", "k1", matchrow.AllRefsFrom, matchrow.AllRefsTo, 1}, []string{
			"SEARCH a USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)",
			"SEARCH b USING INDEX tokens_prefix (<expr>=?)",
			"SEARCH l USING ",
			"SEARCH r USING ",
		}},
		{"overlaps", matchrow.Rebind(matchrow.OverlapsSQL), []any{1}, []string{
			"SEARCH match_sets USING INDEX sqlite_autoindex_match_sets_1 (list_id=?)",
		}},
		{"check", checkSQL, []any{token("x")[:8], token("x"), "phone", "k1"}, []string{
			"SEARCH t USING INDEX tokens_prefix (<expr>=?)",
			"SEARCH l USING ",
			"SEARCH r USING ",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := s.r.Query("EXPLAIN QUERY PLAN "+tt.query, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			joined := strings.Join(plan, "\n")
			t.Logf("plan:\n%s", joined)
			for _, w := range tt.want {
				if !strings.Contains(joined, w) {
					t.Errorf("plan lacks %q:\n%s", w, joined)
				}
			}
			for _, step := range plan {
				if strings.HasPrefix(step, "SCAN") {
					t.Errorf("plan scans a whole table:\n%s", joined)
				}
			}
		})
	}
}

// TestUpgrade: a database of an earlier schema version, with data in it,
// is migrated on open and keeps its data; the pairs of the lists committed
// before are found, without events, with their match sets, and Overlaps
// answers as before.
func TestUpgrade(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	l := publish(t, s, "a", "l", "phone", entries("x", 3), 2)
	publish(t, s, "b", "m", "phone", entries("x", 5)[1:], 2)
	publish(t, s, "b", "m", "phone", entries("x", 5)[2:], 2) // supersedes the version above
	publish(t, s, "a", "n", "email", entries("x", 5), 2)
	if _, err := s.SetKeyEpochs(ctx, []store.KeyEpoch{{KeyID: "k1"}}, nil); err != nil {
		t.Fatal(err)
	}
	m, err := s.GetList(ctx, "b", "m")
	if err != nil {
		t.Fatal(err)
	}
	// Take the database back to the version before public keys, notice
	// actions, request groups and check use were stored (4), standing
	// matches (5) and match sets (6).
	for _, stmt := range []string{
		`DROP TABLE match_sets`,
		`DROP TABLE matches`,
		`DROP TABLE match_events`,
		`DROP TABLE alerted`,
		`DROP TABLE retractions`,
		`ALTER TABLE key_epochs DROP COLUMN public_key`,
		`ALTER TABLE notices DROP COLUMN action`,
		`DROP INDEX disclosure_requests_group`,
		`DROP INDEX disclosure_requests_pending`,
		`ALTER TABLE disclosure_requests DROP COLUMN group_id`,
		`ALTER TABLE disclosure_requests DROP COLUMN requested`,
		`DROP TABLE check_use`,
		`UPDATE schema_version SET version = 3`,
	} {
		if _, err := s.w.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	s = reopen(t, s, path)
	if got, err := s.GetList(ctx, "a", "l"); err != nil || got.ID != l.ID || got.Entries != 3 {
		t.Fatalf("after the upgrade GetList = %+v, %v; want list %d with 3 entries", got, err, l.ID)
	}
	// A key stored without its public key takes the reported one.
	pub := token("public key")
	if _, err := s.SetKeyEpochs(ctx, []store.KeyEpoch{{KeyID: "k1", PublicKey: pub}}, nil); err != nil {
		t.Fatalf("key epochs after the upgrade: %v", err)
	}
	if _, known, err := s.KeyEpochs(ctx); err != nil || len(known) != 1 || !bytes.Equal(known[0].PublicKey, pub) {
		t.Fatalf("KeyEpochs after the upgrade = %+v, %v", known, err)
	}
	if n, err := s.CheckUse(ctx, "a", "2026-11-30"); err != nil || n != 0 {
		t.Fatalf("CheckUse after the upgrade = %d, %v", n, err)
	}
	// Only token x/2, ref 2 in both, is in l and the current m.
	for _, c := range []struct {
		list store.List
		want string
	}{{l, fmt.Sprint("[2/", m.ID, "]")}, {m, fmt.Sprint("[2/", l.ID, "]")}} {
		var got []string
		if err := s.Overlaps(ctx, c.list.ID, func(ref uint64, cp int64) error {
			got = append(got, fmt.Sprint(ref, "/", cp))
			return nil
		}); err != nil || fmt.Sprint(got) != c.want {
			t.Errorf("Overlaps(%d) after the upgrade = %v, %v; want %s", c.list.ID, got, err, c.want)
		}
	}
	storetest.CheckSets(t, raw{s}, l.ID, m.ID)
	for _, owner := range []string{"a", "b"} {
		if evs, err := s.MatchEvents(ctx, owner, "", 0, 10); err != nil || len(evs) != 0 {
			t.Errorf("MatchEvents(%s) after the upgrade = %+v, %v; want none", owner, evs, err)
		}
	}
	// A commit after the upgrade finds and announces its pairs.
	o := publish(t, s, "c", "o", "phone", entries("x", 1), 2)
	if evs, err := s.MatchEvents(ctx, "a", "", 0, 10); err != nil || len(evs) != 1 || evs[0].ListID != l.ID || evs[0].CounterpartyListID != o.ID {
		t.Errorf("MatchEvents(a) after a new commit = %+v, %v; want one of list %d with %d", evs, err, l.ID, o.ID)
	}
	storetest.CheckSets(t, raw{s}, l.ID, m.ID, o.ID)
}

// TestUpgradeMatchSets: a hub with standing matches upgraded in place to
// match sets has the sets of its pairs, which later changes keep.
func TestUpgradeMatchSets(t *testing.T) {
	s, path := openTemp(t)
	ids := storetest.UpgradeFixture(t, s)
	for _, stmt := range []string{`DROP TABLE match_sets`, `UPDATE schema_version SET version = 5`} {
		if _, err := s.w.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	s = reopen(t, s, path)
	storetest.CheckUpgraded(t, raw{s}, ids)
}

// TestBackup: a backup taken while the store is in use opens as a store
// with the lists and decision log of that moment, passes the integrity
// check, has mode 0600, and never replaces a file.
func TestBackup(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	closeOnCleanup(t, s)
	rec := func() *audit.Record {
		return &audit.Record{Time: time.Now(), DecisionID: "d", Caller: "c", Agency: "police-gb", Action: audit.ActionPublish, Result: audit.ResultAllowed}
	}
	publish(t, s, "police-gb", "a", "phone", entries("a", 100), 64)
	if _, err := s.AppendDecision(ctx, rec(), nil); err != nil {
		t.Fatal(err)
	}
	size, root, err := s.LogHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "backup.db")
	if err := s.Backup(ctx, path); err != nil {
		t.Fatal(err)
	}
	publish(t, s, "police-gb", "b", "phone", entries("b", 10), 64) // after the backup
	if _, err := s.AppendDecision(ctx, rec(), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Backup(ctx, path); err == nil {
		t.Fatal("a backup replaced a file")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup mode %04o", fi.Mode().Perm())
	}
	b, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, b)
	if err := b.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
	lists, err := b.Lists(ctx, "police-gb")
	if err != nil || len(lists) != 1 || lists[0].Name != "a" || lists[0].Entries != 100 {
		t.Fatalf("backup holds %+v (%v), want list a of 100 entries", lists, err)
	}
	bsize, broot, err := b.LogHead(ctx)
	if err != nil || bsize != size || !bytes.Equal(root, broot) {
		t.Fatalf("backup log: size %d, want %d with the same root (%v)", bsize, size, err)
	}
}
