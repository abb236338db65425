package keys

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veilmatch/veilmatch/crypto/oprf"
	"github.com/veilmatch/veilmatch/internal/vaulttest"
	"github.com/veilmatch/veilmatch/server/keyserver"
)

// Both backends plug into the key server.
var (
	_ keyserver.KeySource = FileOPRF("")
	_ keyserver.KeySource = (*VaultOPRF)(nil)
)

// logBuffer collects log output from concurrent goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// assertNoSecrets fails if a secret appears in the logs.
func (b *logBuffer) assertNoSecrets(t *testing.T, secrets ...string) {
	t.Helper()
	logs := b.String()
	for _, s := range secrets {
		if s != "" && strings.Contains(logs, s) {
			t.Errorf("a secret (%.8s…) appears in the logs", s)
		}
	}
}

// env is a Vault the scenarios run against: the test server or a real one.
type env struct {
	addr, caCert string // empty: VAULT_ADDR and VAULT_CACERT
	rootToken    string
	kvMount      string
	transitMount string
	prefix       string // unique to the run, for KV paths and Transit key names
	// tokenWithPolicy returns a token whose policies are the default one
	// and the HCL policy hcl.
	tokenWithPolicy func(t *testing.T, name, hcl string) string
	logs            *logBuffer
	secrets         []string // must never be logged
	mu              sync.Mutex
}

// dial logs in with token.
func (e *env) dial(t *testing.T, token string) *Vault {
	t.Helper()
	e.mu.Lock()
	e.secrets = append(e.secrets, token)
	e.mu.Unlock()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	v, err := DialVault(ctx, VaultConfig{Address: e.addr, CACert: e.caCert, Token: token, MaxRetries: -1, Logger: e.logs.logger()})
	if err != nil {
		t.Fatalf("DialVault: %v", err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// secret remembers a value that must never be logged.
func (e *env) secret(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.secrets = append(e.secrets, s)
}

// testServer returns a test Vault with KV v2 at secret/ and Transit at
// transit/, and an env for it.
func testServer(t *testing.T) (*vaulttest.Server, *env) {
	t.Helper()
	srv := vaulttest.New(t)
	srv.EnableKV("secret")
	srv.EnableTransit("transit")
	e := &env{
		addr: srv.Addr, caCert: srv.CACert, rootToken: srv.RootToken,
		kvMount: "secret", transitMount: "transit", prefix: "veilmatch",
		logs: &logBuffer{},
	}
	e.tokenWithPolicy = func(t *testing.T, name, hcl string) string {
		p, err := vaulttest.ParsePolicy(hcl)
		if err != nil {
			t.Fatal(err)
		}
		srv.SetPolicy(name, p)
		return srv.CreateToken(vaulttest.TokenOptions{Policies: []string{name}, TTL: time.Hour, Renewable: true})
	}
	t.Cleanup(func() { e.logs.assertNoSecrets(t, append(e.secrets, srv.RootToken)...) })
	return srv, e
}

// newKey returns a fresh OPRF key with the given id.
func newKey(t *testing.T, id string) *oprf.PrivateKey {
	t.Helper()
	k, err := oprf.GenerateKey(id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// privateHex returns k's private scalar in hex, to check it is never logged.
func privateHex(t *testing.T, k *oprf.PrivateKey) string {
	t.Helper()
	data, err := oprf.MarshalKey(k)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		PrivateKey string `json:"private_key"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	return f.PrivateKey
}

// wantKeys checks that got are the want keys, in order.
func wantKeys(t *testing.T, got []*oprf.PrivateKey, want ...*oprf.PrivateKey) {
	t.Helper()
	ids := func(ks []*oprf.PrivateKey) []string {
		var s []string
		for _, k := range ks {
			s = append(s, k.KeyID())
		}
		return s
	}
	if len(got) != len(want) {
		t.Fatalf("keys %v, want %v", ids(got), ids(want))
	}
	for i := range got {
		if !got[i].Equal(want[i]) {
			t.Fatalf("keys %v, want %v (key %d differs)", ids(got), ids(want), i)
		}
	}
}

// wantErr checks that err is non-nil and its message contains every part.
func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not contain %q", err, p)
		}
	}
}

// eventually polls f until it returns nil or the (generous) deadline.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after 30s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// root returns a checkpoint root hash.
func root(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// readExample reads a file of examples/vault.
func readExample(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", "vault", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// kvFields returns k as KV data fields, as WriteOPRFKey stores it.
func kvFields(t *testing.T, k *oprf.PrivateKey) map[string]any {
	t.Helper()
	data, err := oprf.MarshalKey(k)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
