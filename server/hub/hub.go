// Package hub implements veilmatch's HubService: it stores the tokens
// agencies publish, joins them across lists, and answers every query at the
// disclosure level the policy grants per counterparty list. It never sees a
// raw identifier.
package hub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/veilmatch/veilmatch/crypto/oprf"
	"github.com/veilmatch/veilmatch/crypto/token"
	"github.com/veilmatch/veilmatch/policy"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/metrics"
	"github.com/veilmatch/veilmatch/server/rpc"
	"github.com/veilmatch/veilmatch/server/store"
)

// Defaults of ServiceOptions.
const (
	// DefaultCheckBudget is the entries an agency may check per UTC day: the
	// key server's default daily quota, so that re-checking tokens an agency
	// already holds costs what making them did.
	DefaultCheckBudget = 100_000
	// DefaultMatchRefTTL is how long a match reference may be turned into a
	// disclosure request.
	DefaultMatchRefTTL = 7 * 24 * time.Hour
)

// ServiceOptions tune a Service; zero fields take the defaults.
type ServiceOptions struct {
	// Now gives the time (default time.Now).
	Now func() time.Time
	// CheckBudget is the entries each agency may check per UTC day.
	CheckBudget uint64
	// MatchRefTTL is how long a match reference stays valid.
	MatchRefTTL time.Duration
	// WatchPoll is how often Watch looks for new alerts (default
	// DefaultWatchPoll).
	WatchPoll time.Duration
	// TrustedKeys are OPRF public keys the operator trusts: the hub accepts
	// a key server report of any of them without an endorsement.
	TrustedKeys []oprf.PublicKey
	// Metrics, if set, counts decisions and matches.
	Metrics *metrics.Metrics
}

// Service implements veilmatchv1.HubServiceServer.
type Service struct {
	veilmatchv1.UnimplementedHubServiceServer

	store   store.Store
	policy  *policy.Engine
	refs    *refSealer
	now     func() time.Time
	metrics *metrics.Metrics
	epochs  *epochs
	budget  uint64
	refTTL  time.Duration
	// watchPoll is how often a Watch stream looks for new alerts.
	watchPoll time.Duration
	changes   *changes
}

// NewService returns a hub service over st, deciding with pol. refKey (32
// bytes) seals match references.
func NewService(st store.Store, pol *policy.Engine, refKey []byte, o ServiceOptions) (*Service, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CheckBudget == 0 {
		o.CheckBudget = DefaultCheckBudget
	}
	if o.MatchRefTTL == 0 {
		o.MatchRefTTL = DefaultMatchRefTTL
	}
	if o.WatchPoll == 0 {
		o.WatchPoll = DefaultWatchPoll
	}
	refs, err := newRefSealer(refKey)
	if err != nil {
		return nil, err
	}
	return &Service{
		store: st, policy: pol, refs: refs, now: o.Now, metrics: o.Metrics,
		epochs: &epochs{store: st, configured: o.TrustedKeys}, budget: o.CheckBudget, refTTL: o.MatchRefTTL, watchPoll: o.WatchPoll,
		changes: newChanges(),
	}, nil
}

