package storetest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/veilmatch/veilmatch/server/store"
)

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
