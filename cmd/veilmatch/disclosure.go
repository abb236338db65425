package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/veilmatch/veilmatch/client"
)

func cmdRequestDisclosure(ctx context.Context, e env, args []string) error {
	a := newAgencyFlags(e, "request-disclosure", "agency request-disclosure --as ID --ref MATCH_REF --reason TEXT",
		"veilmatch agency request-disclosure --as police-gb --ref mr2.… --reason 'same number in a live trafficking case'", false)
	ref := a.fs.String("ref", "", "the match_ref of a flag or count result (from overlaps --format json)")
	reason := a.fs.String("reason", "", "why you need the full match; the owner reads it")
	purpose := a.fs.String("purpose", "", "the purpose the reference was issued under (default: that one)")
	caseRef := a.fs.String("case", "", "the case reference the reference was issued under (default: that one)")
	if _, err := a.parse(args); err != nil {
		return err
	}
	if *ref == "" || *reason == "" {
		return usagef("take the match_ref from 'veilmatch agency overlaps --format json'", "--ref and --reason are required")
	}
	c, err := a.id.client(e, false)
	if err != nil {
		return err
	}
	defer c.Close()
	id, err := c.RequestDisclosure(ctx, *ref, *reason, client.Query{Purpose: *purpose, CaseRef: *caseRef})
	if err != nil {
		return a.id.explain(err)
	}
	fmt.Fprintf(e.stdout, "sent disclosure request %s\nthe holders decide; see 'veilmatch agency requests --outgoing'\n", id)
	return nil
}

func cmdRequests(ctx context.Context, e env, args []string) error {
	a := newAgencyFlags(e, "requests", "agency requests --as ID [--outgoing] [--all] [--format json]", "veilmatch agency requests --as ngo-shelter", true)
	outgoing := a.fs.Bool("outgoing", false, "show your own requests instead of requests against your lists")
	all := a.fs.Bool("all", false, "include answered requests")
	c, _, err := a.connect(e, args, false)
	if err != nil {
		return err
	}
	defer c.Close()
	rs, err := c.DisclosureRequests(ctx, *outgoing, *all)
	if err != nil {
		return a.id.explain(err)
	}
	if a.format == "json" {
		type row struct {
			ID            string `json:"id"`
			Status        string `json:"status"`
			Requester     string `json:"requester"`
			RequesterList string `json:"requester_list"`
			Owner         string `json:"owner,omitempty"`
			List          string `json:"list,omitempty"`
			Entries       uint64 `json:"entries"`
			Reason        string `json:"reason"`
			Purpose       string `json:"purpose"`
			CaseRef       string `json:"case_ref"`
			CreatedAt     string `json:"created_at"`
			AnsweredAt    string `json:"answered_at,omitempty"`
			Note          string `json:"note,omitempty"`
			Approvals     []any  `json:"approvals,omitempty"`
		}
		type approval struct {
			Owner      string `json:"owner"`
			List       string `json:"list"`
			Entries    uint64 `json:"entries"`
			AnsweredAt string `json:"answered_at"`
			Note       string `json:"note,omitempty"`
		}
		out := []row{}
		for _, r := range rs {
			var aps []any
			for _, ap := range r.GetApprovals() {
				aps = append(aps, approval{ap.GetOwner(), ap.GetList(), ap.GetEntries(), ts(ap.GetAnsweredAt()), ap.GetNote()})
			}
			out = append(out, row{r.GetId(), statusName(r.GetStatus().String()), r.GetRequester(), r.GetRequesterList(), r.GetOwner(), r.GetList(),
				r.GetEntries(), r.GetReason(), r.GetPurpose(), r.GetCaseRef(), ts(r.GetCreatedAt()), ts(r.GetAnsweredAt()), r.GetNote(), aps})
		}
		return writeJSON(e.stdout, out)
	}
	if len(rs) == 0 {
		fmt.Fprintln(e.stdout, "no disclosure requests")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	if *outgoing {
		// Holders stay unknown until they approve.
		fmt.Fprintln(tw, "ID\tSTATUS\tYOUR LIST\tENTRIES\tPURPOSE\tCASE\tAPPROVED BY")
		for _, r := range rs {
			var by []string
			for _, ap := range r.GetApprovals() {
				by = append(by, fmt.Sprintf("%s list %s (%s)", ap.GetOwner(), ap.GetList(), plural(ap.GetEntries(), "entry", "entries")))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", r.GetId(), statusName(r.GetStatus().String()), r.GetRequesterList(),
				r.GetEntries(), r.GetPurpose(), orDash(r.GetCaseRef()), orDash(strings.Join(by, "; ")))
		}
		return tw.Flush()
	}
	fmt.Fprintln(tw, "ID\tSTATUS\tREQUESTER\tTHEIR LIST\tYOUR LIST\tENTRIES\tPURPOSE\tCASE\tREASON")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", r.GetId(), statusName(r.GetStatus().String()), r.GetRequester(),
			r.GetRequesterList(), r.GetList(), r.GetEntries(), r.GetPurpose(), orDash(r.GetCaseRef()), r.GetReason())
	}
	return tw.Flush()
}

