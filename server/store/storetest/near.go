package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/veilmatch/veilmatch/crypto/token"
	"github.com/veilmatch/veilmatch/server/store"
)

// nearEntry is the token.PDQTokens tokens of a PDQ entry ref whose first
// shared tokens are those of the fixture's entry P and the others its own.
func nearEntry(label string, ref uint64, shared int) []store.Entry {
	es := make([]store.Entry, token.PDQTokens)
	for i := range es {
		name := fmt.Sprintf("%s/%d", label, i)
		if i < shared {
			name = fmt.Sprintf("P/%d", i)
		}
		es[i] = store.Entry{Token: tok(name), Ref: ref}
	}
	return es
}

// publishEntries uploads one batch per entry and commits.
func publishEntries(t *testing.T, s store.Store, owner, name string, m store.List, entries ...[]store.Entry) store.List {
	t.Helper()
	ctx := t.Context()
	if err := s.BeginUpload(ctx, store.Upload{Owner: owner, List: name, ID: "u", Meta: m}); err != nil {
		t.Fatal(err)
	}
	n := 0
	for seq, es := range entries {
		if _, err := s.PutBatch(ctx, owner, name, "u", uint64(seq), es); err != nil {
			t.Fatal(err)
		}
		n += len(es)
	}
	l, err := s.CommitUpload(ctx, owner, name, "u", uint64(len(entries)), uint64(n), time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// testNearDuplicates: entries of kind pdq pair, at commit, at check and
// after a retraction is undone, exactly when the tokens they share pass
// token.PDQNear, whatever their number beyond.
func testNearDuplicates(t *testing.T, s store.Store) {
	ctx := t.Context()
	p := publishEntries(t, s, "a", "photos", meta(token.PDQKind, key1), nearEntry("P", 0, token.PDQTokens))
	cases := []struct {
		ref    uint64
		shared int
		near   bool
	}{
		{10, 3 * 529, true},          // three chunks equal: bound 25
		{11, 529 + 64, false},        // bound 31: one equal chunk, one within 2
		{12, token.PDQTokens, true},  // the same hash
		{13, 0, false},               // unrelated
		{14, 2*529 + 3*64, true},     // bound 18
		{15, 7, false},               // no pair of hashes shares 7 tokens
		{16, 4*529 + 2*6 + 64, true}, // bound 1 + 6 + 5
	}
	var theirs [][]store.Entry
	for _, c := range cases {
		theirs = append(theirs, nearEntry(fmt.Sprint("Q", c.ref), c.ref, c.shared))
	}
	q := publishEntries(t, s, "b", "adverts", meta(token.PDQKind, key1), theirs...)
	want := pairs()
	for _, c := range cases {
		if c.near != token.PDQNear(c.shared) {
			t.Fatalf("fixture: ref %d, %d shared: near %v", c.ref, c.shared, token.PDQNear(c.shared))
		}
		if c.near {
			want[pair{c.ref, p.ID}] = true
		}
	}
	wantPairs(t, "Overlaps(adverts)", overlaps(t, s, q.ID), want)
	wantPairs(t, "Overlaps(photos)", overlaps(t, s, p.ID), pairs(pair{0, q.ID}))

	// Check: one entry per token.PDQTokens tokens; each entry is reported
	// once per list however many of its entries it is near.
	var toks [][]byte
	for _, es := range [][]store.Entry{theirs[1], theirs[0], nearEntry("R", 0, 0)} {
		for _, e := range es {
			toks = append(toks, e.Token)
		}
	}
	wantPairs(t, "Check", check(t, s, token.PDQKind, key1, toks...), pairs(pair{0, q.ID}, pair{1, q.ID}, pair{1, p.ID}))
	err := s.Check(ctx, token.PDQKind, key1, toks[1:], func(int, int64) error { return nil })
	wantErr(t, "Check of a partial entry", err, store.ErrInvalid)

	// A retraction removes the pairs; undoing it finds them again by the
	// same rule.
	if _, err := s.Retract(ctx, "a", "photos", 0, "wrong photo", time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	wantPairs(t, "Overlaps(adverts) after the retraction", overlaps(t, s, q.ID), pairs())
	if err := s.Unretract(ctx, "a", "photos", 0, time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	wantPairs(t, "Overlaps(adverts) after the undo", overlaps(t, s, q.ID), want)
}
