package keys

import (
	"testing"

	"github.com/veilmatch/veilmatch/server/audit"
)

// TestTransitSignerPinsVersion: rotating the Transit key does not change
// what an existing signer signs with; a new signer takes the new version.
func TestTransitSignerPinsVersion(t *testing.T) {
	srv, e := testServer(t)
	ctx := t.Context()
	v := e.dial(t, srv.RootToken)
	if _, err := v.client.Logical().WriteWithContext(ctx, "transit/keys/veilmatch-checkpoints", map[string]any{"type": "ed25519"}); err != nil {
		t.Fatal(err)
	}
	s1, err := v.TransitSigner(ctx, "transit", "veilmatch-checkpoints", testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.client.Logical().WriteWithContext(ctx, "transit/keys/veilmatch-checkpoints/rotate", nil); err != nil {
		t.Fatal(err)
	}
	s2, err := v.TransitSigner(ctx, "transit", "veilmatch-checkpoints", testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	if s1.VerifierKey() == s2.VerifierKey() {
		t.Fatal("the signer after rotation has the same verifier key")
	}
	cp := audit.Checkpoint{Origin: testOrigin, Size: 3, Root: root("rotate")}
	for _, s := range []Signer{s1, s2} {
		signed, err := audit.SignCheckpoint(cp, s)
		if err != nil {
			t.Fatal(err)
		}
		verifier, err := audit.NewVerifier(s.VerifierKey())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := audit.OpenCheckpoint(signed, verifier, testOrigin); err != nil {
			t.Errorf("%v: %v", s, err)
		}
	}
	if srv.Count("POST", "transit/sign/veilmatch-checkpoints") != 2 {
		t.Errorf("requests %v, want two signatures", srv.Requests())
	}
}

func TestTransitSignerBadNoteName(t *testing.T) {
	srv, e := testServer(t)
	ctx := t.Context()
	v := e.dial(t, srv.RootToken)
	if _, err := v.client.Logical().WriteWithContext(ctx, "transit/keys/veilmatch-checkpoints", map[string]any{"type": "ed25519"}); err != nil {
		t.Fatal(err)
	}
	_, err := v.TransitSigner(ctx, "transit", "veilmatch-checkpoints", "has space")
	wantErr(t, err, "key name")
}
