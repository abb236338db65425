package hub_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/veilmatch/veilmatch/client"
	"github.com/veilmatch/veilmatch/client/normalize"
	"github.com/veilmatch/veilmatch/internal/dirlock"
	"github.com/veilmatch/veilmatch/internal/servertest"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
	"github.com/veilmatch/veilmatch/server/hub"
	"github.com/veilmatch/veilmatch/server/keyserver"
)

// startConfig starts a key server and a hub configured by cfg.
func startConfig(t *testing.T, cfg hub.Config) *env {
	t.Helper()
	ks := servertest.KeyServer(t, keyserver.Config{})
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	h := servertest.Hub(t, cfg)
	return &env{ks: ks.Addr().String(), hub: h.Addr().String(), dataDir: cfg.DataDir}
}

// logSize returns the number of records in the hub's decision log.
func (e *env) logSize(t *testing.T) int {
	t.Helper()
	return len(dumpTables(t, filepath.Join(e.dataDir, hub.DBFile))["log_records"])
}

// decisions returns the hub's decisions of action.
func (e *env) decisions(t *testing.T, action string) []*veilmatchv1.Decision {
	t.Helper()
	aud := veilmatchv1.NewAuditServiceClient(servertest.Dial(t, e.hub, servertest.ClientTLS(t, "auditor")))
	resp, err := aud.ListDecisions(context.Background(), &veilmatchv1.ListDecisionsRequest{Action: action, PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetDecisions()
}

// TestUnknownCategoryRefused: a category, kind or consent role outside the
// policy's vocabulary is INVALID_ARGUMENT listing the valid words, and
// nothing is stored — a typo can never drop a list out of victim
// protection.
func TestUnknownCategoryRefused(t *testing.T) {
	e := start(t)
	hc := e.hubClient(t, "ngo-shelter")
	tests := []struct {
		name, want string
		list       *veilmatchv1.ListInfo
	}{
		{"category", `begin.list.category: "victims" is not a known list category; use one of: ad_contact, missing_person, suspect, victim`,
			&veilmatchv1.ListInfo{Name: "v", Kind: "phone", Category: "victims", KeyId: "k1"}},
		{"kind", `begin.list.kind: "fax" is not a known identifier kind`,
			&veilmatchv1.ListInfo{Name: "v", Kind: "fax", Category: "victim", KeyId: "k1"}},
		{"consent role", `begin.list.sharing.victim_consent_roles[0]: "police" is not a known role; use one of: auditor, law_enforcement, ngo`,
			&veilmatchv1.ListInfo{Name: "v", Kind: "phone", Category: "victim", KeyId: "k1", Sharing: &veilmatchv1.Sharing{VictimConsentRoles: []string{"police"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stream, err := hc.Publish(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if err := stream.Send(&veilmatchv1.PublishRequest{Msg: &veilmatchv1.PublishRequest_Begin{Begin: &veilmatchv1.PublishBegin{List: tt.list, UploadId: "upload-1"}}}); err != nil {
				t.Fatal(err)
			}
			_, err = stream.CloseAndRecv()
			if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), tt.want) {
				t.Fatalf("err = %v, want InvalidArgument containing %q", err, tt.want)
			}
		})
	}
	tables := dumpTables(t, filepath.Join(e.dataDir, hub.DBFile))
	if len(tables["lists"]) != 0 || len(tables["log_records"]) != 0 {
		t.Fatalf("refused publishes stored lists %v or records %v", tables["lists"], tables["log_records"])
	}
	v, err := e.client(t, "ngo-shelter").Vocabulary(context.Background())
	if err != nil || strings.Join(v.Categories, ",") != "ad_contact,missing_person,suspect,victim" || strings.Join(v.Purposes, ",") != "research,victim_support" {
		t.Fatalf("vocabulary = %+v, %v", v, err)
	}
}

// TestCheckFullDisclosureNotifiesOwner: a check that learns a list in full
// tells its owner, as overlaps does; a check at a lower level tells nobody.
func TestCheckFullDisclosureNotifiesOwner(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	gb, us := e.client(t, "police-gb"), e.client(t, "police-us")
	publish(t, us, "suspects", "US", "phone\n+44 7700 900123\n")
	res, err := gb.Check(ctx, strings.NewReader("phone\n07700 900123\n07700 900999\n"),
		client.CheckOptions{Kind: normalize.Phone, Normalize: normalize.Options{Region: "GB"}}, investigation)
	if err != nil || len(res.Matches) != 1 || res.Matches[0].Level != "full" {
		t.Fatalf("check = %+v, %v", res, err)
	}
	ns, err := us.Disclosures(ctx)
	if err != nil || len(ns) != 1 || ns[0].GetAction() != "check" || ns[0].GetRequester() != "police-gb" || ns[0].GetRequesterList() != "" ||
		ns[0].GetEntries() != 1 || ns[0].GetCaseRef() != "CASE-1" || ns[0].GetDecisionId() != res.DecisionID {
		t.Fatalf("police-us notices = %v, %v", ns, err)
	}
	th := e.client(t, "police-th")
	if res, err := th.Check(ctx, strings.NewReader("phone\n+44 7700 900123\n"), client.CheckOptions{Kind: normalize.Phone}, investigation); err != nil || len(res.Counts) != 1 {
		t.Fatalf("police-th check = %+v, %v", res, err)
	}
	if ns, _ := us.Disclosures(ctx); len(ns) != 1 {
		t.Fatalf("a count-level check told the owner: %v", ns)
	}
}

// TestCheckBudget: checked entries count per agency and day, repeated
// tokens included; beyond the budget a check is refused with
// RESOURCE_EXHAUSTED, recorded, and answers nothing.
func TestCheckBudget(t *testing.T) {
	e := startConfig(t, hub.Config{CheckBudget: 5})
	ctx := context.Background()
	publish(t, e.client(t, "police-th"), "suspects", "TH", "phone\n+44 7700 900123\n")
	gb := e.client(t, "police-gb")
	check := func(csv string) (client.Result, error) {
		return gb.Check(ctx, strings.NewReader(csv), client.CheckOptions{Kind: normalize.Phone, Normalize: normalize.Options{Region: "GB"}}, investigation)
	}
	for i := range 2 { // the same two entries, twice: 4 of 5
		if res, err := check("phone\n07700 900123\n07700 900999\n"); err != nil || len(res.Counts) != 1 {
			t.Fatalf("check %d = %+v, %v", i, res, err)
		}
	}
	_, err := check("phone\n07700 900123\n07700 900999\n")
	if st := status.Convert(errorsCause(err)); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "check budget of 5 entries per day exhausted: 4 checked today, this check has 2") {
		t.Fatalf("over the budget: %v", err)
	}
	if res, err := check("phone\n07700 900123\n"); err != nil || len(res.Counts) != 1 {
		t.Fatalf("the last entry of the budget: %+v, %v", res, err)
	}
	// Another agency has its own budget.
	if _, err := e.client(t, "police-us").Check(ctx, strings.NewReader("phone\n+44 7700 900123\n"), client.CheckOptions{Kind: normalize.Phone}, investigation); err != nil {
		t.Fatalf("police-us: %v", err)
	}
	var allowed, refused int
	for _, d := range e.decisions(t, "check") {
		if d.GetAgency() != "police-gb" {
			continue
		}
		switch d.GetResult() {
		case "allowed":
			allowed++
		case "refused":
			refused++
			if d.GetDetails()["entries"] != "2" || len(d.GetOutcomes()) != 0 {
				t.Errorf("refusal record = %v", d)
			}
		}
	}
	if allowed != 3 || refused != 1 {
		t.Fatalf("police-gb's check records: %d allowed, %d refused; want 3 and 1", allowed, refused)
	}
}

// TestMatchRefsConstantLength: a match reference is as long whether one
// list or three stand behind it, and a request from it is one request
// whose pending view shows the answer's count, not per-list counts.
func TestMatchRefsConstantLength(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	gb := e.client(t, "police-gb")
	publish(t, gb, "suspects", "GB", "phone\n+66 81 234 5678\n+66 81 234 5679\n")
	th := e.client(t, "police-th")
	publish(t, th, "one", "TH", "phone\n081 234 5678\n")
	res, err := gb.Overlaps(ctx, "suspects", investigation)
	if err != nil || len(res.Counts) != 1 {
		t.Fatalf("overlaps = %+v, %v", res, err)
	}
	one := res.Counts[0].MatchRef
	publish(t, th, "two", "TH", "phone\n081 234 5678\n081 234 5679\n")
	publish(t, th, "three", "TH", "phone\n081 234 5679\n")
	res, err = gb.Overlaps(ctx, "suspects", investigation)
	if err != nil || len(res.Counts) != 1 || res.Counts[0].Matches != 2 {
		t.Fatalf("overlaps = %+v, %v", res, err)
	}
	three := res.Counts[0].MatchRef
	if len(one) != len(three) {
		t.Fatalf("references of one and three lists have lengths %d and %d", len(one), len(three))
	}
	id, err := gb.RequestDisclosure(ctx, three, "a live case", client.Query{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := gb.DisclosureRequests(ctx, true, false)
	if err != nil || len(out) != 1 || out[0].GetId() != id || out[0].GetEntries() != 2 || out[0].GetOwner() != "" || out[0].GetList() != "" ||
		out[0].GetPurpose() != "investigation" || out[0].GetCaseRef() != "CASE-1" {
		t.Fatalf("requester's view = %v, %v", out, err)
	}
	in, err := th.DisclosureRequests(ctx, false, false)
	if err != nil || len(in) != 3 {
		t.Fatalf("police-th sees %d requests, want one per list: %v", len(in), err)
	}
}

// TestApprovalBoundToPurposeAndCase: an approval holds for the purpose and
// case it was requested under only; a reference cannot be requested under
// another case, nor twice while pending.
func TestApprovalBoundToPurposeAndCase(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	gb, ngo := e.client(t, "police-gb"), e.client(t, "ngo-shelter")
	publish(t, gb, "suspects", "GB", "phone\n07700 900789\n")
	publishVictims(t, ngo)
	res, err := gb.Overlaps(ctx, "suspects", investigation)
	if err != nil || len(res.Matches) != 1 || res.Matches[0].Level != "flag" {
		t.Fatalf("overlaps = %+v, %v", res, err)
	}
	ref := res.Matches[0].MatchRef
	other := client.Query{Purpose: "investigation", CaseRef: "CASE-2"}
	if _, err := gb.RequestDisclosure(ctx, ref, "why", other); status.Code(errorsCause(err)) != codes.InvalidArgument ||
		!strings.Contains(err.Error(), `issued for case_ref "CASE-1"`) {
		t.Fatalf("request under another case: %v", err)
	}
	if _, err := gb.RequestDisclosure(ctx, ref, "why", investigation); err != nil {
		t.Fatal(err)
	}
	if _, err := gb.RequestDisclosure(ctx, ref, "why again", investigation); status.Code(errorsCause(err)) != codes.AlreadyExists {
		t.Fatalf("a second request while pending: %v", err)
	}
	in, _ := ngo.DisclosureRequests(ctx, false, false)
	if len(in) != 1 {
		t.Fatalf("ngo sees %d requests, want 1", len(in))
	}
	if _, err := ngo.AnswerDisclosureRequest(ctx, in[0].GetId(), true, ""); err != nil {
		t.Fatal(err)
	}
	if res, err := gb.Overlaps(ctx, "suspects", investigation); err != nil || res.Matches[0].Level != "full" {
		t.Fatalf("under the approved case: %+v, %v", res, err)
	}
	if res, err := gb.Overlaps(ctx, "suspects", other); err != nil || res.Matches[0].Level != "flag" {
		t.Fatalf("under another case the approval applied: %+v, %v", res, err)
	}
}

// TestMatchRefExpires: a reference older than the hub's TTL is refused.
func TestMatchRefExpires(t *testing.T) {
	e := startConfig(t, hub.Config{MatchRefTTL: time.Nanosecond})
	ctx := context.Background()
	gb, ngo := e.client(t, "police-gb"), e.client(t, "ngo-shelter")
	publish(t, gb, "suspects", "GB", "phone\n07700 900789\n")
	publishVictims(t, ngo)
	res, err := gb.Overlaps(ctx, "suspects", investigation)
	if err != nil || len(res.Matches) != 1 {
		t.Fatalf("overlaps = %+v, %v", res, err)
	}
	_, err = gb.RequestDisclosure(ctx, res.Matches[0].MatchRef, "why", investigation)
	if st := status.Convert(errorsCause(err)); st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), "expired") {
		t.Fatalf("expired reference: %v", err)
	}
}

// TestBlankCaseRefRefused: a case reference of white space or invisible
// characters is no case reference; control characters and oversized text
// are INVALID_ARGUMENT naming the field, and reach no record.
func TestBlankCaseRefRefused(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	gb := e.client(t, "police-gb")
	publish(t, gb, "suspects", "GB", "phone\n07700 900123\n")
	before := e.logSize(t)
	for _, c := range []string{" ", "\t", "\u200b", " \ufeff\u200b "} {
		_, err := gb.Overlaps(ctx, "suspects", client.Query{Purpose: "investigation", CaseRef: c})
		if st := status.Convert(errorsCause(err)); st.Code() != codes.PermissionDenied || !strings.Contains(st.Message(), "case reference") {
			t.Errorf("case %q: %v, want PermissionDenied for a missing case reference", c, err)
		}
	}
	refused := e.logSize(t)
	if refused != before+4 {
		t.Fatalf("blank cases logged %d refusals, want 4", refused-before)
	}
	for _, tt := range []struct{ caseRef, want string }{
		{strings.Repeat("x", 129), "case_ref: 129 bytes, more than 128"},
		{"A\x00B", "case_ref: control character U+0000"},
		{strings.Repeat("y", 9<<20), ""}, // larger than any request the hub reads
	} {
		_, err := gb.Overlaps(ctx, "suspects", client.Query{Purpose: "investigation", CaseRef: tt.caseRef})
		st := status.Convert(errorsCause(err))
		switch {
		case tt.want == "" && st.Code() != codes.ResourceExhausted:
			t.Errorf("a 9 MB case: %v, want ResourceExhausted", err)
		case tt.want != "" && (st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), tt.want)):
			t.Errorf("case of %d bytes: %v, want InvalidArgument containing %q", len(tt.caseRef), err, tt.want)
		}
	}
	if got := e.logSize(t); got != refused {
		t.Fatalf("invalid cases reached the log: %d records, want %d", got, refused)
	}
	res, err := gb.Overlaps(ctx, "suspects", client.Query{Purpose: "investigation", CaseRef: "  GB-2026-7 \u200b"})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range e.decisions(t, "overlaps") {
		if d.GetDecisionId() == res.DecisionID && d.GetCaseRef() != "GB-2026-7" {
			t.Fatalf("case recorded as %q, want it trimmed", d.GetCaseRef())
		}
	}
}

