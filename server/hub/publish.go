package hub

import (
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/veilmatch/veilmatch/crypto/token"
	"github.com/veilmatch/veilmatch/policy"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/rpc"
	"github.com/veilmatch/veilmatch/server/store"
)

// Publish receives one upload: PublishBegin, batches, PublishCommit. A
// stream that ends before the commit leaves what it sent staged, so the
// upload can resume.
func (s *Service) Publish(stream veilmatchv1.HubService_PublishServer) error {
	p, err := s.beginPublish(stream)
	if err != nil {
		return err
	}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&veilmatchv1.PublishResponse{BatchesReceived: p.received, DuplicateBatches: p.duplicates})
		}
		if err != nil {
			return err
		}
		switch m := msg.GetMsg().(type) {
		case *veilmatchv1.PublishRequest_Batch:
			dup, err := s.putBatch(stream, p.upload, m.Batch, p.received)
			if err != nil {
				return err
			}
			p.received++
			if dup {
				p.duplicates++
			}
		case *veilmatchv1.PublishRequest_Commit:
			return s.commitPublish(stream, p, m.Commit)
		case *veilmatchv1.PublishRequest_Begin:
			return invalid("publish: message %d: PublishBegin may only come first", p.received+2)
		default:
			return invalid("publish: message %d is empty", p.received+2)
		}
	}
}

// publishing is one upload in progress on a Publish stream.
type publishing struct {
	upload               store.Upload
	req                  policy.Request
	auth                 policy.Authorization
	received, duplicates uint64
}

// beginPublish reads PublishBegin, checks the list it describes, asks the
// policy (recording a refusal) and opens or resumes the upload.
func (s *Service) beginPublish(stream veilmatchv1.HubService_PublishServer) (*publishing, error) {
	ctx := stream.Context()
	id, a, err := s.requireAgency(ctx)
	if err != nil {
		return nil, err
	}
	first, err := stream.Recv()
	if errors.Is(err, io.EOF) {
		return nil, invalid("publish: the stream ended before PublishBegin")
	}
	if err != nil {
		return nil, err
	}
	begin := first.GetBegin()
	if begin == nil {
		return nil, invalid("publish: the first message must be PublishBegin")
	}
	meta, err := s.listMeta(id.ID, a, begin.GetList())
	if err != nil {
		return nil, err
	}
	if err := checkUploadID("begin.upload_id", begin.GetUploadId()); err != nil {
		return nil, err
	}
	pl := policyList(meta)
	p := &publishing{
		upload: store.Upload{Owner: id.ID, List: meta.Name, ID: begin.GetUploadId(), Meta: meta},
		req:    policy.Request{Action: audit.ActionPublish, Time: s.now(), Requester: a, List: &pl},
	}
	if p.auth, err = s.authorizeRecorded(ctx, p.req); err != nil {
		return nil, err
	}
	if err := s.store.BeginUpload(ctx, p.upload); err != nil {
		return nil, storeError(ctx, "begin upload of list "+meta.Name, err)
	}
	return p, nil
}

// commitPublish makes the upload the list's committed version, recording
// the publication in the same transaction, once the stream has ended.
func (s *Service) commitPublish(stream veilmatchv1.HubService_PublishServer, p *publishing, c *veilmatchv1.PublishCommit) error {
	ctx := stream.Context()
	up := p.upload
	p.req.Time = s.now()
	rec := s.newRecord(ctx, p.req, p.auth.Revision)
	rec.Rules = p.auth.Rules
	l, err := s.store.CommitUpload(ctx, up.Owner, up.List, up.ID, c.GetTotalBatches(), c.GetTotalEntries(), p.req.Time, rec)
	if err != nil {
		return storeError(ctx, "commit list "+up.List, err)
	}
	s.changes.committed()
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		if err == nil {
			return invalid("publish: message %d: nothing may follow PublishCommit", p.received+2)
		}
		return err
	}
	s.metrics.Published(up.Owner, l.Entries)
	s.metrics.Decided(rec.Action, rec.Result)
	rpc.Logger(ctx).InfoContext(ctx, "list committed", "list", l.Name, "entries", l.Entries, "batches", c.GetTotalBatches(), "duplicate_batches", p.duplicates)
	return stream.SendAndClose(&veilmatchv1.PublishResponse{List: listInfo(l), Committed: true, BatchesReceived: p.received, DuplicateBatches: p.duplicates})
}

