package keys

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/veilmatch/veilmatch/crypto/oprf"
)

// TestKeysGracePeriod moves the reader's clock: the previous key is served
// until its successor is grace old, then only the current one.
func TestKeysGracePeriod(t *testing.T) {
	srv, e := testServer(t)
	ctx := t.Context()
	v := e.dial(t, srv.RootToken)
	k1, k2, k3 := newKey(t, "grace-1"), newKey(t, "grace-2"), newKey(t, "grace-3")
	if _, err := v.WriteOPRFKey(ctx, "secret", "veilmatch/oprf", k1); err != nil {
		t.Fatal(err)
	}
	if _, err := v.WriteOPRFKey(ctx, "secret", "veilmatch/oprf", k2); err != nil {
		t.Fatal(err)
	}
	md, err := v.client.KVv2("secret").GetMetadata(ctx, "veilmatch/oprf")
	if err != nil {
		t.Fatal(err)
	}
	rotated := md.Versions["2"].CreatedTime
	const grace = 7 * 24 * time.Hour
	src := v.OPRFSource("secret", "veilmatch/oprf", grace)

	src.now = func() time.Time { return rotated.Add(grace - time.Second) }
	keys, err := src.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantKeys(t, keys, k2, k1)

	src.now = func() time.Time { return rotated.Add(grace) }
	keys, err = src.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantKeys(t, keys, k2)

	// Two quick rotations: every key within grace is served, newest first.
	if _, err := v.WriteOPRFKey(ctx, "secret", "veilmatch/oprf", k3); err != nil {
		t.Fatal(err)
	}
	keys, err = v.OPRFSource("secret", "veilmatch/oprf", grace).Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantKeys(t, keys, k3, k2, k1)
}

// TestKeysDeletedVersions: a deleted earlier version is no longer served;
// a deleted current version is an error (never a silent fallback).
func TestKeysDeletedVersions(t *testing.T) {
	srv, e := testServer(t)
	ctx := t.Context()
	v := e.dial(t, srv.RootToken)
	k1, k2, k3 := newKey(t, "del-1"), newKey(t, "del-2"), newKey(t, "del-3")
	if _, err := v.WriteOPRFKey(ctx, "secret", "veilmatch/oprf", k1); err != nil {
		t.Fatal(err)
	}
	if _, err := v.WriteOPRFKey(ctx, "secret", "veilmatch/oprf", k2); err != nil {
		t.Fatal(err)
	}
	if _, err := v.WriteOPRFKey(ctx, "secret", "veilmatch/oprf", k3); err != nil {
		t.Fatal(err)
	}
	kv := v.client.KVv2("secret")
	if err := kv.DeleteVersions(ctx, "veilmatch/oprf", []int{2}); err != nil {
		t.Fatal(err)
	}
	keys, err := v.OPRFSource("secret", "veilmatch/oprf", time.Hour).Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantKeys(t, keys, k3, k1)

	if err := kv.Destroy(ctx, "veilmatch/oprf", []int{3}); err != nil {
		t.Fatal(err)
	}
	_, err = v.OPRFSource("secret", "veilmatch/oprf", time.Hour).Keys(ctx)
	wantErr(t, err, "secret/data/veilmatch/oprf", "current version 3 is deleted or destroyed")
}

func TestKeysMissingOrMalformed(t *testing.T) {
	srv, e := testServer(t)
	ctx := t.Context()
	v := e.dial(t, srv.RootToken)
	_, err := v.OPRFSource("secret", "veilmatch/oprf", 0).Keys(ctx)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Keys of a missing secret: %v, want ErrNotFound", err)
	}
	wantErr(t, err, "secret/data/veilmatch/oprf", "init-key --vault secret/veilmatch/oprf")

	if _, err := v.client.KVv2("secret").Put(ctx, "veilmatch/oprf", map[string]any{"suite": "nope", "private_key": "00"}); err != nil {
		t.Fatal(err)
	}
	_, err = v.OPRFSource("secret", "veilmatch/oprf", 0).Keys(ctx)
	wantErr(t, err, "secret/data/veilmatch/oprf version 1", "suite")
}

// TestWriteOPRFKeyConcurrent: of concurrent rotations, the losers get
// ErrConflict and no version is overwritten.
func TestWriteOPRFKeyConcurrent(t *testing.T) {
	srv, e := testServer(t)
	ctx := t.Context()
	v := e.dial(t, srv.RootToken)
	const writers = 8
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		k := newKey(t, "concurrent-"+string(rune('a'+i)))
		e.secret(privateHex(t, k))
		wg.Go(func() { _, errs[i] = v.WriteOPRFKey(ctx, "secret", "veilmatch/oprf", k) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrConflict):
			t.Errorf("WriteOPRFKey: %v, want success or ErrConflict", err)
		}
	}
	md, err := v.client.KVv2("secret").GetMetadata(ctx, "veilmatch/oprf")
	if err != nil {
		t.Fatal(err)
	}
	if won == 0 || md.CurrentVersion != won {
		t.Fatalf("%d writes succeeded, current version %d: want equal and positive", won, md.CurrentVersion)
	}
}

