package auditsvc_test

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/veilmatch/veilmatch/internal/servertest"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/auditsvc"
)

func wantCode(t *testing.T, err error, code codes.Code, contains string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code || !strings.Contains(st.Message(), contains) {
		t.Fatalf("error = %v; want %v containing %q", err, code, contains)
	}
}

func TestOnlyAuditors(t *testing.T) {
	e := servertest.NewAuditLog(t, servertest.SampleDecisions())
	ctx := t.Context()
	calls := map[string]func(veilmatchv1.AuditServiceClient) error{
		"ListDecisions": func(c veilmatchv1.AuditServiceClient) error {
			_, err := c.ListDecisions(ctx, &veilmatchv1.ListDecisionsRequest{})
			return err
		},
		"ListDecisions raw": func(c veilmatchv1.AuditServiceClient) error {
			_, err := c.ListDecisions(ctx, &veilmatchv1.ListDecisionsRequest{Raw: true})
			return err
		},
		"GetDecision": func(c veilmatchv1.AuditServiceClient) error {
			_, err := c.GetDecision(ctx, &veilmatchv1.GetDecisionRequest{Index: 1})
			return err
		},
		"GetCheckpoint": func(c veilmatchv1.AuditServiceClient) error {
			_, err := c.GetCheckpoint(ctx, &veilmatchv1.GetCheckpointRequest{})
			return err
		},
		"GetInclusionProof": func(c veilmatchv1.AuditServiceClient) error {
			_, err := c.GetInclusionProof(ctx, &veilmatchv1.GetInclusionProofRequest{Index: 1, TreeSize: 2})
			return err
		},
		"GetConsistencyProof": func(c veilmatchv1.AuditServiceClient) error {
			_, err := c.GetConsistencyProof(ctx, &veilmatchv1.GetConsistencyProofRequest{OldSize: 1, NewSize: 2})
			return err
		},
	}
	for _, party := range []string{"police-gb", "ngo-shelter", "auditor"} {
		c := e.Client(t, party)
		for name, call := range calls {
			t.Run(party+"/"+name, func(t *testing.T) {
				err := call(c)
				if party == "auditor" {
					if err != nil {
						t.Fatalf("auditor: %v", err)
					}
					return
				}
				wantCode(t, err, codes.PermissionDenied, "agency")
			})
		}
	}
}

// listAll pages through ListDecisions (see pageThrough) and returns the
// indices listed and the decisions.
func listAll(t *testing.T, c veilmatchv1.AuditServiceClient, req *veilmatchv1.ListDecisionsRequest) ([]uint64, []*veilmatchv1.Decision) {
	t.Helper()
	all := pageThrough(t, c, req)
	idx := make([]uint64, len(all))
	for i, d := range all {
		idx[i] = d.GetIndex()
	}
	return idx, all
}

