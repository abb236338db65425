package hub

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/veilmatch/veilmatch/crypto/oprf"
	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/store/sqlite"
)

// genKey returns a new OPRF key named id.
func genKey(t *testing.T, id string) *oprf.PrivateKey {
	t.Helper()
	k, err := oprf.GenerateKey(id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// endorsed returns next endorsed by prev.
func endorsed(t *testing.T, prev, next *oprf.PrivateKey) *oprf.PrivateKey {
	t.Helper()
	k, err := oprf.EndorseKey(prev, next)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// served is the report of keys, current first.
func served(keys ...*oprf.PrivateKey) []servedKey {
	out := make([]servedKey, len(keys))
	for i, k := range keys {
		out[i] = servedKey{pub: k.Public(), chain: k.Endorsements()}
	}
	return out
}

func TestEpochs(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "hub.db")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	e := &epochs{store: st}
	if err := e.load(ctx); err != nil {
		t.Fatal(err)
	}
	set := func(keys ...*oprf.PrivateKey) bool {
		t.Helper()
		changed, err := e.set(ctx, served(keys...), &audit.Record{Time: time.Now(), Action: "key_epochs", Result: audit.ResultAllowed})
		if err != nil {
			t.Fatal(err)
		}
		return changed
	}
	k1 := genKey(t, "k1")
	k2 := endorsed(t, k1, genKey(t, "k2"))
	if e.retired("k1") {
		t.Fatal("retired before any report")
	}
	if !set(k1) || set(k1) {
		t.Fatal("set does not report changes correctly")
	}
	set(k2, k1) // rotation, within the grace period
	if e.retired("k1") || e.retired("k2") {
		t.Fatal("an epoch in its grace period is retired")
	}
	set(k2) // grace over
	if !e.retired("k1") || e.retired("k2") {
		t.Fatal("k1 should be retired, k2 current")
	}
	if e.retired("k3") {
		t.Fatal("a key id not yet reported (a newer rotation) is retired")
	}

	// A restarted hub remembers, before the key server reports again.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e = &epochs{store: st}
	if err := e.load(ctx); err != nil {
		t.Fatal(err)
	}
	if !e.retired("k1") || e.retired("k2") || e.retired("k3") {
		t.Fatal("after a restart: k1 should be retired, k2 current, k3 unknown")
	}
	if set(k2) {
		t.Fatal("the same report after a restart counts as a change")
	}
}

// TestEpochsTrust: once the hub knows a key, a report can retire lists
// only if every new key in it is endorsed by a trusted key or configured
// by the operator; a refused report changes nothing.
func TestEpochsTrust(t *testing.T) {
	ctx := t.Context()
	k1 := genKey(t, "k1")
	k2 := endorsed(t, k1, genKey(t, "k2"))
	k3 := endorsed(t, k2, genKey(t, "k3")) // chain k1 → k2 → k3
	rogue := genKey(t, "k9")
	selfish := endorsed(t, genKey(t, "k8"), genKey(t, "k7")) // endorsed by a key nobody trusts
	impostor := genKey(t, "k1")                              // k1's id with another key
	tests := []struct {
		name       string
		configured []oprf.PublicKey
		report     []*oprf.PrivateKey
		ok         bool
	}{
		{"endorsed successor", nil, []*oprf.PrivateKey{k2, k1}, true},
		{"endorsed two rotations on", nil, []*oprf.PrivateKey{k3}, true},
		{"a key of its own", nil, []*oprf.PrivateKey{rogue}, false},
		{"a key of its own beside the trusted one", nil, []*oprf.PrivateKey{rogue, k1}, false},
		{"endorsed by an untrusted key", nil, []*oprf.PrivateKey{selfish}, false},
		{"a known id with another public key", nil, []*oprf.PrivateKey{impostor}, false},
		{"configured by the operator", []oprf.PublicKey{k1.Public(), rogue.Public()}, []*oprf.PrivateKey{rogue}, true},
	}
	// With a key configured, the first report is not trusted on first use.
	t.Run("configured, first report of another key", func(t *testing.T) {
		st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hub.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		e := &epochs{store: st, configured: []oprf.PublicKey{k1.Public()}}
		if err := e.load(ctx); err != nil {
			t.Fatal(err)
		}
		rec := &audit.Record{Time: time.Now(), Action: "key_epochs", Result: audit.ResultAllowed}
		if _, err := e.set(ctx, served(rogue), rec); !errors.Is(err, errUntrustedKey) {
			t.Fatalf("a rogue first report: %v, want errUntrustedKey", err)
		}
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hub.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			e := &epochs{store: st, configured: tt.configured}
			if err := e.load(ctx); err != nil {
				t.Fatal(err)
			}
			rec := func() *audit.Record {
				return &audit.Record{Time: time.Now(), Action: "key_epochs", Result: audit.ResultAllowed}
			}
			if _, err := e.set(ctx, served(k1), rec()); err != nil { // configured, or trusted on first use
				t.Fatal(err)
			}
			_, err = e.set(ctx, served(tt.report...), rec())
			if tt.ok != (err == nil) {
				t.Fatalf("set: %v, want ok=%t", err, tt.ok)
			}
			if tt.ok {
				if e.retired(tt.report[0].KeyID()) {
					t.Fatal("the trusted new key is retired")
				}
				return
			}
			if !errors.Is(err, errUntrustedKey) {
				t.Fatalf("refusal %v does not wrap errUntrustedKey", err)
			}
			if e.retired("k1") {
				t.Fatal("a refused report retired k1")
			}
			if cur, _, _ := st.KeyEpochs(ctx); len(cur) != 1 || cur[0] != "k1" {
				t.Fatalf("a refused report changed the stored keys to %q", cur)
			}
		})
	}
}
