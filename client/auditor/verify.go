package auditor

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/sync/errgroup"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
	"github.com/veilmatch/veilmatch/server/audit"
)

// VerifyState is what an auditor keeps between runs of [Verify]: the last
// checkpoint it verified. It is serialized as JSON.
type VerifyState struct {
	// Size is the tree size of the checkpoint.
	Size uint64 `json:"size"`
	// Root is its root hash.
	Root []byte `json:"root"`
	// Checkpoint is the signed checkpoint text.
	Checkpoint string `json:"checkpoint"`
}

// VerifyReport describes a successful verification.
type VerifyReport struct {
	// Size and Root are those of the verified checkpoint.
	Size uint64
	Root []byte
	// Records is the number of records verified: Size.
	Records uint64
	// PreviousSize is the size of the previous state's checkpoint when
	// Consistent is set.
	PreviousSize uint64
	// Consistent reports that the checkpoint was proved to extend the
	// previous state's.
	Consistent bool
	// Actions counts the records per action and result:
	// Actions["check"]["refused"].
	Actions map[string]map[string]uint64
	// Leaves are the records' leaf hashes, by index: what proves one
	// record's inclusion later (ProveInclusion).
	Leaves [][]byte
}

// Summary returns "verified N records, checkpoint size N root HEX".
func (r VerifyReport) Summary() string {
	return fmt.Sprintf("verified %d records, checkpoint size %d root %s", r.Records, r.Size, hex.EncodeToString(r.Root))
}

// Problem classifies a [Failure].
type Problem int

// Problems that [Verify] detects.
const (
	// ProblemSignature: the checkpoint does not verify with the pinned key.
	ProblemSignature Problem = iota + 1
	// ProblemCheckpoint: the checkpoint is malformed or names another log.
	ProblemCheckpoint
	// ProblemRollback: the log is smaller than at the last verification.
	ProblemRollback
	// ProblemRewrite: the log does not extend the last verified one.
	ProblemRewrite
	// ProblemChanged: a record is not the one the checkpoint commits to.
	ProblemChanged
	// ProblemMissing: a record is missing.
	ProblemMissing
	// ProblemOrder: records are out of order.
	ProblemOrder
	// ProblemSize: the log holds fewer records than the checkpoint says.
	ProblemSize
	// ProblemProof: the records match the checkpoint but the hub's proofs
	// do not: its stored tree nodes are damaged.
	ProblemProof
)

// Failure is a verification failure: the log or its checkpoint is not what
// the pinned key and the last verified state promise. Errors that are not a
// Failure (a network error, say) mean the verification could not be done.
type Failure struct {
	Problem Problem
	// Index is the record at fault, for record problems.
	Index uint64
	msg   string
}

func (f *Failure) Error() string { return f.msg }

func failf(p Problem, idx uint64, format string, args ...any) *Failure {
	return &Failure{Problem: p, Index: idx, msg: fmt.Sprintf(format, args...)}
}

// proofWorkers bounds the inclusion proofs requested at once.
const proofWorkers = 8

// Verify fetches the hub's latest checkpoint and verifies it with the
// pinned verifier v for the log named origin ("" means v's name). If prev
// is not nil, it proves that the log only grew since prev. It then streams
// every record the checkpoint covers, keeping only its leaf hash, and
// checks that each is a canonical record at its index and that all of them
// hash to the checkpoint root, which proves every record's inclusion at once. It also
// spot-checks the inclusion proofs the hub serves to others (all of them
// for small logs). If the records do not hash to the root it locates the
// first changed record with consistency proofs, a binary search.
//
// On success it returns a report and the new state to keep. A problem with
// the log is returned as a [*Failure] naming the first record at fault.
func Verify(ctx context.Context, c veilmatchv1.AuditServiceClient, v note.Verifier, origin string, prev *VerifyState) (VerifyReport, *VerifyState, error) {
	return VerifyEach(ctx, c, v, origin, prev, nil)
}