func TestListDecisionsFilters(t *testing.T) {
	e := servertest.NewAuditLog(t, servertest.SampleDecisions())
	c := e.Client(t, "auditor")
	at := func(h int) *timestamppb.Timestamp {
		return timestamppb.New(servertest.AuditBase.Add(time.Duration(h) * time.Hour))
	}
	for _, tc := range []struct {
		name string
		req  *veilmatchv1.ListDecisionsRequest
		want []uint64
	}{
		{"all", &veilmatchv1.ListDecisionsRequest{}, []uint64{0, 1, 2, 3, 4, 5, 6, 7}},
		{"agency", &veilmatchv1.ListDecisionsRequest{Agency: "police-gb"}, []uint64{0, 1, 4, 7}},
		{"unknown agency", &veilmatchv1.ListDecisionsRequest{Agency: "police-fr"}, nil},
		{"action", &veilmatchv1.ListDecisionsRequest{Action: "overlaps"}, []uint64{1, 3, 5}},
		{"purpose", &veilmatchv1.ListDecisionsRequest{Purpose: "investigation"}, []uint64{1, 3, 4, 6}},
		{"level full", &veilmatchv1.ListDecisionsRequest{Level: "full"}, []uint64{1}},
		{"level count", &veilmatchv1.ListDecisionsRequest{Level: "count"}, []uint64{1, 4}},
		{"level flag", &veilmatchv1.ListDecisionsRequest{Level: "flag"}, []uint64{2}},
		{"level refused", &veilmatchv1.ListDecisionsRequest{Level: "refused"}, []uint64{3, 5}},
		{"since", &veilmatchv1.ListDecisionsRequest{Since: at(5)}, []uint64{5, 6, 7}},
		{"until", &veilmatchv1.ListDecisionsRequest{Until: at(2)}, []uint64{0, 1}},
		{"range", &veilmatchv1.ListDecisionsRequest{Since: at(2), Until: at(4)}, []uint64{2, 3}},
		{"agency and action", &veilmatchv1.ListDecisionsRequest{Agency: "police-gb", Action: "overlaps"}, []uint64{1}},
		{"start index", &veilmatchv1.ListDecisionsRequest{StartIndex: 6}, []uint64{6, 7}},
		{"start beyond the log", &veilmatchv1.ListDecisionsRequest{StartIndex: 99}, nil},
		{"pages of 3", &veilmatchv1.ListDecisionsRequest{PageSize: 3}, []uint64{0, 1, 2, 3, 4, 5, 6, 7}},
		{"filtered pages of 1", &veilmatchv1.ListDecisionsRequest{Purpose: "investigation", PageSize: 1}, []uint64{1, 3, 4, 6}},
		{"huge page", &veilmatchv1.ListDecisionsRequest{PageSize: 1 << 30}, []uint64{0, 1, 2, 3, 4, 5, 6, 7}},
		{"raw", &veilmatchv1.ListDecisionsRequest{Raw: true, PageSize: 5}, []uint64{0, 1, 2, 3, 4, 5, 6, 7}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := listAll(t, c, tc.req)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("listed %v, want %v", got, tc.want)
			}
		})
	}

	// One page: next_index and end_of_log.
	resp, err := c.ListDecisions(t.Context(), &veilmatchv1.ListDecisionsRequest{Purpose: "investigation", PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetDecisions()) != 2 || resp.GetNextIndex() != 4 || resp.GetEndOfLog() {
		t.Fatalf("first page: %d decisions, next %d, end %v; want 2, 4, false", len(resp.GetDecisions()), resp.GetNextIndex(), resp.GetEndOfLog())
	}
}

