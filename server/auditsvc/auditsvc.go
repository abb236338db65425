// Package auditsvc serves the hub's decision log to auditors (the gRPC
// AuditService): decisions, signed checkpoints, and inclusion and
// consistency proofs. The auditor's side, which verifies what it serves,
// is package client/auditor.
//
// Only callers with an auditor identity may use the service; everyone else
// gets PERMISSION_DENIED.
package auditsvc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/veilmatch/veilmatch/crypto/mtls"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/rpc"
	"github.com/veilmatch/veilmatch/server/store"
)

// responseOverhead bounds the bytes a ListDecisionsResponse or
// GetDecisionResponse adds to its decisions' entries: next_index (tag and
// a 10-byte varint) and end_of_log.
const responseOverhead = 16

// maxScan and maxScanBytes bound how many records, and how many bytes of
// them, one filtered ListDecisions call reads, so that a filter matching
// nothing still answers promptly; the caller resumes from next_index.
const (
	maxScan      = 10 * audit.MaxPageSize
	maxScanBytes = 16 * audit.MaxPageBytes
)

// readRecords asks the store for groups of records that start at one and
// grow to readGroup, but no more than readBytes bytes of the largest
// record seen, and stops after readBytes bytes, so that it seldom holds
// more than one large record: only a run of them that follows smaller
// ones in a group. (The store does not tell sizes before it returns the
// records.)
const (
	readGroup = 32
	readBytes = audit.MaxPageBytes
)

// errorDomain is the google.rpc.ErrorInfo domain of the service's errors.
var errorDomain = veilmatchv1.AuditService_ServiceDesc.ServiceName

// Service implements veilmatchv1.AuditServiceServer over a decision log.
type Service struct {
	veilmatchv1.UnimplementedAuditServiceServer

	log         store.DecisionLog
	signer      note.Signer
	origin      string
	verifierKey string
	now         func() time.Time

	// signMu serializes checkpoint signing so that concurrent calls do not
	// sign the same tree head twice.
	signMu sync.Mutex
}

// New returns the audit service over log. signer signs checkpoints for the
// log named origin (nil serves only the checkpoints already stored);
// verifierKey is the matching note verifier key, shown to auditors; now
// gives the time (nil means time.Now).
func New(log store.DecisionLog, signer note.Signer, origin string, verifierKey string, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{log: log, signer: signer, origin: origin, verifierKey: verifierKey, now: now}
}

// requireAuditor admits auditors only.
func requireAuditor(ctx context.Context) error {
	_, err := rpc.RequireKind(ctx, mtls.KindAuditor)
	return err
}

// ListDecisions implements veilmatchv1.AuditServiceServer. A page ends at
// page_size decisions or at audit.MaxPageBytes, whichever comes first, but holds
// at least one decision; next_index is the first index not scanned. A
// decoded decision too large for a response with its decoded fields (it
// carries its record's fields twice) is sent with only index and record
// set, as in a raw listing; a record too large for any response is
// reported as RESOURCE_EXHAUSTED with reason audit.ReasonRecordTooLarge, once the
// records before it have been served.
func (s *Service) ListDecisions(ctx context.Context, req *veilmatchv1.ListDecisionsRequest) (*veilmatchv1.ListDecisionsResponse, error) {
	if err := requireAuditor(ctx); err != nil {
		return nil, err
	}
	f, err := newFilter(req)
	if err != nil {
		return nil, err
	}
	pageSize := int(req.GetPageSize())
	switch {
	case pageSize == 0:
		pageSize = audit.DefaultPageSize
	case pageSize > audit.MaxPageSize:
		pageSize = audit.MaxPageSize
	}
	start := req.GetStartIndex()
	if req.GetRaw() {
		if f.active() {
			return nil, status.Error(codes.InvalidArgument, "raw cannot be combined with filters")
		}
		recs, end, size, err := s.readRecords(ctx, start, pageSize)
		if err != nil {
			return nil, err
		}
		resp := &veilmatchv1.ListDecisionsResponse{NextIndex: start, EndOfLog: end}
		p := page{resp: resp}
		for i, data := range recs {
			idx := start + uint64(i)
			if !p.add(&veilmatchv1.Decision{Index: idx, Record: data}) {
				if len(resp.Decisions) == 0 {
					return nil, recordTooLarge(ctx, idx, len(data), size)
				}
				// The page is full: the next one starts at idx.
				resp.EndOfLog = false
				break
			}
			resp.NextIndex = idx + 1
		}
		return resp, nil
	}

	resp := &veilmatchv1.ListDecisionsResponse{NextIndex: start}
	p := page{resp: resp}
	for scanned, scannedBytes := 0, 0; scanned < maxScan && scannedBytes < maxScanBytes; {
		recs, end, size, err := s.readRecords(ctx, resp.NextIndex, audit.MaxPageSize)
		if err != nil {
			if resp.NextIndex > start {
				// Serve what precedes the failure; the next call reports it.
				return resp, nil
			}
			return nil, err
		}
		for i, data := range recs {
			idx := resp.NextIndex + uint64(i)
			if p.full(len(data)) {
				// Decoded, the record would not fit, whether it matches
				// or not: spare decoding it twice.
				resp.NextIndex, resp.EndOfLog = idx, false
				return resp, nil
			}
			rec, err := decode(ctx, idx, data)
			if err != nil {
				return nil, err
			}
			if !f.match(rec) {
				continue
			}
			if !p.add(toDecision(idx, data, rec)) {
				if idx == start {
					return nil, recordTooLarge(ctx, idx, len(data), size)
				}
				// The page is full, or idx is a record too large to send
				// that the next call reports: the next page starts at idx.
				resp.NextIndex, resp.EndOfLog = idx, false
				return resp, nil
			}
			if len(resp.Decisions) == pageSize {
				resp.NextIndex = idx + 1
				resp.EndOfLog = end && i == len(recs)-1
				return resp, nil
			}
		}
		resp.NextIndex += uint64(len(recs))
		scanned += len(recs)
		for _, data := range recs {
			scannedBytes += len(data)
		}
		if end || len(recs) == 0 {
			resp.EndOfLog = end
			break
		}
	}
	return resp, nil
}

