package vaulttest_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/veilmatch/veilmatch/internal/vaulttest"
)

// call makes one raw request and returns the status and decoded body.
func call(t *testing.T, s *vaulttest.Server, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.CACertPEM) {
		t.Fatal("bad CA PEM")
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, s.Addr+"/v1/"+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	req.Header.Set("X-Vault-Namespace", "ns1")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	data, _ := io.ReadAll(resp.Body)
	if len(data) > 0 {
		if err := json.Unmarshal(data, &out); err != nil {
			t.Fatalf("%s %s: body %q: %v", method, path, data, err)
		}
	}
	return resp.StatusCode, out
}

// wantStatus checks a response's status and, for errors, Vault's
// {"errors": [...]} body.
func wantStatus(t *testing.T, gotStatus int, body map[string]any, status int, errs ...string) {
	t.Helper()
	if gotStatus != status {
		t.Fatalf("status %d (%v), want %d", gotStatus, body, status)
	}
	if errs == nil {
		return
	}
	got, _ := json.Marshal(body["errors"])
	want, _ := json.Marshal(errs)
	if string(got) != string(want) {
		t.Fatalf("errors %s, want %s", got, want)
	}
}

func data(body map[string]any) map[string]any { d, _ := body["data"].(map[string]any); return d }

func TestKV(t *testing.T) {
	s := vaulttest.New(t)
	s.EnableKV("secret")
	root := s.RootToken

	st, body := call(t, s, "GET", "secret/data/app", root, nil)
	wantStatus(t, st, body, 404, []string{}...)
	st, body = call(t, s, "POST", "secret/data/app", root, map[string]any{"data": map[string]any{"k": "v1"}, "options": map[string]any{"cas": 0}})
	wantStatus(t, st, body, 200)
	if d := data(body); d["version"] != 1.0 || d["deletion_time"] != "" || d["destroyed"] != false || d["created_time"] == "" {
		t.Fatalf("write response %v", d)
	}
	// check-and-set: 0 means "only if new"; otherwise the current version.
	st, body = call(t, s, "PUT", "secret/data/app", root, map[string]any{"data": map[string]any{"k": "x"}, "options": map[string]any{"cas": 0}})
	wantStatus(t, st, body, 400, "check-and-set parameter did not match the current version")
	st, body = call(t, s, "PUT", "secret/data/app", root, map[string]any{"data": map[string]any{"k": "v2"}, "options": map[string]any{"cas": 1}})
	wantStatus(t, st, body, 200)
	st, body = call(t, s, "POST", "secret/data/app", root, map[string]any{"options": map[string]any{}})
	wantStatus(t, st, body, 400, "no data provided")

	st, body = call(t, s, "GET", "secret/data/app?version=1", root, nil)
	wantStatus(t, st, body, 200)
	if d := data(body); d["data"].(map[string]any)["k"] != "v1" || d["metadata"].(map[string]any)["version"] != 1.0 {
		t.Fatalf("version 1: %v", d)
	}
	st, body = call(t, s, "GET", "secret/metadata/app", root, nil)
	wantStatus(t, st, body, 200)
	md := data(body)
	if md["current_version"] != 2.0 || md["oldest_version"] != 1.0 || len(md["versions"].(map[string]any)) != 2 {
		t.Fatalf("metadata %v", md)
	}

	// A deleted version reads as 404 with its metadata.
	st, _ = call(t, s, "POST", "secret/delete/app", root, map[string]any{"versions": []int{2}})
	wantStatus(t, st, nil, 204)
	st, body = call(t, s, "GET", "secret/data/app", root, nil)
	wantStatus(t, st, body, 404)
	if d := data(body); d["data"] != nil || d["metadata"].(map[string]any)["deletion_time"] == "" {
		t.Fatalf("deleted version: %v", d)
	}

	// Only 10 versions are kept.
	for range 12 {
		call(t, s, "POST", "secret/data/many", root, map[string]any{"data": map[string]any{"k": "v"}})
	}
	_, body = call(t, s, "GET", "secret/metadata/many", root, nil)
	if md := data(body); md["oldest_version"] != 3.0 || len(md["versions"].(map[string]any)) != 10 {
		t.Fatalf("after 12 writes: %v", md)
	}
}

func TestTransit(t *testing.T) {
	s := vaulttest.New(t)
	s.EnableTransit("transit")
	root := s.RootToken
	st, body := call(t, s, "POST", "transit/keys/k", root, map[string]any{"type": "ed25519"})
	wantStatus(t, st, body, 200)
	st, body = call(t, s, "GET", "transit/keys/k", root, nil)
	wantStatus(t, st, body, 200)
	d := data(body)
	v1 := d["keys"].(map[string]any)["1"].(map[string]any)
	pub, err := base64.StdEncoding.DecodeString(v1["public_key"].(string))
	if d["type"] != "ed25519" || d["latest_version"] != 1.0 || err != nil || len(pub) != 32 {
		t.Fatalf("key %v", d)
	}

	msg := []byte("hello")
	st, body = call(t, s, "POST", "transit/sign/k", root, map[string]any{"input": base64.StdEncoding.EncodeToString(msg)})
	wantStatus(t, st, body, 200)
	sigText := data(body)["signature"].(string)
	sig, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sigText, "vault:v1:"))
	if err != nil || !ed25519.Verify(pub, msg, sig) {
		t.Fatalf("signature %q does not verify", sigText)
	}
	st, body = call(t, s, "POST", "transit/verify/k", root, map[string]any{"input": base64.StdEncoding.EncodeToString(msg), "signature": sigText})
	if wantStatus(t, st, body, 200); data(body)["valid"] != true {
		t.Fatalf("verify: %v", body)
	}
	st, body = call(t, s, "POST", "transit/verify/k", root, map[string]any{"input": base64.StdEncoding.EncodeToString([]byte("other")), "signature": sigText})
	if wantStatus(t, st, body, 200); data(body)["valid"] != false {
		t.Fatalf("verify of another message: %v", body)
	}
	st, body = call(t, s, "POST", "transit/sign/k", root, map[string]any{"input": "aGk=", "key_version": 2})
	wantStatus(t, st, body, 400)
	st, body = call(t, s, "POST", "transit/sign/missing", root, map[string]any{"input": "aGk="})
	wantStatus(t, st, body, 400, "signing key not found")
	st, body = call(t, s, "GET", "transit/keys/missing", root, nil)
	wantStatus(t, st, body, 404, []string{}...)
}

