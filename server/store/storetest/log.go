package storetest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/store"
)

// testDecisionLog: appended records come back in order, the stored nodes
// prove every record's inclusion against the head, and consistency between
// every pair of sizes holds.
func testDecisionLog(t *testing.T, s store.Store) {
	ctx := t.Context()
	if size, _, err := s.LogHead(ctx); err != nil || size != 0 {
		t.Fatalf("LogHead of an empty log = %d, %v", size, err)
	}
	if _, _, err := s.LatestCheckpoint(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("LatestCheckpoint of an empty log: %v, want ErrNotFound", err)
	}
	const n = 13
	roots := map[uint64][]byte{}
	for i := range n {
		rec := record(fmt.Sprintf("a%d", i))
		idx, err := s.AppendDecision(ctx, rec, nil)
		if err != nil || idx != uint64(i) || rec.Index != uint64(i) {
			t.Fatalf("AppendDecision #%d = %d (rec.Index %d), %v", i, idx, rec.Index, err)
		}
		size, root, err := s.LogHead(ctx)
		if err != nil || size != uint64(i+1) {
			t.Fatalf("LogHead = %d, %v; want %d", size, err, i+1)
		}
		roots[size] = root
	}
	recs, err := s.LogRecords(ctx, 0, 100)
	if err != nil || len(recs) != n {
		t.Fatalf("LogRecords = %d records, %v", len(recs), err)
	}
	for i, data := range recs {
		r, err := audit.ParseRecord(data)
		if err != nil || r.Index != uint64(i) || r.Action != fmt.Sprintf("a%d", i) {
			t.Fatalf("record %d = %+v, %v", i, r, err)
		}
		for size := uint64(i + 1); size <= n; size++ {
			p, err := audit.InclusionProof(ctx, s, uint64(i), size)
			if err != nil {
				t.Fatalf("InclusionProof(%d, %d): %v", i, size, err)
			}
			if err := audit.VerifyInclusion(audit.LeafHash(data), uint64(i), size, p, roots[size]); err != nil {
				t.Fatalf("inclusion of %d in %d: %v", i, size, err)
			}
		}
	}
	if part, err := s.LogRecords(ctx, 10, 2); err != nil || len(part) != 2 {
		t.Fatalf("LogRecords(10, 2) = %d, %v", len(part), err)
	}
	for old := uint64(1); old <= n; old++ {
		p, err := audit.ConsistencyProof(ctx, s, old, n)
		if err != nil {
			t.Fatalf("ConsistencyProof(%d, %d): %v", old, n, err)
		}
		if err := audit.VerifyConsistency(old, n, roots[old], roots[n], p); err != nil {
			t.Fatalf("consistency %d..%d: %v", old, n, err)
		}
	}
	for _, size := range []uint64{5, 13, 9} {
		if err := s.PutCheckpoint(ctx, size, []byte(fmt.Sprintf("cp %d", size))); err != nil {
			t.Fatal(err)
		}
	}
	if size, text, err := s.LatestCheckpoint(ctx); err != nil || size != 13 || string(text) != "cp 13" {
		t.Fatalf("LatestCheckpoint = %d %q, %v", size, text, err)
	}
}

