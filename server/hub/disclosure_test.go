package hub_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/veilmatch/veilmatch/client"
	"github.com/veilmatch/veilmatch/client/normalize"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
)

func publishVictims(t *testing.T, c *client.Client, consent ...string) {
	t.Helper()
	_, err := c.Publish(context.Background(), strings.NewReader("phone\n07700 900789\n07700 900555\n"), client.PublishOptions{
		List: "victims", Kind: normalize.Phone, Category: "victim", Normalize: normalize.Options{Region: "GB"},
		Sharing: client.Sharing{VictimConsentRoles: consent},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestVictimFlagAndConsent: police see a victim list's match only as a
// flag with the liaison contact, never the holder; with consent, in full.
func TestVictimFlagAndConsent(t *testing.T) {
	e := start(t)
	gb, ngo := e.client(t, "police-gb"), e.client(t, "ngo-shelter")
	publish(t, gb, "suspects", "GB", "phone\n07700 900123\n07700 900789\n")
	publishVictims(t, ngo)
	res, err := gb.Overlaps(context.Background(), "suspects", investigation)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Matches) != 1 || res.Matches[0].Level != "flag" || res.Matches[0].Line != 3 ||
		res.Matches[0].LiaisonContact != "victim-liaison@gb.example" || res.Matches[0].Counterparty != nil || res.Matches[0].MatchRef == "" {
		t.Fatalf("flag = %+v", res.Matches)
	}
	if strings.Contains(mustJSON(t, res), "ngo-shelter") || strings.Contains(mustJSON(t, res), "victims") {
		t.Fatalf("the answer names the NGO or its list: %s", mustJSON(t, res))
	}

	publishVictims(t, ngo, "law_enforcement")
	res, err = gb.Overlaps(context.Background(), "suspects", investigation)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Matches) != 1 || res.Matches[0].Level != "full" || res.Matches[0].Counterparty.Agency != "ngo-shelter" {
		t.Fatalf("with consent = %+v", res.Matches)
	}
}

// TestTwoStepDisclosure: an approved request upgrades exactly that match to
// full for the requester; a refused one changes nothing; the owner sees
// every full disclosure of its entries.
func TestTwoStepDisclosure(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	gb, ngo, th := e.client(t, "police-gb"), e.client(t, "ngo-shelter"), e.client(t, "police-th")
	publish(t, gb, "suspects", "GB", "phone\n07700 900789\n07700 900555\n+66 81 234 5678\n")
	publishVictims(t, ngo)
	publish(t, th, "suspects", "TH", "phone\n081 234 5678\n")

	before, err := gb.Overlaps(ctx, "suspects", investigation)
	if err != nil {
		t.Fatal(err)
	}
	if len(before.Matches) != 2 || len(before.Counts) != 1 {
		t.Fatalf("before = %s", mustJSON(t, before))
	}
	flagRef := before.Matches[0].MatchRef // line 2, 07700 900789
	countRef := before.Counts[0].MatchRef

	// Only the requester may use its references, with a reason.
	if _, err := th.RequestDisclosure(ctx, flagRef, "x", investigation); status.Code(errorsCause(err)) != codes.PermissionDenied {
		t.Fatalf("another agency used the reference: %v", err)
	}
	if _, err := gb.RequestDisclosure(ctx, flagRef, "", investigation); status.Code(errorsCause(err)) != codes.InvalidArgument {
		t.Fatalf("request without a reason: %v", err)
	}
	if _, err := gb.RequestDisclosure(ctx, "mr2.forged", "x", investigation); status.Code(errorsCause(err)) != codes.InvalidArgument {
		t.Fatalf("forged reference: %v", err)
	}
	id, err := gb.RequestDisclosure(ctx, flagRef, "same number in a live case", investigation)
	if err != nil || id == "" {
		t.Fatalf("request = %q, %v", id, err)
	}
	thID, err := gb.RequestDisclosure(ctx, countRef, "need the Thai contact", investigation)
	if err != nil || thID == "" {
		t.Fatalf("count request = %q, %v", thID, err)
	}

	// The requester's view hides the owner until approval.
	out, err := gb.DisclosureRequests(ctx, true, false)
	if err != nil || len(out) != 2 || out[0].GetId() != id || out[0].GetOwner() != "" || out[0].GetList() != "" || len(out[0].GetApprovals()) != 0 {
		t.Fatalf("outgoing = %v, %v", out, err)
	}
	in, err := ngo.DisclosureRequests(ctx, false, false)
	if err != nil || len(in) != 1 || in[0].GetRequester() != "police-gb" || in[0].GetReason() != "same number in a live case" || in[0].GetEntries() != 1 {
		t.Fatalf("ngo incoming = %v, %v", in, err)
	}
	thIn, err := th.DisclosureRequests(ctx, false, false)
	if err != nil || len(thIn) != 1 || thIn[0].GetReason() != "need the Thai contact" {
		t.Fatalf("police-th incoming = %v, %v", thIn, err)
	}
	// Nobody else may answer it.
	if _, err := th.AnswerDisclosureRequest(ctx, in[0].GetId(), true, ""); status.Code(errorsCause(err)) != codes.NotFound {
		t.Fatalf("police-th answered the NGO's request: %v", err)
	}
	if _, err := th.AnswerDisclosureRequest(ctx, thIn[0].GetId(), false, "no agreement"); err != nil {
		t.Fatal(err)
	}
	if r, err := ngo.AnswerDisclosureRequest(ctx, in[0].GetId(), true, "contact our liaison first"); err != nil || r.GetStatus() != veilmatchv1.DisclosureRequestStatus_DISCLOSURE_REQUEST_STATUS_APPROVED {
		t.Fatalf("approve = %v, %v", r, err)
	}
	if _, err := ngo.AnswerDisclosureRequest(ctx, in[0].GetId(), false, ""); status.Code(errorsCause(err)) != codes.FailedPrecondition {
		t.Fatalf("second answer: %v", err)
	}
	// Once answered, the requester sees who approved, with what.
	out, err = gb.DisclosureRequests(ctx, true, true)
	if err != nil || len(out) != 2 || len(out[0].GetApprovals()) != 1 || out[0].GetApprovals()[0].GetOwner() != "ngo-shelter" ||
		out[1].GetStatus() != veilmatchv1.DisclosureRequestStatus_DISCLOSURE_REQUEST_STATUS_REFUSED || len(out[1].GetApprovals()) != 0 {
		t.Fatalf("outgoing after the answers = %v, %v", out, err)
	}

	after, err := gb.Overlaps(ctx, "suspects", investigation)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"2 full ngo-shelter", "3 flag "}
	var got []string
	for _, m := range after.Matches {
		who := ""
		if m.Counterparty != nil {
			who = m.Counterparty.Agency
		}
		got = append(got, strings.TrimSpace(itoa(m.Line)+" "+m.Level+" "+who))
	}
	if strings.Join(got, "|") != strings.TrimSpace(strings.Join(want, "|")) {
		t.Fatalf("after approval: %v, want %v", got, want)
	}
	if len(after.Counts) != 1 || after.Counts[0].Class != "law_enforcement/TH" {
		t.Fatalf("the refused request changed the count: %s", mustJSON(t, after.Counts))
	}

	notices, err := ngo.Disclosures(ctx)
	if err != nil || len(notices) != 1 || notices[0].GetRequester() != "police-gb" || notices[0].GetEntries() != 1 ||
		notices[0].GetPurpose() != "investigation" || notices[0].GetCaseRef() != "CASE-1" {
		t.Fatalf("ngo notices = %v, %v", notices, err)
	}
	if ns, _ := th.Disclosures(ctx); len(ns) != 0 {
		t.Fatalf("police-th notices = %v", ns)
	}
}

