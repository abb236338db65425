// Package storetest is the conformance suite for store.Store
// implementations. Every implementation runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t) })
//	}
package storetest

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veilmatch/veilmatch/server/store"
)

// Run runs the conformance suite. open must return a new, empty store on
// every call; Run closes it when the subtest ends.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"PublishAndGet", testPublishAndGet},
		{"EmptyUpload", testEmptyUpload},
		{"ListingOrder", testListingOrder},
		{"BatchIdempotence", testBatchIdempotence},
		{"Resume", testResume},
		{"CommitIdempotence", testCommitIdempotence},
		{"Incomplete", testIncomplete},
		{"CommitReplaces", testCommitReplaces},
		{"UncommittedInvisible", testUncommittedInvisible},
		{"CommitAtomicForReaders", testCommitAtomicForReaders},
		{"Overlaps", testOverlaps},
		{"OverlapsCallbackError", testOverlapsCallbackError},
		{"Check", testCheck},
		{"CheckWritesNothing", testCheckWritesNothing},
		{"DeleteList", testDeleteList},
		{"PurgeUploads", testPurgeUploads},
		{"NotFound", testNotFound},
		{"Invalid", testInvalid},
		{"ContextCanceled", testContextCanceled},
		{"ConcurrentUploads", testConcurrentUploads},
		{"ExpiredLists", testExpiredLists},
		{"DecisionLog", testDecisionLog},
		{"RecordWithAction", testRecordWithAction},
		{"DisclosureRequests", testDisclosureRequests},
		{"KeyEpochs", testKeyEpochs},
		{"CheckUse", testCheckUse},
		{"AppendDecisions", testAppendDecisions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.fn(t, s)
		})
	}
}

// Kinds and key ids of the fixtures.
const (
	phone = "phone"
	email = "email"
	key1  = "k1"
	key2  = "k2"
)

// tok returns the deterministic token named label.
func tok(label string) []byte {
	h := sha256.Sum256([]byte("veilmatch storetest " + label))
	return h[:]
}

// twin returns a token that shares its first 8 bytes with tok(label) and
// differs after them.
func twin(label string) []byte {
	t := tok(label + " twin")
	copy(t, tok(label)[:8])
	return t
}

// e returns the entry of token label with reference ref.
func e(label string, ref uint64) store.Entry {
	return store.Entry{Token: tok(label), Ref: ref}
}

// meta returns the metadata of a list of kind and key id.
func meta(kind, keyID string) store.List {
	return store.List{Kind: kind, KeyID: keyID, Category: "suspect", Jurisdiction: "GB"}
}

// batchSize is how many entries publish puts in one batch.
const batchSize = 2

// begin begins an upload of the owner's list and puts entries in batches.
func begin(t *testing.T, s store.Store, owner, name, uploadID string, m store.List, entries []store.Entry) (batches uint64) {
	t.Helper()
	ctx := t.Context()
	if err := s.BeginUpload(ctx, store.Upload{Owner: owner, List: name, ID: uploadID, Meta: m}); err != nil {
		t.Fatalf("BeginUpload(%s/%s/%s): %v", owner, name, uploadID, err)
	}
	for seq := uint64(0); len(entries) > 0; seq++ {
		n := min(batchSize, len(entries))
		if dup, err := s.PutBatch(ctx, owner, name, uploadID, seq, entries[:n]); err != nil || dup {
			t.Fatalf("PutBatch(%s/%s/%s, %d) = %v, %v; want false, nil", owner, name, uploadID, seq, dup, err)
		}
		entries = entries[n:]
		batches++
	}
	return batches
}

// publish uploads and commits a version of the owner's list.
func publish(t *testing.T, s store.Store, owner, name, uploadID string, m store.List, entries []store.Entry) store.List {
	t.Helper()
	batches := begin(t, s, owner, name, uploadID, m, entries)
	l, err := s.CommitUpload(t.Context(), owner, name, uploadID, batches, uint64(len(entries)), time.Now(), nil)
	if err != nil {
		t.Fatalf("CommitUpload(%s/%s/%s): %v", owner, name, uploadID, err)
	}
	return l
}

// pair is one result of Overlaps or Check.
type pair struct {
	Ref  uint64 // entry reference, or index for Check
	List int64
}

// overlaps returns the pairs Overlaps reports, failing on a repeated pair.
func overlaps(t *testing.T, s store.Store, listID int64) map[pair]bool {
	t.Helper()
	got := map[pair]bool{}
	err := s.Overlaps(t.Context(), listID, func(ref uint64, cp int64) error {
		p := pair{ref, cp}
		if got[p] {
			return fmt.Errorf("pair %+v reported twice", p)
		}
		got[p] = true
		return nil
	})
	if err != nil {
		t.Fatalf("Overlaps(%d): %v", listID, err)
	}
	return got
}

// check returns the pairs Check reports, failing on a repeated pair or an
// index out of order.
func check(t *testing.T, s store.Store, kind, keyID string, tokens ...[]byte) map[pair]bool {
	t.Helper()
	got := map[pair]bool{}
	last := 0
	err := s.Check(t.Context(), kind, keyID, tokens, func(i int, cp int64) error {
		p := pair{uint64(i), cp}
		switch {
		case got[p]:
			return fmt.Errorf("pair %+v reported twice", p)
		case i < last:
			return fmt.Errorf("index %d reported after %d", i, last)
		case i < 0 || i >= len(tokens):
			return fmt.Errorf("index %d out of range", i)
		}
		got[p], last = true, i
		return nil
	})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return got
}

// pairs builds an expected result set.
func pairs(ps ...pair) map[pair]bool {
	m := map[pair]bool{}
	for _, p := range ps {
		m[p] = true
	}
	return m
}

// sortedPairs returns the set's pairs in order, for messages.
func sortedPairs(m map[pair]bool) []pair {
	return slices.SortedFunc(maps.Keys(m), func(a, b pair) int {
		return cmp.Or(cmp.Compare(a.Ref, b.Ref), cmp.Compare(a.List, b.List))
	})
}

// wantPairs fails unless got equals want.
func wantPairs(t *testing.T, what string, got, want map[pair]bool) {
	t.Helper()
	if !maps.Equal(got, want) {
		t.Errorf("%s = %v, want %v", what, sortedPairs(got), sortedPairs(want))
	}
}

// wantErr fails unless err matches target.
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: error %v, want %v", what, err, target)
	}
}