func TestAuth(t *testing.T) {
	s := vaulttest.New(t)
	s.EnableKV("secret")
	p, err := vaulttest.ParsePolicy(`
# a comment
path "secret/data/app/*" {
  capabilities = ["read", "create"]
}
path "secret/data/app/private" { capabilities = ["deny"] }
`)
	if err != nil {
		t.Fatal(err)
	}
	s.SetPolicy("app", p)

	st, body := call(t, s, "GET", "sys/health", "", nil)
	if wantStatus(t, st, body, 200); body["initialized"] != true || body["sealed"] != false {
		t.Fatalf("health %v", body)
	}
	st, body = call(t, s, "GET", "secret/data/app/x", "", nil)
	wantStatus(t, st, body, 403, "permission denied")
	st, body = call(t, s, "GET", "nowhere/x", s.RootToken, nil)
	wantStatus(t, st, body, 404, `no handler for route "nowhere/x". route entry not found.`)

	roleID, secretID := s.AddAppRole("app", vaulttest.RoleOptions{Policies: []string{"app"}, TokenTTL: time.Second, TokenMaxTTL: 2 * time.Second})
	st, body = call(t, s, "POST", "auth/approle/login", "", map[string]any{"role_id": roleID, "secret_id": "wrong"})
	wantStatus(t, st, body, 400, "invalid role or secret ID")
	st, body = call(t, s, "POST", "auth/approle/login", "", map[string]any{"role_id": roleID, "secret_id": secretID})
	wantStatus(t, st, body, 200)
	auth := body["auth"].(map[string]any)
	tok := auth["client_token"].(string)
	if auth["lease_duration"] != 1.0 || auth["renewable"] != true || !strings.HasPrefix(tok, "hvs.") {
		t.Fatalf("login auth %v", auth)
	}

	// The policy: most specific path wins, deny beats everything, creating
	// needs "create" and updating "update".
	st, body = call(t, s, "POST", "secret/data/app/x", tok, map[string]any{"data": map[string]any{"a": "b"}})
	wantStatus(t, st, body, 200)
	st, body = call(t, s, "POST", "secret/data/app/x", tok, map[string]any{"data": map[string]any{"a": "c"}})
	wantStatus(t, st, body, 403, "permission denied")
	st, body = call(t, s, "GET", "secret/data/app/private", tok, nil)
	wantStatus(t, st, body, 403, "permission denied")
	st, body = call(t, s, "GET", "secret/metadata/app/x", tok, nil)
	wantStatus(t, st, body, 403, "permission denied")

	// Renewal is capped at the max TTL, then the token expires.
	st, body = call(t, s, "GET", "auth/token/lookup-self", tok, nil)
	if wantStatus(t, st, body, 200); data(body)["id"] != tok || data(body)["renewable"] != true {
		t.Fatalf("lookup-self %v", body)
	}
	time.Sleep(500 * time.Millisecond)
	st, body = call(t, s, "PUT", "auth/token/renew-self", tok, map[string]any{"increment": 0})
	wantStatus(t, st, body, 200)
	time.Sleep(700 * time.Millisecond) // the renewed token lives until 1.5s; the max TTL ends at 2s
	st, body = call(t, s, "PUT", "auth/token/renew-self", tok, map[string]any{"increment": "10s"})
	wantStatus(t, st, body, 200)
	if lease := body["auth"].(map[string]any)["lease_duration"].(float64); lease > 1 || len(body["warnings"].([]any)) != 1 {
		t.Fatalf("renewal past the max TTL: %v", body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.TokenValid(tok) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	st, body = call(t, s, "GET", "auth/token/lookup-self", tok, nil)
	wantStatus(t, st, body, 403, "permission denied")

	for _, r := range s.Requests() {
		if r.Namespace != "ns1" {
			t.Errorf("request %+v: namespace not recorded", r)
		}
	}
}

func TestStopStart(t *testing.T) {
	s := vaulttest.New(t)
	if st, _ := call(t, s, "GET", "sys/health", "", nil); st != 200 {
		t.Fatal(st)
	}
	s.Stop()
	if _, err := http.Get(s.Addr + "/v1/sys/health"); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("while stopped: %v, want connection refused", err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if st, _ := call(t, s, "GET", "sys/health", "", nil); st != 200 {
		t.Fatal(st)
	}
}

func TestParsePolicyErrors(t *testing.T) {
	for _, hcl := range []string{"", `path "a" { policy = "read" }`} {
		if _, err := vaulttest.ParsePolicy(hcl); err == nil {
			t.Errorf("ParsePolicy(%q) succeeded", hcl)
		}
	}
}
