package auditor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"

	"github.com/veilmatch/veilmatch/client/auditor"
	"github.com/veilmatch/veilmatch/internal/servertest"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/auditsvc"
)

// edit returns a statement that replaces old by new in the stored bytes of
// record idx.
func edit(idx int, old, new string) string {
	return fmt.Sprintf("UPDATE log_records SET record = CAST(replace(CAST(record AS TEXT), '%s', '%s') AS BLOB) WHERE idx = %d", old, new, idx)
}

// changed is Verify's message for a changed record.
func changed(idx int) string {
	return fmt.Sprintf("record %d: changed (it does not hash into the checkpoint root)", idx)
}

// verify runs Verify as the auditor with the environment's key.
func verify(t *testing.T, e *servertest.AuditLog, prev *auditor.VerifyState) (auditor.VerifyReport, *auditor.VerifyState, error) {
	t.Helper()
	return auditor.Verify(t.Context(), e.Client(t, "auditor"), e.Key.Verifier, servertest.AuditOrigin, prev)
}

func TestVerify(t *testing.T) {
	e := servertest.NewAuditLog(t, servertest.SampleDecisions())
	rep, state, err := verify(t, e, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records != 8 || rep.Size != 8 || !bytes.Equal(rep.Root, e.Roots[8]) || rep.Consistent {
		t.Fatalf("report = %+v", rep)
	}
	if got := rep.Actions["overlaps"]; got["allowed"] != 1 || got["refused"] != 2 {
		t.Errorf("overlaps counts = %v", got)
	}
	if got := rep.Actions["check"]; got["allowed"] != 2 || got["refused"] != 0 {
		t.Errorf("check counts = %v", got)
	}
	if want := fmt.Sprintf("verified 8 records, checkpoint size 8 root %x", e.Roots[8]); rep.Summary() != want {
		t.Errorf("summary = %q, want %q", rep.Summary(), want)
	}
	if state.Size != 8 || !bytes.Equal(state.Root, e.Roots[8]) {
		t.Fatalf("state = %+v", state)
	}
	if _, err := audit.OpenCheckpoint([]byte(state.Checkpoint), e.Key.Verifier, servertest.AuditOrigin); err != nil {
		t.Fatalf("state checkpoint: %v", err)
	}

	// The state survives JSON, and the next run proves consistency.
	data, err := json.Marshal(state)
	if err != nil {
		t.Fatal(err)
	}
	var prev auditor.VerifyState
	if err := json.Unmarshal(data, &prev); err != nil {
		t.Fatal(err)
	}
	e.Append(t, servertest.SampleDecisions()...)
	rep, state, err = verify(t, e, &prev)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records != 16 || !rep.Consistent || rep.PreviousSize != 8 || state.Size != 16 {
		t.Fatalf("second report = %+v, state %+v", rep, state)
	}
	// Nothing new: consistent with itself.
	if rep, _, err := verify(t, e, state); err != nil || !rep.Consistent || rep.Size != 16 {
		t.Fatalf("third run = %+v, %v", rep, err)
	}
}

func TestVerifyEmptyLog(t *testing.T) {
	e := servertest.NewAuditLog(t, nil)
	rep, state, err := verify(t, e, nil)
	if err != nil || rep.Records != 0 || state.Size != 0 {
		t.Fatalf("Verify = %+v, %+v, %v", rep, state, err)
	}
	e.Append(t, servertest.SampleDecisions()...)
	if rep, _, err := verify(t, e, state); err != nil || !rep.Consistent || rep.Records != 8 {
		t.Fatalf("Verify after growth = %+v, %v", rep, err)
	}
}

// wantFailure requires err to be a Failure of the given problem and message.
func wantFailure(t *testing.T, err error, p auditor.Problem, msg string) {
	t.Helper()
	var f *auditor.Failure
	if !errors.As(err, &f) || f.Problem != p || f.Error() != msg {
		t.Fatalf("Verify error = %v (%#v); want problem %d %q", err, f, p, msg)
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	for _, tc := range []struct {
		name    string
		stmts   []string
		problem auditor.Problem
		msg     string
	}{
		{"record changed", []string{edit(5, `"research"`, `"investigation"`)}, auditor.ProblemChanged, changed(5)},
		{"result flipped", []string{edit(3, `"refused"`, `"allowed"`)}, auditor.ProblemChanged, changed(3)},
		{"first record changed", []string{edit(0, `"police-gb"`, `"police-xx"`)}, auditor.ProblemChanged, changed(0)},
		{"last record changed", []string{edit(7, `"police-gb"`, `"police-xx"`)}, auditor.ProblemChanged, changed(7)},
		{"record not canonical", []string{
			edit(2, `","`, `", "`),
		}, auditor.ProblemChanged, "record 2: changed (it is not a canonical record)"},
		{"record deleted", []string{
			`DELETE FROM log_records WHERE idx = 3`,
		}, auditor.ProblemMissing, "record 3 missing"},
		{"last record deleted", []string{
			`DELETE FROM log_records WHERE idx = 7`,
		}, auditor.ProblemMissing, "record 7 missing"},
		{"record deleted and the rest renumbered", []string{
			`DELETE FROM log_records WHERE idx = 3`,
			`UPDATE log_records SET idx = -idx WHERE idx > 3`,
			`UPDATE log_records SET idx = -idx - 1 WHERE idx < 0`,
		}, auditor.ProblemMissing, "record 3 missing"},
		{"records swapped", []string{
			`UPDATE log_records SET idx = -1 WHERE idx = 4`,
			`UPDATE log_records SET idx = 4 WHERE idx = 5`,
			`UPDATE log_records SET idx = 5 WHERE idx = -1`,
		}, auditor.ProblemOrder, "records out of order at 4"},
		{"tree node damaged", []string{
			`UPDATE log_nodes SET hash = zeroblob(32) WHERE level = 0 AND idx = 6`,
		}, auditor.ProblemProof, "record 7: its inclusion proof fails, yet the records hash to the checkpoint root: the hub's stored tree nodes are damaged"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := servertest.NewAuditLog(t, servertest.SampleDecisions())
			if _, _, err := verify(t, e, nil); err != nil {
				t.Fatal(err)
			}
			e.Tamper(t, tc.stmts...)
			_, state, err := verify(t, e, nil)
			wantFailure(t, err, tc.problem, tc.msg)
			if state != nil {
				t.Errorf("a failed verification returned a state")
			}
		})
	}
}

func TestVerifyDetectsRollback(t *testing.T) {
	recs := servertest.SampleDecisions()
	e := servertest.NewAuditLog(t, recs)
	_, state, err := verify(t, e, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The operator restores an earlier copy of the database: the first
	// five records.
	old := servertest.NewAuditLog(t, recs[:5])
	old.Key = e.Key
	old.Addr = servertest.ServeAudit(t, auditsvc.New(old.Store, e.Key.Signer, servertest.AuditOrigin, e.Key.VKey, nil))
	_, _, err = verify(t, old, state)
	wantFailure(t, err, auditor.ProblemRollback, "log rolled back from size 8 to 5")

	// ... and appends other decisions until it is larger than before.
	forged := slices.Clone(recs[:5])
	for i := range 6 {
		r := recs[1]
		r.CaseRef = fmt.Sprintf("forged-%d", i)
		forged = append(forged, r)
	}
	rewritten := servertest.NewAuditLog(t, forged)
	rewritten.Addr = servertest.ServeAudit(t, auditsvc.New(rewritten.Store, e.Key.Signer, servertest.AuditOrigin, e.Key.VKey, nil))
	rewritten.Key = e.Key
	_, _, err = verify(t, rewritten, state)
	wantFailure(t, err, auditor.ProblemRewrite, "log rewritten: consistency proof from 8 to 11 fails")
	// Without the state the rewritten log is self-consistent: the state
	// file is what catches a rewrite.
	if _, _, err := verify(t, rewritten, nil); err != nil {
		t.Fatalf("rewritten log without state: %v", err)
	}
}

func TestVerifyPinnedKey(t *testing.T) {
	e := servertest.NewAuditLog(t, servertest.SampleDecisions())
	for name, k := range map[string]servertest.NoteKey{
		"other key, same name":  servertest.NewNoteKey(t, servertest.AuditOrigin),
		"other key, other name": servertest.NewNoteKey(t, "evil.example/audit"),
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := auditor.Verify(t.Context(), e.Client(t, "auditor"), k.Verifier, servertest.AuditOrigin, nil)
			wantFailure(t, err, auditor.ProblemSignature,
				fmt.Sprintf("checkpoint signature does not verify with the pinned key %s+%08x", k.Verifier.Name(), k.Verifier.KeyHash()))
		})
	}
	// A checkpoint for another log.
	_, _, err := auditor.Verify(t.Context(), e.Client(t, "auditor"), e.Key.Verifier, "other.example/log", nil)
	var f *auditor.Failure
	if !errors.As(err, &f) || f.Problem != auditor.ProblemCheckpoint || f.Error() != `checkpoint is not for the log "other.example/log"` {
		t.Fatalf("Verify with another origin = %v", err)
	}
	// The stored checkpoint is replaced by one signed with another key.
	other := servertest.NewNoteKey(t, servertest.AuditOrigin)
	root := e.Roots[8]
	forged, err := audit.SignCheckpoint(audit.Checkpoint{Origin: servertest.AuditOrigin, Size: 8, Root: root}, other.Signer)
	if err != nil {
		t.Fatal(err)
	}
	if err = e.Store.PutCheckpoint(t.Context(), 8, forged); err != nil {
		t.Fatal(err)
	}
	_, _, err = verify(t, e, nil)
	wantFailure(t, err, auditor.ProblemSignature,
		fmt.Sprintf("checkpoint signature does not verify with the pinned key %s+%08x", servertest.AuditOrigin, e.Key.Verifier.KeyHash()))
}