// VerifyEach is Verify that also hands every record it downloads, in log
// order, to each (if not nil), parsed as Verify parses it: a reader of the
// whole log (the auditor console) gets it in the same pass, parsed once.
// A record that is not canonical is not handed over (Verify then fails
// naming it). The records are not yet verified when each sees them; only
// a nil error says they were the checkpoint's. An error from each stops
// the verification.
func VerifyEach(ctx context.Context, c veilmatchv1.AuditServiceClient, v note.Verifier, origin string, prev *VerifyState, each func(index uint64, r audit.Record) error) (VerifyReport, *VerifyState, error) {
	if v == nil {
		return VerifyReport{}, nil, errors.New("auditsvc: verify: no pinned verifier key")
	}
	if origin == "" {
		origin = v.Name()
	}
	resp, err := c.GetCheckpoint(ctx, &veilmatchv1.GetCheckpointRequest{})
	if err != nil {
		return VerifyReport{}, nil, fmt.Errorf("get checkpoint: %w", err)
	}
	cp, err := openCheckpoint(resp.GetCheckpoint(), v, origin)
	if err != nil {
		return VerifyReport{}, nil, err
	}
	rep := VerifyReport{Size: cp.Size, Root: cp.Root}

	if prev != nil {
		if err := checkConsistency(ctx, c, prev, cp); err != nil {
			return VerifyReport{}, nil, err
		}
		rep.PreviousSize, rep.Consistent = prev.Size, true
	}

	sc, err := newScan(each)
	if err != nil {
		return VerifyReport{}, nil, err
	}
	n, missing, err := download(ctx, c, cp.Size, sc.add)
	if err != nil {
		return VerifyReport{}, nil, err
	}
	first := sc.problem()
	leaves := sc.leaves
	root, err := sc.tree.Root()
	if err != nil {
		return VerifyReport{}, nil, err
	}
	complete := n == cp.Size
	if complete && bytes.Equal(root, cp.Root) {
		// Every record is included; the hub's proofs for others must agree.
		bad, err := checkInclusion(ctx, c, leaves, proofSample(len(leaves)), cp)
		if err != nil {
			return VerifyReport{}, nil, err
		}
		if bad >= 0 && first == nil {
			first = failf(ProblemProof, uint64(bad), "record %d: its inclusion proof fails, yet the records hash to the checkpoint root: the hub's stored tree nodes are damaged", bad)
		}
	} else {
		// Report the first record at fault: a changed record located by
		// the hashes, unless a problem found in an earlier record itself
		// names it better.
		intact, err := intactPrefix(ctx, c, leaves, cp)
		if err != nil {
			return VerifyReport{}, nil, err
		}
		if intact < len(leaves) && (first == nil || uint64(intact) < first.Index) {
			first = failf(ProblemChanged, uint64(intact), "record %d: changed (it does not hash into the checkpoint root)", intact)
		}
	}
	if first != nil {
		return VerifyReport{}, nil, first
	}
	switch {
	case missing >= 0:
		return VerifyReport{}, nil, failf(ProblemMissing, uint64(missing), "record %d missing", missing)
	case !complete:
		return VerifyReport{}, nil, failf(ProblemSize, n, "log has %d records but the checkpoint says %d", n, cp.Size)
	case !bytes.Equal(root, cp.Root):
		// Unreachable when the search located the change; kept as the
		// check of last resort.
		return VerifyReport{}, nil, failf(ProblemChanged, 0, "the %d records do not hash to the checkpoint root", n)
	}
	rep.Actions, rep.Records, rep.Leaves = sc.actions, n, leaves
	return rep, &VerifyState{Size: cp.Size, Root: cp.Root, Checkpoint: string(resp.GetCheckpoint())}, nil
}

// rootOf returns the RFC 6962 root of a tree of the given leaf hashes.
func rootOf(leaves [][]byte) ([]byte, error) {
	tree, err := audit.NewTree(0, nil)
	if err != nil {
		return nil, err
	}
	for _, h := range leaves {
		if _, err := tree.Append(h); err != nil {
			return nil, err
		}
	}
	return tree.Root()
}

// openCheckpoint opens the checkpoint with the pinned key and turns its
// errors into failures.
func openCheckpoint(text []byte, v note.Verifier, origin string) (audit.Checkpoint, error) {
	cp, err := audit.OpenCheckpoint(text, v, origin)
	switch {
	case err == nil:
		return cp, nil
	case errors.Is(err, audit.ErrUnknownKey), errors.Is(err, audit.ErrBadSignature):
		return cp, failf(ProblemSignature, 0, "checkpoint signature does not verify with the pinned key %s+%08x", v.Name(), v.KeyHash())
	case errors.Is(err, audit.ErrWrongOrigin):
		return cp, failf(ProblemCheckpoint, 0, "checkpoint is not for the log %q", origin)
	case errors.Is(err, audit.ErrMalformedCheckpoint):
		return cp, failf(ProblemCheckpoint, 0, "checkpoint is malformed: %v", err)
	default:
		return cp, fmt.Errorf("open checkpoint: %w", err)
	}
}

