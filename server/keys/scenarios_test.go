package keys

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/veilmatch/veilmatch/server/audit"
)

// The scenarios run unchanged against the test server (TestScenarios) and a
// real Vault (TestRealVault).

const testOrigin = "veilmatch.example/audit"

func runScenarios(t *testing.T, e *env) {
	t.Run("KVWriteReadRotate", func(t *testing.T) { scenarioKV(t, e) })
	t.Run("TransitSignVerify", func(t *testing.T) { scenarioTransit(t, e) })
	t.Run("ExamplePolicies", func(t *testing.T) { scenarioPolicies(t, e) })
}

func TestScenarios(t *testing.T) {
	_, e := testServer(t)
	runScenarios(t, e)
}

// scenarioKV writes keys with WriteOPRFKey, rotates, and reads them back
// with and without a grace period; it checks check-and-set and key ids.
func scenarioKV(t *testing.T, e *env) {
	ctx := t.Context()
	v := e.dial(t, e.rootToken)
	path := e.prefix + "/kv-scenario"
	dataPath := e.kvMount + "/data/" + path

	k1, k2 := newKey(t, "kv-epoch-1"), newKey(t, "kv-epoch-2")
	e.secret(privateHex(t, k1))
	e.secret(privateHex(t, k2))
	if n, err := v.WriteOPRFKey(ctx, e.kvMount, path, k1); err != nil || n != 1 {
		t.Fatalf("first WriteOPRFKey = %d, %v; want version 1", n, err)
	}
	keys, err := v.OPRFSource(e.kvMount, path, time.Hour).Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantKeys(t, keys, k1)

	// Rotation: the new version is current, the old one stays within grace.
	if n, err := v.WriteOPRFKey(ctx, e.kvMount, path, k2); err != nil || n != 2 {
		t.Fatalf("second WriteOPRFKey = %d, %v; want version 2", n, err)
	}
	keys, err = v.OPRFSource(e.kvMount, path, time.Hour).Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantKeys(t, keys, k2, k1)
	keys, err = v.OPRFSource(e.kvMount, path, 0).Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantKeys(t, keys, k2)

	// A second writer that read version 1 loses the check-and-set race.
	_, err = v.writeOPRFKey(ctx, e.kvMount, path, newKey(t, "kv-epoch-late"), 1)
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("stale check-and-set: %v, want ErrConflict", err)
	}
	wantErr(t, err, dataPath, "check-and-set")

	// A key id is one epoch: reusing one is refused on write…
	_, err = v.WriteOPRFKey(ctx, e.kvMount, path, newKey(t, "kv-epoch-1"))
	wantErr(t, err, "already holds key id", "kv-epoch-1")

	// …and on read, should a version be written around WriteOPRFKey.
	if _, err := v.client.KVv2(e.kvMount).Put(ctx, path, kvFields(t, newKey(t, "kv-epoch-2"))); err != nil {
		t.Fatal(err)
	}
	_, err = v.OPRFSource(e.kvMount, path, time.Hour).Keys(ctx)
	wantErr(t, err, "versions 3 and 2 both hold key id", "kv-epoch-2")
}

