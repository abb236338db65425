package storetest

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/store"
)

// triple is what an event says: entry Ref of list version List and
// counterparty version CP.
type triple struct {
	List int64
	Ref  uint64
	CP   int64
}

// events returns all of owner's events (of list, unless empty), failing
// unless their cursors increase.
func events(t *testing.T, s store.Store, owner, list string) []store.MatchEvent {
	t.Helper()
	evs, err := s.MatchEvents(t.Context(), owner, list, 0, 10_000)
	if err != nil {
		t.Fatalf("MatchEvents(%s, %q): %v", owner, list, err)
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].Cursor <= evs[i-1].Cursor {
			t.Fatalf("MatchEvents(%s): cursor %d after %d", owner, evs[i].Cursor, evs[i-1].Cursor)
		}
	}
	return evs
}

// triples returns what the events of kind say, failing on a repeat.
func triples(t *testing.T, evs []store.MatchEvent, kind string) map[triple]bool {
	t.Helper()
	got := map[triple]bool{}
	for _, e := range evs {
		if e.Kind != kind {
			continue
		}
		tr := triple{e.ListID, e.Ref, e.CounterpartyListID}
		if got[tr] {
			t.Errorf("event %+v repeated", tr)
		}
		got[tr] = true
	}
	return got
}

// set builds an expected set of triples.
func set(ts ...triple) map[triple]bool {
	m := map[triple]bool{}
	for _, tr := range ts {
		m[tr] = true
	}
	return m
}

// wantTriples fails unless got equals want.
func wantTriples(t *testing.T, what string, got, want map[triple]bool) {
	t.Helper()
	if !maps.Equal(got, want) {
		order := func(m map[triple]bool) []triple {
			return slices.SortedFunc(maps.Keys(m), func(a, b triple) int {
				return cmp.Or(cmp.Compare(a.List, b.List), cmp.Compare(a.Ref, b.Ref), cmp.Compare(a.CP, b.CP))
			})
		}
		t.Errorf("%s = %v, want %v", what, order(got), order(want))
	}
}