// TestWriteOPRFKeyEndorses: each new version is endorsed by the newest
// live one, so a client that trusted the first key trusts the third
// through the chain the key server serves; the first has none.
func TestWriteOPRFKeyEndorses(t *testing.T) {
	srv, e := testServer(t)
	ctx := t.Context()
	v := e.dial(t, srv.RootToken)
	k1, k2, k3 := newKey(t, "chain-1"), newKey(t, "chain-2"), newKey(t, "chain-3")
	for _, k := range []*oprf.PrivateKey{k1, k2, k3} {
		if _, err := v.WriteOPRFKey(ctx, "secret", "veilmatch/oprf", k); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := v.OPRFSource("secret", "veilmatch/oprf", time.Hour).Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantKeys(t, keys, k3, k2, k1)
	if n := len(keys[2].Endorsements()); n != 0 {
		t.Fatalf("the first key carries %d endorsements", n)
	}
	chain := keys[0].Endorsements()
	if len(chain) != 2 || chain[0].ByKeyID != "chain-1" || chain[1].ByKeyID != "chain-2" {
		t.Fatalf("chain of the third key = %+v", chain)
	}
	if _, err := oprf.VerifyChain([]oprf.PublicKey{k1.Public()}, chain, k3.Public()); err != nil {
		t.Fatalf("the chain does not vouch for the third key: %v", err)
	}
}

// TestKeysThresholdShares: a share lives in KV v2 as a whole key does. A
// share split from the key at the same path, and then a resharing of it,
// each replace the version before at once (same key id, same tokens, no
// grace), while a share of another key under the same id is refused.
func TestKeysThresholdShares(t *testing.T) {
	srv, e := testServer(t)
	ctx := t.Context()
	v := e.dial(t, srv.RootToken)
	const path = "veilmatch/oprf-1"
	whole := newKey(t, "split-1")
	if _, err := v.WriteOPRFKey(ctx, "secret", path, whole); err != nil {
		t.Fatal(err)
	}
	shares, err := oprf.Split(whole, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.WriteOPRFKey(ctx, "secret", path, shares[0]); err != nil {
		t.Fatalf("write a share of the key in place: %v", err)
	}
	src := v.OPRFSource("secret", path, 7*24*time.Hour)
	keys, err := src.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantKeys(t, keys, shares[0])
	if i, _, ok := keys[0].Share(); !ok || i != 1 {
		t.Fatalf("served key is share %d (ok=%v), want share 1", i, ok)
	}

	// A share of another key under the same id is refused.
	other, _ := oprf.Split(newKey(t, "split-1"), 3, 2)
	if _, err := v.WriteOPRFKey(ctx, "secret", path, other[0]); err == nil {
		t.Fatal("wrote a share of another key under the same key id")
	}

	// A resharing (generation 2) replaces generation 1 at once.
	reshared := reshare(t, shares, 3, 2)
	if _, err := v.WriteOPRFKey(ctx, "secret", path, reshared[0]); err != nil {
		t.Fatalf("write a reshared share: %v", err)
	}
	if keys, err = src.Keys(ctx); err != nil {
		t.Fatal(err)
	}
	wantKeys(t, keys, reshared[0])
	if _, set, _ := keys[0].Share(); set.Generation != 2 {
		t.Fatalf("served generation %d, want 2", set.Generation)
	}
	// Going back to generation 1 is refused.
	if _, err := v.WriteOPRFKey(ctx, "secret", path, shares[1]); err == nil {
		t.Fatal("wrote an older generation over a newer one")
	}
}

// reshare runs a resharing of shares (all dealing) to n holders, any t.
func reshare(t *testing.T, shares []*oprf.PrivateKey, n, thr int) []*oprf.PrivateKey {
	t.Helper()
	_, set, _ := shares[0].Share()
	p := oprf.ReshareParams{Old: set, Chain: shares[0].Endorsements(), N: n, T: thr}
	recv := make([]*oprf.ReshareReceiver, n)
	hellos := make([]*oprf.DKGHello, n)
	for i := range recv {
		var err error
		if recv[i], hellos[i], err = oprf.NewReshareReceiver(p, i+1); err != nil {
			t.Fatal(err)
		}
	}
	var deals []*oprf.DKGDeal
	var dealers []*oprf.ReshareDealer
	for _, sh := range shares {
		d, deal, err := oprf.ReshareDeal(p, sh, hellos)
		if err != nil {
			t.Fatal(err)
		}
		dealers, deals = append(dealers, d), append(deals, deal)
	}
	var complaints []*oprf.DKGComplaints
	for _, r := range recv {
		c, err := r.Complain(deals)
		if err != nil {
			t.Fatal(err)
		}
		complaints = append(complaints, c)
	}
	var reveals []*oprf.DKGReveal
	for _, d := range dealers {
		r, err := d.Reveal(complaints)
		if err != nil {
			t.Fatal(err)
		}
		reveals = append(reveals, r)
	}
	out := make([]*oprf.PrivateKey, n)
	for i, r := range recv {
		var err error
		if out[i], _, err = r.Finish(deals, complaints, reveals); err != nil {
			t.Fatal(err)
		}
	}
	return out
}