// scenarioTransit signs checkpoints with a Transit key and verifies them
// with the note verifier key auditors pin, and with Vault.
func scenarioTransit(t *testing.T, e *env) {
	ctx := t.Context()
	v := e.dial(t, e.rootToken)
	key := e.prefix + "-transit-scenario"
	if _, err := v.client.Logical().WriteWithContext(ctx, e.transitMount+"/keys/"+key, map[string]any{"type": "ed25519"}); err != nil {
		t.Fatal(err)
	}
	s, err := v.TransitSigner(ctx, e.transitMount, key, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := audit.NewVerifier(s.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if verifier.Name() != testOrigin || verifier.KeyHash() != s.KeyHash() || s.Name() != testOrigin {
		t.Fatalf("verifier %s+%08x, signer %s+%08x", verifier.Name(), verifier.KeyHash(), s.Name(), s.KeyHash())
	}
	cp := audit.Checkpoint{Origin: testOrigin, Size: 42, Root: root("transit")}
	signed, err := audit.SignCheckpoint(cp, s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := audit.OpenCheckpoint(signed, verifier, testOrigin)
	if err != nil {
		t.Fatalf("OpenCheckpoint: %v\n%s", err, signed)
	}
	if got.Size != cp.Size || string(got.Root) != string(cp.Root) {
		t.Fatalf("checkpoint %+v, want %+v", got, cp)
	}

	// Vault agrees the raw signature is its own.
	msg := []byte("veilmatch checkpoint body\n")
	sig, err := s.Sign(msg)
	if err != nil || len(sig) != 64 {
		t.Fatalf("Sign = %d bytes, %v", len(sig), err)
	}
	res, err := v.client.Logical().WriteWithContext(ctx, e.transitMount+"/verify/"+key, map[string]any{
		"input":     base64.StdEncoding.EncodeToString(msg),
		"signature": "vault:v1:" + base64.StdEncoding.EncodeToString(sig),
	})
	if err != nil {
		t.Fatal(err)
	}
	if valid, _ := res.Data["valid"].(bool); !valid {
		t.Fatalf("transit/verify says the signature is invalid: %v", res.Data)
	}

	// Only non-derived ed25519 keys sign checkpoints.
	aes := e.prefix + "-transit-aes"
	if _, err := v.client.Logical().WriteWithContext(ctx, e.transitMount+"/keys/"+aes, map[string]any{"type": "aes256-gcm96"}); err != nil {
		t.Fatal(err)
	}
	_, err = v.TransitSigner(ctx, e.transitMount, aes, testOrigin)
	wantErr(t, err, `type "aes256-gcm96", want ed25519`)
	_, err = v.TransitSigner(ctx, e.transitMount, e.prefix+"-transit-missing", testOrigin)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing key: %v, want ErrNotFound", err)
	}
}

// scenarioPolicies checks that the example policies grant each service what
// it needs and nothing else, and that refusals name the path.
func scenarioPolicies(t *testing.T, e *env) {
	ctx := t.Context()
	path, key := e.prefix+"/oprf", e.prefix+"-checkpoints"
	policy := func(file string) string {
		// The examples use secret/veilmatch/oprf and
		// transit/veilmatch-checkpoints; a run uses its own paths.
		return strings.NewReplacer(
			"secret/", e.kvMount+"/", "veilmatch/oprf", path,
			"transit/", e.transitMount+"/", "veilmatch-checkpoints", key,
		).Replace(readExample(t, file))
	}
	admin := e.dial(t, e.tokenWithPolicy(t, e.prefix+"-admin", policy("veilmatch-admin.hcl")))
	keyserver := e.dial(t, e.tokenWithPolicy(t, e.prefix+"-keyserver", policy("veilmatch-keyserver.hcl")))
	hub := e.dial(t, e.tokenWithPolicy(t, e.prefix+"-hub", policy("veilmatch-hub.hcl")))
	super := e.dial(t, e.rootToken)
	if _, err := super.client.Logical().WriteWithContext(ctx, e.transitMount+"/keys/"+key, map[string]any{"type": "ed25519"}); err != nil {
		t.Fatal(err)
	}

	// The admin policy writes keys (init-key)…
	k := newKey(t, "policy-epoch-1")
	e.secret(privateHex(t, k))
	if _, err := admin.WriteOPRFKey(ctx, e.kvMount, path, k); err != nil {
		t.Fatalf("admin WriteOPRFKey: %v", err)
	}
	// …the key server reads them and nothing else…
	keys, err := keyserver.OPRFSource(e.kvMount, path, time.Hour).Keys(ctx)
	if err != nil {
		t.Fatalf("key server Keys: %v", err)
	}
	wantKeys(t, keys[:1], k)
	_, err = keyserver.WriteOPRFKey(ctx, e.kvMount, path, newKey(t, "policy-epoch-2"))
	wantDenied(t, err, e.kvMount+"/data/"+path)
	_, err = keyserver.TransitSigner(ctx, e.transitMount, key, testOrigin)
	wantDenied(t, err, e.transitMount+"/keys/"+key)

	// …and the hub signs checkpoints and nothing else.
	s, err := hub.TransitSigner(ctx, e.transitMount, key, testOrigin)
	if err != nil {
		t.Fatalf("hub TransitSigner: %v", err)
	}
	if _, err := audit.SignCheckpoint(audit.Checkpoint{Origin: testOrigin, Size: 1, Root: root("policy")}, s); err != nil {
		t.Fatalf("hub signs: %v", err)
	}
	_, err = hub.OPRFSource(e.kvMount, path, time.Hour).Keys(ctx)
	wantDenied(t, err, e.kvMount+"/metadata/"+path)
}

// wantDenied checks for a permission denied naming path.
func wantDenied(t *testing.T, err error, path string) {
	t.Helper()
	if !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("error %v, want ErrPermissionDenied", err)
	}
	wantErr(t, err, path)
}