// TestCheckLeavesNoTraceForPolice: an NGO's check shows up in no police
// unit's lists, overlaps, disclosures or requests.
func TestCheckLeavesNoTraceForPolice(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	gb, ngo := e.client(t, "police-gb"), e.client(t, "ngo-shelter")
	publish(t, gb, "suspects", "GB", "phone\n07700 900123\n")
	view := func() string {
		lists, _ := gb.Lists(ctx)
		ov, _ := gb.Overlaps(ctx, "suspects", investigation)
		ds, _ := gb.Disclosures(ctx)
		in, _ := gb.DisclosureRequests(ctx, false, true)
		for _, l := range lists {
			l.CommittedAt = nil
		}
		return mustJSON(t, lists, ov.Matches, ov.Counts, ds, in)
	}
	before := view()
	res, err := ngo.Check(ctx, strings.NewReader("phone\n07700 900123\n"), client.CheckOptions{Kind: normalize.Phone, Normalize: normalize.Options{Region: "GB"}},
		client.Query{Purpose: "victim_support"})
	if err != nil || len(res.Counts) != 1 {
		t.Fatalf("check = %+v, %v", res, err)
	}
	if after := view(); after != before {
		t.Fatalf("police-gb's view changed after the check:\n%s\n%s", before, after)
	}
}

// TestPurposeAndCaseRefusals: refusals name the reason and are
// PERMISSION_DENIED; auditors may not query at all.
func TestPurposeAndCaseRefusals(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	gb := e.client(t, "police-gb")
	publish(t, gb, "suspects", "GB", "phone\n07700 900123\n")
	for _, tc := range []struct {
		q    client.Query
		code codes.Code
		want string
	}{
		{client.Query{Purpose: "curiosity", CaseRef: "C"}, codes.InvalidArgument, `"curiosity" is not a known purpose; role law_enforcement may state: investigation, missing_person_search, research`},
		{client.Query{Purpose: "victim_support", CaseRef: "C"}, codes.PermissionDenied, `purpose "victim_support" is not allowed`},
		{client.Query{Purpose: "investigation"}, codes.PermissionDenied, "case reference"},
	} {
		_, err := gb.Overlaps(ctx, "suspects", tc.q)
		st := status.Convert(errorsCause(err))
		if st.Code() != tc.code || !strings.Contains(st.Message(), tc.want) {
			t.Errorf("%+v: err = %v, want %s containing %q", tc.q, err, tc.code, tc.want)
		}
	}
	aud := e.hubClient(t, "auditor")
	_, err := aud.Check(ctx, &veilmatchv1.CheckRequest{Kind: "phone", KeyId: "k1", Tokens: [][]byte{make([]byte, 32)}, Purpose: "research"})
	if st := status.Convert(err); st.Code() != codes.PermissionDenied || !strings.Contains(st.Message(), "auditor") {
		t.Fatalf("auditor check: %v", err)
	}
}
