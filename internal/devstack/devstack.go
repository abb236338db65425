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
	"strings"
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
	// Threshold, if set, runs several key servers, each holding one share
	// of a threshold key, instead of one with the whole key.
	Threshold *Threshold
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

// Threshold configures the key servers of a T-of-N threshold key.
type Threshold struct {
	T, N int
	// Shares are the N shares to serve (share i by the server with the
	// development certificate keyserver-<i>). Nil means the share files in
	// Dir/keyserver-<i>, made on first start by a distributed key
	// generation among the N — all in this one process: DEV ONLY.
	Shares []*oprf.PrivateKey
	// Addrs are the key servers' listen addresses (default 127.0.0.1:0).
	Addrs []string
}

// Stack is a running key server (or the key servers of a threshold key)
// and hub.
type Stack struct {
	// KeyServer is the key server, or the first of KeyServers.
	KeyServer  *keyserver.Server
	KeyServers []*keyserver.Server
	Hub        *hub.Server
	// Key is the whole key served, unless a KeySource supplies the keys or
	// the key is a threshold key.
	Key *oprf.PrivateKey
	// Shares are the shares served, for a threshold key.
	Shares []*oprf.PrivateKey
	// HubDir is the hub's data directory.
	HubDir string
}

// KeyServerAddrs returns the key servers' addresses, comma-separated, as
// VEILMATCH_KEYSERVER takes them.
func (s *Stack) KeyServerAddrs() string {
	addrs := make([]string, len(s.KeyServers))
	for i, k := range s.KeyServers {
		addrs[i] = k.Addr().String()
	}
	return strings.Join(addrs, ",")
}

// New creates the stack's directories and key, and starts the servers
// listening; Serve serves them. On failure it releases whatever it made.
func New(ctx context.Context, c Config) (_ *Stack, err error) {
	if c.Dir == "" {
		return nil, errors.New("devstack: a data directory is required")
	}
	if err := c.setDefaults(ctx); err != nil {
		return nil, err
	}
	s := &Stack{HubDir: filepath.Join(c.Dir, "hub")}
	if err := os.MkdirAll(s.HubDir, 0o700); err != nil {
		return nil, fmt.Errorf("devstack: %w", err)
	}
	servers, err := c.keyServers(s)
	if err != nil {
		return nil, err
	}
	hubTLS, _, err := c.tlsFor("hub")
	if err != nil {
		return nil, err
	}
	hubCfg := hub.Config{
		Listen: c.HubAddr, TLS: hubTLS, DataDir: s.HubDir, Store: c.Store, Policy: c.Policy, Signer: c.Signer,
		Reflection: c.Reflection, Metrics: c.Metrics, Logger: c.Logger,
	}
	if k := s.served(); k != nil {
		// The hub trusts the key it knows is served, so no stray key
		// server can be trusted on first use in its place.
		hubCfg.TrustedKeys = []oprf.PublicKey{k.Public()}
	}
	if s.Hub, err = hub.New(ctx, hubCfg); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Close())
		}
	}()
	for _, ks := range servers {
		if c.ReportEvery > 0 {
			ks.cfg.Report = &keyserver.ReportConfig{Hub: s.Hub.Addr().String(), TLS: ks.clientTLS,
				CursorFile: filepath.Join(ks.dir, UsageCursor), Every: c.ReportEvery}
		}
		srv, err := keyserver.New(ctx, ks.cfg)
		if err != nil {
			return nil, err
		}
		s.KeyServers = append(s.KeyServers, srv)
	}
	s.KeyServer = s.KeyServers[0]
	return s, nil
}

// served is a key the stack serves (a share's public key is the group
// key), or nil when a KeySource supplies them.
func (s *Stack) served() *oprf.PrivateKey {
	if len(s.Shares) > 0 {
		return s.Shares[0]
	}
	return s.Key
}

// keyServerSetup is one key server to start: its configuration, its
// directory and its client identity for reports to the hub.
type keyServerSetup struct {
	cfg       keyserver.Config
	dir       string
	clientTLS *tls.Config
}

// keyServers prepares the key servers: one with the whole key, or one per
// share of a threshold key, each in its own directory.
func (c *Config) keyServers(s *Stack) ([]keyServerSetup, error) {
	if c.Threshold == nil {
		dir := filepath.Join(c.Dir, "keyserver")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("devstack: %w", err)
		}
		var err error
		if s.Key, err = c.key(dir); err != nil {
			return nil, err
		}
		var keys []*oprf.PrivateKey
		if s.Key != nil {
			keys = []*oprf.PrivateKey{s.Key}
		}
		ks, err := c.keyServer("keyserver", dir, c.KeyServerAddr, keys)
		return []keyServerSetup{ks}, err
	}
	var err error
	if s.Shares, err = c.shares(); err != nil {
		return nil, err
	}
	var out []keyServerSetup
	for i, sh := range s.Shares {
		addr := "127.0.0.1:0"
		if i < len(c.Threshold.Addrs) {
			addr = c.Threshold.Addrs[i]
		}
		name := fmt.Sprintf("keyserver-%d", i+1)
		ks, err := c.keyServer(name, filepath.Join(c.Dir, name), addr, []*oprf.PrivateKey{sh})
		if err != nil {
			return nil, err
		}
		out = append(out, ks)
	}
	return out, nil
}

// keyServer prepares one key server named name (its certificate) serving
// keys, or the KeySource when keys is empty.
func (c *Config) keyServer(name, dir, addr string, keys []*oprf.PrivateKey) (keyServerSetup, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return keyServerSetup{}, fmt.Errorf("devstack: %w", err)
	}
	srvTLS, clientTLS, err := c.tlsFor(name)
	if err != nil {
		return keyServerSetup{}, err
	}
	cfg := keyserver.Config{
		Listen: addr, TLS: srvTLS, Keys: keys, UsageLog: filepath.Join(dir, UsageLog),
		Quota: c.Quota, Registry: c.Policy, Reflection: c.Reflection, Metrics: c.Metrics, Logger: c.Logger,
	}
	if len(keys) == 0 {
		cfg.KeySource = c.KeySource
	}
	return keyServerSetup{cfg: cfg, dir: dir, clientTLS: clientTLS}, nil
}

// tlsFor returns the server and client configurations of a development
// party from Certs, or from the set built into the binary.
func (c *Config) tlsFor(name string) (server, client *tls.Config, err error) {
	if c.Certs == "" {
		server, err = mtls.ServerConfigFS(certs.DevFS, mtls.DevFiles(".", name))
		if err == nil {
			client, err = mtls.ClientConfigFS(certs.DevFS, mtls.DevFiles(".", name), "")
		}
		return server, client, err
	}
	files := mtls.DevFiles(c.Certs, name)
	if server, err = mtls.ServerConfig(files); err == nil {
		client, err = mtls.ClientConfig(files, "")
	}
	return server, client, err
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

// Serve serves every server until ctx is done, then stops them all.
func (s *Stack) Serve(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, ks := range s.KeyServers {
		g.Go(func() error { return ks.Serve(gctx) })
	}
	g.Go(func() error { return s.Hub.Serve(gctx) })
	return g.Wait()
}

// Close releases a stack that will not be served.
func (s *Stack) Close() error {
	var errs []error
	for _, ks := range s.KeyServers {
		errs = append(errs, ks.Close())
	}
	return errors.Join(append(errs, s.Hub.Close())...)
}
