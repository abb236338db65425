package hub_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/veilmatch/veilmatch/client"
	"github.com/veilmatch/veilmatch/client/auditor"
	"github.com/veilmatch/veilmatch/client/normalize"
	"github.com/veilmatch/veilmatch/crypto/oprf"
	"github.com/veilmatch/veilmatch/internal/servertest"
	"github.com/veilmatch/veilmatch/internal/vaulttest"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/hub"
	"github.com/veilmatch/veilmatch/server/keys"
	"github.com/veilmatch/veilmatch/server/keyserver"
)

// vaultEnv is a key server keyed from Vault KV v2 and a hub signing with
// Vault Transit, both against the Vault test server.
type vaultEnv struct {
	srv     *vaultTest
	vault   *keys.Vault
	ks, hub string
	verify  string // the checkpoint verifier key
}

type vaultTest = vaulttest.Server

func startVault(t *testing.T, grace time.Duration) *vaultEnv {
	t.Helper()
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	srv := vaulttest.New(t)
	srv.EnableKV("secret")
	srv.EnableTransit("transit")
	srv.CreateSigningKey("transit", "veilmatch-checkpoints")
	v, err := keys.DialVault(ctx, keys.VaultConfig{Address: srv.Addr, CACert: srv.CACert, Token: srv.RootToken, MaxRetries: 0, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	k1, _ := oprf.GenerateKey("k1")
	if _, err := v.WriteOPRFKey(ctx, "secret", "veilmatch/oprf", k1); err != nil {
		t.Fatal(err)
	}
	signer, err := v.TransitSigner(ctx, "transit", "veilmatch-checkpoints", hub.DefaultLogOrigin)
	if err != nil {
		t.Fatal(err)
	}
	h := servertest.Hub(t, hub.Config{Signer: signer})
	ks := servertest.KeyServer(t, keyserver.Config{
		KeySource: v.OPRFSource("secret", "veilmatch/oprf", grace), KeyRefresh: 20 * time.Millisecond,
		Report: &keyserver.ReportConfig{Hub: h.Addr().String(), TLS: servertest.ClientTLS(t, "keyserver"),
			CursorFile: filepath.Join(t.TempDir(), "cursor"), Every: 20 * time.Millisecond}})
	return &vaultEnv{srv: srv, vault: v, ks: ks.Addr().String(), hub: h.Addr().String(), verify: signer.VerifierKey()}
}

func (e *vaultEnv) client(t *testing.T, agency string) *client.Client {
	c, err := client.New(client.Config{Agency: agency, Hub: e.hub, KeyServer: e.ks, TLS: servertest.ClientTLS(t, agency),
		StateDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// currentKey waits until the key server serves key id want.
func (e *vaultEnv) currentKey(t *testing.T, want string) {
	t.Helper()
	kc := veilmatchv1.NewKeyServiceClient(servertest.Dial(t, e.ks, servertest.ClientTLS(t, "police-gb")))
	deadline := time.Now().Add(30 * time.Second)
	for {
		pk, err := kc.GetPublicKey(context.Background(), &veilmatchv1.GetPublicKeyRequest{})
		if err == nil && pk.GetKeyId() == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("key server still serves %v (%v), want %s", pk.GetKeyId(), err, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func publishPhones(t *testing.T, c *client.Client, list, region, csv string) *veilmatchv1.ListInfo {
	t.Helper()
	res, err := c.Publish(context.Background(), strings.NewReader(csv), client.PublishOptions{List: list, Kind: normalize.Phone, Category: "suspect", Normalize: normalize.Options{Region: region}})
	if err != nil {
		t.Fatal(err)
	}
	return res.List
}

// TestVaultKeyRotation: a new KV version is a new epoch: new publishes use
// its key id; lists of the old epoch keep matching each other and never
// match the new epoch's; after the grace period the old key is no longer
// evaluated.
func TestVaultKeyRotation(t *testing.T) {
	const grace = 2 * time.Second
	e := startVault(t, grace)
	ctx := context.Background()
	gb, us := e.client(t, "police-gb"), e.client(t, "police-us")
	if l := publishPhones(t, gb, "old", "GB", "phone\n07700 900123\n"); l.GetKeyId() != "k1" {
		t.Fatalf("published under %s, want k1", l.GetKeyId())
	}
	publishPhones(t, us, "old", "US", "phone\n+44 7700 900123\n")

	k2, _ := oprf.GenerateKey("k2")
	if _, err := e.vault.WriteOPRFKey(ctx, "secret", "veilmatch/oprf", k2); err != nil {
		t.Fatal(err)
	}
	rotated := time.Now()
	e.currentKey(t, "k2")
	usNew := e.client(t, "police-us")
	if l := publishPhones(t, usNew, "new", "US", "phone\n+44 7700 900123\n"); l.GetKeyId() != "k2" {
		t.Fatalf("after rotation published under %s, want k2", l.GetKeyId())
	}
	res, err := gb.Overlaps(ctx, "old", investigation)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Matches) != 1 || res.Matches[0].Counterparty.List != "old" {
		t.Fatalf("old-epoch overlaps = %s; want exactly police-us/old", mustJSON(t, res))
	}

	// Within the grace period the old key still evaluates; after it, no,
	// and the hub retires the old epoch's lists.
	kc := veilmatchv1.NewKeyServiceClient(servertest.Dial(t, e.ks, servertest.ClientTLS(t, "police-gb")))
	pc, _ := oprf.NewClient(k2.Public())
	in, _ := oprf.Input("phone", "+447700900999")
	b, _ := pc.Blind([][]byte{in})
	if time.Since(rotated) < grace {
		if _, err := kc.Evaluate(ctx, &veilmatchv1.EvaluateRequest{KeyId: "k1", BlindedElements: b.Blinded}); err != nil {
			t.Fatalf("old key refused within the grace period: %v", err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := kc.Evaluate(ctx, &veilmatchv1.EvaluateRequest{KeyId: "k1", BlindedElements: b.Blinded})
		if status.Code(err) == codes.InvalidArgument {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("old key still evaluated long after the grace period: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for {
		_, err := gb.Overlaps(ctx, "old", investigation)
		if status.Code(errorsCause(err)) == codes.FailedPrecondition {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("an old-epoch list still matches after the grace period: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	res, err = usNew.Overlaps(ctx, "new", investigation)
	if err != nil || len(res.Matches)+len(res.Counts) != 0 {
		t.Fatalf("the new epoch's list matched a retired one: %v, %v", mustJSON(t, res), err)
	}
	aud := veilmatchv1.NewAuditServiceClient(servertest.Dial(t, e.hub, servertest.ClientTLS(t, "auditor")))
	epochs, err := aud.ListDecisions(ctx, &veilmatchv1.ListDecisionsRequest{Action: "key_epochs"})
	if err != nil || len(epochs.GetDecisions()) == 0 || epochs.GetDecisions()[len(epochs.GetDecisions())-1].GetDetails()["key_ids"] != "k2" {
		t.Fatalf("key epochs in the decision log: %v, %v", epochs.GetDecisions(), err)
	}
}

// TestVaultOutage: with Vault down, evaluations go on from memory and
// decisions keep being recorded; auditors see only signed checkpoints; once
// Vault is back, signing catches up and the whole log verifies.
func TestVaultOutage(t *testing.T) {
	e := startVault(t, time.Hour)
	ctx := context.Background()
	gb, us := e.client(t, "police-gb"), e.client(t, "police-us")
	publishPhones(t, gb, "s", "GB", "phone\n07700 900123\n")
	aud := veilmatchv1.NewAuditServiceClient(servertest.Dial(t, e.hub, servertest.ClientTLS(t, "auditor")))
	before, err := aud.GetCheckpoint(ctx, &veilmatchv1.GetCheckpointRequest{})
	if err != nil {
		t.Fatal(err)
	}

	e.srv.Stop()
	health := healthpb.NewHealthClient(servertest.Dial(t, e.ks, servertest.ClientTLS(t, "police-gb")))
	deadline := time.Now().Add(30 * time.Second)
	for {
		h, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: keyserver.KeySourceHealth})
		if err == nil && h.GetStatus() == healthpb.HealthCheckResponse_NOT_SERVING {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("key source health did not report the outage: %v %v", h, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	publishPhones(t, us, "s", "US", "phone\n+44 7700 900123\n") // evaluations from memory
	if _, err := gb.Overlaps(ctx, "s", investigation); err != nil {
		t.Fatalf("decisions stopped with Vault down: %v", err)
	}
	during, err := aud.GetCheckpoint(ctx, &veilmatchv1.GetCheckpointRequest{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := audit.NewVerifier(e.verify)
	if err != nil {
		t.Fatal(err)
	}
	cpBefore, err := audit.OpenCheckpoint(before.GetCheckpoint(), v, hub.DefaultLogOrigin)
	if err != nil {
		t.Fatal(err)
	}
	cpDuring, err := audit.OpenCheckpoint(during.GetCheckpoint(), v, hub.DefaultLogOrigin)
	if err != nil {
		t.Fatalf("with Vault down the auditor got an unsigned checkpoint: %v", err)
	}
	if cpDuring.Size != cpBefore.Size {
		t.Fatalf("a checkpoint of size %d was signed while Vault was down", cpDuring.Size)
	}

	if err := e.srv.Start(); err != nil {
		t.Fatal(err)
	}
	rep, _, err := auditor.Verify(ctx, aud, v, hub.DefaultLogOrigin, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Size <= cpBefore.Size {
		t.Fatalf("signing did not catch up: size %d, was %d", rep.Size, cpBefore.Size)
	}
}