func storeError(ctx context.Context, op string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return status.Errorf(codes.NotFound, "%s: not found", op)
	case errors.Is(err, store.ErrConflict):
		return status.Errorf(codes.FailedPrecondition, "%s: %v", op, err)
	case errors.Is(err, store.ErrIncomplete):
		return status.Errorf(codes.FailedPrecondition, "%s: %v", op, err)
	case errors.Is(err, store.ErrInvalid):
		return status.Errorf(codes.InvalidArgument, "%s: %v", op, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	return rpc.Unavailable(ctx, op, err)
}

func policyList(l store.List) policy.List {
	return policy.List{
		Name: l.Name, Owner: l.Owner, Kind: l.Kind, Category: l.Category, Jurisdiction: l.Jurisdiction,
		ExpiresAt: l.ExpiresAt, VictimConsentRoles: l.Sharing.VictimConsentRoles, NGOVisible: l.Sharing.NGOVisible,
	}
}

// entries is the number of entries n stored tokens of kind make: a PDQ
// hash is stored as token.PDQTokens tokens.
func entries(kind string, n uint64) uint64 {
	if kind == token.PDQKind {
		return n / token.PDQTokens
	}
	return n
}

func listInfo(l store.List) *veilmatchv1.ListInfo {
	info := &veilmatchv1.ListInfo{
		Name: l.Name, Owner: l.Owner, Kind: l.Kind, Category: l.Category, Jurisdiction: l.Jurisdiction, KeyId: l.KeyID,
		Sharing:       &veilmatchv1.Sharing{VictimConsentRoles: l.Sharing.VictimConsentRoles, NgoVisible: l.Sharing.NGOVisible},
		Entries:       entries(l.Kind, l.Entries),
		Normalization: l.Normalization,
		UploadId:      l.UploadID,
	}
	if !l.ExpiresAt.IsZero() {
		info.ExpiresAt = timestamppb.New(l.ExpiresAt)
	}
	if !l.CommittedAt.IsZero() {
		info.CommittedAt = timestamppb.New(l.CommittedAt)
	}
	return info
}

func newDecisionID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// GetVocabulary returns the policy's closed vocabulary, with the purposes
// of the caller's role.
func (s *Service) GetVocabulary(ctx context.Context, _ *veilmatchv1.GetVocabularyRequest) (*veilmatchv1.GetVocabularyResponse, error) {
	_, a, err := s.requireAgency(ctx)
	if err != nil {
		return nil, err
	}
	v := s.policy.Vocabulary()
	return &veilmatchv1.GetVocabularyResponse{
		Kinds: v.Kinds, Categories: v.Categories, Roles: v.Roles, Purposes: v.Purposes(a.Role), KnownPurposes: v.KnownPurposes(),
		PolicyRevision: s.policy.Revision(),
	}, nil
}

// ListLists returns the caller's committed lists.
func (s *Service) ListLists(ctx context.Context, _ *veilmatchv1.ListListsRequest) (*veilmatchv1.ListListsResponse, error) {
	id, _, err := s.requireAgency(ctx)
	if err != nil {
		return nil, err
	}
	lists, err := s.store.Lists(ctx, id.ID)
	if err != nil {
		return nil, storeError(ctx, "list lists", err)
	}
	resp := &veilmatchv1.ListListsResponse{}
	for _, l := range lists {
		resp.Lists = append(resp.Lists, listInfo(l))
	}
	return resp, nil
}

// DeleteList erases one of the caller's lists and its tokens, recording
// the erasure in the decision log in the same transaction.
func (s *Service) DeleteList(ctx context.Context, req *veilmatchv1.DeleteListRequest) (*veilmatchv1.DeleteListResponse, error) {
	id, a, name, err := s.requireOwnList(ctx, req.GetList())
	if err != nil {
		return nil, err
	}
	r := policy.Request{Action: audit.ActionDelete, Time: s.now(), Requester: a, List: &policy.List{Name: name, Owner: id.ID}}
	az, err := s.authorizeRecorded(ctx, r)
	if err != nil {
		return nil, err
	}
	rec := s.newRecord(ctx, r, az.Revision)
	rec.Rules = az.Rules
	kind := ""
	if l, err := s.store.GetList(ctx, id.ID, name); err == nil {
		kind = l.Kind // to count a pdq list's entries, not its tokens
	}
	n, err := s.store.DeleteList(ctx, id.ID, name, rec)
	if errors.Is(err, store.ErrNotFound) {
		return nil, status.Errorf(codes.NotFound, "list %q not found among %s's lists", name, id.ID)
	}
	if err != nil {
		return nil, storeError(ctx, "delete list "+name, err)
	}
	rpc.Logger(ctx).InfoContext(ctx, "list deleted", "list", name, "entries", n, "decision_id", rec.DecisionID)
	return &veilmatchv1.DeleteListResponse{DeletedEntries: entries(kind, n)}, nil
}

// GetUploadStatus reports the batches held for one of the caller's uploads.
func (s *Service) GetUploadStatus(ctx context.Context, req *veilmatchv1.GetUploadStatusRequest) (*veilmatchv1.GetUploadStatusResponse, error) {
	id, _, name, err := s.requireOwnList(ctx, req.GetList())
	if err != nil {
		return nil, err
	}
	if err := checkUploadID("upload_id", req.GetUploadId()); err != nil {
		return nil, err
	}
	seqs, committed, err := s.store.UploadStatus(ctx, id.ID, name, req.GetUploadId())
	if errors.Is(err, store.ErrNotFound) {
		return &veilmatchv1.GetUploadStatusResponse{}, nil
	}
	if err != nil {
		return nil, storeError(ctx, "upload status", err)
	}
	return &veilmatchv1.GetUploadStatusResponse{Sequences: seqs, Committed: committed}, nil
}

// ownList returns the committed version of the caller's list name, refusing
// one made under a retired key epoch.
func (s *Service) ownList(ctx context.Context, owner, name string) (store.List, error) {
	own, err := s.store.GetList(ctx, owner, name)
	if errors.Is(err, store.ErrNotFound) {
		return own, status.Errorf(codes.NotFound, "list %q not found among %s's lists", name, owner)
	}
	if err != nil {
		return own, storeError(ctx, "get list", err)
	}
	if s.epochs.retired(own.KeyID) {
		return own, status.Errorf(codes.FailedPrecondition, "list %q was made under key %s, which the key server no longer evaluates; publish it again", name, own.KeyID)
	}
	return own, nil
}