// checkConsistency proves that cp extends the previously verified state.
func checkConsistency(ctx context.Context, c veilmatchv1.AuditServiceClient, prev *VerifyState, cp audit.Checkpoint) error {
	if len(prev.Root) != audit.HashSize {
		return fmt.Errorf("verify state: root has %d bytes, want %d", len(prev.Root), audit.HashSize)
	}
	if cp.Size < prev.Size {
		return failf(ProblemRollback, 0, "log rolled back from size %d to %d", prev.Size, cp.Size)
	}
	resp, err := c.GetConsistencyProof(ctx, &veilmatchv1.GetConsistencyProofRequest{OldSize: prev.Size, NewSize: cp.Size})
	if err != nil {
		return fmt.Errorf("get consistency proof from size %d to %d: %w", prev.Size, cp.Size, err)
	}
	if err := audit.VerifyConsistency(prev.Size, cp.Size, prev.Root, cp.Root, resp.GetHashes()); err != nil {
		return failf(ProblemRewrite, 0, "log rewritten: consistency proof from %d to %d fails", prev.Size, cp.Size)
	}
	return nil
}

// download streams the records [0, size) as stored to fn, in order, and
// returns how many it fetched. It stops early at the end of the log, or at
// a record the hub reports missing, whose index it returns as missing (-1
// if none).
//
// The hub ends a page at audit.MaxPageBytes, or after a single larger record, so
// a page may hold fewer records than asked for: download asks for the next
// page from the first record not received until it has size records or
// the hub reports the end of the log. It accepts pages of up to
// maxResponse, whatever the receive limit c was dialed with, so
// that a single large record can be received. A record too large for the
// hub to send at all cannot be verified: that is an error, not a
// [*Failure], since nothing shows that the log is wrong.
func download(ctx context.Context, c veilmatchv1.AuditServiceClient, size uint64, fn func(data []byte) error) (next uint64, missing int64, err error) {
	for next < size {
		resp, err := c.ListDecisions(ctx, &veilmatchv1.ListDecisionsRequest{Raw: true, StartIndex: next, PageSize: audit.MaxPageSize},
			grpc.MaxCallRecvMsgSize(maxResponse))
		if err != nil {
			if idx, ok := errorIndex(err, codes.DataLoss, audit.ReasonRecordMissing); ok && idx < size {
				return next, int64(idx), nil
			}
			if idx, ok := errorIndex(err, codes.ResourceExhausted, audit.ReasonRecordTooLarge); ok {
				return 0, -1, fmt.Errorf("record %d is too large for the hub to send, so the log cannot be verified: %w", idx, err)
			}
			return 0, -1, fmt.Errorf("list records from %d: %w", next, err)
		}
		for _, d := range resp.GetDecisions() {
			if next == size {
				break
			}
			if d.GetIndex() != next {
				return 0, -1, fmt.Errorf("list records: the hub sent record %d where %d was due", d.GetIndex(), next)
			}
			if err := fn(d.GetRecord()); err != nil {
				return 0, -1, err
			}
			next++
		}
		if resp.GetEndOfLog() || len(resp.GetDecisions()) == 0 {
			break
		}
	}
	return next, -1, nil
}

// errorIndex returns the index named by a status of the code whose
// google.rpc.ErrorInfo has the reason.
func errorIndex(err error, code codes.Code, reason string) (uint64, bool) {
	st, ok := status.FromError(err)
	if !ok || st.Code() != code {
		return 0, false
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() == reason {
			idx, err := strconv.ParseUint(info.GetMetadata()["index"], 10, 64)
			return idx, err == nil
		}
	}
	return 0, false
}

// scan takes in the records as they stream in, keeping only what Verify
// needs of them: their leaf hashes, the tree they build, the counts for the
// report, and enough to name the first record at fault.
type scan struct {
	leaves  [][]byte
	tree    *audit.Tree
	actions map[string]map[string]uint64
	// bad is the position of the first record that is not canonical
	// (badCanonical) or names another index, or -1.
	bad          int64
	badCanonical bool
	// elsewhere holds the indices named by records at other positions.
	elsewhere map[uint64]bool
	// each, if not nil, receives every canonical record (VerifyEach).
	each func(index uint64, r audit.Record) error
}

func newScan(each func(uint64, audit.Record) error) (*scan, error) {
	tree, err := audit.NewTree(0, nil)
	if err != nil {
		return nil, err
	}
	return &scan{tree: tree, actions: map[string]map[string]uint64{}, bad: -1, elsewhere: map[uint64]bool{}, each: each}, nil
}

// add takes in the record at the next position.
func (s *scan) add(data []byte) error {
	pos := uint64(len(s.leaves))
	leaf := audit.LeafHash(data)
	s.leaves = append(s.leaves, leaf)
	if _, err := s.tree.Append(leaf); err != nil {
		return err
	}
	r, err := audit.ParseRecord(data)
	switch {
	case err != nil:
		if s.bad < 0 {
			s.bad, s.badCanonical = int64(pos), true
		}
		return nil
	case r.Index != pos:
		s.elsewhere[r.Index] = true
		if s.bad < 0 {
			s.bad = int64(pos)
		}
	}
	byResult := s.actions[r.Action]
	if byResult == nil {
		byResult = map[string]uint64{}
		s.actions[r.Action] = byResult
	}
	byResult[r.Result]++
	if s.each != nil {
		return s.each(pos, r)
	}
	return nil
}

