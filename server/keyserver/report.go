package keyserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/veilmatch/veilmatch/crypto/mtls"
	"github.com/veilmatch/veilmatch/crypto/oprf"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
	"github.com/veilmatch/veilmatch/server/quota"
)

// ReportConfig sends the quota journal to the hub's decision log.
type ReportConfig struct {
	// Hub is the hub's address.
	Hub string
	// TLS is the key server's mTLS client configuration.
	TLS *tls.Config
	// CursorFile remembers how much of the journal the hub has received.
	CursorFile string
	// Every is the reporting interval (default 1 minute).
	Every time.Duration
}

// reporter delivers the journal to the hub, from the cursor on.
type reporter struct {
	cfg     ReportConfig
	journal *quota.Journal
	hub     veilmatchv1.UsageServiceClient
	conn    *grpc.ClientConn
	log     *slog.Logger
	keys    func() []*oprf.PrivateKey
	sent    []string // key ids of the last delivered report
}

func newReporter(cfg ReportConfig, j *quota.Journal, keys func() []*oprf.PrivateKey, log *slog.Logger) (*reporter, error) {
	if cfg.Hub == "" || cfg.TLS == nil || cfg.CursorFile == "" {
		return nil, errors.New("keyserver config: usage reporting needs the hub address, TLS and a cursor file")
	}
	if cfg.Every <= 0 {
		cfg.Every = time.Minute
	}
	tlsCfg, err := mtls.ForServer(cfg.TLS, "hub")
	if err != nil {
		return nil, fmt.Errorf("keyserver: usage reports: %w", err)
	}
	conn, err := grpc.NewClient(cfg.Hub, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		return nil, fmt.Errorf("keyserver: usage reports to %s: %w", cfg.Hub, err)
	}
	return &reporter{cfg: cfg, journal: j, hub: veilmatchv1.NewUsageServiceClient(conn), conn: conn, log: log, keys: keys}, nil
}

// run reports at once, so the hub learns the keys served, then every
// interval until ctx is done, then makes a last attempt.
func (r *reporter) run(ctx context.Context) {
	defer r.conn.Close()
	t := time.NewTicker(r.cfg.Every)
	defer t.Stop()
	r.report(ctx)
	for {
		select {
		case <-ctx.Done():
			last, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			r.report(last)
			cancel()
			return
		case <-t.C:
			r.report(ctx)
		}
	}
}

// report sends what the journal holds past the cursor, and the key ids
// served when they changed; on failure the cursor stays, so nothing is
// lost, only delayed.
func (r *reporter) report(ctx context.Context) {
	cursor, err := quota.LoadCursor(r.cfg.CursorFile)
	if err != nil {
		r.log.Error("usage report", "error", err)
		return
	}
	rep, err := r.journal.Since(cursor)
	if err != nil {
		r.log.Error("usage report", "error", err)
		return
	}
	keys := r.keys()
	ids := make([]string, len(keys))
	req := &veilmatchv1.ReportKeyUsageRequest{}
	for i, k := range keys {
		ids[i] = k.KeyID()
		req.Keys = append(req.Keys, &veilmatchv1.ServedKey{
			KeyId: k.KeyID(), PublicKey: k.Public().Bytes, Endorsements: oprf.EndorsementsProto(k.Endorsements()),
		})
	}
	if rep.Empty() && slices.Equal(ids, r.sent) {
		return
	}
	for _, u := range rep.Usage {
		req.Usage = append(req.Usage, &veilmatchv1.DailyKeyUsage{Day: u.Day, Agency: u.Agency,
			Evaluations: uint64(u.Evaluations), Requests: uint64(u.Requests), Refusals: uint64(u.Refusals)})
	}
	for _, f := range rep.Refusals {
		req.Refusals = append(req.Refusals, &veilmatchv1.QuotaRefusal{Time: timestamppb.New(f.Time), Agency: f.Agency,
			Elements: uint64(f.Elements), Reason: f.Reason})
	}
	if _, err := r.hub.ReportKeyUsage(ctx, req); err != nil {
		r.log.Warn("usage report to the hub failed; will retry", "hub", r.cfg.Hub, "error", err)
		return
	}
	r.sent = ids
	if err := quota.SaveCursor(r.cfg.CursorFile, rep.End); err != nil {
		r.log.Error("usage report", "error", err)
	}
}