// page fills a ListDecisionsResponse up to audit.MaxPageBytes.
type page struct {
	resp *veilmatchv1.ListDecisionsResponse
	// bytes is the size of the entries of resp.Decisions.
	bytes int
}

// add appends d to the page if it fits, and reports whether it did. The
// first decision of a page fits if it fits a response at all (see
// sendable), however large; the others only within audit.MaxPageBytes.
func (p *page) add(d *veilmatchv1.Decision) bool {
	d, n, ok := sendable(d)
	if !ok || p.full(n) {
		return false
	}
	p.resp.Decisions = append(p.resp.Decisions, d)
	p.bytes += n
	return true
}

// full reports whether the page holds decisions and has no room for one
// of at least n bytes.
func (p *page) full(n int) bool {
	return len(p.resp.Decisions) > 0 && responseOverhead+p.bytes+n > audit.MaxPageBytes
}

// sendable returns d and the size of its entry in a response, if that fits
// a response of rpc.MaxMessageSize. A decoded decision carries its record's
// fields twice, decoded and in the record: one too large to send is cut
// down to its index and record, as in a raw listing, since the record is
// what the decoded fields come from. ok is false if even that is too large.
func sendable(d *veilmatchv1.Decision) (_ *veilmatchv1.Decision, n int, ok bool) {
	if n = entrySize(d); responseOverhead+n <= rpc.MaxMessageSize {
		return d, n, true
	}
	d = &veilmatchv1.Decision{Index: d.GetIndex(), Record: d.GetRecord()}
	n = entrySize(d)
	return d, n, responseOverhead+n <= rpc.MaxMessageSize
}

// entrySize returns the bytes d takes in a response: its encoding, tag and
// length.
func entrySize(d *veilmatchv1.Decision) int {
	return protowire.SizeTag(1) + protowire.SizeBytes(proto.Size(d))
}

// GetDecision implements veilmatchv1.AuditServiceServer.
func (s *Service) GetDecision(ctx context.Context, req *veilmatchv1.GetDecisionRequest) (*veilmatchv1.GetDecisionResponse, error) {
	if err := requireAuditor(ctx); err != nil {
		return nil, err
	}
	idx := req.GetIndex()
	recs, _, size, err := s.readRecords(ctx, idx, 1)
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, status.Errorf(codes.NotFound, "no decision at index %d: the log has %d records", idx, size)
	}
	rec, err := decode(ctx, idx, recs[0])
	if err != nil {
		return nil, err
	}
	d, _, ok := sendable(toDecision(idx, recs[0], rec))
	if !ok {
		return nil, recordTooLarge(ctx, idx, len(recs[0]), size)
	}
	return &veilmatchv1.GetDecisionResponse{Decision: d}, nil
}

