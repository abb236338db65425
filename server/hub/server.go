package hub

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/veilmatch/veilmatch/crypto/mtls"
	"github.com/veilmatch/veilmatch/crypto/oprf"
	"github.com/veilmatch/veilmatch/internal/atomicfile"
	"github.com/veilmatch/veilmatch/internal/dirlock"
	"github.com/veilmatch/veilmatch/policy"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
	"github.com/veilmatch/veilmatch/server/auditsvc"
	"github.com/veilmatch/veilmatch/server/keys"
	"github.com/veilmatch/veilmatch/server/metrics"
	"github.com/veilmatch/veilmatch/server/rpc"
	"github.com/veilmatch/veilmatch/server/store"
	"github.com/veilmatch/veilmatch/server/store/sqlite"
)

// Files in the hub's data directory.
const (
	// DBFile is the embedded SQLite database.
	DBFile = "hub.db"
	// MatchRefKeyFile holds the key that seals match references.
	MatchRefKeyFile = "match-ref.key"
	// CheckpointKeyFile holds the default checkpoint signing key, and
	// CheckpointPubFile its note verifier key, for auditors to pin.
	CheckpointKeyFile = "checkpoint.key"
	CheckpointPubFile = "checkpoint.pub"
	// DefaultLogOrigin names the decision log in checkpoints.
	DefaultLogOrigin = "veilmatch.dev/hub"
)

// Config configures a hub.
type Config struct {
	// Listen is the address to listen on, such as 127.0.0.1:7444.
	Listen string
	// TLS is the server's mTLS configuration.
	TLS *tls.Config
	// DataDir holds the embedded SQLite database.
	DataDir string
	// Store, if set, is used instead of SQLite in DataDir.
	Store store.Store
	// Policy decides every disclosure.
	Policy *policy.Engine
	// MatchRefKey (32 bytes) seals match references; nil means the key file
	// in DataDir, created on first start.
	MatchRefKey []byte
	// Signer signs audit checkpoints; nil means the key file in DataDir,
	// created on first start (its verifier key is written beside it).
	Signer Signer
	// LogOrigin names the decision log in checkpoints (default
	// DefaultLogOrigin).
	LogOrigin string
	// Metrics, if set, records RPC latencies, publishes, matches,
	// decisions and the store's size.
	Metrics *metrics.Metrics
	// UploadTTL is how long an uncommitted upload is kept for resuming
	// (default 7 days).
	UploadTTL time.Duration
	// CheckBudget is the entries each agency may check per UTC day
	// (default DefaultCheckBudget).
	CheckBudget uint64
	// MatchRefTTL is how long a match reference may be turned into a
	// disclosure request (default DefaultMatchRefTTL).
	MatchRefTTL time.Duration
	// WatchPoll is how often a watch looks in the store for alerts that
	// other replicas committed (default DefaultWatchPoll); this hub's own
	// commits wake its watchers at once.
	WatchPoll time.Duration
	// TrustedKeys are OPRF public keys the operator trusts, so that the
	// key server may report them without an endorsement by a key the hub
	// already trusts.
	TrustedKeys []oprf.PublicKey
	// Reflection enables gRPC server reflection.
	Reflection bool
	// Logger is the server's logger; nil means slog.Default().
	Logger *slog.Logger
}

// Validate names the first missing or bad setting.
func (c *Config) Validate() error {
	if c.LogOrigin == "" {
		c.LogOrigin = DefaultLogOrigin
	}
	if c.UploadTTL == 0 {
		c.UploadTTL = 7 * 24 * time.Hour
	}
	switch {
	case c.Listen == "":
		return errors.New("hub config: listen address is required")
	case c.TLS == nil:
		return errors.New("hub config: TLS certificates are required")
	case (c.Store == nil || c.MatchRefKey == nil || c.Signer == nil) && c.DataDir == "":
		return errors.New("hub config: data directory is required")
	case c.Policy == nil:
		return errors.New("hub config: a policy engine is required")
	case c.UploadTTL < 0:
		return fmt.Errorf("hub config: upload TTL must be positive, got %s", c.UploadTTL)
	case c.MatchRefTTL < 0:
		return fmt.Errorf("hub config: match reference TTL must be positive, got %s", c.MatchRefTTL)
	case c.WatchPoll < 0:
		return fmt.Errorf("hub config: watch poll interval must be positive, got %s", c.WatchPoll)
	}
	return nil
}