// TestCallsRefusedBeforeReading: an identity that may not use a service is
// refused before its request is read, whatever its size; an agency's
// request larger than the hub's protocol needs is refused unread.
func TestCallsRefusedBeforeReading(t *testing.T) {
	e := start(t)
	huge := &veilmatchv1.CheckRequest{Kind: "phone", KeyId: "k1", Tokens: make([][]byte, 3_000_000)}
	if _, err := e.hubClient(t, "auditor").Check(context.Background(), huge); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("auditor's huge check: %v, want PermissionDenied", err)
	}
	if _, err := e.hubClient(t, "police-gb").Check(context.Background(), huge); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("agency's huge check: %v, want ResourceExhausted", err)
	}
	if n := e.logSize(t); n != 0 {
		t.Fatalf("refused calls left %d records", n)
	}
}

// TestMatchRefKeyMode: the hub refuses to start with a match reference key
// that other users may read, like its other key files.
func TestMatchRefKeyMode(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, hub.MatchRefKeyFile), make([]byte, 32), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := hub.New(context.Background(), hub.Config{Listen: "127.0.0.1:0", TLS: servertest.ServerTLS(t, "hub"), DataDir: dir, Policy: servertest.Policy(t)})
	if err == nil || !strings.Contains(err.Error(), "mode 0644") {
		t.Fatalf("New with a world-readable key: %v", err)
	}
}

// TestDataDirLocked: a second hub on the same data directory fails to
// start, saying who holds it; the first keeps serving.
func TestDataDirLocked(t *testing.T) {
	e := start(t)
	_, err := hub.New(context.Background(), hub.Config{Listen: "127.0.0.1:0", TLS: servertest.ServerTLS(t, "hub"), DataDir: e.dataDir, Policy: servertest.Policy(t)})
	if !errors.Is(err, dirlock.ErrLocked) || !strings.Contains(err.Error(), "in use by pid "+itoa(os.Getpid())) {
		t.Fatalf("second hub: %v", err)
	}
	if _, err := e.client(t, "police-gb").Lists(context.Background()); err != nil {
		t.Fatalf("the first hub stopped serving: %v", err)
	}
}
