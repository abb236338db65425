package storetest

import (
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/store"
)

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

// record returns a decision record for action.
func record(action string) *audit.Record {
	return &audit.Record{Time: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC), DecisionID: "d-" + action, Caller: "spiffe://veilmatch.dev/agency/a",
		Agency: "a", Action: action, Result: audit.ResultAllowed, PolicyRevision: "rev"}
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
	got, err := collectOverlaps(t, s, listID)
	if err != nil {
		t.Fatalf("Overlaps(%d): %v", listID, err)
	}
	return got
}

// collectOverlaps returns the pairs Overlaps reports, or its error; a
// repeated pair is an error.
func collectOverlaps(t testing.TB, s store.Store, listID int64) (map[pair]bool, error) {
	got := map[pair]bool{}
	err := s.Overlaps(t.Context(), listID, func(ref uint64, cp int64) error {
		p := pair{ref, cp}
		if got[p] {
			return fmt.Errorf("pair %+v reported twice", p)
		}
		got[p] = true
		return nil
	})
	return got, err
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