// GetCheckpoint implements veilmatchv1.AuditServiceServer. It returns the
// stored checkpoint of the log's current size, signing and storing one if
// there is none. If signing fails it returns the latest stored checkpoint,
// never an unsigned one.
func (s *Service) GetCheckpoint(ctx context.Context, _ *veilmatchv1.GetCheckpointRequest) (*veilmatchv1.GetCheckpointResponse, error) {
	if err := requireAuditor(ctx); err != nil {
		return nil, err
	}
	s.signMu.Lock()
	defer s.signMu.Unlock()
	size, root, err := s.log.LogHead(ctx)
	if err != nil {
		return nil, rpc.Unavailable(ctx, "decision log", err)
	}
	stored, storedText, err := s.log.LatestCheckpoint(ctx)
	haveStored := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		rpc.Logger(ctx).WarnContext(ctx, "read latest checkpoint", "error", err)
	}
	if haveStored && stored == size {
		return s.checkpointResponse(storedText), nil
	}
	text, err := s.sign(size, root)
	if err != nil {
		if haveStored {
			rpc.Logger(ctx).ErrorContext(ctx, "sign checkpoint failed; serving the latest stored one",
				"size", size, "stored_size", stored, "error", err)
			return s.checkpointResponse(storedText), nil
		}
		return nil, rpc.Unavailable(ctx, "checkpoint signer", err)
	}
	if err := s.log.PutCheckpoint(ctx, size, text); err != nil {
		// The checkpoint is signed and therefore valid; it is only not kept.
		rpc.Logger(ctx).WarnContext(ctx, "store checkpoint", "size", size, "error", err)
	} else {
		rpc.Logger(ctx).InfoContext(ctx, "signed checkpoint", "size", size, "at", s.now().UTC())
	}
	return s.checkpointResponse(text), nil
}

// sign signs the tree head as a checkpoint.
func (s *Service) sign(size uint64, root []byte) ([]byte, error) {
	if s.signer == nil {
		return nil, errors.New("auditsvc: no checkpoint signer configured")
	}
	text, err := audit.SignCheckpoint(audit.Checkpoint{Origin: s.origin, Size: size, Root: root}, s.signer)
	if err != nil {
		return nil, fmt.Errorf("sign checkpoint of size %d: %w", size, err)
	}
	return text, nil
}

func (s *Service) checkpointResponse(text []byte) *veilmatchv1.GetCheckpointResponse {
	return &veilmatchv1.GetCheckpointResponse{Checkpoint: text, VerifierKey: s.verifierKey, Origin: s.origin}
}

// GetInclusionProof implements veilmatchv1.AuditServiceServer.
func (s *Service) GetInclusionProof(ctx context.Context, req *veilmatchv1.GetInclusionProofRequest) (*veilmatchv1.GetInclusionProofResponse, error) {
	if err := requireAuditor(ctx); err != nil {
		return nil, err
	}
	idx, treeSize := req.GetIndex(), req.GetTreeSize()
	switch {
	case treeSize == 0:
		return nil, status.Error(codes.InvalidArgument, "tree_size must be at least 1")
	case idx >= treeSize:
		return nil, status.Errorf(codes.InvalidArgument, "index %d must be less than tree_size %d", idx, treeSize)
	}
	if err := s.checkSize(ctx, "tree_size", treeSize); err != nil {
		return nil, err
	}
	proof, err := audit.InclusionProof(ctx, s.log, idx, treeSize)
	if err != nil {
		return nil, rpc.Internal(ctx, "inclusion proof", err)
	}
	return &veilmatchv1.GetInclusionProofResponse{Hashes: proof}, nil
}

// GetConsistencyProof implements veilmatchv1.AuditServiceServer.
func (s *Service) GetConsistencyProof(ctx context.Context, req *veilmatchv1.GetConsistencyProofRequest) (*veilmatchv1.GetConsistencyProofResponse, error) {
	if err := requireAuditor(ctx); err != nil {
		return nil, err
	}
	oldSize, newSize := req.GetOldSize(), req.GetNewSize()
	if oldSize > newSize {
		return nil, status.Errorf(codes.InvalidArgument, "old_size %d must not exceed new_size %d", oldSize, newSize)
	}
	if err := s.checkSize(ctx, "new_size", newSize); err != nil {
		return nil, err
	}
	proof, err := audit.ConsistencyProof(ctx, s.log, oldSize, newSize)
	if err != nil {
		return nil, rpc.Internal(ctx, "consistency proof", err)
	}
	return &veilmatchv1.GetConsistencyProofResponse{Hashes: proof}, nil
}

