package auditsvc_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/veilmatch/veilmatch/client/auditor"
	"github.com/veilmatch/veilmatch/internal/servertest"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/rpc"
)

// bigClient dials the service as the auditor accepting responses up to
// rpc.MaxMessageSize, as the CLI does (the gRPC default is 4 MiB).
func bigClient(t *testing.T, e *servertest.AuditLog) veilmatchv1.AuditServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(e.Addr,
		grpc.WithTransportCredentials(credentials.NewTLS(servertest.ClientTLS(t, "auditor"))),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(rpc.MaxMessageSize)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return veilmatchv1.NewAuditServiceClient(conn)
}

// withCaseRef returns servertest.SampleDecisions()[1], an overlaps decision for an
// investigation, stating a case reference of n bytes.
func withCaseRef(n int) audit.Record {
	r := servertest.SampleDecisions()[1]
	r.CaseRef = strings.Repeat("GB-", n/3+1)[:n]
	return r
}

// largeRecordLog returns the records of a log that predates the limits on
// free-text fields: mostly small records, a run of 256 KiB ones (more than
// MaxPageBytes together), and two adjacent ones of 9 MB, too large to share
// a message.
func largeRecordLog() (recs []audit.Record, large map[uint64]bool) {
	const n = 150
	large = map[uint64]bool{5: true, 6: true}
	for i := range n {
		switch {
		case large[uint64(i)]:
			recs = append(recs, withCaseRef(9_000_000))
		case i >= 100 && i < 117:
			recs = append(recs, withCaseRef(256<<10))
		default:
			recs = append(recs, servertest.SampleDecisions()[i%8])
		}
		recs[i].DecisionID = fmt.Sprintf("d-%d", i)
	}
	return recs, large
}

// pageThrough pages through ListDecisions from req's start_index, checks
// each page's size and paging fields, and returns the decisions listed.
func pageThrough(t *testing.T, c veilmatchv1.AuditServiceClient, req *veilmatchv1.ListDecisionsRequest) []*veilmatchv1.Decision {
	t.Helper()
	var all []*veilmatchv1.Decision
	for calls := 0; ; calls++ {
		if calls > 100 {
			t.Fatal("ListDecisions does not end")
		}
		resp, err := c.ListDecisions(t.Context(), req)
		if err != nil {
			t.Fatalf("ListDecisions from %d: %v", req.GetStartIndex(), err)
		}
		ds := resp.GetDecisions()
		if size := proto.Size(resp); size > audit.MaxPageBytes && len(ds) > 1 {
			t.Errorf("page from %d: %d decisions in %d bytes, more than MaxPageBytes %d", req.GetStartIndex(), len(ds), size, audit.MaxPageBytes)
		}
		for _, d := range ds {
			if d.GetIndex() < req.GetStartIndex() || d.GetIndex() >= resp.GetNextIndex() {
				t.Fatalf("page from %d to next_index %d holds decision %d", req.GetStartIndex(), resp.GetNextIndex(), d.GetIndex())
			}
		}
		all = append(all, ds...)
		if resp.GetEndOfLog() {
			return all
		}
		if resp.GetNextIndex() <= req.GetStartIndex() {
			t.Fatalf("next_index %d does not advance from %d", resp.GetNextIndex(), req.GetStartIndex())
		}
		req.StartIndex = resp.GetNextIndex()
	}
}

