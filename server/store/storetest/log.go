package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/store"
)

// record returns a decision record for action.
func record(action string) *audit.Record {
	return &audit.Record{Time: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC), DecisionID: "d-" + action, Caller: "spiffe://veilmatch.dev/agency/a",
		Agency: "a", Action: action, Result: audit.ResultAllowed, PolicyRevision: "rev"}
}

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

// testDisclosureRequests: requests are listed for owner and requester,
// answered once by their owner only, and approved ones become grants; owner
// notices are stored with the decision.
func testDisclosureRequests(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	mk := func(id, owner string, refs []uint64) store.DisclosureRequest {
		return store.DisclosureRequest{ID: id, Requester: "req", RequesterList: "s", RequesterListID: 7, Owner: owner, List: "v", ListID: 9,
			EntryRefs: refs, Entries: uint64(max(len(refs), 1)), Reason: "why", Purpose: "investigation", CaseRef: "C1", CreatedAt: now}
	}
	if err := s.CreateDisclosureRequests(ctx, []store.DisclosureRequest{mk("r1", "o1", []uint64{3}), mk("r2", "o2", nil)}, record("request_disclosure")); err != nil {
		t.Fatal(err)
	}
	in, err := s.DisclosureRequests(ctx, "o1", "", false)
	if err != nil || len(in) != 1 || in[0].ID != "r1" || in[0].Status != store.RequestPending || fmt.Sprint(in[0].EntryRefs) != "[3]" {
		t.Fatalf("incoming for o1 = %+v, %v", in, err)
	}
	out, err := s.DisclosureRequests(ctx, "", "req", false)
	if err != nil || len(out) != 2 {
		t.Fatalf("outgoing = %d, %v", len(out), err)
	}
	if _, err := s.AnswerDisclosureRequest(ctx, "r1", "o2", true, "", now, nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("answer by another owner: %v", err)
	}
	r, err := s.AnswerDisclosureRequest(ctx, "r1", "o1", true, "ok", now.Add(time.Hour), record("approve_disclosure"))
	if err != nil || r.Status != store.RequestApproved || r.Note != "ok" || !r.AnsweredAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("approve = %+v, %v", r, err)
	}
	if _, err := s.AnswerDisclosureRequest(ctx, "r1", "o1", false, "", now, nil); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second answer: %v", err)
	}
	if _, err := s.AnswerDisclosureRequest(ctx, "r2", "o2", false, "no", now, record("refuse_disclosure")); err != nil {
		t.Fatal(err)
	}
	grants, err := s.Grants(ctx, 7)
	if err != nil || len(grants) != 1 || grants[0].ID != "r1" {
		t.Fatalf("grants = %+v, %v", grants, err)
	}
	if pending, _ := s.DisclosureRequests(ctx, "o2", "", false); len(pending) != 0 {
		t.Fatalf("answered request still pending: %+v", pending)
	}
	if all, _ := s.DisclosureRequests(ctx, "o2", "", true); len(all) != 1 || all[0].Status != store.RequestRefused {
		t.Fatalf("all for o2 = %+v", all)
	}
	notice := store.Notice{Owner: "o1", List: "v", Requester: "req", RequesterList: "s", Entries: 2, Purpose: "investigation", CaseRef: "C1", Time: now, DecisionID: "d1"}
	if _, err := s.AppendDecision(ctx, record("overlaps"), []store.Notice{notice}); err != nil {
		t.Fatal(err)
	}
	ns, err := s.Notices(ctx, "o1")
	if err != nil || len(ns) != 1 || ns[0] != notice {
		t.Fatalf("notices = %+v, %v", ns, err)
	}
	if ns, _ := s.Notices(ctx, "o2"); len(ns) != 0 {
		t.Fatalf("o2 sees o1's notices: %+v", ns)
	}
	if size, _, _ := s.LogHead(ctx); size != 4 {
		t.Fatalf("log size %d, want 4 (request, approve, refuse, overlaps)", size)
	}
}

// testExpiredLists: only committed lists past their expiry are returned.
func testExpiredLists(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	past, future, never := meta(phone, key1), meta(phone, key1), meta(phone, key1)
	past.ExpiresAt, future.ExpiresAt = now.Add(-time.Hour), now.Add(time.Hour)
	publish(t, s, "a", "past", "u1", past, []store.Entry{e("x", 0)})
	publish(t, s, "a", "future", "u2", future, []store.Entry{e("y", 0)})
	publish(t, s, "b", "never", "u3", never, []store.Entry{e("z", 0)})
	begin(t, s, "b", "open", "u4", past, []store.Entry{e("w", 0)})
	ls, err := s.ExpiredLists(ctx, now)
	if err != nil || len(ls) != 1 || ls[0].Name != "past" || ls[0].Owner != "a" {
		t.Fatalf("ExpiredLists = %+v, %v; want a/past only", ls, err)
	}
}

// testKeyEpochs: reports are stored with their record, an unchanged report
// stores and appends nothing, and a key id once reported is remembered.
func testKeyEpochs(t *testing.T, s store.Store) {
	ctx := t.Context()
	if cur, seen, err := s.KeyEpochs(ctx); err != nil || len(cur) != 0 || len(seen) != 0 {
		t.Fatalf("KeyEpochs of a new store = %q, %q, %v", cur, seen, err)
	}
	steps := []struct {
		report      []string
		changed     bool
		seen        []string
		logSizeWant uint64
	}{
		{[]string{"k1"}, true, []string{"k1"}, 1},
		{[]string{"k1"}, false, []string{"k1"}, 1},
		{[]string{"k2", "k1"}, true, []string{"k1", "k2"}, 2},
		{[]string{"k1", "k2"}, true, []string{"k1", "k2"}, 3}, // order is part of the report
		{[]string{"k2"}, true, []string{"k1", "k2"}, 4},
		{[]string{"k3"}, true, []string{"k1", "k2", "k3"}, 5},
	}
	for i, st := range steps {
		changed, err := s.SetKeyEpochs(ctx, st.report, record("key_epochs"))
		if err != nil || changed != st.changed {
			t.Fatalf("step %d: SetKeyEpochs(%q) = %v, %v; want %v", i, st.report, changed, err, st.changed)
		}
		cur, seen, err := s.KeyEpochs(ctx)
		if err != nil || !slices.Equal(cur, st.report) || !slices.Equal(seen, st.seen) {
			t.Fatalf("step %d: KeyEpochs = %q, %q, %v; want %q, %q", i, cur, seen, err, st.report, st.seen)
		}
		if size, _, err := s.LogHead(ctx); err != nil || size != st.logSizeWant {
			t.Fatalf("step %d: log size %d, %v; want %d", i, size, err, st.logSizeWant)
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
