package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/store"
	"github.com/veilmatch/veilmatch/server/store/internal/matchrow"
)

// Raw is what a store's tests add to the store they pass to Run (a
// wrapper of their own), so that the suite can read the tables behind the
// standing matches, which store.Store does not show: the pairs (matches)
// and their summary (match_sets, see matchrow), whose columns both stores
// share.
type Raw interface {
	// QueryRaw runs query, written for PostgreSQL with $n placeholders,
	// in a read-only transaction and calls row for each row it returns
	// (see matchrow.Tx.Query).
	QueryRaw(ctx context.Context, query string, args []any, row func(scan func(...any) error) error) error
}

// setKey names the match set of list version List with counterparty CP.
type setKey struct{ List, CP int64 }

// rawPairs returns the stored pairs (list, ref, counterparty, counterparty
// ref), failing on a pair without its mirror image.
func rawPairs(t testing.TB, r Raw) map[[4]int64]bool {
	t.Helper()
	rows := map[[4]int64]bool{}
	err := r.QueryRaw(t.Context(), `SELECT list_id, ref, cp_list_id, cp_ref FROM matches`, nil, func(scan func(...any) error) error {
		var p [4]int64
		err := scan(&p[0], &p[1], &p[2], &p[3])
		rows[p] = true
		return err
	})
	if err != nil {
		t.Fatalf("read the pairs: %v", err)
	}
	for p := range rows {
		if !rows[[4]int64{p[2], p[3], p[0], p[1]}] {
			t.Errorf("pair %v is stored without its mirror image", p)
		}
	}
	return rows
}

// rawSets returns the stored match sets, decoded, failing on a set that
// does not decode or is empty.
func rawSets(t testing.TB, r Raw) map[setKey][]uint64 {
	t.Helper()
	sets := map[setKey][]uint64{}
	err := r.QueryRaw(t.Context(), `SELECT list_id, cp_list_id, refs FROM match_sets`, nil, func(scan func(...any) error) error {
		var (
			k    setKey
			refs []byte
		)
		if err := scan(&k.List, &k.CP, &refs); err != nil {
			return err
		}
		var got []uint64
		if err := matchrow.DecodeRefSet(refs, func(ref uint64) error {
			got = append(got, ref)
			return nil
		}); err != nil {
			return fmt.Errorf("set %+v: %w", k, err)
		}
		if len(got) == 0 {
			return fmt.Errorf("set %+v is empty", k)
		}
		sets[k] = got
		return nil
	})
	if err != nil {
		t.Fatalf("read the match sets: %v", err)
	}
	return sets
}

// CheckSets checks the standing matches of a store that implements Raw
// against its raw pairs: the pairs come in mirror images; the match sets
// are the pairs grouped, SELECT DISTINCT list_id, cp_list_id, ref FROM
// matches, refs ascending; and Overlaps of each list version with pairs or
// sets, and of ids, reports the distinct (ref, counterparty) of the
// version's pairs — or fails with store.ErrNotFound, for a version that
// has neither.
func CheckSets(t testing.TB, s store.Store, ids ...int64) {
	t.Helper()
	r, ok := s.(Raw)
	if !ok {
		t.Fatalf("the store %T does not show its tables (storetest.Raw)", s)
	}
	want := map[setKey][]uint64{}
	for p := range rawPairs(t, r) {
		k := setKey{p[0], p[2]}
		want[k] = append(want[k], uint64(p[1]))
	}
	for k, refs := range want {
		slices.Sort(refs)
		want[k] = slices.Compact(refs)
	}
	got := rawSets(t, r)
	if !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("match sets %v, want the pairs grouped: %v", got, want)
	}
	pairsOf := map[int64]map[pair]bool{}
	for _, id := range ids {
		pairsOf[id] = map[pair]bool{}
	}
	for k, refs := range want {
		for _, id := range []int64{k.List, k.CP} {
			if pairsOf[id] == nil {
				pairsOf[id] = map[pair]bool{}
			}
		}
		for _, ref := range refs {
			pairsOf[k.List][pair{ref, k.CP}] = true
		}
	}
	for id, wantPairs := range pairsOf {
		gotPairs, err := collectOverlaps(t, s, id)
		switch {
		case errors.Is(err, store.ErrNotFound) && len(wantPairs) == 0:
		case err != nil:
			t.Errorf("Overlaps(%d): %v; the raw pairs hold %v", id, err, sortedPairs(wantPairs))
		case !maps.Equal(gotPairs, wantPairs):
			t.Errorf("Overlaps(%d) = %v, the raw pairs hold %v", id, sortedPairs(gotPairs), sortedPairs(wantPairs))
		}
	}
}

