// Package keyserver implements veilmatch's KeyService: it evaluates the
// VOPRF on blinded elements for authenticated agencies, under per-agency
// quotas, and never sees an identifier or a token.
package keyserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/veilmatch/veilmatch/crypto/mtls"
	"github.com/veilmatch/veilmatch/crypto/oprf"
	"github.com/veilmatch/veilmatch/policy"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
	"github.com/veilmatch/veilmatch/server/metrics"
	"github.com/veilmatch/veilmatch/server/quota"
	"github.com/veilmatch/veilmatch/server/rpc"
)

// DefaultMaxBatch is the largest batch Evaluate accepts by default.
const DefaultMaxBatch = 4096

// Service implements veilmatchv1.KeyServiceServer.
type Service struct {
	veilmatchv1.UnimplementedKeyServiceServer

	ring     atomic.Pointer[keyRing]
	maxBatch int
	limiter  *quota.Limiter
	registry Registry
	metrics  *metrics.Metrics
}

// Registry tells the key server which agencies exist: the hub's agency
// registry (the policy's data document), so that a certificate for an
// agency id nobody registered gets no evaluations.
type Registry interface {
	Agency(id string) (policy.Agency, bool)
}

// keyRing is the set of keys served: the current one and older epochs that
// may still be evaluated by id.
type keyRing struct {
	keys    []*oprf.PrivateKey // current first
	current *oprf.Evaluator
	byID    map[string]*oprf.Evaluator
}

func newKeyRing(keys []*oprf.PrivateKey) (*keyRing, error) {
	if len(keys) == 0 {
		return nil, errors.New("keyserver: no OPRF key")
	}
	r := &keyRing{keys: slices.Clone(keys), byID: map[string]*oprf.Evaluator{}}
	for _, k := range keys {
		if _, dup := r.byID[k.KeyID()]; dup {
			return nil, fmt.Errorf("keyserver: duplicate key id %q", k.KeyID())
		}
		r.byID[k.KeyID()] = oprf.NewEvaluator(k)
	}
	r.current = r.byID[keys[0].KeyID()]
	return r, nil
}

// NewService serves keys[0] as the current key; further keys can still be
// evaluated by id (a previous epoch during its grace period). It evaluates
// only for the agencies of reg.
func NewService(keys []*oprf.PrivateKey, maxBatch int, limiter *quota.Limiter, reg Registry) (*Service, error) {
	ring, err := newKeyRing(keys)
	if err != nil {
		return nil, err
	}
	if maxBatch <= 0 {
		return nil, fmt.Errorf("keyserver: max batch must be positive, got %d", maxBatch)
	}
	if limiter == nil {
		return nil, errors.New("keyserver: a quota limiter is required")
	}
	if reg == nil {
		return nil, errors.New("keyserver: an agency registry is required")
	}
	if b := limiter.Limits().Burst; b < maxBatch {
		return nil, fmt.Errorf("keyserver: quota burst %d is below the max batch %d, so full batches could never pass", b, maxBatch)
	}
	s := &Service{maxBatch: maxBatch, limiter: limiter, registry: reg}
	s.ring.Store(ring)
	return s, nil
}

// Keys returns the keys served, current first.
func (s *Service) Keys() []*oprf.PrivateKey {
	return slices.Clone(s.ring.Load().keys)
}

// SetKeys replaces the served keys atomically: keys[0] becomes current, the
// others stay available by id. In-flight evaluations finish on the old set.
func (s *Service) SetKeys(keys []*oprf.PrivateKey) error {
	ring, err := newKeyRing(keys)
	if err != nil {
		return err
	}
	s.ring.Store(ring)
	return nil
}

// GetPublicKey returns the current public key, with the endorsements by
// which earlier keys vouch for it, and for one share of a threshold key the
// key set and the share's index.
func (s *Service) GetPublicKey(ctx context.Context, _ *veilmatchv1.GetPublicKeyRequest) (*veilmatchv1.GetPublicKeyResponse, error) {
	k := s.ring.Load().keys[0]
	pub := k.Public()
	resp := &veilmatchv1.GetPublicKeyResponse{
		KeyId: pub.KeyID, Suite: oprf.SuiteID, PublicKey: pub.Bytes, Endorsements: oprf.EndorsementsProto(k.Endorsements()),
	}
	if index, set, ok := k.Share(); ok {
		resp.KeySet, resp.ShareIndex = oprf.KeySetProto(set), uint32(index)
	}
	return resp, nil
}

// Evaluate evaluates one batch for an agency.
func (s *Service) Evaluate(ctx context.Context, req *veilmatchv1.EvaluateRequest) (*veilmatchv1.EvaluateResponse, error) {
	caller, err := rpc.RequireKind(ctx, mtls.KindAgency)
	if err != nil {
		return nil, err
	}
	if _, ok := s.registry.Agency(caller.ID); !ok {
		return nil, status.Errorf(codes.PermissionDenied, "%s is not in the agency registry; ask the operators to register the agency", caller)
	}
	n := len(req.GetBlindedElements())
	switch {
	case n == 0:
		return nil, status.Error(codes.InvalidArgument, "blinded_elements is empty")
	case n > s.maxBatch:
		return nil, status.Errorf(codes.InvalidArgument, "blinded_elements has %d elements, more than the maximum batch of %d; split it", n, s.maxBatch)
	}
	ring := s.ring.Load()
	ev := ring.current
	if id := req.GetKeyId(); id != "" {
		if ev = ring.byID[id]; ev == nil {
			return nil, status.Errorf(codes.InvalidArgument, "key_id %q is not served here (current key is %q)", id, ring.current.KeyID())
		}
	}
	batch, err := oprf.DecodeBatch(req.GetBlindedElements())
	if err != nil {
		var ee *oprf.ElementError
		if errors.As(err, &ee) {
			return nil, status.Errorf(codes.InvalidArgument, "blinded_elements[%d]: %v", ee.Index, ee.Err)
		}
		return nil, status.Errorf(codes.InvalidArgument, "blinded_elements: %v", err)
	}
	if err := s.limiter.Take(caller.ID, n); err != nil {
		var ee *quota.ExceededError
		if errors.As(err, &ee) {
			rpc.Logger(ctx).WarnContext(ctx, "quota refused", "agency", caller.ID, "elements", n, "reason", ee.Reason)
			s.metrics.Refused(caller.ID)
			st, _ := status.New(codes.ResourceExhausted, ee.Error()).WithDetails(
				&errdetails.RetryInfo{RetryDelay: durationpb.New(ee.RetryAfter)},
				&errdetails.QuotaFailure{Violations: []*errdetails.QuotaFailure_Violation{{Subject: "agency:" + caller.ID, Description: ee.Reason}}},
			)
			return nil, st.Err()
		}
		return nil, rpc.Unavailable(ctx, "quota journal", err)
	}
	evaluated, proof, err := ev.Evaluate(batch)
	if err != nil {
		return nil, rpc.Internal(ctx, "evaluate", err)
	}
	s.metrics.Evaluated(caller.ID, n)
	rpc.Logger(ctx).DebugContext(ctx, "evaluated", slog.Int("elements", n), slog.String("key_id", ev.KeyID()))
	return &veilmatchv1.EvaluateResponse{KeyId: ev.KeyID(), EvaluatedElements: evaluated, Proof: proof}, nil
}
