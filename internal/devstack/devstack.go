// Package devstack runs the development stack — a key server and a hub on
// loopback with the development certificates, one data directory, one
// policy — for `veilmatch dev`, the examples, the benchmarks and the tests.
// DEV ONLY: one process runs both services, which production must never do
// (see SECURITY.md).
package devstack

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/veilmatch/veilmatch/certs"
	"github.com/veilmatch/veilmatch/crypto/mtls"
	"github.com/veilmatch/veilmatch/crypto/oprf"
	"github.com/veilmatch/veilmatch/policy"
	"github.com/veilmatch/veilmatch/server/hub"
	"github.com/veilmatch/veilmatch/server/keyserver"
	"github.com/veilmatch/veilmatch/server/metrics"
	"github.com/veilmatch/veilmatch/server/quota"
	"github.com/veilmatch/veilmatch/server/store"
)

// Quota is the stack's default per-agency quota: explicit and generous,
// so development and examples publish synthetic data quickly.
var Quota = quota.Limits{Rate: 100_000, Burst: 65_536, Daily: 10_000_000}

// Files in the key server's directory, Config.Dir/keyserver.
const (
	KeyFile     = "oprf.key"
	UsageLog    = "quota.jsonl"
	UsageCursor = "quota.cursor"
)

// Config configures a stack. Only Dir is required.
type Config struct {
	// Dir holds the key server's files (Dir/keyserver: the OPRF key,
	// created on first start, and the quota journal) and the hub's data
	// (Dir/hub); they are kept across restarts.
	Dir string
	// KeyServerAddr and HubAddr are the listen addresses (default
	// 127.0.0.1:0).
	KeyServerAddr, HubAddr string
	// Certs is a certificate directory laid out like certs/dev; empty
	// means the development set built into the binary.
	Certs string
	// Policy decides disclosures at the hub and names the agencies the
	// key server serves (default: the built-in policy).
	Policy *policy.Engine
	// Quota is the key server's per-agency quota (default Quota).
	Quota quota.Limits
	// Key is the OPRF key to serve instead of the key file in Dir.
	Key *oprf.PrivateKey
	// KeySource supplies the keys instead (Vault, a file to refresh).
	KeySource keyserver.KeySource
	// Store is the hub's store instead of SQLite in Dir/hub.
	Store store.Store
	// Signer signs the hub's checkpoints instead of a key file in Dir/hub.
	Signer hub.Signer
	// ReportEvery, if set, makes the key server report its use and keys to
	// the hub this often.
	ReportEvery time.Duration
	// Reflection enables gRPC server reflection on both servers.
	Reflection bool
	// Metrics, if set, records both servers' metrics.
	Metrics *metrics.Metrics
	// Logger is both servers' logger; nil means slog.Default().
	Logger *slog.Logger
}

// Stack is a running key server and hub.
type Stack struct {
	KeyServer *keyserver.Server
	Hub       *hub.Server
	// Key is the key served, unless a KeySource supplies the keys.
	Key *oprf.PrivateKey
	// HubDir is the hub's data directory.
	HubDir string
}

// New creates the stack's directories and key, and starts both servers
// listening; Serve serves them. On failure it releases whatever it made.
func New(ctx context.Context, c Config) (*Stack, error) {
	if c.Dir == "" {
		return nil, errors.New("devstack: a data directory is required")
	}
	if err := c.setDefaults(ctx); err != nil {
		return nil, err
	}
	s := &Stack{HubDir: filepath.Join(c.Dir, "hub")}
	ksDir := filepath.Join(c.Dir, "keyserver")
	for _, d := range []string{ksDir, s.HubDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("devstack: %w", err)
		}
	}
	var err error
	if s.Key, err = c.key(ksDir); err != nil {
		return nil, err
	}
	tlsFor := func(name string) (server, client *tls.Config, err error) {
		files := mtls.DevFiles(c.Certs, name)
		if c.Certs == "" {
			server, err = mtls.ServerConfigFS(certs.DevFS, mtls.DevFiles(".", name))
			if err == nil {
				client, err = mtls.ClientConfigFS(certs.DevFS, mtls.DevFiles(".", name), "")
			}
			return server, client, err
		}
		if server, err = mtls.ServerConfig(files); err == nil {
			client, err = mtls.ClientConfig(files, "")
		}
		return server, client, err
	}
	ksTLS, ksClientTLS, err := tlsFor("keyserver")
	if err != nil {
		return nil, err
	}
	hubTLS, _, err := tlsFor("hub")
	if err != nil {
		return nil, err
	}
	ksCfg := keyserver.Config{
		Listen: c.KeyServerAddr, TLS: ksTLS, KeySource: c.KeySource, UsageLog: filepath.Join(ksDir, UsageLog),
		Quota: c.Quota, Registry: c.Policy, Reflection: c.Reflection, Metrics: c.Metrics, Logger: c.Logger,
	}
	if s.Key != nil {
		ksCfg.Keys = []*oprf.PrivateKey{s.Key}
	}
	hubCfg := hub.Config{
		Listen: c.HubAddr, TLS: hubTLS, DataDir: s.HubDir, Store: c.Store, Policy: c.Policy, Signer: c.Signer,
		Reflection: c.Reflection, Metrics: c.Metrics, Logger: c.Logger,
	}
	if s.Key != nil {
		// The hub trusts the key it knows is served, so no stray key
		// server can be trusted on first use in its place.
		hubCfg.TrustedKeys = []oprf.PublicKey{s.Key.Public()}
	}
	if s.Hub, err = hub.New(ctx, hubCfg); err != nil {
		return nil, err
	}
	if c.ReportEvery > 0 {
		ksCfg.Report = &keyserver.ReportConfig{Hub: s.Hub.Addr().String(), TLS: ksClientTLS,
			CursorFile: filepath.Join(ksDir, UsageCursor), Every: c.ReportEvery}
	}
	if s.KeyServer, err = keyserver.New(ctx, ksCfg); err != nil {
		return nil, errors.Join(err, s.Hub.Close())
	}
	return s, nil
}

func (c *Config) setDefaults(ctx context.Context) error {
	if c.Policy == nil {
		var err error
		if c.Policy, err = policy.New(ctx, policy.Options{Logger: c.Logger}); err != nil {
			return fmt.Errorf("devstack: %w", err)
		}
	}
	if c.KeyServerAddr == "" {
		c.KeyServerAddr = "127.0.0.1:0"
	}
	if c.HubAddr == "" {
		c.HubAddr = "127.0.0.1:0"
	}
	if c.Quota == (quota.Limits{}) {
		c.Quota = Quota
	}
	return nil
}

// key returns the key to serve: Config.Key, or the key file in dir,
// created on first start; none with a KeySource.
func (c *Config) key(dir string) (*oprf.PrivateKey, error) {
	switch {
	case c.KeySource != nil:
		return nil, nil
	case c.Key != nil:
		return c.Key, nil
	}
	return oprf.LoadOrCreateKeyFile(filepath.Join(dir, KeyFile))
}

// Serve serves both servers until ctx is done, then stops both.
func (s *Stack) Serve(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.KeyServer.Serve(gctx) })
	g.Go(func() error { return s.Hub.Serve(gctx) })
	return g.Wait()
}

// Close releases a stack that will not be served.
func (s *Stack) Close() error {
	return errors.Join(s.KeyServer.Close(), s.Hub.Close())
}
