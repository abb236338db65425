package main

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/veilmatch/veilmatch/crypto/oprf"
	"github.com/veilmatch/veilmatch/internal/vaulttest"
	"github.com/veilmatch/veilmatch/server/hub"
	"github.com/veilmatch/veilmatch/server/keys"
)

// TestScenarioWithVault plays the scenario with production key handling:
// the key server's OPRF key comes from Vault KV v2 and the hub's checkpoints
// are signed by Vault Transit, through the real vault/api client against
// the Vault test server. The auditor's verification uses the Transit key.
func TestScenarioWithVault(t *testing.T) {
	ctx := context.Background()
	srv := vaulttest.New(t)
	srv.EnableKV("secret")
	srv.EnableTransit("transit")
	srv.CreateSigningKey("transit", "veilmatch-checkpoints")
	v, err := keys.DialVault(ctx, keys.VaultConfig{Address: srv.Addr, CACert: srv.CACert, Token: srv.RootToken})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	key, _ := oprf.GenerateKey("k-vault-1")
	if _, err := v.WriteOPRFKey(ctx, "secret", "veilmatch/oprf", key); err != nil {
		t.Fatal(err)
	}
	signer, err := v.TransitSigner(ctx, "transit", "veilmatch-checkpoints", hub.DefaultLogOrigin)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Run(ctx, io.Discard, t.TempDir(), Options{KeySource: v.OPRFSource("secret", "veilmatch/oprf", time.Hour), Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	checkOutcome(t, out)
	if got := out.Published["police-gb/suspects"].List.GetKeyId(); got != "k-vault-1" {
		t.Errorf("lists were published under key %q, want the Vault key k-vault-1", got)
	}
	if srv.Count("POST", "transit/sign/veilmatch-checkpoints")+srv.Count("PUT", "transit/sign/veilmatch-checkpoints") == 0 {
		t.Error("no checkpoint was signed by Vault Transit")
	}
}
