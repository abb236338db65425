package hub

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/veilmatch/veilmatch/crypto/mtls"
	"github.com/veilmatch/veilmatch/crypto/oprf"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/rpc"
	"github.com/veilmatch/veilmatch/server/store"
)

// KeyServerID is the SPIFFE id (server/<id>) the hub accepts usage reports
// from.
const KeyServerID = "keyserver"

// UsageService appends the key server's quota use and refusals to the
// decision log.
type UsageService struct {
	veilmatchv1.UnimplementedUsageServiceServer
	log    store.DecisionLog
	epochs *epochs
}

// NewUsageService returns the usage service over the decision log; the key
// ids the key server reports retire older epochs in hub.
func NewUsageService(log store.DecisionLog, hub *Service) *UsageService {
	return &UsageService{log: log, epochs: hub.epochs}
}

// ReportKeyUsage implements veilmatchv1.UsageServiceServer.
func (u *UsageService) ReportKeyUsage(ctx context.Context, req *veilmatchv1.ReportKeyUsageRequest) (*veilmatchv1.ReportKeyUsageResponse, error) {
	caller, err := rpc.RequireKind(ctx, mtls.KindServer)
	if err != nil {
		return nil, err
	}
	if caller.ID != KeyServerID {
		return nil, status.Errorf(codes.PermissionDenied, "only the key server reports usage, not %s", caller)
	}
	for i, id := range req.GetKeyIds() {
		if !oprf.ValidKeyID(id) {
			return nil, invalid("key_ids[%d]: %q is not a key id", i, id)
		}
		if slices.Contains(req.GetKeyIds()[:i], id) {
			return nil, invalid("key_ids[%d]: %q is listed twice", i, id)
		}
	}
	var recs []*audit.Record
	for i, d := range req.GetUsage() {
		if d.GetAgency() == "" || len(d.GetDay()) != len("2006-01-02") {
			return nil, invalid("usage[%d]: agency and day (YYYY-MM-DD) are required", i)
		}
		recs = append(recs, &audit.Record{
			Time: time.Now().UTC(), DecisionID: newDecisionID(), Caller: caller.String(), Agency: d.GetAgency(),
			Action: "quota_usage", Result: audit.ResultAllowed,
			Details: map[string]string{
				"day": d.GetDay(), "evaluations": strconv.FormatUint(d.GetEvaluations(), 10),
				"requests": strconv.FormatUint(d.GetRequests(), 10), "refusals": strconv.FormatUint(d.GetRefusals(), 10),
			},
		})
	}
	for i, f := range req.GetRefusals() {
		if f.GetAgency() == "" || f.GetTime() == nil {
			return nil, invalid("refusals[%d]: agency and time are required", i)
		}
		recs = append(recs, &audit.Record{
			Time: f.GetTime().AsTime(), DecisionID: newDecisionID(), Caller: caller.String(), Agency: f.GetAgency(),
			Action: "quota_refusal", Result: audit.ResultRefused, Reason: f.GetReason(),
			Details: map[string]string{"elements": strconv.FormatUint(f.GetElements(), 10)},
		})
	}
	// Everything is valid: store the served key ids (with their record if
	// they changed; storing them again changes nothing), then the usage
	// records.
	n := uint64(0)
	if len(req.GetKeyIds()) > 0 {
		rec := &audit.Record{
			Time: time.Now().UTC(), DecisionID: newDecisionID(), Caller: caller.String(), Agency: caller.ID,
			Action: "key_epochs", Result: audit.ResultAllowed,
			Reason:  "lists made under other key ids no longer match",
			Details: map[string]string{"key_ids": strings.Join(req.GetKeyIds(), ","), "current": req.GetKeyIds()[0]},
		}
		changed, err := u.epochs.set(ctx, req.GetKeyIds(), rec)
		if err != nil {
			return nil, rpc.Unavailable(ctx, "key epochs", err)
		}
		if changed {
			n++
		}
	}
	// One transaction: a report retried after a failure is never half
	// logged twice.
	if err := u.log.AppendDecisions(ctx, recs); err != nil {
		return nil, rpc.Unavailable(ctx, "decision log", err)
	}
	return &veilmatchv1.ReportKeyUsageResponse{Records: n + uint64(len(recs))}, nil
}
