package servertest

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/veilmatch/veilmatch/client"
	"github.com/veilmatch/veilmatch/crypto/oprf"
	"github.com/veilmatch/veilmatch/internal/devstack"
	"github.com/veilmatch/veilmatch/policy"
	"github.com/veilmatch/veilmatch/server/hub"
	"github.com/veilmatch/veilmatch/server/keyserver"
	"github.com/veilmatch/veilmatch/server/quota"
)

// Generous are quotas no test reaches.
var Generous = quota.Limits{Rate: 1e9, Burst: 1 << 20, Daily: 1 << 40}

// quiet discards the servers' logs.
var quiet = slog.New(slog.DiscardHandler)

// KeyServer starts a key server that serves until the test ends. Zero
// fields of cfg get test defaults: 127.0.0.1:0, the development keyserver
// certificate, a fresh key "k1" (unless Keys or KeySource is set), a usage
// log in a temporary directory, Generous quotas, the built-in policy's
// registry and no logging.
func KeyServer(t testing.TB, cfg keyserver.Config) *keyserver.Server {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.TLS == nil {
		cfg.TLS = ServerTLS(t, "keyserver")
	}
	if cfg.Keys == nil && cfg.KeySource == nil {
		k, err := oprf.GenerateKey("k1")
		if err != nil {
			t.Fatal(err)
		}
		cfg.Keys = []*oprf.PrivateKey{k}
	}
	if cfg.UsageLog == "" {
		cfg.UsageLog = filepath.Join(t.TempDir(), "quota.jsonl")
	}
	if cfg.Quota == (quota.Limits{}) {
		cfg.Quota = Generous
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	if cfg.Registry == nil {
		cfg.Registry = Policy(t)
	}
	ks, err := keyserver.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	Serve(t, ks.Serve)
	return ks
}

// Hub starts a hub that serves until the test ends. Zero fields of cfg get
// test defaults: 127.0.0.1:0, the development hub certificate, a temporary
// data directory, the built-in policy and no logging.
func Hub(t testing.TB, cfg hub.Config) *hub.Server {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.TLS == nil {
		cfg.TLS = ServerTLS(t, "hub")
	}
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	if cfg.Policy == nil {
		cfg.Policy = Policy(t)
	}
	h, err := hub.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	Serve(t, h.Serve)
	return h
}

// Policy returns the built-in policy engine.
func Policy(t testing.TB) *policy.Engine {
	t.Helper()
	pol, err := policy.New(context.Background(), policy.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return pol
}

// Client returns an agency client that is closed when the test ends. Zero
// fields of cfg get test defaults: the development credentials of
// cfg.Agency, a temporary state directory and no logging.
func Client(t testing.TB, cfg client.Config) *client.Client {
	t.Helper()
	if cfg.TLS == nil {
		cfg.TLS = ClientTLS(t, cfg.Agency)
	}
	if cfg.StateDir == "" {
		cfg.StateDir = t.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Stack starts the development stack (devstack) and serves it until the
// test ends. Zero fields of cfg get test defaults: a temporary directory,
// Generous quotas and no logging.
func Stack(t testing.TB, cfg devstack.Config) *devstack.Stack {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.Quota == (quota.Limits{}) {
		cfg.Quota = Generous
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	st, err := devstack.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	Serve(t, st.Serve)
	return st
}
