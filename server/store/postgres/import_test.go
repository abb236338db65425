package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/store"
	"github.com/veilmatch/veilmatch/server/store/sqlite"
	"github.com/veilmatch/veilmatch/server/store/storetest"
)

// fillSQLite gives a SQLite hub store one of everything: committed lists
// (one republished, so a superseded version), an upload in progress, the
// decision log with a checkpoint, disclosure requests (one answered),
// notices, key epochs, check use, and standing matches with their events,
// alerted pairs and a retraction.
func fillSQLite(t *testing.T, ctx context.Context, src *sqlite.Store) {
	t.Helper()
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	up := func(owner, name, id string, es []store.Entry, commit bool) {
		m := store.List{Kind: "phone", KeyID: "k1", Category: "suspect", Jurisdiction: "GB", ExpiresAt: now.Add(48 * time.Hour),
			Sharing: store.Sharing{VictimConsentRoles: []string{"ngo"}}, Normalization: map[string]string{"region": "GB"}}
		if err := src.BeginUpload(ctx, store.Upload{Owner: owner, List: name, ID: id, Meta: m}); err != nil {
			t.Fatal(err)
		}
		for seq := 0; seq*3 < len(es); seq++ {
			if _, err := src.PutBatch(ctx, owner, name, id, uint64(seq), es[seq*3:min(len(es), seq*3+3)]); err != nil {
				t.Fatal(err)
			}
		}
		if commit {
			if _, err := src.CommitUpload(ctx, owner, name, id, uint64((len(es)+2)/3), uint64(len(es)), now, rec(audit.ActionPublish, now)); err != nil {
				t.Fatal(err)
			}
		}
	}
	up("police-gb", "a", "u1", entries("a", 7), true)
	up("police-us", "b", "u2", append(entries("a", 3), entries("b", 4)...), true)
	up("police-us", "b", "u3", append(entries("a", 2), entries("c", 4)...), true) // supersedes u2
	up("police-th", "open", "u4", entries("d", 5), false)
	if err := src.PutCheckpoint(ctx, 2, []byte("checkpoint of 2\n")); err != nil {
		t.Fatal(err)
	}
	l, _ := src.GetList(ctx, "police-gb", "a")
	req := store.DisclosureRequest{ID: "r1", GroupID: "g1", Requester: "police-gb", RequesterList: "a", RequesterListID: l.ID, Owner: "police-us",
		List: "b", ListID: l.ID + 2, EntryRefs: []uint64{1}, Entries: 1, Requested: 2, Reason: "why", Purpose: "investigation", CaseRef: "C1", CreatedAt: now}
	if err := src.CreateDisclosureRequests(ctx, []store.DisclosureRequest{req}, rec(audit.ActionRequestDisclosure, now)); err != nil {
		t.Fatal(err)
	}
	if _, err := src.AnswerDisclosureRequest(ctx, "r1", "police-us", true, "ok", now, rec(audit.ActionApproveDisclosure, now)); err != nil {
		t.Fatal(err)
	}
	n := store.Notice{Owner: "police-us", List: "b", Action: audit.ActionOverlaps, Requester: "police-gb", RequesterList: "a", Entries: 2, Purpose: "investigation", CaseRef: "C1", Time: now}
	if _, err := src.AppendDecision(ctx, rec(audit.ActionOverlaps, now), []store.Notice{n}); err != nil {
		t.Fatal(err)
	}
	if _, err := src.SetKeyEpochs(ctx, []store.KeyEpoch{{KeyID: "k1", PublicKey: token("pub")}}, rec(audit.ActionKeyEpochs, now)); err != nil {
		t.Fatal(err)
	}
	if err := src.AppendCheckDecision(ctx, rec(audit.ActionCheck, now), nil, "police-gb", "2026-11-30", 42, 100); err != nil {
		t.Fatal(err)
	}
	// a and b share entries 0 and 1; police-gb is alerted of both, and
	// police-us retracts its entry 1.
	b, _ := src.GetList(ctx, "police-us", "b")
	alerted := []store.Alerted{{ListID: l.ID, Ref: 0, CounterpartyListID: b.ID}, {ListID: l.ID, Ref: 1, CounterpartyListID: b.ID}}
	if _, err := src.AppendAlertDecision(ctx, rec(audit.ActionAlert, now), nil, alerted); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Retract(ctx, "police-us", "b", 1, "mistyped", now, rec(audit.ActionRetract, now)); err != nil {
		t.Fatal(err)
	}
}

// rec is a decision record of action at time now.
func rec(action string, now time.Time) *audit.Record {
	return &audit.Record{Time: now, DecisionID: "d-" + action, Caller: "c", Agency: "police-gb", Action: action, Result: audit.ResultAllowed}
}