// Signer signs audit checkpoints: a key file (keys.FileSigner) or Vault
// Transit (keys.Vault.TransitSigner).
type Signer = keys.Signer

// Server is a running hub.
type Server struct {
	cfg   Config
	svc   *Service
	rpc   *rpc.Server
	store store.Store
	lock  *dirlock.Lock
	log   *slog.Logger
}

// New validates cfg, locks the data directory, opens the store and
// listens. Call Serve to serve, or Close to give up.
func New(ctx context.Context, cfg Config) (_ *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	var lock *dirlock.Lock
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("hub data directory: %w", err)
		}
		if lock, err = dirlock.Acquire(cfg.DataDir); err != nil {
			return nil, fmt.Errorf("hub: %w", err)
		}
		defer func() {
			if err != nil {
				lock.Release()
			}
		}()
	}
	st := cfg.Store
	if st == nil {
		if st, err = sqlite.Open(ctx, filepath.Join(cfg.DataDir, DBFile)); err != nil {
			return nil, err
		}
	}
	defer func() {
		if err != nil {
			st.Close()
		}
	}()
	refKey := cfg.MatchRefKey
	if refKey == nil {
		if refKey, err = loadOrCreateKey(filepath.Join(cfg.DataDir, MatchRefKeyFile)); err != nil {
			return nil, fmt.Errorf("hub: match reference key: %w", err)
		}
	}
	svc, err := NewService(st, cfg.Policy, refKey, ServiceOptions{
		CheckBudget: cfg.CheckBudget, MatchRefTTL: cfg.MatchRefTTL, WatchPoll: cfg.WatchPoll, TrustedKeys: cfg.TrustedKeys, Metrics: cfg.Metrics,
	})
	if err != nil {
		return nil, err
	}
	if err := svc.epochs.load(ctx); err != nil {
		return nil, fmt.Errorf("hub: key epochs: %w", err)
	}
	signer, err := checkpointSigner(cfg)
	if err != nil {
		return nil, err
	}
	log.Info("checkpoint verifier key", "key", signer.VerifierKey())
	rs, err := rpc.New(rpc.ServerOptions{
		Listen: cfg.Listen, TLS: cfg.TLS, Reflection: cfg.Reflection, Logger: log, Metrics: cfg.Metrics,
		MaxRecvMsgSize: MaxRecvMsgSize, ServiceKinds: serviceKinds,
	})
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	veilmatchv1.RegisterHubServiceServer(rs.GRPC, svc)
	veilmatchv1.RegisterAuditServiceServer(rs.GRPC, auditsvc.New(st, signer, cfg.LogOrigin, signer.VerifierKey(), nil))
	veilmatchv1.RegisterUsageServiceServer(rs.GRPC, NewUsageService(st, svc))
	registerGauges(cfg, st)
	log.Info("hub ready", "addr", rs.Addr().String(), "policy_revision", cfg.Policy.Revision())
	return &Server{cfg: cfg, svc: svc, rpc: rs, store: st, lock: lock, log: log}, nil
}

// checkpointSigner returns the configured checkpoint signer or the one kept
// in the data directory, and publishes its verifier key there for auditors
// to pin (they should confirm it out of band).
func checkpointSigner(cfg Config) (Signer, error) {
	signer := cfg.Signer
	if signer == nil {
		var err error
		if signer, err = keys.FileSigner(filepath.Join(cfg.DataDir, CheckpointKeyFile), cfg.LogOrigin); err != nil {
			return nil, fmt.Errorf("hub: checkpoint signer: %w", err)
		}
	}
	if cfg.DataDir != "" {
		if err := atomicfile.WriteFile(filepath.Join(cfg.DataDir, CheckpointPubFile), []byte(signer.VerifierKey()+"\n"), 0o644); err != nil {
			return nil, fmt.Errorf("hub: write checkpoint verifier key: %w", err)
		}
	}
	return signer, nil
}

