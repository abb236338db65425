// Package console is the auditor's console: a local web application that
// verifies the hub's decision log exactly as `veilmatch audit verify` does
// (the pinned key, consistency with the saved state, every record hashed
// to the signed root) and shows what the verified log says — overview and
// charts, a filterable table of decisions with per-record inclusion
// proofs, disclosure requests, one page per agency — and exports what it
// shows as CSV and JSON. It is read-only: it calls the hub's audit service
// over the auditor's mTLS identity and writes nothing but its state file.
// The pages are rendered on the Go side, charts as SVG; they load no
// script, font or style from anywhere but the console, so it works
// offline. The log holds no identifier or token, so neither does the
// console.
package console

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/veilmatch/veilmatch/client/auditor"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/quota"
)

// Config is what the console verifies and where it keeps its state.
type Config struct {
	// Audit is the hub's audit service, dialled with the auditor's
	// identity.
	Audit veilmatchv1.AuditServiceClient
	// Verifier is the hub's pinned checkpoint key; Origin the log's name
	// ("": the key's name).
	Verifier note.Verifier
	Origin   string
	// StatePath keeps the last verified checkpoint, as for audit verify.
	StatePath string
	// QuotaDaily is the key server's daily cap per agency, drawn on the
	// usage chart (0: the key server's default).
	QuotaDaily uint64
	// Now is the clock (nil: time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// Console verifies the log and serves what it says (Handler).
type Console struct {
	cfg Config
	// verifying serializes verifications.
	verifying sync.Mutex

	mu     sync.RWMutex
	view   *view  // the last verified log; nil before the first
	status status // the last verification
}

// view is one verified checkpoint and the log it covers.
type view struct {
	rep        auditor.VerifyReport
	checkpoint string
	verifiedAt time.Time
	x          *index
}

// status is the outcome of the last verification.
type status struct {
	At time.Time
	// OK is set when the log verified; else Failure (the log is not what
	// the key and the state promise, naming the first record at fault) or
	// Err (the verification could not be done) says why.
	OK      bool
	Failure *auditor.Failure
	Err     error
}

// New returns a console; call Verify before serving.
func New(cfg Config) *Console {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.QuotaDaily == 0 {
		cfg.QuotaDaily = uint64(quota.DefaultLimits().Daily)
	}
	return &Console{cfg: cfg}
}

// Verify verifies the hub's latest checkpoint against the saved state,
// reading every record once, and on success makes it the console's view
// and saves the state. On failure the previous view stays (shown under
// the failure's banner) and the state is not touched. The error is the
// verification's: an *auditor.Failure if the log is wrong.
func (c *Console) Verify(ctx context.Context) error {
	c.verifying.Lock()
	defer c.verifying.Unlock()
	v, err := c.verify(ctx)
	st := status{At: c.cfg.Now(), OK: err == nil}
	if err != nil {
		if !errors.As(err, &st.Failure) {
			st.Err = err
		}
		c.cfg.Logger.WarnContext(ctx, "decision log verification failed", "err", err)
	} else {
		c.cfg.Logger.InfoContext(ctx, "decision log verified", "size", v.rep.Size, "consistent", v.rep.Consistent)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.status = st
	if v != nil {
		c.view = v
	}
	return err
}

func (c *Console) verify(ctx context.Context) (*view, error) {
	prev, err := auditor.ReadState(c.cfg.StatePath)
	if err != nil {
		return nil, err
	}
	x := newIndex()
	rep, next, err := auditor.VerifyEach(ctx, c.cfg.Audit, c.cfg.Verifier, c.cfg.Origin, prev, func(_ uint64, r audit.Record) error {
		x.add(r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := auditor.WriteState(c.cfg.StatePath, next); err != nil {
		return nil, fmt.Errorf("save the verified state: %w", err)
	}
	x.finish()
	x.overview(c.cfg.QuotaDaily) // drawn now, not on the first page view
	return &view{rep: rep, checkpoint: next.Checkpoint, verifiedAt: c.cfg.Now(), x: x}, nil
}

// current returns the view and the status.
func (c *Console) current() (*view, status) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.view, c.status
}

// prove checks record i's inclusion proof against the view's checkpoint.
func (c *Console) prove(ctx context.Context, v *view, i uint64) error {
	if i >= uint64(len(v.rep.Leaves)) {
		return fmt.Errorf("record %d is beyond the verified checkpoint of size %d", i, v.rep.Size)
	}
	return auditor.ProveInclusion(ctx, c.cfg.Audit, v.rep.Leaves[i], i, v.rep.Size, v.rep.Root)
}
