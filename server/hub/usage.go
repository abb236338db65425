package hub

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
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
// from: keyserver, or keyserver-<name> for each server of a threshold key.
const KeyServerID = "keyserver"

// maxRefusalReason bounds the reason of a reported quota refusal.
const maxRefusalReason = 256

// UsageService appends the key server's quota use and refusals to the
// decision log.
type UsageService struct {
	veilmatchv1.UnimplementedUsageServiceServer
	log    store.DecisionLog
	epochs *epochs

	mu      sync.Mutex
	refused string // the last refused report's reason, so a retry is logged once
}

// NewUsageService returns the usage service over the decision log; the keys
// the key server reports retire older epochs in hub.
func NewUsageService(log store.DecisionLog, hub *Service) *UsageService {
	return &UsageService{log: log, epochs: hub.epochs}
}

// ReportKeyUsage implements veilmatchv1.UsageServiceServer. A report is
// taken whole or not at all: a bad field, or a key the hub does not trust,
// refuses all of it, and the key server keeps it to report again.
func (u *UsageService) ReportKeyUsage(ctx context.Context, req *veilmatchv1.ReportKeyUsageRequest) (*veilmatchv1.ReportKeyUsageResponse, error) {
	caller, err := rpc.RequireKind(ctx, mtls.KindServer)
	if err != nil {
		return nil, err
	}
	if !mtls.InFamily(caller.ID, KeyServerID) {
		return nil, status.Errorf(codes.PermissionDenied, "only the key server reports usage, not %s", caller)
	}
	served, err := servedKeys(req.GetKeys())
	if err != nil {
		return nil, err
	}
	var recs []*audit.Record
	for i, d := range req.GetUsage() {
		if !agencyRE.MatchString(d.GetAgency()) || len(d.GetDay()) != len(time.DateOnly) {
			return nil, invalid("usage[%d]: agency and day (YYYY-MM-DD) are required", i)
		}
		if _, err := time.Parse(time.DateOnly, d.GetDay()); err != nil {
			return nil, invalid("usage[%d]: day %q is not a date (YYYY-MM-DD)", i, d.GetDay())
		}
		recs = append(recs, &audit.Record{
			Time: time.Now().UTC(), DecisionID: newDecisionID(), Caller: caller.String(), Agency: d.GetAgency(),
			Action: audit.ActionQuotaUsage, Result: audit.ResultAllowed,
			Details: map[string]string{
				"day": d.GetDay(), "evaluations": strconv.FormatUint(d.GetEvaluations(), 10),
				"requests": strconv.FormatUint(d.GetRequests(), 10), "refusals": strconv.FormatUint(d.GetRefusals(), 10),
			},
		})
	}
	for i, f := range req.GetRefusals() {
		if !agencyRE.MatchString(f.GetAgency()) || f.GetTime().CheckValid() != nil {
			return nil, invalid("refusals[%d]: agency and time are required", i)
		}
		if len(f.GetReason()) > maxRefusalReason {
			return nil, invalid("refusals[%d].reason: %d bytes, more than %d", i, len(f.GetReason()), maxRefusalReason)
		}
		recs = append(recs, &audit.Record{
			Time: f.GetTime().AsTime(), DecisionID: newDecisionID(), Caller: caller.String(), Agency: f.GetAgency(),
			Action: audit.ActionQuotaRefusal, Result: audit.ResultRefused, Reason: f.GetReason(),
			Details: map[string]string{"elements": strconv.FormatUint(f.GetElements(), 10)},
		})
	}
	// Everything is valid: store the served keys (with their record if
	// they changed; storing them again changes nothing), then the usage
	// records.
	n := uint64(0)
	if len(served) > 0 {
		rec := &audit.Record{
			Time: time.Now().UTC(), DecisionID: newDecisionID(), Caller: caller.String(), Agency: caller.ID,
			Action: audit.ActionKeyEpochs, Result: audit.ResultAllowed, Reason: "lists made under other key ids no longer match",
		}
		changed, err := u.epochs.set(ctx, served, rec)
		if errors.Is(err, errUntrustedKey) {
			return nil, u.refuse(ctx, caller, rec, err)
		}
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

// refuse records a report refused for an untrusted key (once for a report
// retried unchanged) and returns FAILED_PRECONDITION with what to do.
func (u *UsageService) refuse(ctx context.Context, caller mtls.Identity, rec *audit.Record, cause error) error {
	rec.Result, rec.Reason = audit.ResultRefused, cause.Error()+"; no list was retired"
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.refused != rec.Reason {
		if err := u.log.AppendDecisions(ctx, []*audit.Record{rec}); err != nil {
			return rpc.Unavailable(ctx, "decision log", err)
		}
		u.refused = rec.Reason
		rpc.Logger(ctx).WarnContext(ctx, "key server report refused", "caller", caller.String(), "reason", rec.Reason, "decision_id", rec.DecisionID)
	}
	return status.Errorf(codes.FailedPrecondition, "%s. If the rotation is genuine, endorse the new key with the previous one "+
		"(veilmatch keyserver init-key --endorse-with OLD.key) or have the hub's operator trust it (veilmatch hub --trust-key ID=HEX)", rec.Reason)
}

// servedKeys validates the keys of a report: at least one, valid ids, no
// id twice, each a valid public key.
func servedKeys(keys []*veilmatchv1.ServedKey) ([]servedKey, error) {
	out := make([]servedKey, len(keys))
	var ids []string
	for i, k := range keys {
		if err := checkKeyID("keys["+strconv.Itoa(i)+"].key_id", k.GetKeyId()); err != nil {
			return nil, err
		}
		if slices.Contains(ids, k.GetKeyId()) {
			return nil, invalid("keys[%d]: %q is listed twice", i, k.GetKeyId())
		}
		if len(k.GetPublicKey()) != oprf.ElementSize {
			return nil, invalid("keys[%d].public_key: %d bytes, want %d", i, len(k.GetPublicKey()), oprf.ElementSize)
		}
		if len(k.GetEndorsements()) > oprf.MaxChain {
			return nil, invalid("keys[%d].endorsements: %d links, more than %d", i, len(k.GetEndorsements()), oprf.MaxChain)
		}
		ids = append(ids, k.GetKeyId())
		out[i] = servedKey{pub: oprf.PublicKey{KeyID: k.GetKeyId(), Bytes: k.GetPublicKey()}, chain: oprf.EndorsementsFromProto(k.GetEndorsements())}
	}
	return out, nil
}