func TestListDecisionsDecodes(t *testing.T) {
	recs := servertest.SampleDecisions()
	e := servertest.NewAuditLog(t, recs)
	c := e.Client(t, "auditor")
	_, all := listAll(t, c, &veilmatchv1.ListDecisionsRequest{})
	for i, d := range all {
		want := recs[i]
		want.Index = uint64(i)
		data, err := want.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(d.GetRecord(), data) {
			t.Errorf("decision %d: record bytes differ from the appended record", i)
		}
	}
	d := all[1]
	if d.GetAgency() != "police-gb" || d.GetAction() != "overlaps" || d.GetResult() != audit.ResultAllowed ||
		d.GetPurpose() != "investigation" || d.GetCaseRef() != "GB-1" || d.GetCaller() != "spiffe://veilmatch.dev/agency/police-gb" ||
		d.GetPolicyRevision() != "rev-1" || d.GetDecisionId() != "d-b" || !d.GetTime().AsTime().Equal(servertest.AuditBase.Add(time.Hour)) ||
		!slices.Equal(d.GetLevels(), []string{"count", "full"}) || !slices.Equal(d.GetRuleIds(), []string{"le_full", "ngo_count"}) ||
		len(d.GetOutcomes()) != 2 || d.GetOutcomes()[0].GetLevel() != "full" || d.GetOutcomes()[0].GetEntries() != 2 {
		t.Errorf("decision 1 = %v", d)
	}
	if d := all[3]; d.GetResult() != audit.ResultRefused || d.GetReason() != "a case reference is required" {
		t.Errorf("decision 3 = %v", d)
	}
	if d := all[7]; d.GetDetails()["evaluations"] != "100" || d.GetDetails()["day"] != "2026-11-01" {
		t.Errorf("decision 7 details = %v", d.GetDetails())
	}
	// A raw listing carries the bytes only.
	resp, err := c.ListDecisions(t.Context(), &veilmatchv1.ListDecisionsRequest{Raw: true, StartIndex: 1, PageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetDecisions()) != 1 || resp.GetDecisions()[0].GetIndex() != 1 || resp.GetDecisions()[0].GetAction() != "" ||
		!bytes.Equal(resp.GetDecisions()[0].GetRecord(), all[1].GetRecord()) {
		t.Errorf("raw decision 1 = %v", resp.GetDecisions())
	}
}

func TestListDecisionsInvalid(t *testing.T) {
	e := servertest.NewAuditLog(t, servertest.SampleDecisions())
	c := e.Client(t, "auditor")
	for _, tc := range []struct {
		req  *veilmatchv1.ListDecisionsRequest
		want string
	}{
		{&veilmatchv1.ListDecisionsRequest{Raw: true, Agency: "police-gb"}, "raw"},
		{&veilmatchv1.ListDecisionsRequest{Since: &timestamppb.Timestamp{Nanos: -1}}, "since"},
		{&veilmatchv1.ListDecisionsRequest{Until: &timestamppb.Timestamp{Seconds: 1 << 62}}, "until"},
		{&veilmatchv1.ListDecisionsRequest{Since: timestamppb.New(servertest.AuditBase.Add(time.Hour)), Until: timestamppb.New(servertest.AuditBase)}, "since"},
	} {
		_, err := c.ListDecisions(t.Context(), tc.req)
		wantCode(t, err, codes.InvalidArgument, tc.want)
	}
}

func TestGetDecision(t *testing.T) {
	e := servertest.NewAuditLog(t, servertest.SampleDecisions())
	c := e.Client(t, "auditor")
	resp, err := c.GetDecision(t.Context(), &veilmatchv1.GetDecisionRequest{Index: 2})
	if err != nil {
		t.Fatal(err)
	}
	if d := resp.GetDecision(); d.GetIndex() != 2 || d.GetAgency() != "ngo-shelter" || d.GetAction() != "check" {
		t.Fatalf("decision 2 = %v", d)
	}
	for _, idx := range []uint64{8, 1 << 63} {
		_, err = c.GetDecision(t.Context(), &veilmatchv1.GetDecisionRequest{Index: idx})
		wantCode(t, err, codes.NotFound, "8 records")
	}
}

func TestDamagedRecord(t *testing.T) {
	e := servertest.NewAuditLog(t, servertest.SampleDecisions())
	c := e.Client(t, "auditor")
	e.Tamper(t, `UPDATE log_records SET record = CAST('{"garbage": true}' AS BLOB) WHERE idx = 2`)
	_, err := c.GetDecision(t.Context(), &veilmatchv1.GetDecisionRequest{Index: 2})
	wantCode(t, err, codes.Internal, "record 2")
	if strings.Contains(status.Convert(err).Message(), "garbage") {
		t.Errorf("error %v shows the record's bytes", err)
	}
	_, err = c.ListDecisions(t.Context(), &veilmatchv1.ListDecisionsRequest{})
	wantCode(t, err, codes.Internal, "record 2")
	// The raw listing serves the bytes as stored, for the auditor to judge.
	resp, err := c.ListDecisions(t.Context(), &veilmatchv1.ListDecisionsRequest{Raw: true})
	if err != nil || len(resp.GetDecisions()) != 8 || string(resp.GetDecisions()[2].GetRecord()) != `{"garbage": true}` {
		t.Fatalf("raw listing = %v, %v", resp, err)
	}

	e.Tamper(t, `DELETE FROM log_records WHERE idx = 5`)
	for _, req := range []*veilmatchv1.ListDecisionsRequest{{Raw: true, StartIndex: 3}, {StartIndex: 5}} {
		resp, err = c.ListDecisions(t.Context(), req)
		if req.GetStartIndex() == 3 {
			// The records before the gap are served; the next page fails.
			if err != nil || len(resp.GetDecisions()) != 2 || resp.GetNextIndex() != 5 || resp.GetEndOfLog() {
				t.Fatalf("listing up to the gap = %v, %v", resp, err)
			}
			continue
		}
		wantCode(t, err, codes.DataLoss, "record 5 is missing")
	}
	_, err = c.GetDecision(t.Context(), &veilmatchv1.GetDecisionRequest{Index: 5})
	wantCode(t, err, codes.DataLoss, "record 5 is missing")
}

func TestCheckpoint(t *testing.T) {
	e := servertest.NewAuditLog(t, servertest.SampleDecisions())
	c := e.Client(t, "auditor")
	resp, err := c.GetCheckpoint(t.Context(), &veilmatchv1.GetCheckpointRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetVerifierKey() != e.Key.VKey || resp.GetOrigin() != servertest.AuditOrigin {
		t.Fatalf("verifier key %q, origin %q", resp.GetVerifierKey(), resp.GetOrigin())
	}
	// The standard signed-note library verifies it with the pinned key.
	v, err := note.NewVerifier(e.Key.VKey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(resp.GetCheckpoint(), note.VerifierList(v))
	if err != nil {
		t.Fatalf("note.Open: %v", err)
	}
	if !strings.HasPrefix(n.Text, servertest.AuditOrigin+"\n8\n") {
		t.Fatalf("checkpoint text = %q", n.Text)
	}
	cp, err := audit.OpenCheckpoint(resp.GetCheckpoint(), e.Key.Verifier, servertest.AuditOrigin)
	if err != nil || cp.Size != 8 || !bytes.Equal(cp.Root, e.Roots[8]) {
		t.Fatalf("checkpoint = %+v, %v; want size 8 root %x", cp, err, e.Roots[8])
	}
	// It is stored, and served again while the log does not grow.
	if size, text, err := e.Store.LatestCheckpoint(t.Context()); err != nil || size != 8 || !bytes.Equal(text, resp.GetCheckpoint()) {
		t.Fatalf("stored checkpoint = %d, %v", size, err)
	}
	again, err := c.GetCheckpoint(t.Context(), &veilmatchv1.GetCheckpointRequest{})
	if err != nil || !bytes.Equal(again.GetCheckpoint(), resp.GetCheckpoint()) {
		t.Fatalf("second checkpoint differs: %v", err)
	}
	// The log grows: a new checkpoint.
	e.Append(t, servertest.SampleDecisions()[:2]...)
	resp, err = c.GetCheckpoint(t.Context(), &veilmatchv1.GetCheckpointRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if cp, err := audit.OpenCheckpoint(resp.GetCheckpoint(), e.Key.Verifier, servertest.AuditOrigin); err != nil || cp.Size != 10 || !bytes.Equal(cp.Root, e.Roots[10]) {
		t.Fatalf("checkpoint after growth = %+v, %v", cp, err)
	}
}

func TestEmptyLogCheckpoint(t *testing.T) {
	e := servertest.NewAuditLog(t, nil)
	resp, err := e.Client(t, "auditor").GetCheckpoint(t.Context(), &veilmatchv1.GetCheckpointRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if cp, err := audit.OpenCheckpoint(resp.GetCheckpoint(), e.Key.Verifier, servertest.AuditOrigin); err != nil || cp.Size != 0 {
		t.Fatalf("checkpoint = %+v, %v", cp, err)
	}
}

// brokenSigner fails to sign, as an unreachable Vault would.
type brokenSigner struct{ note.Signer }

func (brokenSigner) Sign([]byte) ([]byte, error) { return nil, errors.New("vault unreachable") }

func TestCheckpointSignerDown(t *testing.T) {
	e := servertest.NewAuditLog(t, servertest.SampleDecisions()[:3])
	broken := brokenSigner{e.Key.Signer}
	down := veilmatchv1.NewAuditServiceClient(servertest.Dial(t,
		servertest.ServeAudit(t, auditsvc.New(e.Store, broken, servertest.AuditOrigin, e.Key.VKey, nil)), servertest.ClientTLS(t, "auditor")))
	nilSigner := veilmatchv1.NewAuditServiceClient(servertest.Dial(t,
		servertest.ServeAudit(t, auditsvc.New(e.Store, nil, servertest.AuditOrigin, e.Key.VKey, nil)), servertest.ClientTLS(t, "auditor")))

	// Nothing stored yet: UNAVAILABLE, never an unsigned checkpoint.
	for _, c := range []veilmatchv1.AuditServiceClient{down, nilSigner} {
		_, err := c.GetCheckpoint(t.Context(), &veilmatchv1.GetCheckpointRequest{})
		wantCode(t, err, codes.Unavailable, "checkpoint signer")
		if strings.Contains(status.Convert(err).Message(), "vault") {
			t.Errorf("error %v shows the cause", err)
		}
	}
	// The working service signs size 3; the log grows; the broken one
	// serves the stored checkpoint of size 3.
	if _, err := e.Client(t, "auditor").GetCheckpoint(t.Context(), &veilmatchv1.GetCheckpointRequest{}); err != nil {
		t.Fatal(err)
	}
	e.Append(t, servertest.SampleDecisions()[3])
	for _, c := range []veilmatchv1.AuditServiceClient{down, nilSigner} {
		resp, err := c.GetCheckpoint(t.Context(), &veilmatchv1.GetCheckpointRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if cp, err := audit.OpenCheckpoint(resp.GetCheckpoint(), e.Key.Verifier, servertest.AuditOrigin); err != nil || cp.Size != 3 {
			t.Fatalf("fallback checkpoint = %+v, %v", cp, err)
		}
	}
}

func TestProofs(t *testing.T) {
	recs := servertest.SampleDecisions()
	e := servertest.NewAuditLog(t, recs)
	c := e.Client(t, "auditor")
	ctx := t.Context()
	raw, err := c.ListDecisions(ctx, &veilmatchv1.ListDecisionsRequest{Raw: true})
	if err != nil {
		t.Fatal(err)
	}
	n := uint64(len(recs))
	for i, d := range raw.GetDecisions() {
		leaf := audit.LeafHash(d.GetRecord())
		for size := uint64(i + 1); size <= n; size++ {
			p, err := c.GetInclusionProof(ctx, &veilmatchv1.GetInclusionProofRequest{Index: uint64(i), TreeSize: size})
			if err != nil {
				t.Fatal(err)
			}
			if err := audit.VerifyInclusion(leaf, uint64(i), size, p.GetHashes(), e.Roots[size]); err != nil {
				t.Fatalf("inclusion of %d in %d: %v", i, size, err)
			}
			if i > 0 && audit.VerifyInclusion(leaf, uint64(i-1), size, p.GetHashes(), e.Roots[size]) == nil {
				t.Fatalf("inclusion of %d verifies at index %d", i, i-1)
			}
		}
	}
	for old := uint64(0); old <= n; old++ {
		for size := old; size <= n; size++ {
			p, err := c.GetConsistencyProof(ctx, &veilmatchv1.GetConsistencyProofRequest{OldSize: old, NewSize: size})
			if err != nil {
				t.Fatal(err)
			}
			if err := audit.VerifyConsistency(old, size, e.Roots[old], e.Roots[size], p.GetHashes()); err != nil {
				t.Fatalf("consistency %d..%d: %v", old, size, err)
			}
			if old > 0 && old < size && audit.VerifyConsistency(old, size, e.Roots[old-1], e.Roots[size], p.GetHashes()) == nil {
				t.Fatalf("consistency %d..%d verifies with the root of %d", old, size, old-1)
			}
		}
	}

	for _, tc := range []struct {
		name string
		call func() error
		want string
	}{
		{"tree size 0", func() error {
			_, err := c.GetInclusionProof(ctx, &veilmatchv1.GetInclusionProofRequest{Index: 0, TreeSize: 0})
			return err
		}, "tree_size"},
		{"index at tree size", func() error {
			_, err := c.GetInclusionProof(ctx, &veilmatchv1.GetInclusionProofRequest{Index: 5, TreeSize: 5})
			return err
		}, "index"},
		{"tree size beyond the log", func() error {
			_, err := c.GetInclusionProof(ctx, &veilmatchv1.GetInclusionProofRequest{Index: 1, TreeSize: 9})
			return err
		}, "tree_size 9 exceeds the log size 8"},
		{"old size above new size", func() error {
			_, err := c.GetConsistencyProof(ctx, &veilmatchv1.GetConsistencyProofRequest{OldSize: 5, NewSize: 4})
			return err
		}, "old_size"},
		{"new size beyond the log", func() error {
			_, err := c.GetConsistencyProof(ctx, &veilmatchv1.GetConsistencyProofRequest{OldSize: 5, NewSize: 1 << 40})
			return err
		}, "new_size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantCode(t, tc.call(), codes.InvalidArgument, tc.want)
		})
	}
}
