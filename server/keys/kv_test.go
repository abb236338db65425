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