// batchEntries validates a batch of a list of kind from the wire and
// returns its entries. A PDQ hash is token.PDQTokens consecutive entries
// with one entry_ref, which the hub's near-duplicate rule counts on.
func batchEntries(kind string, b *veilmatchv1.PublishBatch) ([]store.Entry, error) {
	es := b.GetEntries()
	switch {
	case len(es) == 0:
		return nil, invalid("batch %d: no entries", b.GetSequence())
	case len(es) > MaxBatchEntries:
		return nil, invalid("batch %d: %d entries, more than the maximum of %d", b.GetSequence(), len(es), MaxBatchEntries)
	case kind == token.PDQKind && len(es)%token.PDQTokens != 0:
		return nil, invalid("batch %d: %d entries; a list of kind %s sends %d per hash", b.GetSequence(), len(es), kind, token.PDQTokens)
	}
	entries := make([]store.Entry, len(es))
	for i, e := range es {
		if n := len(e.GetToken()); n != token.Size {
			return nil, invalid("batch %d entries[%d]: token has %d bytes, want %d", b.GetSequence(), i, n, token.Size)
		}
		if kind == token.PDQKind && i%token.PDQTokens != 0 && e.GetEntryRef() != es[i-1].GetEntryRef() {
			return nil, invalid("batch %d entries[%d]: entry_ref %d in the middle of the %d tokens of hash %d", b.GetSequence(), i, e.GetEntryRef(), token.PDQTokens, es[i-1].GetEntryRef())
		}
		entries[i] = store.Entry{Token: e.GetToken(), Ref: e.GetEntryRef()}
	}
	return entries, nil
}

// putBatch validates and stores one batch. n is its position in the stream.
func (s *Service) putBatch(stream veilmatchv1.HubService_PublishServer, up store.Upload, b *veilmatchv1.PublishBatch, n uint64) (bool, error) {
	ctx := stream.Context()
	entries, err := batchEntries(up.Meta.Kind, b)
	if err != nil {
		return false, err
	}
	dup, err := s.store.PutBatch(ctx, up.Owner, up.List, up.ID, b.GetSequence(), entries)
	if errors.Is(err, store.ErrConflict) {
		return false, status.Errorf(codes.FailedPrecondition, "batch %d (message %d) differs from the batch %d already received for this upload; start a new upload", b.GetSequence(), n+2, b.GetSequence())
	}
	if err != nil {
		return false, storeError(ctx, fmt.Sprintf("store batch %d", b.GetSequence()), err)
	}
	return dup, nil
}

// listMeta validates the metadata of a list to publish. Owner and
// jurisdiction come from the caller's identity and the registry.
func (s *Service) listMeta(owner string, a policy.Agency, info *veilmatchv1.ListInfo) (store.List, error) {
	if info == nil {
		return store.List{}, invalid("begin.list: missing")
	}
	if !listNameRE.MatchString(info.GetName()) {
		return store.List{}, invalid("begin.list.name: %q is not a list name (1-128 letters, digits, '.', '_' or '-')", clip(info.GetName()))
	}
	v := s.policy.Vocabulary()
	if err := checkKind(v, "begin.list.kind", info.GetKind()); err != nil {
		return store.List{}, err
	}
	if err := checkCategory(v, "begin.list.category", info.GetCategory()); err != nil {
		return store.List{}, err
	}
	if err := checkKeyID("begin.list.key_id", info.GetKeyId()); err != nil {
		return store.List{}, err
	}
	if s.epochs.retired(info.GetKeyId()) {
		return store.List{}, status.Errorf(codes.FailedPrecondition, "begin.list.key_id: %s is no longer evaluated by the key server; tokenize under its current key", info.GetKeyId())
	}
	if err := checkRoles(v, "begin.list.sharing.victim_consent_roles", info.GetSharing().GetVictimConsentRoles()); err != nil {
		return store.List{}, err
	}
	l := store.List{
		Owner: owner, Name: info.GetName(), Kind: info.GetKind(), Category: info.GetCategory(),
		Jurisdiction: a.Jurisdiction, KeyID: info.GetKeyId(),
		Sharing:       store.Sharing{VictimConsentRoles: info.GetSharing().GetVictimConsentRoles(), NGOVisible: info.GetSharing().GetNgoVisible()},
		Normalization: info.GetNormalization(),
	}
	if ts := info.GetExpiresAt(); ts != nil {
		if err := ts.CheckValid(); err != nil {
			return store.List{}, invalid("begin.list.expires_at: %v", err)
		}
		l.ExpiresAt = ts.AsTime()
		if !l.ExpiresAt.After(s.now()) {
			return store.List{}, invalid("begin.list.expires_at: %s is in the past", l.ExpiresAt.Format("2006-01-02T15:04:05Z07:00"))
		}
	}
	if len(l.Normalization) > maxNormalization {
		return store.List{}, invalid("begin.list.normalization: %d entries, more than %d", len(l.Normalization), maxNormalization)
	}
	for k, val := range l.Normalization {
		if len(k) > maxNormKey || len(val) > maxNormValue {
			return store.List{}, invalid("begin.list.normalization: entry %q is longer than %d bytes (key) or %d (value)", clip(k), maxNormKey, maxNormValue)
		}
	}
	return l, nil
}