// TestImportSQLite copies a SQLite hub into PostgreSQL and reads back the
// same of everything, with the same decision log root; the upload in
// progress resumes.
func TestImportSQLite(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "hub.db")
	src, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	fillSQLite(t, ctx, src)
	dst, _ := openTemp(t)
	rep, err := dst.ImportSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	size, root, err := src.LogHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Pairs and sets: entry 0 of a and b, both ways (1 was retracted).
	// Events: the commit of u3 announced 2 pairs to each side (u2's went
	// with u2), and one retraction. Alerted: entry 0's pair (entry 1's went
	// with its retraction).
	if rep.LogSize != size || fmt.Sprintf("%x", rep.LogRoot) != fmt.Sprintf("%x", root) || rep.Lists != 4 || rep.Tokens != 7+6+5 ||
		rep.Pairs != 2 || rep.Sets != 2 || rep.Events != 4+1 || rep.Alerted != 1 || rep.Retractions != 1 {
		t.Fatalf("import report %+v; SQLite log %d %x", rep, size, root)
	}
	same := func(what string, f func(store.Store) (any, error)) {
		t.Helper()
		a, errA := f(src)
		b, errB := f(dst)
		if errA != nil || errB != nil || !reflect.DeepEqual(a, b) {
			t.Errorf("%s: SQLite %+v (%v), PostgreSQL %+v (%v)", what, a, errA, b, errB)
		}
	}
	same("lists", func(s store.Store) (any, error) { return s.VisibleLists(ctx, "phone", "k1") })
	same("records", func(s store.Store) (any, error) { return s.LogRecords(ctx, 0, 100) })
	same("checkpoint", func(s store.Store) (any, error) { _, c, err := s.LatestCheckpoint(ctx); return c, err })
	same("requests", func(s store.Store) (any, error) { return s.DisclosureRequests(ctx, "police-us", "", true) })
	same("notices", func(s store.Store) (any, error) { return s.Notices(ctx, "police-us") })
	same("check use", func(s store.Store) (any, error) { return s.CheckUse(ctx, "police-gb", "2026-11-30") })
	same("key epochs", func(s store.Store) (any, error) { c, k, err := s.KeyEpochs(ctx); return fmt.Sprint(c, k), err })
	storetest.CheckSets(t, raw{dst})
	same("overlaps", func(s store.Store) (any, error) {
		l, err := s.GetList(ctx, "police-gb", "a")
		if err != nil {
			return nil, err
		}
		got := map[string]bool{}
		err = s.Overlaps(ctx, l.ID, func(ref uint64, cp int64) error { got[fmt.Sprint(ref, "/", cp)] = true; return nil })
		return got, err
	})
	for _, owner := range []string{"police-gb", "police-us"} {
		same("events of "+owner, func(s store.Store) (any, error) { return s.MatchEvents(ctx, owner, "", 0, 100) })
		same("retractions of "+owner, func(s store.Store) (any, error) { return s.Retractions(ctx, owner) })
	}
	same("check after the retraction", func(s store.Store) (any, error) {
		got := map[string]bool{}
		err := s.Check(ctx, "phone", "k1", [][]byte{token("a/0"), token("a/1")}, func(i int, cp int64) error { got[fmt.Sprint(i, "/", cp)] = true; return nil })
		return got, err
	})
	same("upload in progress", func(s store.Store) (any, error) {
		seqs, committed, err := s.UploadStatus(ctx, "police-th", "open", "u4")
		return fmt.Sprint(seqs, committed), err
	})
	// The upload resumes in PostgreSQL: a batch sent again is a duplicate
	// (same digest), the commit completes, and new ids follow the old.
	dup, err := dst.PutBatch(ctx, "police-th", "open", "u4", 1, entries("d", 5)[3:5])
	if err != nil || !dup {
		t.Fatalf("resent batch: duplicate %v, %v", dup, err)
	}
	l, err := dst.CommitUpload(ctx, "police-th", "open", "u4", 2, 5, time.Now(), nil)
	if err != nil || l.Entries != 5 {
		t.Fatalf("commit the resumed upload: %+v, %v", l, err)
	}
	if _, err := dst.ImportSQLite(ctx, path); err == nil {
		t.Fatal("imported into a store that is not empty")
	}
	after := publish(t, dst, "police-gb", "new", "phone", entries("n", 2), 2)
	if after.ID <= l.ID {
		t.Fatalf("a new list got id %d, not above the imported %d", after.ID, l.ID)
	}
	matchesResume(t, src, dst)
	storetest.CheckSets(t, raw{dst})
}

// matchesResume checks that the retraction came along and that events
// continue above the imported cursors: the retraction undone in
// PostgreSQL, police-gb told of the match again, and the entry retracted
// again, police-gb hears of it.
func matchesResume(t *testing.T, src *sqlite.Store, dst *Store) {
	t.Helper()
	ctx := t.Context()
	last, err := src.MatchEvents(ctx, "police-gb", "", 0, 100)
	if err != nil || len(last) == 0 {
		t.Fatalf("SQLite events of police-gb: %+v, %v", last, err)
	}
	if err := dst.Unretract(ctx, "police-us", "b", 1, time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	a, _ := dst.GetList(ctx, "police-gb", "a")
	b, _ := dst.GetList(ctx, "police-us", "b")
	if _, err := dst.AppendAlertDecision(ctx, rec(audit.ActionAlert, time.Now()), nil, []store.Alerted{{ListID: a.ID, Ref: 1, CounterpartyListID: b.ID}}); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.Retract(ctx, "police-us", "b", 1, "again", time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	evs, err := dst.MatchEvents(ctx, "police-gb", "", last[len(last)-1].Cursor, 100)
	if err != nil || len(evs) != 1 || evs[0].Kind != store.EventRetraction || evs[0].Ref != 1 {
		t.Fatalf("events of police-gb after the import = %+v, %v; want a retraction of entry 1 (the match, retracted before delivery, left out)", evs, err)
	}
}

// TestImportVersion: the import reads the schema version the sqlite store
// creates, and refuses another.
func TestImportVersion(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "hub.db")
	src, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := openSQLite(path)
	if err != nil {
		t.Fatalf("the import refuses a new SQLite store: %v", err)
	}
	db.Close()
	rw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	if _, err := rw.Exec(`UPDATE schema_version SET version = version - 1`); err != nil {
		t.Fatal(err)
	}
	if db, err := openSQLite(path); err == nil {
		db.Close()
		t.Fatal("the import opened a database of an older schema")
	} else if !strings.Contains(err.Error(), fmt.Sprint("schema version ", sqliteVersion-1)) {
		t.Errorf("openSQLite: %v, want an error naming the version", err)
	}
}