// registerGauges exports the size of the data directory and of the
// decision log.
func registerGauges(cfg Config, st store.Store) {
	if cfg.DataDir != "" {
		cfg.Metrics.GaugeFunc("veilmatch_hub_store_bytes", "Bytes on disk in the hub's data directory.", func() float64 { return float64(dirSize(cfg.DataDir)) })
	}
	cfg.Metrics.GaugeFunc("veilmatch_hub_decision_log_records", "Records in the decision log.", func() float64 {
		size, _, err := st.LogHead(context.Background())
		if err != nil {
			return -1
		}
		return float64(size)
	})
	cfg.Metrics.CheckpointAge(func() (time.Duration, error) { return checkpointAge(context.Background(), st, time.Now()) })
}

// MaxRecvMsgSize bounds a message the hub receives: a check of
// MaxCheckTokens tokens or a batch of MaxBatchEntries entries with room to
// spare, and far less than a memory exhaustion needs.
const MaxRecvMsgSize = 4 << 20

// serviceKinds are the identities that may call each of the hub's
// services, refused before the hub reads a request. A new service or RPC
// also needs its row in the authorization matrix, server/authz_test.go.
var serviceKinds = map[string][]string{
	veilmatchv1.HubService_ServiceDesc.ServiceName:   {mtls.KindAgency},
	veilmatchv1.AuditService_ServiceDesc.ServiceName: {mtls.KindAuditor},
	veilmatchv1.UsageService_ServiceDesc.ServiceName: {mtls.KindServer},
}

// Close releases a server that will not be served: its listener, store and
// data directory.
func (s *Server) Close() error {
	return errors.Join(s.rpc.Close(), s.store.Close(), s.releaseLock())
}

func (s *Server) releaseLock() error {
	if s.lock == nil {
		return nil
	}
	return s.lock.Release()
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.rpc.Addr() }

// Serve serves until ctx is done, purging abandoned uploads hourly, then
// shuts down gracefully (in-flight uploads finish) and closes the store.
func (s *Server) Serve(ctx context.Context) error {
	s.rpc.Health.SetServingStatus(veilmatchv1.HubService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	go s.purge(ctx)
	go s.monitor(ctx)
	go func() { <-ctx.Done(); s.svc.changes.shutdown() }()
	err := s.rpc.Serve(ctx)
	return errors.Join(err, s.store.Close(), s.releaseLock())
}

// monitor turns the hub's health NOT_SERVING while its store does not
// answer, and back to SERVING when it does; it also reloads the key epochs,
// which replicas sharing the store may change.
func (s *Server) monitor(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	serving := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, _, err := s.store.LogHead(pctx)
		if err == nil {
			// Another replica may have stored a key server report.
			err = s.svc.epochs.load(pctx)
		}
		cancel()
		switch {
		case err != nil && serving && ctx.Err() == nil:
			s.log.Error("store unavailable; health NOT_SERVING", "error", err)
			s.rpc.Health.SetServingStatus(veilmatchv1.HubService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
			serving = false
		case err == nil && !serving:
			s.log.Info("store available again; health SERVING")
			s.rpc.Health.SetServingStatus(veilmatchv1.HubService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
			serving = true
		}
	}
}

// dirSize sums the sizes of the files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// purge drops abandoned uploads and erases lists at the end of their
// retention, hourly. With a store that several replicas share, one replica
// at a time does it.
func (s *Server) purge(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if ex, ok := s.store.(store.Exclusive); ok {
			if _, err := ex.RunExclusive(ctx, "retention", s.retention); err != nil && ctx.Err() == nil {
				s.log.Warn("retention jobs", "error", err)
			}
		} else {
			_ = s.retention(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// retention drops uploads abandoned for longer than UploadTTL and erases
// the lists past their retention. It logs what it did and what failed, and
// returns nil, so that RunExclusive reports only its own failures.
func (s *Server) retention(ctx context.Context) error {
	n, err := s.store.PurgeUploads(ctx, time.Now().Add(-s.cfg.UploadTTL))
	if err != nil && ctx.Err() == nil {
		s.log.Warn("purge abandoned uploads", "error", err)
	} else if n > 0 {
		s.log.Info("purged abandoned uploads", "uploads", n)
	}
	if n, err := s.svc.EraseExpired(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("erase expired lists", "error", err)
	} else if n > 0 {
		s.log.Info("erased lists at the end of their retention", "lists", n)
	}
	return nil
}
