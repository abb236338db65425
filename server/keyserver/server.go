package keyserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/veilmatch/veilmatch/crypto/mtls"
	"github.com/veilmatch/veilmatch/crypto/oprf"
	"github.com/veilmatch/veilmatch/internal/dirlock"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
	"github.com/veilmatch/veilmatch/server/metrics"
	"github.com/veilmatch/veilmatch/server/quota"
	"github.com/veilmatch/veilmatch/server/rpc"
)

// Config configures a key server.
type Config struct {
	// Listen is the address to listen on, such as 127.0.0.1:7443.
	Listen string
	// TLS is the server's mTLS configuration.
	TLS *tls.Config
	// Keys are the OPRF keys: the first is current, the others can still be
	// evaluated by key id. Ignored when KeySource is set.
	Keys []*oprf.PrivateKey
	// KeySource, if set, supplies the keys at start and every KeyRefresh
	// after (key rotation). If it fails later, the keys in memory keep
	// being served.
	KeySource KeySource
	// KeyRefresh is how often KeySource is polled (default 1 minute).
	KeyRefresh time.Duration
	// UsageLog is the quota journal file: every grant and refusal, for
	// auditors.
	UsageLog string
	// MaxBatch is the largest batch accepted (default DefaultMaxBatch).
	MaxBatch int
	// Quota are the per-agency limits (default quota.DefaultLimits()).
	Quota quota.Limits
	// Registry names the agencies the key server evaluates for: the policy
	// engine of the bundle the hub uses.
	Registry Registry
	// Reflection enables gRPC server reflection.
	Reflection bool
	// Report, if set, delivers quota use and refusals to the hub's
	// decision log.
	Report *ReportConfig
	// Metrics, if set, records RPC latencies, evaluations and refusals.
	Metrics *metrics.Metrics
	// Logger is the server's logger; nil means slog.Default().
	Logger *slog.Logger
}

// Validate names the first missing or bad setting.
func (c *Config) Validate() error {
	if c.MaxBatch == 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.KeyRefresh == 0 {
		c.KeyRefresh = time.Minute
	}
	if c.Quota == (quota.Limits{}) {
		c.Quota = quota.DefaultLimits()
	}
	switch {
	case c.Listen == "":
		return errors.New("keyserver config: listen address is required")
	case c.TLS == nil:
		return errors.New("keyserver config: TLS certificates are required")
	case len(c.Keys) == 0 && c.KeySource == nil:
		return errors.New("keyserver config: an OPRF key is required")
	case c.UsageLog == "":
		return errors.New("keyserver config: usage log path is required")
	case c.Registry == nil:
		return errors.New("keyserver config: an agency registry is required (the policy bundle the hub uses)")
	case c.MaxBatch < 0:
		return fmt.Errorf("keyserver config: max batch must be positive, got %d", c.MaxBatch)
	}
	if err := c.Quota.Validate(); err != nil {
		return fmt.Errorf("keyserver config: %w", err)
	}
	return nil
}

// KeySource supplies OPRF keys: the current key first, then older epochs
// still in their grace period. The file and Vault backends implement it.
type KeySource interface {
	Keys(ctx context.Context) ([]*oprf.PrivateKey, error)
}

// Server is a running key server.
type Server struct {
	cfg     Config
	svc     *Service
	report  *reporter
	rpc     *rpc.Server
	journal *quota.Journal
	lock    *dirlock.Lock
	log     *slog.Logger
}

// RecvMsgSize bounds an Evaluate request of maxBatch elements: 32 bytes and
// a few of framing each, and the key id.
func RecvMsgSize(maxBatch int) int { return 40*maxBatch + 1024 }