func statusName(s string) string {
	return strings.ToLower(strings.TrimPrefix(s, "DISCLOSURE_REQUEST_STATUS_"))
}

func cmdAnswer(approve bool) func(context.Context, env, []string) error {
	verb := "refuse"
	if approve {
		verb = "approve"
	}
	return func(ctx context.Context, e env, args []string) error {
		a := newAgencyFlags(e, verb, "agency "+verb+" --as ID --request ID [--note TEXT]", "veilmatch agency "+verb+" --as ngo-shelter --request dr-…", false)
		req := a.fs.String("request", "", "the request `ID` (from 'veilmatch agency requests')")
		note := a.fs.String("note", "", "a note for the requester and the auditors")
		if _, err := a.parse(args); err != nil {
			return err
		}
		if *req == "" {
			return usagef("list pending requests with 'veilmatch agency requests'", "--request is required")
		}
		c, err := a.id.client(e, false)
		if err != nil {
			return err
		}
		defer c.Close()
		r, err := c.AnswerDisclosureRequest(ctx, *req, approve, *note)
		if err != nil {
			return a.id.explain(err)
		}
		fmt.Fprintf(e.stdout, "request %s %s: %s's list %s, %s\n", r.GetId(), statusName(r.GetStatus().String()), r.GetRequester(), r.GetRequesterList(), plural(r.GetEntries(), "entry", "entries"))
		return nil
	}
}

func cmdDisclosures(ctx context.Context, e env, args []string) error {
	a := newAgencyFlags(e, "disclosures", "agency disclosures --as ID [--format json]", "veilmatch agency disclosures --as police-us", true)
	c, _, err := a.connect(e, args, false)
	if err != nil {
		return err
	}
	defer c.Close()
	ds, err := c.Disclosures(ctx)
	if err != nil {
		return a.id.explain(err)
	}
	if a.format == "json" {
		type row struct {
			Time          string `json:"time"`
			Action        string `json:"action"`
			Requester     string `json:"requester"`
			RequesterList string `json:"requester_list"`
			List          string `json:"list"`
			Purpose       string `json:"purpose"`
			CaseRef       string `json:"case_ref"`
			DecisionID    string `json:"decision_id"`
			Entries       uint64 `json:"entries"`
		}
		out := []row{}
		for _, d := range ds {
			out = append(out, row{ts(d.GetTime()), d.GetAction(), d.GetRequester(), d.GetRequesterList(), d.GetList(), d.GetPurpose(), d.GetCaseRef(), d.GetDecisionId(), d.GetEntries()})
		}
		return writeJSON(e.stdout, out)
	}
	if len(ds) == 0 {
		fmt.Fprintln(e.stdout, "no full disclosures of your lists")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tWHO LEARNED\tBY\tTHEIR LIST\tYOUR LIST\tENTRIES\tPURPOSE\tCASE\tDECISION")
	for _, d := range ds {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", ts(d.GetTime()), d.GetRequester(), d.GetAction(), orDash(d.GetRequesterList()), d.GetList(),
			d.GetEntries(), d.GetPurpose(), orDash(d.GetCaseRef()), d.GetDecisionId())
	}
	return tw.Flush()
}