// noTokens fails if err's message shows any of the tokens, raw or encoded.
func noTokens(t *testing.T, err error, tokens ...[]byte) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	for _, tk := range tokens {
		for _, enc := range []string{string(tk), hex.EncodeToString(tk), base64.StdEncoding.EncodeToString(tk), base64.RawURLEncoding.EncodeToString(tk), fmt.Sprint(tk)} {
			if strings.Contains(msg, enc) {
				t.Errorf("error %q shows a token", msg)
			}
		}
	}
}

// equalList reports whether two lists are equal, comparing times with Equal
// and empty slices and maps as equal to nil.
func equalList(a, b store.List) bool {
	if !a.ExpiresAt.Equal(b.ExpiresAt) || !a.CommittedAt.Equal(b.CommittedAt) {
		return false
	}
	norm := func(l store.List) store.List {
		l.ExpiresAt, l.CommittedAt = time.Time{}, time.Time{}
		if len(l.Sharing.VictimConsentRoles) == 0 {
			l.Sharing.VictimConsentRoles = nil
		}
		if len(l.Normalization) == 0 {
			l.Normalization = nil
		}
		return l
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

// wantList fails unless got equals want.
func wantList(t *testing.T, what string, got, want store.List) {
	t.Helper()
	if !equalList(got, want) {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
}

// ids returns the lists' ids.
func ids(ls []store.List) []int64 {
	var out []int64
	for _, l := range ls {
		out = append(out, l.ID)
	}
	return out
}

func testPublishAndGet(t *testing.T, s store.Store) {
	ctx := t.Context()
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.FixedZone("CET", 3600))
	m := store.List{
		Kind:          phone,
		Category:      "victim",
		Jurisdiction:  "GB-ENG",
		KeyID:         key1,
		ExpiresAt:     time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC),
		Sharing:       store.Sharing{VictimConsentRoles: []string{"police", "ngo"}, NGOVisible: true},
		Normalization: map[string]string{"phone.region": "GB", "email.dots": "gmail.com"},
	}
	if err := s.BeginUpload(ctx, store.Upload{Owner: "a", List: "l", ID: "u1", Meta: m}); err != nil {
		t.Fatal(err)
	}
	for seq, batch := range [][]store.Entry{{e("A", 1), e("B", 2)}, {e("C", 1<<63+5)}} {
		if dup, err := s.PutBatch(ctx, "a", "l", "u1", uint64(seq), batch); err != nil || dup {
			t.Fatalf("PutBatch(%d) = %v, %v", seq, dup, err)
		}
	}
	seqs, committed, err := s.UploadStatus(ctx, "a", "l", "u1")
	if err != nil || committed || !slices.Equal(seqs, []uint64{0, 1}) {
		t.Fatalf("UploadStatus = %v, %v, %v; want [0 1], false, nil", seqs, committed, err)
	}
	l, err := s.CommitUpload(ctx, "a", "l", "u1", 2, 3, at, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := m
	want.ID, want.Owner, want.Name, want.Entries, want.CommittedAt, want.UploadID = l.ID, "a", "l", 3, at, "u1"
	if l.CommittedAt.Location() != time.UTC {
		t.Errorf("CommittedAt %v is not in UTC", l.CommittedAt)
	}
	if l.ID == 0 {
		t.Error("CommitUpload: list ID is 0")
	}
	wantList(t, "CommitUpload", l, want)
	got, err := s.GetList(ctx, "a", "l")
	if err != nil {
		t.Fatal(err)
	}
	wantList(t, "GetList", got, want)

	ls, err := s.Lists(ctx, "a")
	if err != nil || len(ls) != 1 {
		t.Fatalf("Lists(a) = %v, %v; want one list", ls, err)
	}
	wantList(t, "Lists(a)[0]", ls[0], want)
	vis, err := s.VisibleLists(ctx, phone, key1)
	if err != nil || len(vis) != 1 {
		t.Fatalf("VisibleLists = %v, %v; want one list", vis, err)
	}
	wantList(t, "VisibleLists[0]", vis[0], want)

	seqs, committed, err = s.UploadStatus(ctx, "a", "l", "u1")
	if err != nil || !committed || !slices.Equal(seqs, []uint64{0, 1}) {
		t.Errorf("UploadStatus after commit = %v, %v, %v; want [0 1], true, nil", seqs, committed, err)
	}
	// A reference is kept bit for bit, including the top bit.
	b := publish(t, s, "b", "l", "u1", meta(phone, key1), []store.Entry{e("C", 7)})
	wantPairs(t, "Overlaps(b)", overlaps(t, s, b.ID), pairs(pair{7, l.ID}))
	wantPairs(t, "Overlaps(a)", overlaps(t, s, l.ID), pairs(pair{1<<63 + 5, b.ID}))
}

func testEmptyUpload(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.BeginUpload(ctx, store.Upload{Owner: "a", List: "l", ID: "u1", Meta: meta(phone, key1)}); err != nil {
		t.Fatal(err)
	}
	l, err := s.CommitUpload(ctx, "a", "l", "u1", 0, 0, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.Entries != 0 {
		t.Errorf("Entries = %d, want 0", l.Entries)
	}
	wantPairs(t, "Overlaps", overlaps(t, s, l.ID), pairs())
}

func testListingOrder(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := publish(t, s, "a", "c", "u", meta(phone, key1), []store.Entry{e("A", 1)})
	a := publish(t, s, "a", "a", "u", meta(phone, key1), nil)
	b := publish(t, s, "a", "b", "u", meta(email, key1), nil)
	x := publish(t, s, "x", "a", "u", meta(phone, key1), nil)
	y := publish(t, s, "x", "b", "u", meta(phone, key2), nil)
	tests := []struct {
		name string
		list func() ([]store.List, error)
		want []int64
	}{
		{"Lists(a) by name", func() ([]store.List, error) { return s.Lists(ctx, "a") }, []int64{a.ID, b.ID, c.ID}},
		{"Lists(x)", func() ([]store.List, error) { return s.Lists(ctx, "x") }, []int64{x.ID, y.ID}},
		{"Lists(nobody)", func() ([]store.List, error) { return s.Lists(ctx, "nobody") }, nil},
		{"VisibleLists(phone, k1) by id", func() ([]store.List, error) { return s.VisibleLists(ctx, phone, key1) }, []int64{c.ID, a.ID, x.ID}},
		{"VisibleLists(email, k1)", func() ([]store.List, error) { return s.VisibleLists(ctx, email, key1) }, []int64{b.ID}},
		{"VisibleLists(email, k2)", func() ([]store.List, error) { return s.VisibleLists(ctx, email, key2) }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ls, err := tt.list()
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(ls); !slices.Equal(got, tt.want) {
				t.Errorf("ids = %v, want %v", got, tt.want)
			}
		})
	}
}

func testBatchIdempotence(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.BeginUpload(ctx, store.Upload{Owner: "a", List: "l", ID: "u1", Meta: meta(phone, key1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutBatch(ctx, "a", "l", "u1", 0, []store.Entry{e("A", 1), e("B", 2)}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name    string
		seq     uint64
		entries []store.Entry
		dup     bool
		err     error
	}{
		{"same content", 0, []store.Entry{e("A", 1), e("B", 2)}, true, nil},
		{"different token", 0, []store.Entry{e("A", 1), e("X", 2)}, false, store.ErrConflict},
		{"different ref", 0, []store.Entry{e("A", 1), e("B", 3)}, false, store.ErrConflict},
		{"different order", 0, []store.Entry{e("B", 2), e("A", 1)}, false, store.ErrConflict},
		{"fewer entries", 0, []store.Entry{e("A", 1)}, false, store.ErrConflict},
		{"more entries", 0, []store.Entry{e("A", 1), e("B", 2), e("X", 3)}, false, store.ErrConflict},
		{"new seq", 1, []store.Entry{e("C", 3)}, false, nil},
		{"new seq again", 1, []store.Entry{e("C", 3)}, true, nil},
		{"empty batch", 2, nil, false, nil},
		{"empty batch again", 2, []store.Entry{}, true, nil},
		{"entries for the empty batch", 2, []store.Entry{e("X", 4)}, false, store.ErrConflict},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			dup, err := s.PutBatch(ctx, "a", "l", "u1", st.seq, st.entries)
			if dup != st.dup || !errors.Is(err, st.err) {
				t.Errorf("PutBatch = %v, %v; want %v, %v", dup, err, st.dup, st.err)
			}
			noTokens(t, err, tok("A"), tok("B"), tok("X"))
		})
	}
	l, err := s.CommitUpload(ctx, "a", "l", "u1", 3, 3, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.Entries != 3 {
		t.Errorf("Entries = %d, want 3", l.Entries)
	}
	// Only the first content of each batch was written.
	wantPairs(t, "Check", check(t, s, phone, key1, tok("A"), tok("B"), tok("C"), tok("X")),
		pairs(pair{0, l.ID}, pair{1, l.ID}, pair{2, l.ID}))

	after := []struct {
		name    string
		seq     uint64
		entries []store.Entry
		dup     bool
		err     error
	}{
		{"held batch after commit", 0, []store.Entry{e("A", 1), e("B", 2)}, true, nil},
		{"different content after commit", 0, []store.Entry{e("X", 1)}, false, store.ErrConflict},
		{"new batch after commit", 3, []store.Entry{e("X", 1)}, false, store.ErrConflict},
	}
	for _, st := range after {
		t.Run(st.name, func(t *testing.T) {
			dup, err := s.PutBatch(ctx, "a", "l", "u1", st.seq, st.entries)
			if dup != st.dup || !errors.Is(err, st.err) {
				t.Errorf("PutBatch = %v, %v; want %v, %v", dup, err, st.dup, st.err)
			}
		})
	}
	wantPairs(t, "Check(X) after commit", check(t, s, phone, key1, tok("X")), pairs())
}

func testResume(t *testing.T, s store.Store) {
	ctx := t.Context()
	m := meta(phone, key1)
	m.ExpiresAt = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	m.Sharing = store.Sharing{VictimConsentRoles: []string{"police"}, NGOVisible: true}
	m.Normalization = map[string]string{"a": "1", "b": "2"}
	u := store.Upload{Owner: "a", List: "l", ID: "u1", Meta: m}
	if err := s.BeginUpload(ctx, u); err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{0, 2} {
		if _, err := s.PutBatch(ctx, "a", "l", "u1", seq, []store.Entry{e(fmt.Sprint(seq), seq)}); err != nil {
			t.Fatal(err)
		}
	}
	// The client was interrupted; it resumes with the same metadata.
	same := u
	same.Meta.Owner, same.Meta.Name = "a", "l"
	same.Meta.Normalization = map[string]string{"b": "2", "a": "1"}
	if err := s.BeginUpload(ctx, same); err != nil {
		t.Fatalf("resume: %v", err)
	}
	seqs, committed, err := s.UploadStatus(ctx, "a", "l", "u1")
	if err != nil || committed || !slices.Equal(seqs, []uint64{0, 2}) {
		t.Fatalf("UploadStatus = %v, %v, %v; want [0 2], false, nil", seqs, committed, err)
	}
	changes := []struct {
		name   string
		change func(m *store.List)
	}{
		{"kind", func(m *store.List) { m.Kind = email }},
		{"key id", func(m *store.List) { m.KeyID = key2 }},
		{"category", func(m *store.List) { m.Category = "victim" }},
		{"jurisdiction", func(m *store.List) { m.Jurisdiction = "FR" }},
		{"expiry", func(m *store.List) { m.ExpiresAt = m.ExpiresAt.Add(time.Second) }},
		{"no expiry", func(m *store.List) { m.ExpiresAt = time.Time{} }},
		{"consent roles", func(m *store.List) { m.Sharing.VictimConsentRoles = []string{"police", "ngo"} }},
		{"ngo visible", func(m *store.List) { m.Sharing.NGOVisible = false }},
		{"normalization", func(m *store.List) { m.Normalization = map[string]string{"a": "1"} }},
	}
	for _, c := range changes {
		t.Run("different "+c.name, func(t *testing.T) {
			d := u
			d.Meta.Sharing.VictimConsentRoles = slices.Clone(m.Sharing.VictimConsentRoles)
			d.Meta.Normalization = maps.Clone(m.Normalization)
			c.change(&d.Meta)
			wantErr(t, "BeginUpload", s.BeginUpload(ctx, d), store.ErrConflict)
		})
	}
	if _, err := s.PutBatch(ctx, "a", "l", "u1", 1, []store.Entry{e("1", 1)}); err != nil {
		t.Fatal(err)
	}
	l, err := s.CommitUpload(ctx, "a", "l", "u1", 3, 3, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.Entries != 3 || !l.ExpiresAt.Equal(m.ExpiresAt) {
		t.Errorf("committed %+v, want 3 entries and the first metadata", l)
	}
	wantPairs(t, "Check", check(t, s, phone, key1, tok("0"), tok("1"), tok("2")),
		pairs(pair{0, l.ID}, pair{1, l.ID}, pair{2, l.ID}))
}

func testCommitIdempotence(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := store.Upload{Owner: "a", List: "l", ID: "u1", Meta: meta(phone, key1)}
	first := publish(t, s, "a", "l", "u1", u.Meta, []store.Entry{e("A", 1), e("B", 2), e("C", 3)})
	again, err := s.CommitUpload(ctx, "a", "l", "u1", 2, 3, time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatalf("second commit: %v", err)
	}
	wantList(t, "second commit", again, first)
	if err := s.BeginUpload(ctx, u); err != nil {
		t.Errorf("BeginUpload of the committed upload: %v", err)
	}
	if _, committed, err := s.UploadStatus(ctx, "a", "l", "u1"); err != nil || !committed {
		t.Errorf("UploadStatus = %v, %v; want committed", committed, err)
	}
	got, err := s.GetList(ctx, "a", "l")
	if err != nil {
		t.Fatal(err)
	}
	wantList(t, "GetList", got, first)

	// A later upload supersedes u1; u1 can no longer be used.
	second := publish(t, s, "a", "l", "u2", u.Meta, []store.Entry{e("D", 1)})
	if second.ID == first.ID {
		t.Errorf("new version has the old ID %d", first.ID)
	}
	supersededOps := []struct {
		name string
		op   func() error
	}{
		{"CommitUpload", func() error {
			_, err := s.CommitUpload(ctx, "a", "l", "u1", 2, 3, time.Now(), nil)
			return err
		}},
		{"BeginUpload", func() error { return s.BeginUpload(ctx, u) }},
		{"PutBatch", func() error {
			_, err := s.PutBatch(ctx, "a", "l", "u1", 0, []store.Entry{e("A", 1), e("B", 2)})
			return err
		}},
		{"UploadStatus", func() error {
			_, _, err := s.UploadStatus(ctx, "a", "l", "u1")
			return err
		}},
	}
	for _, o := range supersededOps {
		t.Run("superseded "+o.name, func(t *testing.T) {
			wantErr(t, o.name, o.op(), store.ErrConflict)
		})
	}
	got, err = s.GetList(ctx, "a", "l")
	if err != nil {
		t.Fatal(err)
	}
	wantList(t, "GetList after supersede", got, second)
}

func testIncomplete(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.BeginUpload(ctx, store.Upload{Owner: "a", List: "l", ID: "u1", Meta: meta(phone, key1)}); err != nil {
		t.Fatal(err)
	}
	put := func(seq uint64, entries ...store.Entry) {
		t.Helper()
		if _, err := s.PutBatch(ctx, "a", "l", "u1", seq, entries); err != nil {
			t.Fatal(err)
		}
	}
	put(0, e("A", 1), e("B", 2))
	put(2, e("C", 3))
	_, err := s.CommitUpload(ctx, "a", "l", "u1", 3, 3, time.Now(), nil)
	wantErr(t, "commit with batch 1 missing", err, store.ErrIncomplete)
	_, err = s.CommitUpload(ctx, "a", "l", "u1", 4, 4, time.Now(), nil)
	wantErr(t, "commit with batches 1 and 3 missing", err, store.ErrIncomplete)
	put(1, e("D", 4))

	tests := []struct {
		name           string
		batches, total uint64
	}{
		{"too many entries", 3, 5},
		{"too few entries", 3, 3},
		{"batch beyond the total", 2, 4},
		{"batch missing at the end", 4, 4},
		{"no batches declared", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.CommitUpload(ctx, "a", "l", "u1", tt.batches, tt.total, time.Now(), nil)
			wantErr(t, "CommitUpload", err, store.ErrIncomplete)
			noTokens(t, err, tok("A"), tok("B"), tok("C"), tok("D"))
		})
	}
	if _, err := s.GetList(ctx, "a", "l"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetList after failed commits: %v, want ErrNotFound", err)
	}
	l, err := s.CommitUpload(ctx, "a", "l", "u1", 3, 4, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.Entries != 4 {
		t.Errorf("Entries = %d, want 4", l.Entries)
	}
}

func testCommitReplaces(t *testing.T, s store.Store) {
	ctx := t.Context()
	m := publish(t, s, "b", "m", "u1", meta(phone, key1), []store.Entry{e("A", 1), e("B", 2), e("C", 3), e("D", 4)})
	v1 := publish(t, s, "a", "l", "u1", meta(phone, key1), []store.Entry{e("A", 10), e("B", 11)})
	wantPairs(t, "Overlaps(m) with v1", overlaps(t, s, m.ID), pairs(pair{1, v1.ID}, pair{2, v1.ID}))

	v2 := publish(t, s, "a", "l", "u2", meta(phone, key1), []store.Entry{e("C", 12)})
	if v2.ID == v1.ID {
		t.Fatalf("v2 has v1's ID %d", v1.ID)
	}
	wantPairs(t, "Overlaps(m) with v2", overlaps(t, s, m.ID), pairs(pair{3, v2.ID}))
	wantPairs(t, "Overlaps(v2)", overlaps(t, s, v2.ID), pairs(pair{12, m.ID}))
	wantPairs(t, "Check", check(t, s, phone, key1, tok("A"), tok("C")),
		pairs(pair{0, m.ID}, pair{1, m.ID}, pair{1, v2.ID}))
	wantErr(t, "Overlaps(v1)", s.Overlaps(ctx, v1.ID, func(uint64, int64) error { return nil }), store.ErrNotFound)
	vis, err := s.VisibleLists(ctx, phone, key1)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(vis); !slices.Equal(got, []int64{m.ID, v2.ID}) {
		t.Errorf("VisibleLists = %v, want %v", got, []int64{m.ID, v2.ID})
	}
}

func testUncommittedInvisible(t *testing.T, s store.Store) {
	ctx := t.Context()
	m := publish(t, s, "b", "m", "u1", meta(phone, key1), []store.Entry{e("A", 1), e("B", 2)})
	// a has a committed version of l holding B and an open upload holding A,
	// and an open upload of a list n that was never committed.
	v1 := publish(t, s, "a", "l", "u1", meta(phone, key1), []store.Entry{e("B", 10)})
	begin(t, s, "a", "l", "u2", meta(phone, key1), []store.Entry{e("A", 20)})
	begin(t, s, "a", "n", "u1", meta(phone, key1), []store.Entry{e("A", 30), e("B", 31)})

	wantPairs(t, "Overlaps(m)", overlaps(t, s, m.ID), pairs(pair{2, v1.ID}))
	wantPairs(t, "Check", check(t, s, phone, key1, tok("A"), tok("B")),
		pairs(pair{0, m.ID}, pair{1, m.ID}, pair{1, v1.ID}))
	vis, err := s.VisibleLists(ctx, phone, key1)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(vis); !slices.Equal(got, []int64{m.ID, v1.ID}) {
		t.Errorf("VisibleLists = %v, want %v", got, []int64{m.ID, v1.ID})
	}
	ls, err := s.Lists(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(ls); !slices.Equal(got, []int64{v1.ID}) {
		t.Errorf("Lists(a) = %v, want %v", got, []int64{v1.ID})
	}
	got, err := s.GetList(ctx, "a", "l")
	if err != nil {
		t.Fatal(err)
	}
	wantList(t, "GetList(a, l)", got, v1)
	_, err = s.GetList(ctx, "a", "n")
	wantErr(t, "GetList(a, n)", err, store.ErrNotFound)
}

func testCommitAtomicForReaders(t *testing.T, s store.Store) {
	const n = 20 // m holds T0..T19; versions of l alternate T0..T9 and T10..T19
	var all []store.Entry
	var tokens [][]byte
	for i := range n {
		all = append(all, e(fmt.Sprint("T", i), uint64(i)))
		tokens = append(tokens, tok(fmt.Sprint("T", i)))
	}
	m := publish(t, s, "b", "m", "u", meta(phone, key1), all)
	publish(t, s, "a", "l", "v0", meta(phone, key1), all[:n/2])

	// valid reports whether a result is exactly one version's: one list,
	// and the refs (or indexes) of one half.
	valid := func(got map[pair]bool) bool {
		var lists []int64
		var refs []uint64
		for p := range got {
			lists = append(lists, p.List)
			refs = append(refs, p.Ref)
		}
		slices.Sort(refs)
		if len(slices.Compact(lists)) != 1 || len(refs) != n/2 {
			return false
		}
		return refs[0] == 0 && refs[n/2-1] == n/2-1 || refs[0] == n/2 && refs[n/2-1] == n-1
	}
	const versions = 10
	done := make(chan struct{})
	defer func() { <-done }() // also when a check below fails
	var writeErr error
	go func() {
		defer close(done)
		ctx := context.Background()
		for v := 1; v <= versions; v++ {
			half := all[:n/2]
			if v%2 == 1 {
				half = all[n/2:]
			}
			id := fmt.Sprint("v", v)
			if err := s.BeginUpload(ctx, store.Upload{Owner: "a", List: "l", ID: id, Meta: meta(phone, key1)}); err != nil {
				writeErr = err
				return
			}
			for seq := range uint64(2) {
				if _, err := s.PutBatch(ctx, "a", "l", id, seq, half[seq*n/4:(seq+1)*n/4]); err != nil {
					writeErr = err
					return
				}
			}
			if _, err := s.CommitUpload(ctx, "a", "l", id, 2, n/2, time.Now(), nil); err != nil {
				writeErr = err
				return
			}
		}
	}()
	reads := 0
	for running := true; running; reads++ {
		select {
		case <-done:
			running = false
		default:
		}
		if got := overlaps(t, s, m.ID); !valid(got) {
			t.Fatalf("Overlaps saw a mix of versions: %v", sortedPairs(got))
		}
		got := check(t, s, phone, key1, tokens...)
		maps.DeleteFunc(got, func(p pair, _ bool) bool { return p.List == m.ID })
		if !valid(got) {
			t.Fatalf("Check saw a mix of versions: %v", sortedPairs(got))
		}
	}
	if writeErr != nil {
		t.Fatal(writeErr)
	}
	t.Logf("%d consistent reads during %d commits", reads, versions)
}

// fixture publishes lists that exercise every rule of Overlaps and Check.
func fixture(t *testing.T, s store.Store) map[string]store.List {
	t.Helper()
	e2 := func(tk []byte, ref uint64) store.Entry { return store.Entry{Token: tk, Ref: ref} }
	return map[string]store.List{
		// B twice with different refs; C and D under the same ref; E matches
		// only lists of a itself or of other kinds; P's prefix twin is in theirs.
		"mine": publish(t, s, "a", "mine", "u", meta(phone, key1), []store.Entry{
			e("A", 1), e("B", 2), e("B", 3), e("C", 4), e("D", 4), e("E", 5), e("P", 6), e("F", 7),
		}),
		"mine2":     publish(t, s, "a", "mine2", "u", meta(phone, key1), []store.Entry{e("E", 1), e("F", 2)}),
		"theirs":    publish(t, s, "b", "theirs", "u", meta(phone, key1), []store.Entry{e("A", 10), e("A", 11), e("B", 12), e("D", 13), e("C", 14), e2(twin("P"), 15)}),
		"email":     publish(t, s, "b", "email", "u", meta(email, key1), []store.Entry{e("A", 1), e("E", 2), e("F", 3)}),
		"old-key":   publish(t, s, "c", "old-key", "u", meta(phone, key2), []store.Entry{e("A", 1), e("E", 2), e("F", 3)}),
		"third":     publish(t, s, "c", "third", "u", meta(phone, key1), []store.Entry{e("D", 20), e("E", 21), e("D", 22)}),
		"unrelated": publish(t, s, "d", "unrelated", "u", meta(phone, key1), []store.Entry{e("Z", 1)}),
	}
}

func testOverlaps(t *testing.T, s store.Store) {
	f := fixture(t, s)
	id := func(name string) int64 { return f[name].ID }
	tests := []struct {
		list string
		want map[pair]bool
	}{
		{"mine", pairs(
			pair{1, id("theirs")}, pair{2, id("theirs")}, pair{3, id("theirs")}, pair{4, id("theirs")},
			pair{4, id("third")}, pair{5, id("third")},
		)},
		{"mine2", pairs(pair{1, id("third")})},
		{"theirs", pairs(
			pair{10, id("mine")}, pair{11, id("mine")}, pair{12, id("mine")}, pair{13, id("mine")}, pair{14, id("mine")},
			pair{13, id("third")},
		)},
		{"third", pairs(
			pair{20, id("mine")}, pair{20, id("theirs")}, pair{22, id("mine")}, pair{22, id("theirs")},
			pair{21, id("mine")}, pair{21, id("mine2")},
		)},
		{"email", pairs()},
		{"old-key", pairs()},
		{"unrelated", pairs()},
	}
	for _, tt := range tests {
		t.Run(tt.list, func(t *testing.T) {
			wantPairs(t, "Overlaps", overlaps(t, s, id(tt.list)), tt.want)
		})
	}
}

func testOverlapsCallbackError(t *testing.T, s store.Store) {
	f := fixture(t, s)
	stop := errors.New("stop")
	calls := 0
	err := s.Overlaps(t.Context(), f["mine"].ID, func(uint64, int64) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Overlaps = %v after %d calls, want the callback's error after 1", err, calls)
	}
}

func testCheck(t *testing.T, s store.Store) {
	f := fixture(t, s)
	id := func(name string) int64 { return f[name].ID }
	tests := []struct {
		name      string
		kind, key string
		tokens    [][]byte
		want      map[pair]bool
	}{
		{"phone k1", phone, key1, [][]byte{tok("A"), tok("E"), tok("X"), tok("P"), tok("B")}, pairs(
			pair{0, id("mine")}, pair{0, id("theirs")},
			pair{1, id("mine")}, pair{1, id("mine2")}, pair{1, id("third")},
			pair{3, id("mine")},
			pair{4, id("mine")}, pair{4, id("theirs")},
		)},
		{"prefix twin", phone, key1, [][]byte{twin("P"), twin("A")}, pairs(pair{0, id("theirs")})},
		{"same token twice", phone, key1, [][]byte{tok("D"), tok("D")}, pairs(
			pair{0, id("mine")}, pair{0, id("theirs")}, pair{0, id("third")},
			pair{1, id("mine")}, pair{1, id("theirs")}, pair{1, id("third")},
		)},
		{"email k1", email, key1, [][]byte{tok("A"), tok("B")}, pairs(pair{0, id("email")})},
		{"phone k2", phone, key2, [][]byte{tok("F")}, pairs(pair{0, id("old-key")})},
		{"unknown kind", "pdq", key1, [][]byte{tok("A")}, pairs()},
		{"no tokens", phone, key1, nil, pairs()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantPairs(t, "Check", check(t, s, tt.kind, tt.key, tt.tokens...), tt.want)
		})
	}
}

func testCheckWritesNothing(t *testing.T, s store.Store) {
	ctx := t.Context()
	f := fixture(t, s)
	before, err := s.VisibleLists(ctx, phone, key1)
	if err != nil {
		t.Fatal(err)
	}
	check(t, s, phone, key1, tok("X"), tok("Y"), tok("A"))
	check(t, s, "new-kind", "new-key", tok("X"))
	after, err := s.VisibleLists(ctx, phone, key1)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(before, after, equalList) {
		t.Errorf("VisibleLists changed by Check: %v, then %v", ids(before), ids(after))
	}
	if ls, err := s.VisibleLists(ctx, "new-kind", "new-key"); err != nil || len(ls) != 0 {
		t.Errorf("VisibleLists(new-kind, new-key) = %v, %v; want none", ids(ls), err)
	}
	// The checked tokens match nothing afterwards.
	wantPairs(t, "Check again", check(t, s, phone, key1, tok("X"), tok("Y")), pairs())
	wantPairs(t, "Overlaps(unrelated)", overlaps(t, s, f["unrelated"].ID), pairs())
}

func testDeleteList(t *testing.T, s store.Store) {
	ctx := t.Context()
	f := fixture(t, s)
	// An open upload of a new version of mine, with 3 staged entries.
	begin(t, s, "a", "mine", "u2", meta(phone, key1), []store.Entry{e("A", 1), e("Q", 2), e("R", 3)})

	n, err := s.DeleteList(ctx, "a", "mine", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := f["mine"].Entries + 3; n != want {
		t.Errorf("DeleteList = %d, want %d (committed and staged entries)", n, want)
	}
	_, err = s.GetList(ctx, "a", "mine")
	wantErr(t, "GetList", err, store.ErrNotFound)
	wantErr(t, "Overlaps(mine)", s.Overlaps(ctx, f["mine"].ID, func(uint64, int64) error { return nil }), store.ErrNotFound)
	_, _, err = s.UploadStatus(ctx, "a", "mine", "u2")
	wantErr(t, "UploadStatus(open upload)", err, store.ErrNotFound)
	_, _, err = s.UploadStatus(ctx, "a", "mine", "u")
	wantErr(t, "UploadStatus(committed upload)", err, store.ErrNotFound)
	_, err = s.DeleteList(ctx, "a", "mine", nil)
	wantErr(t, "DeleteList again", err, store.ErrNotFound)

	wantPairs(t, "Overlaps(theirs)", overlaps(t, s, f["theirs"].ID), pairs(pair{13, f["third"].ID}))
	wantPairs(t, "Check", check(t, s, phone, key1, tok("A"), tok("Q"), tok("P")), pairs(pair{0, f["theirs"].ID}))
	ls, err := s.Lists(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(ls); !slices.Equal(got, []int64{f["mine2"].ID}) {
		t.Errorf("Lists(a) = %v, want %v", got, []int64{f["mine2"].ID})
	}

	// The name can be published again, as a new list.
	l := publish(t, s, "a", "mine", "u", meta(phone, key1), []store.Entry{e("A", 1)})
	if l.ID == f["mine"].ID {
		t.Errorf("republished list reuses ID %d", l.ID)
	}
	wantPairs(t, "Overlaps(republished)", overlaps(t, s, l.ID), pairs(pair{1, f["theirs"].ID}))

	// Deleting a list that was never committed erases its open upload.
	begin(t, s, "a", "draft", "u", meta(phone, key1), []store.Entry{e("A", 1)})
	if n, err := s.DeleteList(ctx, "a", "draft", nil); err != nil || n != 1 {
		t.Errorf("DeleteList(draft) = %d, %v; want 1, nil", n, err)
	}
	_, _, err = s.UploadStatus(ctx, "a", "draft", "u")
	wantErr(t, "UploadStatus(draft)", err, store.ErrNotFound)
}

func testPurgeUploads(t *testing.T, s store.Store) {
	ctx := t.Context()
	v1 := publish(t, s, "a", "l", "u1", meta(phone, key1), []store.Entry{e("A", 1)})
	begin(t, s, "a", "l", "u2", meta(phone, key1), []store.Entry{e("B", 1)})
	begin(t, s, "b", "m", "u1", meta(phone, key1), []store.Entry{e("C", 1), e("D", 2), e("E", 3)})

	if n, err := s.PurgeUploads(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Errorf("PurgeUploads(an hour ago) = %d, %v; want 0, nil", n, err)
	}
	if seqs, _, err := s.UploadStatus(ctx, "a", "l", "u2"); err != nil || len(seqs) != 1 {
		t.Errorf("UploadStatus(u2) after a purge of older uploads = %v, %v", seqs, err)
	}
	if n, err := s.PurgeUploads(ctx, time.Now().Add(time.Minute)); err != nil || n != 2 {
		t.Errorf("PurgeUploads(now) = %d, %v; want 2, nil", n, err)
	}
	for _, u := range []struct{ owner, list, id string }{{"a", "l", "u2"}, {"b", "m", "u1"}} {
		_, _, err := s.UploadStatus(ctx, u.owner, u.list, u.id)
		wantErr(t, fmt.Sprintf("UploadStatus(%s/%s/%s)", u.owner, u.list, u.id), err, store.ErrNotFound)
	}
	if _, committed, err := s.UploadStatus(ctx, "a", "l", "u1"); err != nil || !committed {
		t.Errorf("UploadStatus(committed u1) = %v, %v; want committed", committed, err)
	}
	got, err := s.GetList(ctx, "a", "l")
	if err != nil {
		t.Fatal(err)
	}
	wantList(t, "GetList", got, v1)
	wantPairs(t, "Check", check(t, s, phone, key1, tok("A"), tok("B"), tok("C")), pairs(pair{0, v1.ID}))
	if n, err := s.PurgeUploads(ctx, time.Now().Add(time.Minute)); err != nil || n != 0 {
		t.Errorf("PurgeUploads again = %d, %v; want 0, nil", n, err)
	}
}

func testNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	l := publish(t, s, "a", "l", "u1", meta(phone, key1), []store.Entry{e("A", 1)})
	begin(t, s, "a", "l", "u2", meta(phone, key1), nil)
	nop := func(uint64, int64) error { return nil }
	tests := []struct {
		name string
		op   func() error
	}{
		{"PutBatch unknown upload", func() error {
			_, err := s.PutBatch(ctx, "a", "l", "nope", 0, []store.Entry{e("A", 1)})
			return err
		}},
		{"PutBatch other owner's upload", func() error {
			_, err := s.PutBatch(ctx, "b", "l", "u2", 0, []store.Entry{e("A", 1)})
			return err
		}},
		{"PutBatch other list's upload", func() error {
			_, err := s.PutBatch(ctx, "a", "m", "u2", 0, []store.Entry{e("A", 1)})
			return err
		}},
		{"UploadStatus unknown upload", func() error {
			_, _, err := s.UploadStatus(ctx, "a", "l", "nope")
			return err
		}},
		{"UploadStatus other owner's upload", func() error {
			_, _, err := s.UploadStatus(ctx, "b", "l", "u1")
			return err
		}},
		{"CommitUpload unknown upload", func() error {
			_, err := s.CommitUpload(ctx, "a", "l", "nope", 0, 0, time.Now(), nil)
			return err
		}},
		{"CommitUpload other owner's upload", func() error {
			_, err := s.CommitUpload(ctx, "b", "l", "u2", 0, 0, time.Now(), nil)
			return err
		}},
		{"GetList unknown list", func() error {
			_, err := s.GetList(ctx, "a", "nope")
			return err
		}},
		{"GetList other owner's list", func() error {
			_, err := s.GetList(ctx, "b", "l")
			return err
		}},
		{"DeleteList unknown list", func() error {
			_, err := s.DeleteList(ctx, "a", "nope", nil)
			return err
		}},
		{"DeleteList other owner's list", func() error {
			_, err := s.DeleteList(ctx, "b", "l", nil)
			return err
		}},
		{"Overlaps unknown id", func() error { return s.Overlaps(ctx, l.ID+1000, nop) }},
		{"Overlaps zero id", func() error { return s.Overlaps(ctx, 0, nop) }},
		{"Overlaps negative id", func() error { return s.Overlaps(ctx, -1, nop) }},
		{"Overlaps huge id", func() error { return s.Overlaps(ctx, 1<<62, nop) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, tt.name, tt.op(), store.ErrNotFound)
		})
	}
	if _, err := s.GetList(ctx, "a", "l"); err != nil {
		t.Errorf("GetList(a, l) after the failed operations: %v", err)
	}
}

func testInvalid(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.BeginUpload(ctx, store.Upload{Owner: "a", List: "l", ID: "u", Meta: meta(phone, key1)}); err != nil {
		t.Fatal(err)
	}
	short, long := tok("A")[:31], append(tok("A"), 0)
	withMeta := func(change func(u *store.Upload)) func() error {
		return func() error {
			u := store.Upload{Owner: "a", List: "m", ID: "u", Meta: meta(phone, key1)}
			change(&u)
			return s.BeginUpload(ctx, u)
		}
	}
	put := func(entries ...store.Entry) func() error {
		return func() error {
			_, err := s.PutBatch(ctx, "a", "l", "u", 0, entries)
			return err
		}
	}
	tests := []struct {
		name string
		op   func() error
	}{
		{"BeginUpload no owner", withMeta(func(u *store.Upload) { u.Owner = "" })},
		{"BeginUpload no list", withMeta(func(u *store.Upload) { u.List = "" })},
		{"BeginUpload no id", withMeta(func(u *store.Upload) { u.ID = "" })},
		{"BeginUpload no kind", withMeta(func(u *store.Upload) { u.Meta.Kind = "" })},
		{"BeginUpload no key id", withMeta(func(u *store.Upload) { u.Meta.KeyID = "" })},
		{"BeginUpload other owner in metadata", withMeta(func(u *store.Upload) { u.Meta.Owner = "b" })},
		{"BeginUpload other name in metadata", withMeta(func(u *store.Upload) { u.Meta.Name = "x" })},
		{"PutBatch short token", put(e("B", 1), store.Entry{Token: short, Ref: 2})},
		{"PutBatch long token", put(store.Entry{Token: long, Ref: 1})},
		{"PutBatch no token", put(store.Entry{Ref: 1})},
		{"Check short token", func() error {
			return s.Check(ctx, phone, key1, [][]byte{tok("B"), short}, func(int, int64) error { return nil })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.op()
			wantErr(t, tt.name, err, store.ErrInvalid)
			noTokens(t, err, tok("A"), tok("B"), short, long)
		})
	}
	if seqs, _, err := s.UploadStatus(ctx, "a", "l", "u"); err != nil || len(seqs) != 0 {
		t.Errorf("UploadStatus after invalid batches = %v, %v; want no batches", seqs, err)
	}
	if ls, err := s.Lists(ctx, "a"); err != nil || len(ls) != 0 {
		t.Errorf("Lists(a) = %v, %v; want none", ids(ls), err)
	}
}

func testContextCanceled(t *testing.T, s store.Store) {
	f := fixture(t, s)
	begin(t, s, "a", "l", "u", meta(phone, key1), nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	nop := func(uint64, int64) error { return nil }
	tests := []struct {
		name string
		op   func() error
	}{
		{"BeginUpload", func() error {
			return s.BeginUpload(ctx, store.Upload{Owner: "a", List: "n", ID: "u", Meta: meta(phone, key1)})
		}},
		{"PutBatch", func() error {
			_, err := s.PutBatch(ctx, "a", "l", "u", 0, []store.Entry{e("A", 1)})
			return err
		}},
		{"UploadStatus", func() error {
			_, _, err := s.UploadStatus(ctx, "a", "l", "u")
			return err
		}},
		{"CommitUpload", func() error {
			_, err := s.CommitUpload(ctx, "a", "l", "u", 0, 0, time.Now(), nil)
			return err
		}},
		{"GetList", func() error {
			_, err := s.GetList(ctx, "a", "mine")
			return err
		}},
		{"Lists", func() error {
			_, err := s.Lists(ctx, "a")
			return err
		}},
		{"VisibleLists", func() error {
			_, err := s.VisibleLists(ctx, phone, key1)
			return err
		}},
		{"DeleteList", func() error {
			_, err := s.DeleteList(ctx, "a", "mine", nil)
			return err
		}},
		{"Overlaps", func() error { return s.Overlaps(ctx, f["mine"].ID, nop) }},
		{"Check", func() error {
			return s.Check(ctx, phone, key1, [][]byte{tok("A")}, func(int, int64) error { return nil })
		}},
		{"PurgeUploads", func() error {
			_, err := s.PurgeUploads(ctx, time.Now().Add(time.Hour))
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, tt.name, tt.op(), context.Canceled)
		})
	}
	// Nothing was written.
	live := t.Context()
	if seqs, committed, err := s.UploadStatus(live, "a", "l", "u"); err != nil || committed || len(seqs) != 0 {
		t.Errorf("UploadStatus = %v, %v, %v; want an open upload without batches", seqs, committed, err)
	}
	if _, err := s.GetList(live, "a", "mine"); err != nil {
		t.Errorf("GetList(mine): %v", err)
	}
	if _, _, err := s.UploadStatus(live, "a", "n", "u"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UploadStatus(n): %v, want ErrNotFound", err)
	}

	// Canceled while streaming: the callback is not called again.
	t.Run("during Overlaps", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		calls := 0
		err := s.Overlaps(ctx, f["mine"].ID, func(uint64, int64) error {
			calls++
			cancel()
			return nil
		})
		if !errors.Is(err, context.Canceled) || calls != 1 {
			t.Errorf("Overlaps = %v after %d calls, want context.Canceled after 1", err, calls)
		}
	})
	t.Run("during Check", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		calls := 0
		err := s.Check(ctx, phone, key1, [][]byte{tok("A"), tok("B"), tok("D")}, func(int, int64) error {
			calls++
			cancel()
			return nil
		})
		if !errors.Is(err, context.Canceled) || calls != 1 {
			t.Errorf("Check = %v after %d calls, want context.Canceled after 1", err, calls)
		}
	})
}

func testConcurrentUploads(t *testing.T, s store.Store) {
	const (
		uploaders = 8
		batches   = 10
		perBatch  = 20
	)
	ctx := t.Context()
	var wg sync.WaitGroup
	lists := make([]store.List, uploaders)
	errs := make([]error, uploaders)
	for i := range uploaders {
		wg.Go(func() {
			owner := fmt.Sprint("agency-", i)
			lists[i], errs[i] = upload(ctx, s, owner, batches, perBatch)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("uploader %d: %v", i, err)
		}
	}
	// Every list holds the shared token S under ref 0 and its own tokens.
	for i, l := range lists {
		if l.Entries != batches*perBatch {
			t.Errorf("list %d: Entries = %d, want %d", i, l.Entries, batches*perBatch)
		}
		want := pairs()
		for j, other := range lists {
			if j != i {
				want[pair{0, other.ID}] = true
			}
		}
		wantPairs(t, fmt.Sprint("Overlaps(", i, ")"), overlaps(t, s, l.ID), want)
	}
}

// upload publishes the owner's list "shared" in batches, each sent twice.
func upload(ctx context.Context, s store.Store, owner string, batches, perBatch int) (store.List, error) {
	if err := s.BeginUpload(ctx, store.Upload{Owner: owner, List: "shared", ID: "u", Meta: meta(phone, key1)}); err != nil {
		return store.List{}, err
	}
	for b := range batches {
		var entries []store.Entry
		for i := range perBatch {
			ref := uint64(b*perBatch + i)
			if ref == 0 {
				entries = append(entries, e("S", 0))
			} else {
				entries = append(entries, e(fmt.Sprint(owner, "/", ref), ref))
			}
		}
		for range 2 {
			if _, err := s.PutBatch(ctx, owner, "shared", "u", uint64(b), entries); err != nil {
				return store.List{}, err
			}
		}
	}
	return s.CommitUpload(ctx, owner, "shared", "u", uint64(batches), uint64(batches*perBatch), time.Now(), nil)
}