// checkSize requires a tree size no larger than the log.
func (s *Service) checkSize(ctx context.Context, field string, size uint64) error {
	logSize, _, err := s.log.LogHead(ctx)
	if err != nil {
		return rpc.Unavailable(ctx, "decision log", err)
	}
	if size > logSize {
		return status.Errorf(codes.InvalidArgument, "%s %d exceeds the log size %d", field, size, logSize)
	}
	return nil
}

// readRecords returns up to n records from start, as stored, fewer once
// it has read readBytes bytes of records: it asks the store for a few
// records at a time, growing to readGroup, and for fewer once it has seen
// large ones (see readGroup). end reports that the records reach the
// end of the log, whose size (read before the records) is size. A record
// below size that the store cannot return is reported as DATA_LOSS naming
// its index, unless records before it could be read: those are returned,
// and the next call reports it.
func (s *Service) readRecords(ctx context.Context, start uint64, n int) (recs [][]byte, end bool, size uint64, err error) {
	// The size is read first: records are never removed, so every index
	// below it must be readable afterwards.
	size, _, err = s.log.LogHead(ctx)
	if err != nil {
		return nil, false, 0, rpc.Unavailable(ctx, "decision log", err)
	}
	if start >= size {
		return nil, true, size, nil
	}
	want := int(min(uint64(n), size-start))
	group, read, largest := 1, 0, 1
	for len(recs) < want && read < readBytes {
		from, k := start+uint64(len(recs)), min(group, want-len(recs))
		got, err := s.log.LogRecords(ctx, from, k)
		if err != nil || len(got) != k {
			if err != nil {
				got = nil
			}
			// Something below the size is missing or unreadable: find the
			// first record the store cannot return.
			got, err = s.readEach(ctx, from, k, got, size)
			if err != nil {
				if len(recs) > 0 {
					return recs, false, size, nil
				}
				return nil, false, size, err
			}
		}
		for _, r := range got {
			read += len(r)
			largest = max(largest, len(r))
		}
		recs = append(recs, got...)
		if len(got) < k {
			break
		}
		group = max(1, min(2*group, readGroup, readBytes/largest))
	}
	return recs, start+uint64(len(recs)) == size, size, nil
}

// readEach completes recs, the records read from start, to k records by
// reading them one at a time. It returns the records before the first one
// the store cannot return, or the error reporting that record if there
// are none.
func (s *Service) readEach(ctx context.Context, start uint64, k int, recs [][]byte, size uint64) ([][]byte, error) {
	for i := start + uint64(len(recs)); i < start+uint64(k); i++ {
		one, err := s.log.LogRecords(ctx, i, 1)
		if err == nil && len(one) == 1 {
			recs = append(recs, one[0])
			continue
		}
		if len(recs) > 0 {
			return recs, nil
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, status.FromContextError(ctxErr).Err()
		}
		if err == nil {
			err = errors.New("the store returned no record")
		}
		// A store that answers for the head but not for the record has
		// lost the record; one that answers for neither is down.
		if _, _, herr := s.log.LogHead(ctx); herr != nil {
			return nil, rpc.Unavailable(ctx, "decision log", errors.Join(err, herr))
		}
		return nil, recordMissing(ctx, i, size, err)
	}
	return recs, nil
}

// recordMissing logs the cause and returns the DATA_LOSS status of a
// missing record.
func recordMissing(ctx context.Context, idx, size uint64, cause error) error {
	rpc.Logger(ctx).ErrorContext(ctx, "decision record missing", "index", idx, "log_size", size, "error", cause)
	st := status.Newf(codes.DataLoss, "record %d is missing from the decision log of %d records (request id %s)", idx, size, rpc.RequestID(ctx))
	return withIndex(st, audit.ReasonRecordMissing, idx)
}

// recordTooLarge logs and returns the RESOURCE_EXHAUSTED status of a record
// of n bytes too large to be sent.
func recordTooLarge(ctx context.Context, idx uint64, n int, size uint64) error {
	rpc.Logger(ctx).ErrorContext(ctx, "decision record too large to send", "index", idx, "log_size", size, "bytes", n)
	st := status.Newf(codes.ResourceExhausted, "record %d of the decision log is %d bytes, too large to be sent in a response of at most %d bytes (request id %s)",
		idx, n, rpc.MaxMessageSize, rpc.RequestID(ctx))
	return withIndex(st, audit.ReasonRecordTooLarge, idx)
}

