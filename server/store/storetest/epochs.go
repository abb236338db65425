package storetest

import (
	"errors"
	"slices"
	"testing"

	"github.com/veilmatch/veilmatch/server/store"
)

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