func TestVerifyBadState(t *testing.T) {
	e := servertest.NewAuditLog(t, servertest.SampleDecisions())
	_, _, err := verify(t, e, &auditor.VerifyState{Size: 3, Root: []byte("short")})
	if err == nil {
		t.Fatal("Verify accepted a state with a short root")
	}
	var f *auditor.Failure
	if errors.As(err, &f) {
		t.Fatalf("a malformed state is reported as a log failure: %v", err)
	}
	// A state whose root is not the log's at that size is a rewrite.
	_, _, err = verify(t, e, &auditor.VerifyState{Size: 3, Root: e.Roots[4]})
	wantFailure(t, err, auditor.ProblemRewrite, "log rewritten: consistency proof from 3 to 8 fails")
}

// countingClient counts the proofs an auditor asks for.
type countingClient struct {
	veilmatchv1.AuditServiceClient
	inclusion, consistency atomic.Int64
}

func (c *countingClient) GetInclusionProof(ctx context.Context, in *veilmatchv1.GetInclusionProofRequest, opts ...grpc.CallOption) (*veilmatchv1.GetInclusionProofResponse, error) {
	c.inclusion.Add(1)
	return c.AuditServiceClient.GetInclusionProof(ctx, in, opts...)
}

func (c *countingClient) GetConsistencyProof(ctx context.Context, in *veilmatchv1.GetConsistencyProofRequest, opts ...grpc.CallOption) (*veilmatchv1.GetConsistencyProofResponse, error) {
	c.consistency.Add(1)
	return c.AuditServiceClient.GetConsistencyProof(ctx, in, opts...)
}