// withIndex returns st with a google.rpc.ErrorInfo of the reason whose
// metadata "index" is idx.
func withIndex(st *status.Status, reason string, idx uint64) error {
	detailed, err := st.WithDetails(&errdetails.ErrorInfo{
		Reason:   reason,
		Domain:   errorDomain,
		Metadata: map[string]string{"index": strconv.FormatUint(idx, 10)},
	})
	if err != nil {
		return st.Err()
	}
	return detailed.Err()
}

// decode parses the record stored at idx. A record that does not parse
// canonically, or that names another index, is INTERNAL: the message names
// the index, never the record's bytes.
func decode(ctx context.Context, idx uint64, data []byte) (audit.Record, error) {
	op := fmt.Sprintf("decode decision record %d", idx)
	rec, err := audit.ParseRecord(data)
	if err != nil {
		return audit.Record{}, rpc.Internal(ctx, op, err)
	}
	if rec.Index != idx {
		return audit.Record{}, rpc.Internal(ctx, op, fmt.Errorf("record stored at index %d says index %d", idx, rec.Index))
	}
	return rec, nil
}

// toDecision converts a parsed record to its wire form.
func toDecision(idx uint64, data []byte, rec audit.Record) *veilmatchv1.Decision {
	d := &veilmatchv1.Decision{
		Index:          idx,
		Time:           timestamppb.New(rec.Time),
		Caller:         rec.Caller,
		Action:         rec.Action,
		Purpose:        rec.Purpose,
		CaseRef:        rec.CaseRef,
		Lists:          rec.Lists,
		Levels:         levels(rec),
		RuleIds:        rec.Rules,
		PolicyRevision: rec.PolicyRevision,
		Record:         data,
		Agency:         rec.Agency,
		Result:         rec.Result,
		Reason:         rec.Reason,
		DecisionId:     rec.DecisionID,
		Details:        rec.Details,
	}
	for _, o := range rec.Outcomes {
		d.Outcomes = append(d.Outcomes, &veilmatchv1.DecisionOutcome{Class: o.Class, Level: o.Level, Entries: o.Entries})
	}
	return d
}

// levels returns the distinct levels of rec's outcomes, sorted.
func levels(rec audit.Record) []string {
	var out []string
	for _, o := range rec.Outcomes {
		if !slices.Contains(out, o.Level) {
			out = append(out, o.Level)
		}
	}
	slices.Sort(out)
	return out
}

// filter selects decisions; empty fields match everything.
type filter struct {
	agency, action, purpose, level string
	since, until                   time.Time
}

func newFilter(req *veilmatchv1.ListDecisionsRequest) (filter, error) {
	f := filter{agency: req.GetAgency(), action: req.GetAction(), purpose: req.GetPurpose(), level: req.GetLevel()}
	if ts := req.GetSince(); ts != nil {
		if err := ts.CheckValid(); err != nil {
			return f, status.Errorf(codes.InvalidArgument, "since: %v", err)
		}
		f.since = ts.AsTime()
	}
	if ts := req.GetUntil(); ts != nil {
		if err := ts.CheckValid(); err != nil {
			return f, status.Errorf(codes.InvalidArgument, "until: %v", err)
		}
		f.until = ts.AsTime()
	}
	if !f.since.IsZero() && !f.until.IsZero() && !f.since.Before(f.until) {
		return f, status.Error(codes.InvalidArgument, "since must be before until")
	}
	return f, nil
}

// active reports whether any field is set.
func (f filter) active() bool {
	return f.agency != "" || f.action != "" || f.purpose != "" || f.level != "" || !f.since.IsZero() || !f.until.IsZero()
}

// match reports whether rec passes the filter. since is inclusive, until
// exclusive; level matches an outcome at that level, and "refused" matches
// refused decisions.
func (f filter) match(rec audit.Record) bool {
	switch {
	case f.agency != "" && rec.Agency != f.agency,
		f.action != "" && rec.Action != f.action,
		f.purpose != "" && rec.Purpose != f.purpose,
		!f.since.IsZero() && rec.Time.Before(f.since),
		!f.until.IsZero() && !rec.Time.Before(f.until):
		return false
	}
	if f.level == "" || (f.level == audit.ResultRefused && rec.Result == audit.ResultRefused) {
		return true
	}
	return slices.ContainsFunc(rec.Outcomes, func(o audit.Outcome) bool { return o.Level == f.level })
}