// testMatchSets: after each change of the standing matches — the commit
// of a matching version, a republication that supersedes one, a
// retraction and its undoing, a deletion, an expiry — the match sets are
// the stored pairs grouped, and Overlaps reports the pairs, with refs at
// the extremes of uint64, repeated refs, and an entry matching several.
func testMatchSets(t *testing.T, s store.Store) {
	ctx := t.Context()
	const top = math.MaxUint64
	// T thrice in b's; U and U2 under one ref in a's and in b's.
	a := publish(t, s, "a", "A", "u", meta(phone, key1), []store.Entry{e("T", 0), e("T", 1<<63), e("U", 5), e("U2", 5), e("V", top), e("W", 7)})
	CheckSets(t, s, a.ID)
	b := publish(t, s, "b", "B", "u", meta(phone, key1), []store.Entry{e("T", 10), e("T", 11), e("U", 12), e("U2", 12), e("V", top-1), e("T", 1<<63)})
	wantPairs(t, "Overlaps(A)", overlaps(t, s, a.ID), pairs(pair{0, b.ID}, pair{1 << 63, b.ID}, pair{5, b.ID}, pair{top, b.ID}))
	expiring := meta(phone, key1)
	expiring.ExpiresAt = time.Now().Add(-time.Hour)
	c := publish(t, s, "c", "C", "u", expiring, []store.Entry{e("T", 20), e("W", 21), e("X", 22)})
	CheckSets(t, s, a.ID, b.ID, c.ID)

	a2 := publish(t, s, "a", "A", "u2", meta(phone, key1), []store.Entry{e("T", 0), e("W", 7), e("X", 8), e("Y", 9)})
	CheckSets(t, s, a.ID, a2.ID, b.ID, c.ID)
	d := publish(t, s, "d", "D", "u", meta(phone, key1), []store.Entry{e("X", 30), e("Y", 31)})
	CheckSets(t, s, a2.ID, b.ID, c.ID, d.ID)

	for _, ref := range []uint64{0, 8} {
		if _, err := s.Retract(ctx, "a", "A", ref, "", time.Now(), nil); err != nil {
			t.Fatal(err)
		}
		CheckSets(t, s, a2.ID, b.ID, c.ID, d.ID)
	}
	wantPairs(t, "Overlaps(A v2) after the retractions", overlaps(t, s, a2.ID), pairs(pair{7, c.ID}, pair{9, d.ID}))
	if _, err := s.Retract(ctx, "b", "B", 11, "", time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	CheckSets(t, s, a2.ID, b.ID, c.ID, d.ID)
	if err := s.Unretract(ctx, "a", "A", 0, time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	CheckSets(t, s, a2.ID, b.ID, c.ID, d.ID)
	wantPairs(t, "Overlaps(B) after the undoing", overlaps(t, s, b.ID), pairs(pair{10, a2.ID}, pair{10, c.ID}, pair{1 << 63, a2.ID}, pair{1 << 63, c.ID}))

	if _, err := s.DeleteList(ctx, "b", "B", nil); err != nil {
		t.Fatal(err)
	}
	CheckSets(t, s, a2.ID, b.ID, c.ID, d.ID)
	expired, err := s.ExpiredLists(ctx, time.Now())
	if err != nil || len(expired) != 1 || expired[0].ID != c.ID {
		t.Fatalf("ExpiredLists = %+v, %v; want C", expired, err)
	}
	if _, err := s.DeleteList(ctx, "c", "C", record(audit.ActionExpire)); err != nil {
		t.Fatal(err)
	}
	CheckSets(t, s, a2.ID, b.ID, c.ID, d.ID)
	wantPairs(t, "Overlaps(A v2) at the end", overlaps(t, s, a2.ID), pairs(pair{9, d.ID}))
}

// UpgradeFixture gives s standing matches of the shapes a schema upgrade
// must carry: pairs of several lists, a superseded version, an entry
// matching one counterparty entry twice, a retraction. It returns the
// list versions committed, for CheckUpgraded.
func UpgradeFixture(tb testing.TB, s store.Store) []int64 {
	tb.Helper()
	m := store.List{Kind: phone, KeyID: key1}
	es := []store.Entry{e("A", 0), e("B", 1), e("C", 2), e("D", 3), e("E", 4), e("F", 5)}
	a := Publish(tb, s, "a", "l", m, es[:4], batchSize)
	old := Publish(tb, s, "b", "m", m, es[1:], batchSize)
	b := Publish(tb, s, "b", "m", m, append(es[2:], es[1:3]...), batchSize) // supersedes; B and C twice
	c := Publish(tb, s, "c", "n", m, es[3:], batchSize)
	if _, err := s.Retract(tb.Context(), "b", "m", 3, "", time.Now(), nil); err != nil {
		tb.Fatal(err)
	}
	return []int64{a.ID, old.ID, b.ID, c.ID}
}

// CheckUpgraded checks the standing matches of a store upgraded from the
// schema that UpgradeFixture filled (see CheckSets), and again after the
// retraction is undone and a list deleted.
func CheckUpgraded(tb testing.TB, s store.Store, ids []int64) {
	tb.Helper()
	CheckSets(tb, s, ids...)
	if err := s.Unretract(tb.Context(), "b", "m", 3, time.Now(), nil); err != nil {
		tb.Fatal(err)
	}
	CheckSets(tb, s, ids...)
	if _, err := s.DeleteList(tb.Context(), "a", "l", nil); err != nil {
		tb.Fatal(err)
	}
	CheckSets(tb, s, ids...)
}