// TestVerifyLargeLog: a large log is verified by its root with a sample of
// inclusion proofs, not one proof per record, and a changed record deep in
// it is located with a logarithmic number of consistency proofs.
func TestVerifyLargeLog(t *testing.T) {
	const n = 1000
	var recs []audit.Record
	for len(recs) < n {
		recs = append(recs, servertest.SampleDecisions()...)
	}
	e := servertest.NewAuditLog(t, recs[:n])
	c := &countingClient{AuditServiceClient: e.Client(t, "auditor")}
	rep, _, err := auditor.Verify(t.Context(), c, e.Key.Verifier, servertest.AuditOrigin, nil)
	if err != nil || rep.Records != n {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
	if got := c.inclusion.Load(); got == 0 || got > 256 {
		t.Errorf("fetched %d inclusion proofs for %d records, want a sample of at most 256", got, n)
	}
	if got := c.consistency.Load(); got != 0 {
		t.Errorf("fetched %d consistency proofs of an intact log", got)
	}

	e.Tamper(t, edit(617, `"rev-1"`, `"rev-2"`))
	c = &countingClient{AuditServiceClient: e.Client(t, "auditor")}
	_, _, err = auditor.Verify(t.Context(), c, e.Key.Verifier, servertest.AuditOrigin, nil)
	wantFailure(t, err, auditor.ProblemChanged, changed(617))
	if got := c.consistency.Load(); got > 11 {
		t.Errorf("located the change with %d consistency proofs, want at most ⌈log2 %d⌉+1", got, n)
	}
	if got := c.inclusion.Load(); got != 0 {
		t.Errorf("fetched %d inclusion proofs of a log whose root does not match", got)
	}
}
