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

// MaxCheckEntries is the most identifiers one check may carry; for PDQ
// hashes, which make token.PDQTokens tokens each, the most tokens
// (23 hashes).
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
	// Line is the 1-based line in the agency's own file (header = 1).
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
	// KeyServersSkipped are, for a check under a threshold key, the key
	// servers left out, and why.
	KeyServersSkipped []SkippedServer `json:"key_servers_skipped,omitempty"`
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
func result(list, decision string, ms []*veilmatchv1.Match, cs []*veilmatchv1.ClassCount, entries rowTable) Result {
	r := Result{List: list, DecisionID: decision, Matches: []Match{}, Counts: []ClassCount{}}
	for _, m := range ms {
		out := Match{EntryRef: m.GetEntryRef(), Level: levelNames[m.GetLevel()], LiaisonContact: m.GetLiaisonContact(), MatchRef: m.GetMatchRef()}
		if row, ok := entries.entry(m.GetEntryRef()); ok {
			out.Line, out.Value = row.Line, row.shown()
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

// ErrNoMapping reports an answer about a version of a list whose rows this
// machine does not hold: its entry references cannot be shown as lines and
// values, and nothing is guessed.
var ErrNoMapping = errors.New("client: no local rows for the list version the hub answered about")

// Overlaps asks which entries of one of the agency's lists appear in other
// agencies' lists, at the level policy grants. It maps each match to the
// agency's own row through the rows kept for the very version the hub
// answered about, and refuses (ErrNoMapping) if it has none.
func (c *Client) Overlaps(ctx context.Context, list string, q Query) (Result, error) {
	if err := c.needHub(); err != nil {
		return Result{}, err
	}
	resp, err := c.hub.Overlaps(ctx, &veilmatchv1.OverlapsRequest{List: list, Purpose: q.Purpose, CaseRef: q.CaseRef})
	if err != nil {
		return Result{}, fmt.Errorf("overlaps of list %s: %w", list, err)
	}
	entries, err := c.rows(list, resp.GetUploadId())
	if err != nil {
		return Result{}, err
	}
	return result(list, resp.GetDecisionId(), resp.GetMatches(), resp.GetCounts(), entries), nil
}

// rows returns the rows behind the entries of upload uploadID of list, as
// this machine kept them when it published, and refuses (ErrNoMapping) if
// it holds no rows of that version. An answer about a pending version
// proves its commit: it becomes the current one here.
func (c *Client) rows(list, uploadID string) (rowTable, error) {
	name := c.localName(list)
	local, err := c.state.loadList(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: list %s has no local state on this machine (%s); run this where it was published, or publish it again from here",
			ErrNoMapping, list, c.state.listPath(name))
	}
	if err != nil {
		return nil, err
	}
	v, promoted := local.version(uploadID)
	if v == nil {
		return nil, fmt.Errorf("%w: the hub answered about upload %s of list %s, but this machine holds the rows of %s; publish the list again from here",
			ErrNoMapping, uploadID, list, local.uploads())
	}
	if promoted {
		if err := c.state.saveList(local); err != nil {
			return nil, err
		}
	}
	return v.rows(), nil
}

// CheckOptions describe the identifiers to check.
type CheckOptions struct {
	Kind      normalize.Kind
	Normalize normalize.Options
	Column    string
	// Name labels the result (for example the file name).
	Name string
	// DryRun normalizes the file, checks it against the hub's vocabulary
	// and reports; it sends nothing.
	DryRun bool
}

// Check tests the identifiers in the CSV in r against other agencies'
// lists without storing anything at the hub and without any counterparty
// being told: the victim-safe query.
func (c *Client) Check(ctx context.Context, r io.Reader, o CheckOptions, q Query) (Result, error) {
	if err := c.needHub(); err != nil {
		return Result{}, err
	}
	v, err := c.Vocabulary(ctx)
	if err != nil {
		return Result{}, err
	}
	kind := o.Kind.ListKind()
	if err := v.check("identifier kind", kind, v.Kinds); err != nil {
		return Result{}, err
	}
	if err := v.checkPurpose(q.Purpose); err != nil {
		return Result{}, err
	}
	var entries []localEntry
	rep, err := normalize.ReadCSV(r, o.Column, o.Kind, o.Normalize, func(row normalize.Row) error {
		if limit := MaxCheckEntries / tokensPerRow(kind); len(entries) == limit {
			return fmt.Errorf("more than %d identifiers of kind %s in one check: split the file", limit, o.Kind)
		}
		entries = append(entries, localEntry{Line: row.Line, Value: row.Value, Label: row.Label})
		return nil
	})
	if err != nil {
		return Result{Report: &rep}, err
	}
	if len(entries) == 0 {
		return Result{Report: &rep}, ErrNoRows
	}
	if o.DryRun {
		return Result{List: o.Name, Report: &rep}, nil
	}
	ks, err := c.newSession(ctx)
	if err != nil {
		return Result{Report: &rep}, err
	}
	per, perRow := c.rowsPerBatch(kind), tokensPerRow(kind)
	toks := make([][]byte, len(entries)*perRow)
	seqs := make([]int, (len(entries)+per-1)/per)
	for i := range seqs {
		seqs[i] = i
	}
	p := &progress{c: c, what: "check", total: len(entries)}
	err = c.tokenize(ctx, ks, kind, entries, seqs, func(b batchResult) error {
		for i, t := range b.toks {
			toks[b.seq*per*perRow+i] = t.Bytes()
		}
		p.add(len(b.toks) / perRow)
		return nil
	})
	if err != nil {
		return Result{Report: &rep, KeyServersSkipped: ks.Skipped()}, err
	}
	resp, err := c.hub.Check(ctx, &veilmatchv1.CheckRequest{Kind: kind, KeyId: ks.KeyID(), Tokens: toks, Purpose: q.Purpose, CaseRef: q.CaseRef})
	if err != nil {
		return Result{Report: &rep}, fmt.Errorf("check: %w", err)
	}
	res := result(o.Name, resp.GetDecisionId(), resp.GetMatches(), resp.GetCounts(), entrySlice(entries))
	res.Report, res.KeyServersSkipped = &rep, ks.Skipped()
	return res, nil
}