// problem returns the first record at fault, or nil.
func (s *scan) problem() *Failure {
	switch {
	case s.bad < 0:
		return nil
	case s.badCanonical:
		return failf(ProblemChanged, uint64(s.bad), "record %d: changed (it is not a canonical record)", s.bad)
	case s.elsewhere[uint64(s.bad)]:
		// The record due here sits elsewhere.
		return failf(ProblemOrder, uint64(s.bad), "records out of order at %d", s.bad)
	default:
		return failf(ProblemMissing, uint64(s.bad), "record %d missing", s.bad)
	}
}

// sampleProofs is how many inclusion proofs Verify spot-checks in a log
// whose records hash to the checkpoint root.
const sampleProofs = 256

// proofSample returns the distinct indices whose inclusion proofs Verify
// checks: all of them in a small log, else the first, the last and random
// others.
func proofSample(n int) []int {
	if n <= sampleProofs {
		return rand.Perm(n)
	}
	chosen := map[int]bool{0: true, n - 1: true}
	for len(chosen) < sampleProofs {
		chosen[1+rand.IntN(n-2)] = true
	}
	return slices.Collect(maps.Keys(chosen))
}

// checkInclusion checks the inclusion proofs of the records at indices
// against the checkpoint, a few at a time, and returns the lowest index
// whose proof fails, or -1.
func checkInclusion(ctx context.Context, c veilmatchv1.AuditServiceClient, leaves [][]byte, indices []int, cp audit.Checkpoint) (int64, error) {
	failed := make([]bool, len(indices)) // by position in indices
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(proofWorkers)
	for k, i := range indices {
		g.Go(func() error {
			resp, err := c.GetInclusionProof(gctx, &veilmatchv1.GetInclusionProofRequest{Index: uint64(i), TreeSize: cp.Size})
			if err != nil {
				return fmt.Errorf("get inclusion proof of record %d: %w", i, err)
			}
			failed[k] = audit.VerifyInclusion(leaves[i], uint64(i), cp.Size, resp.GetHashes(), cp.Root) != nil
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return -1, err
	}
	lowest := int64(-1)
	for k, f := range failed {
		if f && (lowest < 0 || int64(indices[k]) < lowest) {
			lowest = int64(indices[k])
		}
	}
	return lowest, nil
}

// ProveInclusion asks the hub for the inclusion proof of record index in
// the tree of size and checks it against root, with leaf, the record's
// leaf hash as the auditor verified it.
func ProveInclusion(ctx context.Context, c veilmatchv1.AuditServiceClient, leaf []byte, index, size uint64, root []byte) error {
	resp, err := c.GetInclusionProof(ctx, &veilmatchv1.GetInclusionProofRequest{Index: index, TreeSize: size})
	if err != nil {
		return fmt.Errorf("get inclusion proof of record %d: %w", index, err)
	}
	if err := audit.VerifyInclusion(leaf, index, size, resp.GetHashes(), root); err != nil {
		return failf(ProblemProof, index, "record %d: its inclusion proof in the checkpoint of size %d fails: %v", index, size, err)
	}
	return nil
}

// intactPrefix returns the largest k ≤ len(leaves) such that the first k
// records hash to a tree that the checkpoint provably extends: records
// 0..k-1 are as logged and record k (if k < len(leaves)) is not. Whether a
// prefix is intact is monotone in k, so a binary search with consistency
// proofs finds k.
func intactPrefix(ctx context.Context, c veilmatchv1.AuditServiceClient, leaves [][]byte, cp audit.Checkpoint) (int, error) {
	var searchErr error
	k := sort.Search(len(leaves), func(i int) bool {
		if searchErr != nil {
			return true
		}
		size := uint64(i + 1) // is the prefix of i+1 records intact?
		root, err := rootOf(leaves[:size])
		if err != nil {
			searchErr = err
			return true
		}
		resp, err := c.GetConsistencyProof(ctx, &veilmatchv1.GetConsistencyProofRequest{OldSize: size, NewSize: cp.Size})
		if err != nil {
			searchErr = fmt.Errorf("get consistency proof from size %d to %d: %w", size, cp.Size, err)
			return true
		}
		return audit.VerifyConsistency(size, cp.Size, root, cp.Root, resp.GetHashes()) != nil
	})
	return k, searchErr
}