// TestLargeRecords: records too large to share a message (16 MiB) with
// others are verified and listed all the same: raw and decoded pages end at
// MaxPageBytes, a larger record comes alone, and paging lists every record
// once. (Decoding a 9 MB record takes about half a second under the race
// detector, so the log holds only two.)
func TestLargeRecords(t *testing.T) {
	recs, large := largeRecordLog()
	e := servertest.NewAuditLog(t, recs)
	n := uint64(len(recs))

	t.Run("Verify", func(t *testing.T) {
		// The client has gRPC's default receive limit of 4 MiB: Verify
		// asks for what it needs.
		rep, state, err := auditor.Verify(t.Context(), e.Client(t, "auditor"), e.Key.Verifier, servertest.AuditOrigin, nil)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if rep.Records != n || rep.Size != n || !bytes.Equal(rep.Root, e.Roots[n]) || state.Size != n {
			t.Fatalf("report = %+v, state %+v; want %d records, root %x", rep, state, n, e.Roots[n])
		}
		if got := rep.Actions["overlaps"]["allowed"]; got < uint64(len(large)) {
			t.Errorf("the report counts %d allowed overlaps, fewer than the large records", got)
		}
	})

	c := bigClient(t, e)
	// leaves are the leaf hashes of the records listed raw.
	var leaves [][]byte
	t.Run("raw", func(t *testing.T) {
		ds := pageThrough(t, c, &veilmatchv1.ListDecisionsRequest{Raw: true, PageSize: audit.MaxPageSize})
		tree, err := audit.NewTree(0, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i, d := range ds {
			if d.GetIndex() != uint64(i) {
				t.Fatalf("decision %d of the listing has index %d", i, d.GetIndex())
			}
			leaves = append(leaves, audit.LeafHash(d.GetRecord()))
			if _, err := tree.Append(leaves[i]); err != nil {
				t.Fatal(err)
			}
		}
		// The records listed are those of the log, in order.
		if root, err := tree.Root(); err != nil || uint64(len(ds)) != n || !bytes.Equal(root, e.Roots[n]) {
			t.Fatalf("listed %d records of root %x (%v); want %d of root %x", len(ds), root, err, n, e.Roots[n])
		}
	})

	// A decoded decision carries its record twice: a 9 MB one, too large
	// to send decoded, comes as in a raw listing.
	t.Run("filtered", func(t *testing.T) {
		req := &veilmatchv1.ListDecisionsRequest{Purpose: "investigation", PageSize: audit.MaxPageSize}
		var want []uint64
		for i, r := range recs {
			if r.Purpose == req.GetPurpose() {
				want = append(want, uint64(i))
			}
		}
		ds := pageThrough(t, c, req)
		if len(ds) != len(want) {
			t.Fatalf("listed %d decisions, want %d", len(ds), len(want))
		}
		for k, d := range ds {
			i := want[k]
			if d.GetIndex() != i {
				t.Fatalf("decision %d of the listing: index %d; want %d", k, d.GetIndex(), i)
			}
			if uint64(len(leaves)) == n && !bytes.Equal(audit.LeafHash(d.GetRecord()), leaves[i]) {
				t.Fatalf("decision %d: the record is not the one logged", i)
			}
			if !large[i] && (d.GetCaseRef() != recs[i].CaseRef || d.GetDecisionId() != recs[i].DecisionID) {
				t.Fatalf("decision %d: decoded case reference of %d bytes, id %q; want %d bytes, %q",
					i, len(d.GetCaseRef()), d.GetDecisionId(), len(recs[i].CaseRef), recs[i].DecisionID)
			}
		}
	})
}

// TestRecordTooLargeToSend: a record too large for any message is
// reported as RESOURCE_EXHAUSTED naming it, after the records before it,
// and Verify says that it cannot verify the log, not that the log is wrong.
// (Decoding the record takes about a second under the race detector: the
// test decodes it once.)
func TestRecordTooLargeToSend(t *testing.T) {
	recs := servertest.SampleDecisions()
	recs = append(recs[:3:3], withCaseRef(rpc.MaxMessageSize), recs[3])
	e := servertest.NewAuditLog(t, recs)
	c := bigClient(t, e)

	wantTooLarge := func(t *testing.T, err error) {
		t.Helper()
		wantCode(t, err, codes.ResourceExhausted, "record 3 of the decision log is")
		for _, d := range status.Convert(err).Details() {
			if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() == audit.ReasonRecordTooLarge && info.GetMetadata()["index"] == "3" {
				return
			}
		}
		t.Fatalf("error %v has no %s detail", err, audit.ReasonRecordTooLarge)
	}
	resp, err := c.ListDecisions(t.Context(), &veilmatchv1.ListDecisionsRequest{Raw: true})
	if err != nil || len(resp.GetDecisions()) != 3 || resp.GetNextIndex() != 3 || resp.GetEndOfLog() {
		t.Fatalf("raw ListDecisions = %v, %v; want the 3 records before record 3", resp, err)
	}
	_, err = c.ListDecisions(t.Context(), &veilmatchv1.ListDecisionsRequest{Raw: true, StartIndex: 3})
	wantTooLarge(t, err)
	_, err = c.ListDecisions(t.Context(), &veilmatchv1.ListDecisionsRequest{Agency: "police-gb", StartIndex: 3})
	wantTooLarge(t, err)

	_, _, err = auditor.Verify(t.Context(), e.Client(t, "auditor"), e.Key.Verifier, servertest.AuditOrigin, nil)
	if f := (*auditor.Failure)(nil); err == nil || errors.As(err, &f) || !strings.Contains(err.Error(), "record 3 is too large") {
		t.Fatalf("Verify = %v; want an error, not a failure, naming record 3", err)
	}
}