// testMatchesAtCommit: a commit stores its pairs in both directions and
// appends one match event per (list version, ref, counterparty version)
// to the owners of both sides, with the list's name and the commit's time.
func testMatchesAtCommit(t *testing.T, s store.Store) {
	ctx := t.Context()
	// A twice in theirs; C and D under ref 4 in mine, both in theirs.
	mine := publish(t, s, "a", "mine", "u", meta(phone, key1), []store.Entry{e("A", 1), e("B", 2), e("C", 4), e("D", 4), e("X", 5)})
	at := time.Date(2026, 12, 1, 9, 30, 0, 123456000, time.UTC)
	batches := begin(t, s, "b", "theirs", "u", meta(phone, key1), []store.Entry{e("A", 10), e("A", 11), e("C", 12), e("D", 13), e("Y", 14)})
	theirs, err := s.CommitUpload(ctx, "b", "theirs", "u", batches, 5, at, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantPairs(t, "Overlaps(mine)", overlaps(t, s, mine.ID), pairs(pair{1, theirs.ID}, pair{4, theirs.ID}))
	wantPairs(t, "Overlaps(theirs)", overlaps(t, s, theirs.ID), pairs(pair{10, mine.ID}, pair{11, mine.ID}, pair{12, mine.ID}, pair{13, mine.ID}))

	a := events(t, s, "a", "")
	wantTriples(t, "events of a", triples(t, a, store.EventMatch), set(triple{mine.ID, 1, theirs.ID}, triple{mine.ID, 4, theirs.ID}))
	b := events(t, s, "b", "")
	wantTriples(t, "events of b", triples(t, b, store.EventMatch),
		set(triple{theirs.ID, 10, mine.ID}, triple{theirs.ID, 11, mine.ID}, triple{theirs.ID, 12, mine.ID}, triple{theirs.ID, 13, mine.ID}))
	for _, ev := range slices.Concat(a, b) {
		want := map[string]string{"a": "mine", "b": "theirs"}[ev.Owner]
		if ev.Kind != store.EventMatch || ev.List != want || !ev.Time.Equal(at) || ev.Time.Location() != time.UTC || ev.Cursor == 0 {
			t.Errorf("event %+v: want kind match, list %q, time %v in UTC, a cursor", ev, want, at)
		}
	}
}

// testMatchesScope: no pairs or events between lists of one owner, of
// other kinds or of other key ids, nor with open uploads.
func testMatchesScope(t *testing.T, s store.Store) {
	ctx := t.Context()
	f := fixture(t, s)
	begin(t, s, "x", "open", "u", meta(phone, key1), []store.Entry{e("A", 1), e("E", 2)})
	// E is in mine, mine2 (a's), email, old-key and third; only third is
	// another owner's of phone and k1.
	for _, ev := range events(t, s, "a", "") {
		if ev.Ref == 5 && ev.ListID == f["mine"].ID && ev.CounterpartyListID != f["third"].ID {
			t.Errorf("mine's E matched list %d", ev.CounterpartyListID)
		}
	}
	for _, owner := range []string{"d", "x"} {
		if evs := events(t, s, owner, ""); len(evs) != 0 {
			t.Errorf("events of %s = %+v, want none", owner, evs)
		}
	}
	wantTriples(t, "events of b's email list", triples(t, events(t, s, "b", "email"), store.EventMatch), set())
	wantTriples(t, "events of c's old-key list", triples(t, events(t, s, "c", "old-key"), store.EventMatch), set())
	wantTriples(t, "events of mine2", triples(t, events(t, s, "a", "mine2"), store.EventMatch), set(triple{f["mine2"].ID, 1, f["third"].ID}))
	if _, err := s.CommitUpload(ctx, "x", "open", "u", 1, 2, time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	x, _ := s.GetList(ctx, "x", "open")
	wantPairs(t, "Overlaps(open, committed)", overlaps(t, s, x.ID), pairs(
		pair{1, f["mine"].ID}, pair{1, f["theirs"].ID}, pair{2, f["mine"].ID}, pair{2, f["mine2"].ID}, pair{2, f["third"].ID}))
}

// testMatchesErasure: superseding or deleting a version removes its pairs,
// and MatchEvents leaves out the events of and with it.
func testMatchesErasure(t *testing.T, s store.Store) {
	ctx := t.Context()
	v1 := publish(t, s, "a", "l", "u1", meta(phone, key1), []store.Entry{e("A", 1), e("B", 2)})
	m := publish(t, s, "b", "m", "u1", meta(phone, key1), []store.Entry{e("A", 10), e("C", 11)})
	n := publish(t, s, "c", "n", "u1", meta(phone, key1), []store.Entry{e("C", 20)})
	wantTriples(t, "events of b", triples(t, events(t, s, "b", ""), store.EventMatch), set(triple{m.ID, 10, v1.ID}, triple{m.ID, 11, n.ID}))

	v2 := publish(t, s, "a", "l", "u2", meta(phone, key1), []store.Entry{e("C", 3)})
	wantTriples(t, "events of a after the commit of v2", triples(t, events(t, s, "a", ""), store.EventMatch),
		set(triple{v2.ID, 3, m.ID}, triple{v2.ID, 3, n.ID}))
	wantTriples(t, "events of b after the commit of v2", triples(t, events(t, s, "b", ""), store.EventMatch),
		set(triple{m.ID, 11, n.ID}, triple{m.ID, 11, v2.ID}))
	wantPairs(t, "Overlaps(m)", overlaps(t, s, m.ID), pairs(pair{11, n.ID}, pair{11, v2.ID}))

	if _, err := s.DeleteList(ctx, "b", "m", nil); err != nil {
		t.Fatal(err)
	}
	wantTriples(t, "events of a after the deletion of m", triples(t, events(t, s, "a", ""), store.EventMatch), set(triple{v2.ID, 3, n.ID}))
	wantTriples(t, "events of b after the deletion of m", triples(t, events(t, s, "b", ""), store.EventMatch), set())
	wantPairs(t, "Overlaps(v2)", overlaps(t, s, v2.ID), pairs(pair{3, n.ID}))
	wantPairs(t, "Overlaps(n)", overlaps(t, s, n.ID), pairs(pair{20, v2.ID}))
	// A list published again under m's name is a new version: new pairs.
	m2 := publish(t, s, "b", "m", "u1", meta(phone, key1), []store.Entry{e("A", 10)})
	wantTriples(t, "events of b after m is published again", triples(t, events(t, s, "b", ""), store.EventMatch), set())
	wantPairs(t, "Overlaps(m again)", overlaps(t, s, m2.ID), pairs())
}

// testMatchesCommitRetry: committing a committed upload again neither
// duplicates its pairs nor its events.
func testMatchesCommitRetry(t *testing.T, s store.Store) {
	ctx := t.Context()
	m := publish(t, s, "b", "m", "u", meta(phone, key1), []store.Entry{e("A", 10), e("B", 11)})
	l := publish(t, s, "a", "l", "u", meta(phone, key1), []store.Entry{e("A", 1), e("B", 2), e("B", 3)})
	before := [2][]store.MatchEvent{events(t, s, "a", ""), events(t, s, "b", "")}
	for range 2 {
		again, err := s.CommitUpload(ctx, "a", "l", "u", 2, 3, time.Now().Add(time.Hour), nil)
		if err != nil || again.ID != l.ID {
			t.Fatalf("commit again = %+v, %v", again, err)
		}
	}
	after := [2][]store.MatchEvent{events(t, s, "a", ""), events(t, s, "b", "")}
	for i := range before {
		if !slices.EqualFunc(before[i], after[i], func(x, y store.MatchEvent) bool { return x.Cursor == y.Cursor && x.Time.Equal(y.Time) }) {
			t.Errorf("events of %s changed from %+v to %+v", []string{"a", "b"}[i], before[i], after[i])
		}
	}
	if len(after[0]) != 3 || len(after[1]) != 2 {
		t.Errorf("%d and %d events, want 3 and 2", len(after[0]), len(after[1]))
	}
	// Overlaps reports each pair once (overlaps fails on a repeat).
	wantPairs(t, "Overlaps(m)", overlaps(t, s, m.ID), pairs(pair{10, l.ID}, pair{11, l.ID}))
}

// testMatchEventsCursor: events come in cursor order across commits;
// after, limit and the list name select from them; an owner sees only its
// own; a limit below 1 is invalid.
func testMatchEventsCursor(t *testing.T, s store.Store) {
	ctx := t.Context()
	publish(t, s, "b", "m", "u", meta(phone, key1), []store.Entry{e("A", 10), e("B", 11), e("C", 12)})
	var want []triple
	for i, label := range []string{"A", "B", "C"} {
		name := fmt.Sprint("l", i)
		l := publish(t, s, "a", name, "u", meta(phone, key1), []store.Entry{e(label, uint64(i))})
		m, _ := s.GetList(ctx, "b", "m")
		want = append(want, triple{l.ID, uint64(i), m.ID})
	}
	all := events(t, s, "a", "")
	var got []triple
	for _, ev := range all {
		got = append(got, triple{ev.ListID, ev.Ref, ev.CounterpartyListID})
		if ev.Owner != "a" {
			t.Errorf("event of %s among a's", ev.Owner)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("events of a = %v, want %v in commit order", got, want)
	}
	if evs, err := s.MatchEvents(ctx, "a", "", all[0].Cursor, 10); err != nil || len(evs) != 2 || evs[0].Cursor != all[1].Cursor {
		t.Errorf("MatchEvents(after the first) = %+v, %v; want the last two", evs, err)
	}
	if evs, err := s.MatchEvents(ctx, "a", "", 0, 2); err != nil || len(evs) != 2 || evs[1].Cursor != all[1].Cursor {
		t.Errorf("MatchEvents(limit 2) = %+v, %v; want the first two", evs, err)
	}
	if evs, err := s.MatchEvents(ctx, "a", "", all[2].Cursor, 10); err != nil || len(evs) != 0 {
		t.Errorf("MatchEvents(after the last) = %+v, %v; want none", evs, err)
	}
	if evs := events(t, s, "a", "l1"); len(evs) != 1 || evs[0].Cursor != all[1].Cursor || evs[0].List != "l1" {
		t.Errorf("MatchEvents(l1) = %+v; want the second", evs)
	}
	if evs := events(t, s, "a", "nope"); len(evs) != 0 {
		t.Errorf("MatchEvents(nope) = %+v; want none", evs)
	}
	// b's events interleave with a's: each commit appended both sides,
	// after the events of the commit before and before those of the next.
	b := events(t, s, "b", "")
	if len(b) != len(all) {
		t.Fatalf("events of b = %+v; want %d", b, len(all))
	}
	for i, ev := range b {
		if i > 0 && ev.Cursor <= all[i-1].Cursor || i+1 < len(all) && ev.Cursor >= all[i+1].Cursor || ev.Cursor == all[i].Cursor {
			t.Errorf("event %d of b has cursor %d, out of commit order with a's %+v", i, ev.Cursor, all)
		}
	}
	for _, limit := range []int{0, -1} {
		_, err := s.MatchEvents(ctx, "a", "", 0, limit)
		wantErr(t, fmt.Sprint("MatchEvents(limit ", limit, ")"), err, store.ErrInvalid)
	}
}

// retractFixture publishes w's list W, whose entry 5 (token T) matches
// V1's entry 1 and V2's entry 2 (which match each other too), and whose
// entry 6 (token U) matches V3's entry 3; owners v1 and v3 are alerted of
// their pairs with W, v2 is not.
func retractFixture(t *testing.T, s store.Store) map[string]store.List {
	t.Helper()
	f := map[string]store.List{
		"W":  publish(t, s, "w", "W", "u", meta(phone, key1), []store.Entry{e("T", 5), e("U", 6), e("Z", 7)}),
		"V1": publish(t, s, "v1", "V1", "u", meta(phone, key1), []store.Entry{e("T", 1)}),
		"V2": publish(t, s, "v2", "V2", "u", meta(phone, key1), []store.Entry{e("T", 2)}),
		"V3": publish(t, s, "v3", "V3", "u", meta(phone, key1), []store.Entry{e("U", 3)}),
	}
	alerted := []store.Alerted{{ListID: f["V1"].ID, Ref: 1, CounterpartyListID: f["W"].ID}, {ListID: f["V3"].ID, Ref: 3, CounterpartyListID: f["W"].ID}}
	notice := store.Notice{Owner: "w", List: "W", Action: audit.ActionAlert, Requester: "v1", RequesterList: "V1", Entries: 1, Purpose: "p", DecisionID: "d-alert"}
	idx, err := s.AppendAlertDecision(t.Context(), record(audit.ActionAlert), []store.Notice{notice}, alerted)
	if err != nil || idx != 0 {
		t.Fatalf("AppendAlertDecision = %d, %v; want record 0", idx, err)
	}
	// Alerting of a pair again changes nothing.
	if _, err := s.AppendAlertDecision(t.Context(), record(audit.ActionAlert), nil, alerted[:1]); err != nil {
		t.Fatalf("AppendAlertDecision again: %v", err)
	}
	if ns, err := s.Notices(t.Context(), "w"); err != nil || len(ns) != 1 || ns[0].Action != audit.ActionAlert {
		t.Fatalf("Notices(w) = %+v, %v; want the alert's", ns, err)
	}
	return f
}

// testRetract: a retraction removes the entry's pairs at once (Overlaps,
// Check), sends a retraction event to each owner alerted of a pair with it
// and to no other, is listed, and is logged.
func testRetract(t *testing.T, s store.Store) {
	ctx := t.Context()
	f := retractFixture(t, s)
	id := func(name string) int64 { return f[name].ID }
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	r, err := s.Retract(ctx, "w", "W", 5, "false positive", at, record(audit.ActionRetract))
	if err != nil {
		t.Fatal(err)
	}
	if want := (store.Retraction{Owner: "w", List: "W", ListID: id("W"), Ref: 5, Reason: "false positive", Time: at}); r != want {
		t.Errorf("Retract = %+v, want %+v", r, want)
	}
	wantTriples(t, "retractions to v1", triples(t, events(t, s, "v1", ""), store.EventRetraction), set(triple{id("V1"), 1, id("W")}))
	for _, owner := range []string{"v2", "v3", "w"} {
		wantTriples(t, "retractions to "+owner, triples(t, events(t, s, owner, ""), store.EventRetraction), set())
	}
	if evs := events(t, s, "v1", ""); evs[len(evs)-1].Kind != store.EventRetraction || !evs[len(evs)-1].Time.Equal(at) || evs[len(evs)-1].List != "V1" {
		t.Errorf("last event of v1 = %+v, want the retraction at %v", evs[len(evs)-1], at)
	}
	// v2 was never alerted of its pair with W: that match, retracted
	// before delivery, is no longer among v2's events; its pair with V1 is.
	wantTriples(t, "matches to v2", triples(t, events(t, s, "v2", ""), store.EventMatch), set(triple{id("V2"), 2, id("V1")}))
	wantPairs(t, "Overlaps(W)", overlaps(t, s, id("W")), pairs(pair{6, id("V3")}))
	wantPairs(t, "Overlaps(V1)", overlaps(t, s, id("V1")), pairs(pair{1, id("V2")}))
	wantPairs(t, "Overlaps(V2)", overlaps(t, s, id("V2")), pairs(pair{2, id("V1")}))
	wantPairs(t, "Check", check(t, s, phone, key1, tok("T"), tok("U")),
		pairs(pair{0, id("V1")}, pair{0, id("V2")}, pair{1, id("W")}, pair{1, id("V3")}))
	if rs, err := s.Retractions(ctx, "w"); err != nil || len(rs) != 1 || rs[0] != r {
		t.Errorf("Retractions(w) = %+v, %v; want %+v", rs, err, r)
	}
	if rs, err := s.Retractions(ctx, "v1"); err != nil || len(rs) != 0 {
		t.Errorf("Retractions(v1) = %+v, %v; want none", rs, err)
	}
	// A version committed while the entry is retracted does not match it.
	v4 := publish(t, s, "v4", "V4", "u", meta(phone, key1), []store.Entry{e("T", 4)})
	wantPairs(t, "Overlaps(V4)", overlaps(t, s, v4.ID), pairs(pair{4, id("V1")}, pair{4, id("V2")}))

	// Entry 6, whose owner v3 was alerted, and 7, which matches nothing.
	if _, err := s.Retract(ctx, "w", "W", 6, "", at.Add(time.Second), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Retract(ctx, "w", "W", 7, "", at.Add(2*time.Second), nil); err != nil {
		t.Fatal(err)
	}
	wantTriples(t, "retractions to v3", triples(t, events(t, s, "v3", ""), store.EventRetraction), set(triple{id("V3"), 3, id("W")}))
	if rs, err := s.Retractions(ctx, "w"); err != nil || len(rs) != 3 || rs[0].Ref != 5 || rs[2].Ref != 7 {
		t.Errorf("Retractions(w) = %+v, %v; want 5, 6 and 7, oldest first", rs, err)
	}
	recs, err := s.LogRecords(ctx, 0, 10)
	if err != nil || len(recs) != 3 {
		t.Fatalf("log has %d records (%v), want alert, alert and retract", len(recs), err)
	}
	if r, _ := audit.ParseRecord(recs[2]); r.Action != audit.ActionRetract {
		t.Errorf("record 2 is %q, want retract", r.Action)
	}
}

// testRetractErrors: retracting an entry twice is a conflict; an unknown
// list or entry, another owner's list, or undoing a retraction that does
// not exist is not found; none of them logs.
func testRetractErrors(t *testing.T, s store.Store) {
	ctx := t.Context()
	f := retractFixture(t, s)
	if _, err := s.Retract(ctx, "w", "W", 5, "", time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	size, _, _ := s.LogHead(ctx)
	_, err := s.Retract(ctx, "w", "W", 5, "", time.Now(), record(audit.ActionRetract))
	wantErr(t, "Retract again", err, store.ErrConflict)
	for _, c := range []struct {
		owner, list string
		ref         uint64
	}{{"w", "nope", 5}, {"w", "W", 99}, {"v1", "W", 5}, {"v1", "V1", 5}} {
		_, err := s.Retract(ctx, c.owner, c.list, c.ref, "", time.Now(), record(audit.ActionRetract))
		wantErr(t, fmt.Sprintf("Retract(%s, %s, %d)", c.owner, c.list, c.ref), err, store.ErrNotFound)
		err = s.Unretract(ctx, c.owner, c.list, c.ref, time.Now(), record(audit.ActionUnretract))
		wantErr(t, fmt.Sprintf("Unretract(%s, %s, %d)", c.owner, c.list, c.ref), err, store.ErrNotFound)
	}
	err = s.Unretract(ctx, "w", "W", 6, time.Now(), record(audit.ActionUnretract))
	wantErr(t, "Unretract of an entry not retracted", err, store.ErrNotFound)
	if after, _, _ := s.LogHead(ctx); after != size {
		t.Errorf("failed calls appended %d records", after-size)
	}
	wantPairs(t, "Overlaps(V2)", overlaps(t, s, f["V2"].ID), pairs(pair{2, f["V1"].ID}))
}

// testUnretract: undoing a retraction restores the entry's pairs, with
// the versions committed meanwhile, and announces them to both sides;
// the entry is checked again and no longer listed.
func testUnretract(t *testing.T, s store.Store) {
	ctx := t.Context()
	f := retractFixture(t, s)
	id := func(name string) int64 { return f[name].ID }
	if _, err := s.Retract(ctx, "w", "W", 5, "", time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	v4 := publish(t, s, "v4", "V4", "u", meta(phone, key1), []store.Entry{e("T", 4)})
	last := map[string]uint64{}
	for _, owner := range []string{"w", "v1", "v2", "v4"} {
		evs := events(t, s, owner, "")
		last[owner] = evs[len(evs)-1].Cursor
	}
	at := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	if err := s.Unretract(ctx, "w", "W", 5, at, record(audit.ActionUnretract)); err != nil {
		t.Fatal(err)
	}
	wantPairs(t, "Overlaps(W)", overlaps(t, s, id("W")), pairs(pair{5, id("V1")}, pair{5, id("V2")}, pair{5, v4.ID}, pair{6, id("V3")}))
	wantPairs(t, "Overlaps(V4)", overlaps(t, s, v4.ID), pairs(pair{4, id("V1")}, pair{4, id("V2")}, pair{4, id("W")}))
	news := func(owner string) map[triple]bool {
		evs, err := s.MatchEvents(ctx, owner, "", last[owner], 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if !ev.Time.Equal(at) {
				t.Errorf("event %+v, want time %v", ev, at)
			}
		}
		return triples(t, evs, store.EventMatch)
	}
	wantTriples(t, "new events of w", news("w"), set(triple{id("W"), 5, id("V1")}, triple{id("W"), 5, id("V2")}, triple{id("W"), 5, v4.ID}))
	wantTriples(t, "new events of v1", news("v1"), set(triple{id("V1"), 1, id("W")}))
	wantTriples(t, "new events of v2", news("v2"), set(triple{id("V2"), 2, id("W")}))
	wantTriples(t, "new events of v4", news("v4"), set(triple{v4.ID, 4, id("W")}))
	wantPairs(t, "Check", check(t, s, phone, key1, tok("T")), pairs(pair{0, id("W")}, pair{0, id("V1")}, pair{0, id("V2")}, pair{0, v4.ID}))
	if rs, err := s.Retractions(ctx, "w"); err != nil || len(rs) != 0 {
		t.Errorf("Retractions(w) = %+v, %v; want none", rs, err)
	}
	err := s.Unretract(ctx, "w", "W", 5, at, nil)
	wantErr(t, "Unretract again", err, store.ErrNotFound)
	// Retracted again before v1 was told of the restored match: v1 hears
	// nothing of it, neither the match (it no longer stands) nor a
	// retraction.
	if _, err := s.Retract(ctx, "w", "W", 5, "", at, nil); err != nil {
		t.Fatal(err)
	}
	if evs, err := s.MatchEvents(ctx, "v1", "", last["v1"], 100); err != nil || len(evs) != 0 {
		t.Errorf("events of v1 after the second retraction = %+v, %v; want none", evs, err)
	}
	// Restored, told, and retracted: v1 hears the retraction.
	if err := s.Unretract(ctx, "w", "W", 5, at, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendAlertDecision(ctx, record(audit.ActionAlert), nil, []store.Alerted{{ListID: id("V1"), Ref: 1, CounterpartyListID: id("W")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Retract(ctx, "w", "W", 5, "", at, nil); err != nil {
		t.Fatal(err)
	}
	if evs := events(t, s, "v1", ""); len(triples(t, evs[len(evs)-1:], store.EventRetraction)) != 1 {
		t.Errorf("last event of v1 = %+v, want a retraction", evs[len(evs)-1])
	}
}

// testRetractionsFollowVersions: the retractions of a version go with it
// when it is superseded or deleted; the new version's entry matches.
func testRetractionsFollowVersions(t *testing.T, s store.Store) {
	ctx := t.Context()
	f := retractFixture(t, s)
	if _, err := s.Retract(ctx, "w", "W", 5, "", time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	w2 := publish(t, s, "w", "W", "u2", meta(phone, key1), []store.Entry{e("T", 5)})
	if rs, err := s.Retractions(ctx, "w"); err != nil || len(rs) != 0 {
		t.Errorf("Retractions(w) after a new version = %+v, %v; want none", rs, err)
	}
	wantPairs(t, "Overlaps(W v2)", overlaps(t, s, w2.ID), pairs(pair{5, f["V1"].ID}, pair{5, f["V2"].ID}))
	wantPairs(t, "Check", check(t, s, phone, key1, tok("T")), pairs(pair{0, w2.ID}, pair{0, f["V1"].ID}, pair{0, f["V2"].ID}))
	if _, err := s.Retract(ctx, "w", "W", 5, "", time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	// v1's alert was of the superseded version: no retraction reaches it.
	wantTriples(t, "retractions to v1", triples(t, events(t, s, "v1", ""), store.EventRetraction), set())
	if _, err := s.DeleteList(ctx, "w", "W", nil); err != nil {
		t.Fatal(err)
	}
	if rs, err := s.Retractions(ctx, "w"); err != nil || len(rs) != 0 {
		t.Errorf("Retractions(w) after the deletion = %+v, %v; want none", rs, err)
	}
	w3 := publish(t, s, "w", "W", "u3", meta(phone, key1), []store.Entry{e("T", 5)})
	wantPairs(t, "Overlaps(W v3)", overlaps(t, s, w3.ID), pairs(pair{5, f["V1"].ID}, pair{5, f["V2"].ID}))
}

// testRepublishKeepsAlerts: a new version of a list announces only the
// matches that are news to each side — those whose counterparty entry the
// old version matched, and whose side was alerted of it, are not told
// again — and keeps those alerts, so that a retraction in the new version
// reaches whoever was told.
func testRepublishKeepsAlerts(t *testing.T, s store.Store) {
	ctx := t.Context()
	v4 := publish(t, s, "v4", "V4", "u", meta(phone, key1), []store.Entry{e("N", 4)})
	f := retractFixture(t, s) // v1 and v3 alerted of their pairs with W
	id := func(name string) int64 { return f[name].ID }
	if _, err := s.AppendAlertDecision(ctx, record(audit.ActionAlert), nil, []store.Alerted{{ListID: id("W"), Ref: 5, CounterpartyListID: id("V1")}}); err != nil {
		t.Fatal(err)
	}
	last := map[string]uint64{}
	for _, owner := range []string{"w", "v1", "v2", "v3", "v4"} {
		if evs := events(t, s, owner, ""); len(evs) > 0 {
			last[owner] = evs[len(evs)-1].Cursor
		}
	}
	// T, U and the new N, at new refs.
	w2 := publish(t, s, "w", "W", "u2", meta(phone, key1), []store.Entry{e("T", 10), e("U", 11), e("N", 12)})
	news := func(owner string) map[triple]bool {
		evs, err := s.MatchEvents(ctx, owner, "", last[owner], 100)
		if err != nil {
			t.Fatal(err)
		}
		return triples(t, evs, store.EventMatch)
	}
	wantTriples(t, "new events of w", news("w"), set(triple{w2.ID, 10, id("V2")}, triple{w2.ID, 11, id("V3")}, triple{w2.ID, 12, v4.ID}))
	wantTriples(t, "new events of v1 (told already)", news("v1"), set())
	wantTriples(t, "new events of v2 (never told)", news("v2"), set(triple{id("V2"), 2, w2.ID}))
	wantTriples(t, "new events of v3 (told already)", news("v3"), set())
	wantTriples(t, "new events of v4", news("v4"), set(triple{v4.ID, 4, w2.ID}))
	wantPairs(t, "Overlaps(W v2)", overlaps(t, s, w2.ID), pairs(pair{10, id("V1")}, pair{10, id("V2")}, pair{11, id("V3")}, pair{12, v4.ID}))

	// v1's alert came along: the retraction of T in the new version
	// reaches it; v2 was never told, so it hears nothing.
	if _, err := s.Retract(ctx, "w", "W", 10, "", time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	retractions := func(owner string) map[triple]bool {
		evs, err := s.MatchEvents(ctx, owner, "", last[owner], 100)
		if err != nil {
			t.Fatal(err)
		}
		return triples(t, evs, store.EventRetraction)
	}
	wantTriples(t, "retractions to v1", retractions("v1"), set(triple{id("V1"), 1, w2.ID}))
	wantTriples(t, "retractions to v2", retractions("v2"), set())
	wantTriples(t, "new events of v2 after the retraction", news("v2"), set())
}

// testMatchesCanceled: the standing matches' methods fail with
// context.Canceled under a canceled context and change nothing.
func testMatchesCanceled(t *testing.T, s store.Store) {
	f := retractFixture(t, s)
	if _, err := s.Retract(t.Context(), "w", "W", 6, "", time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	before := events(t, s, "v1", "")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name string
		op   func() error
	}{
		{"MatchEvents", func() error { _, err := s.MatchEvents(ctx, "v1", "", 0, 10); return err }},
		{"AppendAlertDecision", func() error {
			_, err := s.AppendAlertDecision(ctx, record(audit.ActionAlert), nil, []store.Alerted{{ListID: f["V2"].ID, Ref: 2, CounterpartyListID: f["W"].ID}})
			return err
		}},
		{"Retract", func() error { _, err := s.Retract(ctx, "w", "W", 5, "", time.Now(), nil); return err }},
		{"Retractions", func() error { _, err := s.Retractions(ctx, "w"); return err }},
		{"Unretract", func() error { return s.Unretract(ctx, "w", "W", 6, time.Now(), nil) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, tt.name, tt.op(), context.Canceled)
		})
	}
	if rs, err := s.Retractions(t.Context(), "w"); err != nil || len(rs) != 1 || rs[0].Ref != 6 {
		t.Errorf("Retractions(w) = %+v, %v; want entry 6's only", rs, err)
	}
	if after := events(t, s, "v1", ""); len(after) != len(before) {
		t.Errorf("events of v1 went from %d to %d", len(before), len(after))
	}
	if size, _, err := s.LogHead(t.Context()); err != nil || size != 2 {
		t.Errorf("LogHead = %d, %v; want the fixture's 2 records", size, err)
	}
	wantPairs(t, "Overlaps(W)", overlaps(t, s, f["W"].ID), pairs(pair{5, f["V1"].ID}, pair{5, f["V2"].ID}))
}
