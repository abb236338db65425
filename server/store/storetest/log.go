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
	mk := func(id, owner string, listID int64, refs []uint64) store.DisclosureRequest {
		return store.DisclosureRequest{ID: id, GroupID: "g1", Requester: "req", RequesterList: "s", RequesterListID: 7, Owner: owner, List: "v", ListID: listID,
			EntryRefs: refs, Entries: uint64(max(len(refs), 1)), Requested: 3, Reason: "why", Purpose: "investigation", CaseRef: "C1", CreatedAt: now}
	}
	if err := s.CreateDisclosureRequests(ctx, []store.DisclosureRequest{mk("r1", "o1", 9, []uint64{3}), mk("r2", "o2", 10, nil)}, record("request_disclosure")); err != nil {
		t.Fatal(err)
	}
	in, err := s.DisclosureRequests(ctx, "o1", "", false)
	if err != nil || len(in) != 1 || in[0].ID != "r1" || in[0].GroupID != "g1" || in[0].Requested != 3 || in[0].Status != store.RequestPending || fmt.Sprint(in[0].EntryRefs) != "[3]" {
		t.Fatalf("incoming for o1 = %+v, %v", in, err)
	}
	out, err := s.DisclosureRequests(ctx, "", "req", false)
	if err != nil || len(out) != 2 {
		t.Fatalf("outgoing = %d, %v", len(out), err)
	}
	// The same match, purpose and case again while pending: refused, whole.
	dup := mk("r3", "o3", 11, nil)
	again := mk("r4", "o1", 9, []uint64{3})
	dup.GroupID, again.GroupID = "g2", "g2"
	if err := s.CreateDisclosureRequests(ctx, []store.DisclosureRequest{dup, again}, record("request_disclosure")); !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "g1") {
		t.Fatalf("duplicate pending request: %v, want ErrConflict naming g1", err)
	}
	if in, _ := s.DisclosureRequests(ctx, "o3", "", true); len(in) != 0 {
		t.Fatalf("a refused batch stored %+v", in)
	}
	// Another case is another request.
	other := mk("r5", "o1", 9, []uint64{3})
	other.GroupID, other.CaseRef = "g3", "C2"
	if err := s.CreateDisclosureRequests(ctx, []store.DisclosureRequest{other}, nil); err != nil {
		t.Fatalf("same match, other case: %v", err)
	}
	if _, err := s.AnswerDisclosureRequest(ctx, "r5", "o1", false, "", now, nil); err != nil {
		t.Fatal(err)
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
	notice := store.Notice{Owner: "o1", List: "v", Action: "overlaps", Requester: "req", RequesterList: "s", Entries: 2, Purpose: "investigation", CaseRef: "C1", Time: now, DecisionID: "d1"}
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
// stores and appends nothing, a key once reported is remembered with its
// public key, and a key id never changes its public key.
func testKeyEpochs(t *testing.T, s store.Store) {
	ctx := t.Context()
	if cur, known, err := s.KeyEpochs(ctx); err != nil || len(cur) != 0 || len(known) != 0 {
		t.Fatalf("KeyEpochs of a new store = %q, %v, %v", cur, known, err)
	}
	k := func(id string) store.KeyEpoch { return store.KeyEpoch{KeyID: id, PublicKey: tok("public key " + id)} }
	ids := func(es []store.KeyEpoch) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.KeyID)
		}
		return out
	}
	steps := []struct {
		report      []store.KeyEpoch
		changed     bool
		known       []string
		logSizeWant uint64
	}{
		{[]store.KeyEpoch{k("k1")}, true, []string{"k1"}, 1},
		{[]store.KeyEpoch{k("k1")}, false, []string{"k1"}, 1},
		{[]store.KeyEpoch{k("k2"), k("k1")}, true, []string{"k1", "k2"}, 2},
		{[]store.KeyEpoch{k("k1"), k("k2")}, true, []string{"k1", "k2"}, 3}, // order is part of the report
		{[]store.KeyEpoch{k("k2")}, true, []string{"k1", "k2"}, 4},
		{[]store.KeyEpoch{k("k3")}, true, []string{"k1", "k2", "k3"}, 5},
	}
	for i, st := range steps {
		changed, err := s.SetKeyEpochs(ctx, st.report, record("key_epochs"))
		if err != nil || changed != st.changed {
			t.Fatalf("step %d: SetKeyEpochs(%v) = %v, %v; want %v", i, ids(st.report), changed, err, st.changed)
		}
		cur, known, err := s.KeyEpochs(ctx)
		if err != nil || !slices.Equal(cur, ids(st.report)) || !slices.Equal(ids(known), st.known) {
			t.Fatalf("step %d: KeyEpochs = %q, %q, %v; want %q, %q", i, cur, ids(known), err, ids(st.report), st.known)
		}
		for _, e := range known {
			if !slices.Equal(e.PublicKey, k(e.KeyID).PublicKey) {
				t.Fatalf("step %d: key %s has another public key", i, e.KeyID)
			}
		}
		if size, _, err := s.LogHead(ctx); err != nil || size != st.logSizeWant {
			t.Fatalf("step %d: log size %d, %v; want %d", i, size, err, st.logSizeWant)
		}
	}
	forged := store.KeyEpoch{KeyID: "k1", PublicKey: tok("another key")}
	if _, err := s.SetKeyEpochs(ctx, []store.KeyEpoch{forged}, record("key_epochs")); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("k1 with another public key: %v, want ErrConflict", err)
	}
	if cur, _, _ := s.KeyEpochs(ctx); !slices.Equal(cur, []string{"k3"}) {
		t.Fatalf("a refused report changed the current keys to %q", cur)
	}
	if size, _, _ := s.LogHead(ctx); size != 5 {
		t.Fatalf("a refused report appended a record: log size %d", size)
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
