package keys

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/veilmatch/veilmatch/internal/vaulttest"
	"github.com/veilmatch/veilmatch/server/audit"
)

// keyServerPolicy lets a token read secret/veilmatch/oprf.
const keyServerPolicy = `path "secret/data/veilmatch/oprf" { capabilities = ["read"] }
path "secret/metadata/veilmatch/oprf" { capabilities = ["read"] }`

// setPolicy defines a named policy on srv.
func setPolicy(t *testing.T, srv *vaulttest.Server, name, hcl string) {
	t.Helper()
	p, err := vaulttest.ParsePolicy(hcl)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetPolicy(name, p)
}

// dialConfig is the configuration to reach srv with the given auth.
func dialConfig(srv *vaulttest.Server, e *env) VaultConfig {
	return VaultConfig{Address: srv.Addr, CACert: srv.CACert, MaxRetries: -1, Logger: e.logs.logger()}
}

// writeSecretID writes an AppRole secret id file.
func writeSecretID(t *testing.T, secretID string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret-id")
	if err := os.WriteFile(path, []byte(secretID+"\n"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// seedKey writes one OPRF key to secret/veilmatch/oprf as root.
func seedKey(t *testing.T, e *env, id string) {
	t.Helper()
	k := newKey(t, id)
	e.secret(privateHex(t, k))
	if _, err := e.dial(t, e.rootToken).WriteOPRFKey(t.Context(), "secret", "veilmatch/oprf", k); err != nil {
		t.Fatal(err)
	}
}

func TestDialToken(t *testing.T) {
	srv, e := testServer(t)
	ctx := t.Context()
	tok := srv.CreateToken(vaulttest.TokenOptions{TTL: time.Hour, Renewable: true})
	e.secret(tok)

	cfg := dialConfig(srv, e)
	cfg.Token = tok
	cfg.Namespace = "agency-a"
	v, err := DialVault(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if v.Address() != srv.Addr {
		t.Errorf("Address() = %q, want %q", v.Address(), srv.Addr)
	}
	if srv.Count("GET", "sys/health") != 1 || srv.Count("GET", "auth/token/lookup-self") != 1 {
		t.Errorf("requests %v, want one health check and one token lookup", srv.Requests())
	}
	for _, r := range srv.Requests() {
		if r.Namespace != "agency-a" {
			t.Errorf("%s %s sent namespace %q, want agency-a", r.Method, r.Path, r.Namespace)
		}
	}

	t.Run("BadToken", func(t *testing.T) {
		cfg := dialConfig(srv, e)
		cfg.Token = "hvs.not-a-token"
		_, err := DialVault(ctx, cfg)
		if !errors.Is(err, ErrPermissionDenied) {
			t.Fatalf("DialVault with a bad token: %v, want ErrPermissionDenied", err)
		}
		wantErr(t, err, srv.Addr, "auth/token/lookup-self")
		if strings.Contains(err.Error(), "hvs.not-a-token") {
			t.Errorf("the error reveals the token: %v", err)
		}
	})
	t.Run("NoToken", func(t *testing.T) {
		t.Setenv("VAULT_TOKEN", "")
		_, err := DialVault(ctx, dialConfig(srv, e))
		wantErr(t, err, srv.Addr, "no token")
	})
	t.Run("Environment", func(t *testing.T) {
		t.Setenv("VAULT_ADDR", srv.Addr)
		t.Setenv("VAULT_CACERT", srv.CACert)
		t.Setenv("VAULT_TOKEN", tok)
		t.Setenv("VAULT_NAMESPACE", "agency-b")
		v, err := DialVault(ctx, VaultConfig{Logger: e.logs.logger()})
		if err != nil {
			t.Fatal(err)
		}
		defer v.Close()
		if last := srv.Requests()[len(srv.Requests())-1]; last.Namespace != "agency-b" {
			t.Errorf("namespace %q, want agency-b from VAULT_NAMESPACE", last.Namespace)
		}
	})
	t.Run("UntrustedCertificate", func(t *testing.T) {
		t.Setenv("VAULT_CACERT", "")
		cfg := dialConfig(srv, e)
		cfg.CACert, cfg.Token = "", tok
		_, err := DialVault(ctx, cfg)
		wantErr(t, err, srv.Addr, "unreachable", "certificate")
	})
	t.Run("Config", func(t *testing.T) {
		for _, cfg := range []VaultConfig{{RoleID: "r"}, {SecretIDFile: "f"}, {RoleID: "r", SecretIDFile: "f", Token: "t"}} {
			if _, err := DialVault(ctx, cfg); err == nil || !strings.Contains(err.Error(), "vault config") {
				t.Errorf("DialVault(%+v) = %v, want a config error", cfg, err)
			}
		}
	})
}

func TestDialAppRole(t *testing.T) {
	srv, e := testServer(t)
	ctx := t.Context()
	setPolicy(t, srv, "keyserver", keyServerPolicy)
	seedKey(t, e, "approle-epoch-1")
	roleID, secretID := srv.AddAppRole("keyserver", vaulttest.RoleOptions{Policies: []string{"keyserver"}, TokenTTL: time.Hour})
	e.secret(secretID)

	cfg := dialConfig(srv, e)
	cfg.RoleID, cfg.SecretIDFile = roleID, writeSecretID(t, secretID, 0o600)
	v, err := DialVault(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	e.secret(v.client.Token())
	if n := srv.Count("POST", "auth/approle/login"); n != 1 {
		t.Errorf("%d logins, want 1", n)
	}
	if _, err := v.OPRFSource("secret", "veilmatch/oprf", 0).Keys(ctx); err != nil {
		t.Fatalf("Keys with the AppRole token: %v", err)
	}

	t.Run("WrongSecretID", func(t *testing.T) {
		cfg := cfg
		cfg.SecretIDFile = writeSecretID(t, "not-the-secret-id", 0o600)
		_, err := DialVault(ctx, cfg)
		wantErr(t, err, srv.Addr, "auth/approle/login", "invalid role or secret ID")
		if strings.Contains(err.Error(), "not-the-secret-id") {
			t.Errorf("the error reveals the secret id: %v", err)
		}
	})
	t.Run("SecretIDFileReadableByOthers", func(t *testing.T) {
		cfg := cfg
		cfg.SecretIDFile = writeSecretID(t, secretID, 0o644)
		_, err := DialVault(ctx, cfg)
		wantErr(t, err, "chmod 600")
	})
	t.Run("MissingSecretIDFile", func(t *testing.T) {
		cfg := cfg
		cfg.SecretIDFile = filepath.Join(t.TempDir(), "missing")
		_, err := DialVault(ctx, cfg)
		wantErr(t, err, "secret id file", "missing")
	})
}

// TestAppRoleRenewalAndRelogin uses tokens that live at most 3 seconds: the
// client renews them, logs in again when they reach their max TTL, and
// keeps working throughout.
func TestAppRoleRenewalAndRelogin(t *testing.T) {
	srv, e := testServer(t)
	ctx := t.Context()
	setPolicy(t, srv, "keyserver", keyServerPolicy)
	seedKey(t, e, "renew-epoch-1")
	roleID, secretID := srv.AddAppRole("keyserver", vaulttest.RoleOptions{
		Policies: []string{"keyserver"}, TokenTTL: 2 * time.Second, TokenMaxTTL: 3 * time.Second,
	})
	e.secret(secretID)
	cfg := dialConfig(srv, e)
	cfg.RoleID, cfg.SecretIDFile = roleID, writeSecretID(t, secretID, 0o600)
	v, err := DialVault(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	first := v.client.Token()
	e.secret(first)

	eventually(t, "renewal, then a new login at max TTL", func() error {
		if n := srv.Count("POST", "auth/token/renew-self"); n < 1 {
			return fmt.Errorf("%d renewals", n)
		}
		if n := srv.Count("POST", "auth/approle/login"); n < 2 {
			return fmt.Errorf("%d logins", n)
		}
		return nil
	})
	e.secret(v.client.Token())
	eventually(t, "the first token expires", func() error {
		if srv.TokenValid(first) {
			return errors.New("still valid")
		}
		return nil
	})
	if _, err := v.OPRFSource("secret", "veilmatch/oprf", 0).Keys(ctx); err != nil {
		t.Fatalf("Keys after the first token expired: %v", err)
	}
}

// TestTokenRenewal: a renewable token outlives its TTL; a non-renewable
// one stops working when it expires.
func TestTokenRenewal(t *testing.T) {
	srv, e := testServer(t)
	ctx := t.Context()
	setPolicy(t, srv, "keyserver", keyServerPolicy)
	seedKey(t, e, "token-epoch-1")

	renewable := srv.CreateToken(vaulttest.TokenOptions{Policies: []string{"keyserver"}, TTL: 2 * time.Second, Renewable: true})
	fixed := srv.CreateToken(vaulttest.TokenOptions{Policies: []string{"keyserver"}, TTL: 2 * time.Second})
	vr, vf := e.dial(t, renewable), e.dial(t, fixed)
	eventually(t, "two renewals", func() error {
		if n := srv.Count("POST", "auth/token/renew-self"); n < 2 {
			return fmt.Errorf("%d renewals", n)
		}
		return nil
	})
	eventually(t, "the fixed token expires", func() error {
		_, err := vf.OPRFSource("secret", "veilmatch/oprf", 0).Keys(ctx)
		if !errors.Is(err, ErrPermissionDenied) {
			return fmt.Errorf("Keys: %v, want ErrPermissionDenied", err)
		}
		return nil
	})
	if _, err := vr.OPRFSource("secret", "veilmatch/oprf", 0).Keys(ctx); err != nil {
		t.Fatalf("the renewed token: %v", err)
	}
}

func TestVaultDownAtStart(t *testing.T) {
	srv, e := testServer(t)
	srv.Stop()
	cfg := dialConfig(srv, e)
	cfg.Token = srv.RootToken
	_, err := DialVault(t.Context(), cfg)
	wantErr(t, err, srv.Addr, "unreachable", "refused")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	v, err := DialVault(t.Context(), cfg)
	if err != nil {
		t.Fatalf("DialVault after Vault came back: %v", err)
	}
	v.Close()
}

// TestVaultDownLater: calls fail while Vault is down and work again once it
// is back; the client's LastError says so.
func TestVaultDownLater(t *testing.T) {
	srv, e := testServer(t)
	ctx := t.Context()
	v := e.dial(t, srv.RootToken)
	seedKey(t, e, "down-epoch-1")
	if _, err := v.client.Logical().WriteWithContext(ctx, "transit/keys/veilmatch-checkpoints", map[string]any{"type": "ed25519"}); err != nil {
		t.Fatal(err)
	}
	src := v.OPRFSource("secret", "veilmatch/oprf", time.Hour)
	s, err := v.TransitSigner(ctx, "transit", "veilmatch-checkpoints", testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	cp := audit.Checkpoint{Origin: testOrigin, Size: 7, Root: root("down")}

	srv.Stop()
	_, err = src.Keys(ctx)
	wantErr(t, err, srv.Addr, "secret/metadata/veilmatch/oprf")
	_, err = audit.SignCheckpoint(cp, s)
	wantErr(t, err, srv.Addr, "transit/sign/veilmatch-checkpoints")
	if v.LastError() == nil {
		t.Error("LastError() = nil while Vault is down")
	}

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Keys(ctx); err != nil {
		t.Fatalf("Keys after Vault came back: %v", err)
	}
	signed, err := audit.SignCheckpoint(cp, s)
	if err != nil {
		t.Fatalf("signing after Vault came back: %v", err)
	}
	verifier, err := audit.NewVerifier(s.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.OpenCheckpoint(signed, verifier, testOrigin); err != nil {
		t.Fatal(err)
	}
	if err := v.LastError(); err != nil {
		t.Errorf("LastError() = %v after Vault came back", err)
	}
}

// TestAppRoleReloginAfterOutage: Vault is down for longer than the token's
// TTL; when it returns, the client logs in again on its own.
func TestAppRoleReloginAfterOutage(t *testing.T) {
	srv, e := testServer(t)
	ctx := t.Context()
	setPolicy(t, srv, "keyserver", keyServerPolicy)
	seedKey(t, e, "outage-epoch-1")
	roleID, secretID := srv.AddAppRole("keyserver", vaulttest.RoleOptions{Policies: []string{"keyserver"}, TokenTTL: time.Second})
	e.secret(secretID)
	cfg := dialConfig(srv, e)
	cfg.RoleID, cfg.SecretIDFile = roleID, writeSecretID(t, secretID, 0o600)
	v, err := DialVault(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	first := v.client.Token()
	e.secret(first)

	srv.Stop()
	time.Sleep(2500 * time.Millisecond) // past the token's TTL
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if srv.TokenValid(first) {
		t.Fatal("the token survived the outage; the test needs it expired")
	}
	eventually(t, "a new login after the outage", func() error {
		if n := srv.Count("POST", "auth/approle/login"); n < 2 {
			return fmt.Errorf("%d logins", n)
		}
		return nil
	})
	e.secret(v.client.Token())
	if _, err := v.OPRFSource("secret", "veilmatch/oprf", 0).Keys(ctx); err != nil {
		t.Fatalf("Keys after the outage: %v", err)
	}
}

// TestAppRoleLoginOnExpiredToken: a call that finds its token expired logs
// in again and retries, without waiting for the renewal goroutine.
func TestAppRoleLoginOnExpiredToken(t *testing.T) {
	srv, e := testServer(t)
	ctx := t.Context()
	setPolicy(t, srv, "keyserver", keyServerPolicy)
	seedKey(t, e, "expired-epoch-1")
	roleID, secretID := srv.AddAppRole("keyserver", vaulttest.RoleOptions{Policies: []string{"keyserver"}, TokenTTL: time.Hour})
	e.secret(secretID)
	cfg := dialConfig(srv, e)
	cfg.RoleID, cfg.SecretIDFile = roleID, writeSecretID(t, secretID, 0o600)
	v, err := DialVault(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	v.client.SetToken("hvs.expired") // as if the host slept past the TTL
	if _, err := v.OPRFSource("secret", "veilmatch/oprf", 0).Keys(ctx); err != nil {
		t.Fatalf("Keys with an expired token: %v", err)
	}
	e.secret(v.client.Token())
	if n := srv.Count("POST", "auth/approle/login"); n != 2 {
		t.Errorf("%d logins, want 2", n)
	}
}

func TestPermissionDeniedNamesPath(t *testing.T) {
	srv, e := testServer(t)
	ctx := t.Context()
	setPolicy(t, srv, "keyserver", keyServerPolicy)
	v := e.dial(t, srv.CreateToken(vaulttest.TokenOptions{Policies: []string{"keyserver"}}))
	_, err := v.TransitSigner(ctx, "transit", "veilmatch-checkpoints", testOrigin)
	wantDenied(t, err, "transit/keys/veilmatch-checkpoints")
	wantErr(t, err, srv.Addr, `"read"`)
	_, err = v.OPRFSource("secret", "other/oprf", 0).Keys(ctx)
	wantDenied(t, err, "secret/metadata/other/oprf")
	if v.LastError() != nil {
		t.Errorf("LastError() = %v: a refusal is not an outage", v.LastError())
	}
}

func TestCloseStopsCalls(t *testing.T) {
	srv, e := testServer(t)
	v := e.dial(t, srv.RootToken)
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	v.Close() // idempotent
	_, err := v.OPRFSource("secret", "veilmatch/oprf", 0).Keys(context.Background())
	wantErr(t, err, "client closed")
}

func TestSplitMountPath(t *testing.T) {
	for _, tc := range []struct{ in, mount, path string }{
		{"secret/veilmatch/oprf", "secret", "veilmatch/oprf"},
		{"/transit/veilmatch-checkpoints/", "transit", "veilmatch-checkpoints"},
	} {
		m, p, err := SplitMountPath(tc.in)
		if err != nil || m != tc.mount || p != tc.path {
			t.Errorf("SplitMountPath(%q) = %q, %q, %v", tc.in, m, p, err)
		}
	}
	for _, in := range []string{"", "secret", "secret/", "a//b"} {
		if _, _, err := SplitMountPath(in); err == nil {
			t.Errorf("SplitMountPath(%q) succeeded", in)
		}
	}
}

// TestRecheckToken: when renewal of a static token stops, the client asks
// Vault whether renewing still extends the token.
func TestRecheckToken(t *testing.T) {
	srv, e := testServer(t)
	prev := func(lease int) *api.Secret { return &api.Secret{Auth: &api.SecretAuth{LeaseDuration: lease}} }

	t.Run("Extends", func(t *testing.T) {
		v := e.dial(t, srv.CreateToken(vaulttest.TokenOptions{TTL: time.Hour, Renewable: true}))
		v.setAuth(nil)
		v.recheckToken(prev(3600))
		if a := v.currentAuth(); a == nil || a.Auth.LeaseDuration < 3599 {
			t.Fatalf("after recheck, renewing %v; want the renewed token", a)
		}
	})
	t.Run("Capped", func(t *testing.T) {
		v := e.dial(t, srv.CreateToken(vaulttest.TokenOptions{TTL: time.Hour, MaxTTL: 30 * time.Minute, Renewable: true}))
		done := make(chan struct{})
		go func() { v.recheckToken(prev(3600)); close(done) }()
		eventually(t, "the warning", func() error {
			if !strings.Contains(e.logs.String(), "cannot be renewed further") {
				return errors.New("not logged")
			}
			return nil
		})
		v.Close()
		<-done
		if a := v.currentAuth(); a != nil {
			t.Fatalf("still renewing %v", a)
		}
	})
	t.Run("Expired", func(t *testing.T) {
		v := e.dial(t, srv.CreateToken(vaulttest.TokenOptions{TTL: time.Hour, Renewable: true}))
		v.client.SetToken("hvs.expired")
		v.recheckToken(prev(3600))
		if a := v.currentAuth(); a != nil {
			t.Fatalf("still renewing %v", a)
		}
		if !strings.Contains(e.logs.String(), "expired or was revoked") {
			t.Fatal("no error logged")
		}
	})
}

// TestStringsRevealNothing: printing the Vault types never shows a token.
func TestStringsRevealNothing(t *testing.T) {
	srv, e := testServer(t)
	ctx := t.Context()
	v := e.dial(t, srv.RootToken)
	if _, err := v.client.Logical().WriteWithContext(ctx, "transit/keys/veilmatch-checkpoints", map[string]any{"type": "ed25519"}); err != nil {
		t.Fatal(err)
	}
	s, err := v.TransitSigner(ctx, "transit", "veilmatch-checkpoints", testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	src := v.OPRFSource("secret", "veilmatch/oprf", time.Hour)
	out := fmt.Sprintf("%v %+v %#v %v %+v %v", v, v, v, src, src, s)
	if strings.Contains(out, srv.RootToken) {
		t.Fatalf("printing reveals the token: %s", out)
	}
	for _, want := range []string{"keys.Vault(" + srv.Addr + ")", "secret/data/veilmatch/oprf", "transit/keys/veilmatch-checkpoints v1"} {
		if !strings.Contains(out, want) {
			t.Errorf("%q does not contain %q", out, want)
		}
	}
}
