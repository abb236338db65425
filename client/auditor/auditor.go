// Package auditor is the auditor's side of veilmatch: it reads the hub's
// decision log through the AuditService and proves that it is the log the
// hub signed and only ever grew ([Verify]), keeps the last checkpoint it
// verified between runs ([ReadState], [WriteState]), lists decisions
// decoded from the very bytes hashed into the log ([ListRecords]) and sums
// them up for an oversight body ([Summarize]).
//
// It needs nothing of the hub but its AuditService and the checkpoint
// verifier key, pinned out of band.
package auditor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"google.golang.org/grpc"

	"github.com/veilmatch/veilmatch/internal/atomicfile"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
	"github.com/veilmatch/veilmatch/server/audit"
)

// maxResponse is the largest response the auditor accepts: the hub's
// message limit, which a single large record may need.
const maxResponse = 16 << 20

// maxStateFile bounds a state file; one holds a checkpoint.
const maxStateFile = 1 << 20

// ErrBadState reports a state file that is not a verified checkpoint:
// restore it from a backup, since deleting it gives up the rollback check.
var ErrBadState = errors.New("auditor: bad state file")

// ReadState reads the last verified checkpoint from path; a missing file is
// no state (nil).
func ReadState(path string) (*VerifyState, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read audit state: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxStateFile+1))
	if err != nil {
		return nil, fmt.Errorf("read audit state %s: %w", path, err)
	}
	if len(data) > maxStateFile {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrBadState, path, maxStateFile)
	}
	var st VerifyState
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadState, path, err)
	}
	if len(st.Root) != audit.HashSize {
		return nil, fmt.Errorf("%w: %s: root has %d bytes, want %d", ErrBadState, path, len(st.Root), audit.HashSize)
	}
	return &st, nil
}

// WriteState replaces the state file at path atomically and durably,
// creating its directory (0700) if needed.
func WriteState(path string, st *VerifyState) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode audit state: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write audit state: %w", err)
	}
	if err := atomicfile.WriteFile(path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write audit state: %w", err)
	}
	return nil
}

// ErrNotCanonical reports a decision the hub sent whose record is not the
// canonical record of its index: verify the log.
var ErrNotCanonical = errors.New("auditor: the hub sent a record that is not canonical at its index")

// ListRecords pages through the decisions that req selects and decodes
// each from the exact bytes hashed into the log.
func ListRecords(ctx context.Context, c veilmatchv1.AuditServiceClient, req *veilmatchv1.ListDecisionsRequest) ([]audit.Record, error) {
	req.PageSize = audit.MaxPageSize
	var out []audit.Record
	for {
		resp, err := c.ListDecisions(ctx, req, grpc.MaxCallRecvMsgSize(maxResponse))
		if err != nil {
			return nil, fmt.Errorf("list decisions: %w", err)
		}
		for _, d := range resp.GetDecisions() {
			rec, err := audit.ParseRecord(d.GetRecord())
			if err != nil || rec.Index != d.GetIndex() {
				return nil, fmt.Errorf("decision %d: %w", d.GetIndex(), ErrNotCanonical)
			}
			out = append(out, rec)
		}
		if resp.GetEndOfLog() || resp.GetNextIndex() <= req.GetStartIndex() {
			return out, nil
		}
		req.StartIndex = resp.GetNextIndex()
	}
}