// New validates cfg, loads the keys, locks the usage log's directory, opens
// the usage log and listens. Call Serve to serve, or Close to give up.
func New(ctx context.Context, cfg Config) (_ *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.KeySource != nil {
		keys, err := cfg.KeySource.Keys(ctx)
		if err != nil {
			return nil, fmt.Errorf("keyserver: load OPRF keys: %w", err)
		}
		cfg.Keys = keys
	}
	if err := os.MkdirAll(filepath.Dir(cfg.UsageLog), 0o700); err != nil {
		return nil, fmt.Errorf("keyserver: usage log directory: %w", err)
	}
	lock, err := dirlock.Acquire(filepath.Dir(cfg.UsageLog))
	if err != nil {
		return nil, fmt.Errorf("keyserver: %w", err)
	}
	defer func() {
		if err != nil {
			lock.Release()
		}
	}()
	j, err := quota.OpenJournal(cfg.UsageLog)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			j.Close()
		}
	}()
	if n := j.TornBytes(); n > 0 {
		log.Warn("quota journal ended in a torn line, left by a crash; it was cut off (the request it recorded was never answered)",
			"journal", cfg.UsageLog, "bytes", n)
	}
	lim, err := quota.NewLimiter(cfg.Quota, j, nil)
	if err != nil {
		return nil, err
	}
	svc, err := NewService(cfg.Keys, cfg.MaxBatch, lim, cfg.Registry)
	if err != nil {
		return nil, err
	}
	svc.metrics = cfg.Metrics
	// Only agencies may connect: any other identity fails the handshake,
	// before it can send a request to be read into memory.
	rs, err := rpc.New(rpc.ServerOptions{
		Listen: cfg.Listen, TLS: cfg.TLS, Reflection: cfg.Reflection, Logger: log, Metrics: cfg.Metrics,
		MaxRecvMsgSize: RecvMsgSize(cfg.MaxBatch), Kinds: []string{mtls.KindAgency},
	})
	if err != nil {
		return nil, fmt.Errorf("keyserver: %w", err)
	}
	veilmatchv1.RegisterKeyServiceServer(rs.GRPC, svc)
	var rep *reporter
	if cfg.Report != nil {
		if rep, err = newReporter(*cfg.Report, j, svc.Keys, log); err != nil {
			rs.Close()
			return nil, err
		}
	}
	log.Info("key server ready", "addr", rs.Addr().String(), "key_id", cfg.Keys[0].KeyID(),
		"max_batch", cfg.MaxBatch, "quota_rate", cfg.Quota.Rate, "quota_burst", cfg.Quota.Burst, "quota_daily", cfg.Quota.Daily)
	return &Server{cfg: cfg, svc: svc, report: rep, rpc: rs, journal: j, lock: lock, log: log}, nil
}

// Close releases a server that will not be served, without reporting to
// the hub: its listener, usage log and directory.
func (s *Server) Close() error {
	var rerr error
	if s.report != nil {
		rerr = s.report.conn.Close()
	}
	return errors.Join(s.rpc.Close(), rerr, s.journal.Close(), s.lock.Release())
}

// KeySourceHealth is the health-service name that reports whether the key
// source (for example Vault) answered the last refresh. The key server keeps
// serving from memory while it is NOT_SERVING.
const KeySourceHealth = "veilmatch.v1.KeyService/key-source"

// refreshKeys polls the key source until ctx is done.
func (s *Server) refreshKeys(ctx context.Context) {
	t := time.NewTicker(s.cfg.KeyRefresh)
	defer t.Stop()
	current := s.cfg.Keys[0].KeyID()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		keys, err := s.cfg.KeySource.Keys(ctx)
		if err == nil {
			err = s.svc.SetKeys(keys)
		}
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("key source unavailable; serving the keys in memory", "key_id", current, "error", err)
				s.rpc.Health.SetServingStatus(KeySourceHealth, healthpb.HealthCheckResponse_NOT_SERVING)
			}
			continue
		}
		s.rpc.Health.SetServingStatus(KeySourceHealth, healthpb.HealthCheckResponse_SERVING)
		if keys[0].KeyID() != current {
			s.log.Info("OPRF key rotated", "key_id", keys[0].KeyID(), "previous", current, "keys_served", len(keys))
			current = keys[0].KeyID()
		}
	}
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.rpc.Addr() }

// Serve serves until ctx is done, then shuts down gracefully and closes the
// usage log.
func (s *Server) Serve(ctx context.Context) error {
	if s.cfg.KeySource != nil {
		s.rpc.Health.SetServingStatus(KeySourceHealth, healthpb.HealthCheckResponse_SERVING)
		go s.refreshKeys(ctx)
	}
	reported := make(chan struct{})
	if s.report != nil {
		go func() { s.report.run(ctx); close(reported) }()
	} else {
		close(reported)
	}
	err := s.rpc.Serve(ctx)
	<-reported
	return errors.Join(err, s.journal.Close(), s.lock.Release())
}
