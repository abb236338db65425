package auditsvc_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"

	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/auditsvc"
)

// tamper runs SQL statements directly against the store's database file,
// as an operator covering its tracks would.
func tamper(t *testing.T, e *testEnv, stmts ...string) {
	t.Helper()
	u := url.URL{Scheme: "file", Path: e.dbPath, RawQuery: url.Values{"_pragma": {"busy_timeout(5000)"}}.Encode()}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.ExecContext(t.Context(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

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
func (e *testEnv) verify(t *testing.T, prev *auditsvc.VerifyState) (auditsvc.VerifyReport, *auditsvc.VerifyState, error) {
	t.Helper()
	return auditsvc.Verify(t.Context(), e.client(t, "auditor"), e.key.verifier, testOrigin, prev)
}

func TestVerify(t *testing.T) {
	e := newEnv(t, testRecords())
	rep, state, err := e.verify(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records != 8 || rep.Size != 8 || !bytes.Equal(rep.Root, e.roots[8]) || rep.Consistent {
		t.Fatalf("report = %+v", rep)
	}
	if got := rep.Actions["overlaps"]; got["allowed"] != 1 || got["refused"] != 2 {
		t.Errorf("overlaps counts = %v", got)
	}
	if got := rep.Actions["check"]; got["allowed"] != 2 || got["refused"] != 0 {
		t.Errorf("check counts = %v", got)
	}
	if want := fmt.Sprintf("verified 8 records, checkpoint size 8 root %x", e.roots[8]); rep.Summary() != want {
		t.Errorf("summary = %q, want %q", rep.Summary(), want)
	}
	if state.Size != 8 || !bytes.Equal(state.Root, e.roots[8]) {
		t.Fatalf("state = %+v", state)
	}
	if _, err := audit.OpenCheckpoint([]byte(state.Checkpoint), e.key.verifier, testOrigin); err != nil {
		t.Fatalf("state checkpoint: %v", err)
	}

	// The state survives JSON, and the next run proves consistency.
	data, err := json.Marshal(state)
	if err != nil {
		t.Fatal(err)
	}
	var prev auditsvc.VerifyState
	if err := json.Unmarshal(data, &prev); err != nil {
		t.Fatal(err)
	}
	e.append(t, testRecords()...)
	rep, state, err = e.verify(t, &prev)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records != 16 || !rep.Consistent || rep.PreviousSize != 8 || state.Size != 16 {
		t.Fatalf("second report = %+v, state %+v", rep, state)
	}
	// Nothing new: consistent with itself.
	if rep, _, err := e.verify(t, state); err != nil || !rep.Consistent || rep.Size != 16 {
		t.Fatalf("third run = %+v, %v", rep, err)
	}
}

func TestVerifyEmptyLog(t *testing.T) {
	e := newEnv(t, nil)
	rep, state, err := e.verify(t, nil)
	if err != nil || rep.Records != 0 || state.Size != 0 {
		t.Fatalf("Verify = %+v, %+v, %v", rep, state, err)
	}
	e.append(t, testRecords()...)
	if rep, _, err := e.verify(t, state); err != nil || !rep.Consistent || rep.Records != 8 {
		t.Fatalf("Verify after growth = %+v, %v", rep, err)
	}
}

// wantFailure requires err to be a Failure of the given problem and message.
func wantFailure(t *testing.T, err error, p auditsvc.Problem, msg string) {
	t.Helper()
	var f *auditsvc.Failure
	if !errors.As(err, &f) || f.Problem != p || f.Error() != msg {
		t.Fatalf("Verify error = %v (%#v); want problem %d %q", err, f, p, msg)
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	for _, tc := range []struct {
		name    string
		stmts   []string
		problem auditsvc.Problem
		msg     string
	}{
		{"record changed", []string{edit(5, `"research"`, `"investigation"`)}, auditsvc.ProblemChanged, changed(5)},
		{"result flipped", []string{edit(3, `"refused"`, `"allowed"`)}, auditsvc.ProblemChanged, changed(3)},
		{"first record changed", []string{edit(0, `"police-gb"`, `"police-xx"`)}, auditsvc.ProblemChanged, changed(0)},
		{"last record changed", []string{edit(7, `"police-gb"`, `"police-xx"`)}, auditsvc.ProblemChanged, changed(7)},
		{"record not canonical", []string{
			edit(2, `","`, `", "`),
		}, auditsvc.ProblemChanged, "record 2: changed (it is not a canonical record)"},
		{"record deleted", []string{
			`DELETE FROM log_records WHERE idx = 3`,
		}, auditsvc.ProblemMissing, "record 3 missing"},
		{"last record deleted", []string{
			`DELETE FROM log_records WHERE idx = 7`,
		}, auditsvc.ProblemMissing, "record 7 missing"},
		{"record deleted and the rest renumbered", []string{
			`DELETE FROM log_records WHERE idx = 3`,
			`UPDATE log_records SET idx = -idx WHERE idx > 3`,
			`UPDATE log_records SET idx = -idx - 1 WHERE idx < 0`,
		}, auditsvc.ProblemMissing, "record 3 missing"},
		{"records swapped", []string{
			`UPDATE log_records SET idx = -1 WHERE idx = 4`,
			`UPDATE log_records SET idx = 4 WHERE idx = 5`,
			`UPDATE log_records SET idx = 5 WHERE idx = -1`,
		}, auditsvc.ProblemOrder, "records out of order at 4"},
		{"tree node damaged", []string{
			`UPDATE log_nodes SET hash = zeroblob(32) WHERE level = 0 AND idx = 6`,
		}, auditsvc.ProblemProof, "record 7: its inclusion proof fails, yet the records hash to the checkpoint root: the hub's stored tree nodes are damaged"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, testRecords())
			if _, _, err := e.verify(t, nil); err != nil {
				t.Fatal(err)
			}
			tamper(t, e, tc.stmts...)
			_, state, err := e.verify(t, nil)
			wantFailure(t, err, tc.problem, tc.msg)
			if state != nil {
				t.Errorf("a failed verification returned a state")
			}
		})
	}
}

func TestVerifyDetectsRollback(t *testing.T) {
	recs := testRecords()
	e := newEnv(t, recs)
	_, state, err := e.verify(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The operator restores an earlier copy of the database: the first
	// five records.
	old := newEnv(t, recs[:5])
	old.key = e.key
	old.addr = serve(t, auditsvc.New(old.store, e.key.signer, testOrigin, e.key.vkey, nil))
	_, _, err = old.verify(t, state)
	wantFailure(t, err, auditsvc.ProblemRollback, "log rolled back from size 8 to 5")

	// ... and appends other decisions until it is larger than before.
	forged := slices.Clone(recs[:5])
	for i := range 6 {
		r := recs[1]
		r.CaseRef = fmt.Sprintf("forged-%d", i)
		forged = append(forged, r)
	}
	rewritten := newEnv(t, forged)
	rewritten.addr = serve(t, auditsvc.New(rewritten.store, e.key.signer, testOrigin, e.key.vkey, nil))
	rewritten.key = e.key
	_, _, err = rewritten.verify(t, state)
	wantFailure(t, err, auditsvc.ProblemRewrite, "log rewritten: consistency proof from 8 to 11 fails")
	// Without the state the rewritten log is self-consistent: the state
	// file is what catches a rewrite.
	if _, _, err := rewritten.verify(t, nil); err != nil {
		t.Fatalf("rewritten log without state: %v", err)
	}
}

func TestVerifyPinnedKey(t *testing.T) {
	e := newEnv(t, testRecords())
	for name, k := range map[string]testKey{
		"other key, same name":  newKey(t, testOrigin),
		"other key, other name": newKey(t, "evil.example/audit"),
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := auditsvc.Verify(t.Context(), e.client(t, "auditor"), k.verifier, testOrigin, nil)
			wantFailure(t, err, auditsvc.ProblemSignature,
				fmt.Sprintf("checkpoint signature does not verify with the pinned key %s+%08x", k.verifier.Name(), k.verifier.KeyHash()))
		})
	}
	// A checkpoint for another log.
	_, _, err := auditsvc.Verify(t.Context(), e.client(t, "auditor"), e.key.verifier, "other.example/log", nil)
	var f *auditsvc.Failure
	if !errors.As(err, &f) || f.Problem != auditsvc.ProblemCheckpoint || f.Error() != `checkpoint is not for the log "other.example/log"` {
		t.Fatalf("Verify with another origin = %v", err)
	}
	// The stored checkpoint is replaced by one signed with another key.
	other := newKey(t, testOrigin)
	root := e.roots[8]
	forged, err := audit.SignCheckpoint(audit.Checkpoint{Origin: testOrigin, Size: 8, Root: root}, other.signer)
	if err != nil {
		t.Fatal(err)
	}
	if err = e.store.PutCheckpoint(t.Context(), 8, forged); err != nil {
		t.Fatal(err)
	}
	_, _, err = e.verify(t, nil)
	wantFailure(t, err, auditsvc.ProblemSignature,
		fmt.Sprintf("checkpoint signature does not verify with the pinned key %s+%08x", testOrigin, e.key.verifier.KeyHash()))
}

func TestVerifyBadState(t *testing.T) {
	e := newEnv(t, testRecords())
	_, _, err := e.verify(t, &auditsvc.VerifyState{Size: 3, Root: []byte("short")})
	if err == nil {
		t.Fatal("Verify accepted a state with a short root")
	}
	var f *auditsvc.Failure
	if errors.As(err, &f) {
		t.Fatalf("a malformed state is reported as a log failure: %v", err)
	}
	// A state whose root is not the log's at that size is a rewrite.
	_, _, err = e.verify(t, &auditsvc.VerifyState{Size: 3, Root: e.roots[4]})
	wantFailure(t, err, auditsvc.ProblemRewrite, "log rewritten: consistency proof from 3 to 8 fails")
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
		recs = append(recs, testRecords()...)
	}
	e := newEnv(t, recs[:n])
	c := &countingClient{AuditServiceClient: e.client(t, "auditor")}
	rep, _, err := auditsvc.Verify(t.Context(), c, e.key.verifier, testOrigin, nil)
	if err != nil || rep.Records != n {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
	if got := c.inclusion.Load(); got == 0 || got > 256 {
		t.Errorf("fetched %d inclusion proofs for %d records, want a sample of at most 256", got, n)
	}
	if got := c.consistency.Load(); got != 0 {
		t.Errorf("fetched %d consistency proofs of an intact log", got)
	}

	tamper(t, e, edit(617, `"rev-1"`, `"rev-2"`))
	c = &countingClient{AuditServiceClient: e.client(t, "auditor")}
	_, _, err = auditsvc.Verify(t.Context(), c, e.key.verifier, testOrigin, nil)
	wantFailure(t, err, auditsvc.ProblemChanged, changed(617))
	if got := c.consistency.Load(); got > 11 {
		t.Errorf("located the change with %d consistency proofs, want at most ⌈log2 %d⌉+1", got, n)
	}
	if got := c.inclusion.Load(); got != 0 {
		t.Errorf("fetched %d inclusion proofs of a log whose root does not match", got)
	}
}
