package keys

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/hashicorp/vault/api"
)

// TestRealVault runs the scenarios against the Vault at VAULT_ADDR with the
// token VAULT_TOKEN (and VAULT_CACERT, VAULT_NAMESPACE if set), such as a
// `vault server -dev`. It enables KV v2 at secret/ and Transit at transit/
// if they are missing, works under paths unique to the run, and removes
// what it created.
func TestRealVault(t *testing.T) {
	if os.Getenv("VAULT_ADDR") == "" || os.Getenv("VAULT_TOKEN") == "" {
		t.Skip("VAULT_ADDR and VAULT_TOKEN are not set: run against `vault server -dev` to test a real Vault")
	}
	ctx := t.Context()
	var r [4]byte
	_, _ = rand.Read(r[:])
	e := &env{
		rootToken:    os.Getenv("VAULT_TOKEN"),
		kvMount:      "secret",
		transitMount: "transit",
		prefix:       "veilmatch-test-" + hex.EncodeToString(r[:]),
		logs:         &logBuffer{},
	}
	t.Cleanup(func() { e.logs.assertNoSecrets(t, e.secrets...) })

	// The client under test reads VAULT_ADDR and VAULT_TOKEN itself.
	admin := e.dial(t, "").client
	mounts, err := admin.Sys().ListMountsWithContext(ctx)
	if err != nil {
		t.Fatalf("list mounts (the token must be able to manage mounts, as a dev root token can): %v", err)
	}
	if m, ok := mounts["secret/"]; !ok {
		if err := admin.Sys().MountWithContext(ctx, "secret", &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
			t.Fatalf("enable KV v2 at secret/: %v", err)
		}
	} else if m.Type != "kv" || m.Options["version"] != "2" {
		t.Fatalf("secret/ is a %s mount with options %v; the test needs KV version 2 there", m.Type, m.Options)
	}
	if m, ok := mounts["transit/"]; !ok {
		if err := admin.Sys().MountWithContext(ctx, "transit", &api.MountInput{Type: "transit"}); err != nil {
			t.Fatalf("enable Transit at transit/: %v", err)
		}
	} else if m.Type != "transit" {
		t.Fatalf("transit/ is a %s mount; the test needs Transit there", m.Type)
	}

	e.tokenWithPolicy = func(t *testing.T, name, hcl string) string {
		if err := admin.Sys().PutPolicyWithContext(ctx, name, hcl); err != nil {
			t.Fatalf("write policy %s: %v", name, err)
		}
		sec, err := admin.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{Policies: []string{name}, TTL: "10m"})
		if err != nil {
			t.Fatalf("create a token with policy %s: %v", name, err)
		}
		tok := sec.Auth.ClientToken
		t.Cleanup(func() {
			_ = admin.Auth().Token().RevokeTree(tok)
			_ = admin.Sys().DeletePolicy(name)
		})
		return tok
	}
	t.Cleanup(func() { cleanupRealVault(t, admin, e) })

	runScenarios(t, e)
}

// cleanupRealVault deletes the run's KV secrets and Transit keys.
func cleanupRealVault(t *testing.T, admin *api.Client, e *env) {
	for _, p := range []string{"/kv-scenario", "/oprf"} {
		if err := admin.KVv2(e.kvMount).DeleteMetadata(t.Context(), e.prefix+p); err != nil {
			t.Logf("cleanup: %v", err)
		}
	}
	for _, k := range []string{"-transit-scenario", "-transit-aes", "-checkpoints"} {
		path := e.transitMount + "/keys/" + e.prefix + k
		if _, err := admin.Logical().Write(path+"/config", map[string]any{"deletion_allowed": true}); err != nil {
			t.Logf("cleanup: %v", err)
			continue
		}
		if _, err := admin.Logical().Delete(path); err != nil {
			t.Logf("cleanup: %v", err)
		}
	}
}
