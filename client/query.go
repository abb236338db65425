package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/veilmatch/veilmatch/client/normalize"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
)

// MaxCheckEntries is the most identifiers one check may carry.
const MaxCheckEntries = 100_000

// Counterparty is who holds a matching list; known only at level full.
type Counterparty struct {
	Agency       string `json:"agency"`
	List         string `json:"list"`
	Category     string `json:"category"`
	Jurisdiction string `json:"jurisdiction"`
	Contact      string `json:"contact,omitempty"`
}

// Match is one of the agency's own entries that matched.
type Match struct {
	// Line is the 1-based line in the agency's own file (header = 1), or 0
	// when this machine has no local state for the list.
	Line int `json:"line"`
	// Value is the agency's own canonical value.
	Value          string        `json:"value,omitempty"`
	EntryRef       uint64        `json:"entry_ref"`
	Level          string        `json:"level"`
	Counterparty   *Counterparty `json:"counterparty,omitempty"`
	LiaisonContact string        `json:"liaison_contact,omitempty"`
	MatchRef       string        `json:"match_ref,omitempty"`
}

// ClassCount is how many entries matched one class of counterparty at
// level count.
type ClassCount struct {
	Class    string `json:"class"`
	Matches  uint64 `json:"matches"`
	MatchRef string `json:"match_ref,omitempty"`
}

// Result is the answer to overlaps or check, as printed by --format json.
type Result struct {
	List       string       `json:"list"`
	DecisionID string       `json:"decision_id"`
	Matches    []Match      `json:"matches"`
	Counts     []ClassCount `json:"counts"`
	// Report is the CSV report of a check; absent for overlaps.
	Report *normalize.Report `json:"-"`
}

// Query states why the agency asks.
type Query struct {
	Purpose string
	CaseRef string
}

var levelNames = map[veilmatchv1.DisclosureLevel]string{
	veilmatchv1.DisclosureLevel_DISCLOSURE_LEVEL_NONE:  "none",
	veilmatchv1.DisclosureLevel_DISCLOSURE_LEVEL_COUNT: "count",
	veilmatchv1.DisclosureLevel_DISCLOSURE_LEVEL_FLAG:  "flag",
	veilmatchv1.DisclosureLevel_DISCLOSURE_LEVEL_FULL:  "full",
}

// result converts the hub's answer, mapping entry references to rows.
func result(list, decision string, ms []*veilmatchv1.Match, cs []*veilmatchv1.ClassCount, entries []localEntry) Result {
	r := Result{List: list, DecisionID: decision, Matches: []Match{}, Counts: []ClassCount{}}
	for _, m := range ms {
		out := Match{EntryRef: m.GetEntryRef(), Level: levelNames[m.GetLevel()], LiaisonContact: m.GetLiaisonContact(), MatchRef: m.GetMatchRef()}
		if ref := m.GetEntryRef(); ref < uint64(len(entries)) {
			out.Line, out.Value = entries[ref].Line, entries[ref].Value
		}
		if cp := m.GetCounterparty(); cp != nil {
			out.Counterparty = &Counterparty{Agency: cp.GetAgency(), List: cp.GetList(), Category: cp.GetCategory(), Jurisdiction: cp.GetJurisdiction(), Contact: cp.GetContact()}
		}
		r.Matches = append(r.Matches, out)
	}
	for _, c := range cs {
		r.Counts = append(r.Counts, ClassCount{Class: c.GetClass(), Matches: c.GetMatches(), MatchRef: c.GetMatchRef()})
	}
	return r
}

// Overlaps asks which entries of one of the agency's lists appear in other
// agencies' lists, at the level policy grants.
func (c *Client) Overlaps(ctx context.Context, list string, q Query) (Result, error) {
	if err := c.needHub(); err != nil {
		return Result{}, err
	}
	resp, err := c.hub.Overlaps(ctx, &veilmatchv1.OverlapsRequest{List: list, Purpose: q.Purpose, CaseRef: q.CaseRef})
	if err != nil {
		return Result{}, fmt.Errorf("overlaps of list %s: %w", list, err)
	}
	var entries []localEntry
	if l, err := c.state.loadList(c.localName(list)); err == nil {
		entries = l.Entries
	} else if errors.Is(err, os.ErrNotExist) {
		c.log.Warn("no local state for this list on this machine; matches show entry references only", "list", list)
	} else {
		return Result{}, fmt.Errorf("local state of list %s: %w", list, err)
	}
	return result(list, resp.GetDecisionId(), resp.GetMatches(), resp.GetCounts(), entries), nil
}

// CheckOptions describe the identifiers to check.
type CheckOptions struct {
	Kind      normalize.Kind
	Normalize normalize.Options
	Column    string
	// Name labels the result (for example the file name).
	Name string
}

// Check tests the identifiers in the CSV in r against other agencies'
// lists without storing anything at the hub and without any counterparty
// being told: the victim-safe query.
func (c *Client) Check(ctx context.Context, r io.Reader, o CheckOptions, q Query) (Result, error) {
	if err := c.needHub(); err != nil {
		return Result{}, err
	}
	var entries []localEntry
	rep, err := normalize.ReadCSV(r, o.Column, o.Kind, o.Normalize, func(row normalize.Row) error {
		if len(entries) == MaxCheckEntries {
			return fmt.Errorf("more than %d identifiers: split the file", MaxCheckEntries)
		}
		entries = append(entries, localEntry{Line: row.Line, Value: row.Value})
		return nil
	})
	if err != nil {
		return Result{Report: &rep}, err
	}
	if len(entries) == 0 {
		return Result{Report: &rep}, ErrNoRows
	}
	oc, err := c.oprfClient(ctx)
	if err != nil {
		return Result{Report: &rep}, err
	}
	values := make([]string, len(entries))
	for i, e := range entries {
		values[i] = e.Value
	}
	toks := make([][]byte, len(values))
	seqs := make([]int, (len(values)+c.cfg.BatchSize-1)/c.cfg.BatchSize)
	for i := range seqs {
		seqs[i] = i
	}
	p := &progress{c: c, what: "check", total: len(values)}
	err = c.tokenize(ctx, oc, string(o.Kind), values, seqs, func(b batchResult) error {
		for i, t := range b.toks {
			toks[b.seq*c.cfg.BatchSize+i] = t.Bytes()
		}
		p.add(len(b.toks))
		return nil
	})
	if err != nil {
		return Result{Report: &rep}, err
	}
	resp, err := c.hub.Check(ctx, &veilmatchv1.CheckRequest{Kind: string(o.Kind), KeyId: oc.KeyID(), Tokens: toks, Purpose: q.Purpose, CaseRef: q.CaseRef})
	if err != nil {
		return Result{Report: &rep}, fmt.Errorf("check: %w", err)
	}
	res := result(o.Name, resp.GetDecisionId(), resp.GetMatches(), resp.GetCounts(), entries)
	res.Report = &rep
	return res, nil
}