// testRecordWithAction: a record passed with an action lands with it, and
// a failing action leaves no record.
func testRecordWithAction(t *testing.T, s store.Store) {
	ctx := t.Context()
	publish(t, s, "a", "mine", "u1", meta(phone, key1), []store.Entry{e("x", 0)})
	// A commit of an incomplete upload fails and must not log.
	begin(t, s, "a", "other", "u2", meta(phone, key1), []store.Entry{e("y", 0), e("z", 1), e("w", 2)})
	if _, err := s.CommitUpload(ctx, "a", "other", "u2", 9, 3, time.Now(), record("publish")); !errors.Is(err, store.ErrIncomplete) {
		t.Fatalf("incomplete commit: %v", err)
	}
	if size, _, _ := s.LogHead(ctx); size != 0 {
		t.Fatalf("a failed commit left %d records", size)
	}
	if _, err := s.CommitUpload(ctx, "a", "other", "u2", 2, 3, time.Now(), record("publish")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteList(ctx, "a", "nope", record("delete")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete of a missing list: %v", err)
	}
	if _, err := s.DeleteList(ctx, "a", "mine", record("delete")); err != nil {
		t.Fatal(err)
	}
	recs, err := s.LogRecords(ctx, 0, 10)
	if err != nil || len(recs) != 2 {
		t.Fatalf("log has %d records (%v), want publish and delete", len(recs), err)
	}
	for i, want := range []string{"publish", "delete"} {
		r, _ := audit.ParseRecord(recs[i])
		if r.Action != want {
			t.Errorf("record %d is %q, want %q", i, r.Action, want)
		}
	}
}

// testAppendDecisions: a batch of records lands whole, in order, or not at
// all.
func testAppendDecisions(t *testing.T, s store.Store) {
	ctx := t.Context()
	bad := record("bad")
	bad.Time = time.Time{} // not a valid record
	if err := s.AppendDecisions(ctx, []*audit.Record{record("a"), bad, record("c")}); err == nil || !strings.Contains(err.Error(), "record 1 of 3") {
		t.Fatalf("a batch with a bad record: %v, want an error naming record 1 of 3", err)
	}
	if size, _, err := s.LogHead(ctx); err != nil || size != 0 {
		t.Fatalf("a failed batch left %d records (%v)", size, err)
	}
	if err := s.AppendDecisions(ctx, []*audit.Record{record("a"), record("b"), record("c")}); err != nil {
		t.Fatal(err)
	}
	recs, err := s.LogRecords(ctx, 0, 10)
	if err != nil || len(recs) != 3 {
		t.Fatalf("LogRecords = %d records, %v; want 3", len(recs), err)
	}
	for i, want := range []string{"a", "b", "c"} {
		if r, err := audit.ParseRecord(recs[i]); err != nil || r.Action != want || r.Index != uint64(i) {
			t.Errorf("record %d = %+v, %v; want action %q", i, r, err, want)
		}
	}
}

// testCheckUse: checked entries add up per agency and day, a charge above
// the limit changes nothing, and the record and notices land with the
// charge.
func testCheckUse(t *testing.T, s store.Store) {
	ctx := t.Context()
	const day, limit = "2026-11-28", 10
	if n, err := s.CheckUse(ctx, "a", day); err != nil || n != 0 {
		t.Fatalf("CheckUse of a new store = %d, %v", n, err)
	}
	notice := store.Notice{Owner: "o", List: "v", Action: "check", Requester: "a", Entries: 1, Purpose: "p", Time: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC), DecisionID: "d1"}
	if err := s.AppendCheckDecision(ctx, record("check"), []store.Notice{notice}, "a", day, 6, limit); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendCheckDecision(ctx, record("check"), nil, "a", day, 4, limit); err != nil {
		t.Fatalf("a charge up to the limit: %v", err)
	}
	if err := s.AppendCheckDecision(ctx, record("check"), []store.Notice{notice}, "a", day, 1, limit); !errors.Is(err, store.ErrExhausted) {
		t.Fatalf("a charge above the limit: %v, want ErrExhausted", err)
	}
	if n, err := s.CheckUse(ctx, "a", day); err != nil || n != 10 {
		t.Fatalf("CheckUse = %d, %v; want 10", n, err)
	}
	if n, _ := s.CheckUse(ctx, "a", "2026-11-29"); n != 0 {
		t.Fatalf("the next day starts at %d", n)
	}
	if n, _ := s.CheckUse(ctx, "b", day); n != 0 {
		t.Fatalf("another agency starts at %d", n)
	}
	if size, _, _ := s.LogHead(ctx); size != 2 {
		t.Fatalf("log size %d, want 2: a refused charge appends nothing", size)
	}
	if ns, _ := s.Notices(ctx, "o"); len(ns) != 1 || ns[0] != notice {
		t.Fatalf("notices = %+v; want the first check's only", ns)
	}
}
