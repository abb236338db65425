package client

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/veilmatch/veilmatch/client/normalize"
	"github.com/veilmatch/veilmatch/crypto/token"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
)

// MaxCheckEntries is the most tokens one check request carries: as many
// identifiers, or 23 images (PDQ hashes make token.PDQTokens tokens
// each). MaxCheckImages is the most images one Check takes, in as many
// requests (decisions) as it needs.
const (
	MaxCheckEntries = 100_000
	MaxCheckImages  = 10_000
)

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
	List string `json:"list"`
	// DecisionID is the hub's decision: several, comma-separated, for a
	// check that took more than one request (more than 23 images).
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

// result converts the hub's answer, one match per entry, mapping entry
// references to rows, in the order of the entries and, for one entry, of
// who matched it: flag matches by liaison contact, then full ones by
// counterparty.
func result(list, decision string, ms []*veilmatchv1.Match, cs []*veilmatchv1.ClassCount, entries rowTable) Result {
	r := Result{List: list, DecisionID: decision, Matches: []Match{}, Counts: []ClassCount{}}
	ms = slices.Clone(ms)
	slices.SortStableFunc(ms, func(x, y *veilmatchv1.Match) int {
		cx, cy := x.GetCounterparty(), y.GetCounterparty()
		return cmp.Or(cmp.Compare(cx.GetAgency(), cy.GetAgency()), cmp.Compare(cx.GetList(), cy.GetList()),
			cmp.Compare(cx.GetContact(), cy.GetContact()), cmp.Compare(x.GetLiaisonContact(), y.GetLiaisonContact()))
	})
	cps := make([]*Counterparty, len(ms))
	n := 0
	for i, m := range ms {
		if c := m.GetCounterparty(); c != nil {
			cps[i] = &Counterparty{Agency: c.GetAgency(), List: c.GetList(), Category: c.GetCategory(), Jurisdiction: c.GetJurisdiction(), Contact: c.GetContact()}
		}
		n += len(m.GetEntryRefs())
	}
	r.Matches = make([]Match, 0, n)
	merge(ms, func(ref uint64, i int) {
		m := ms[i]
		out := Match{EntryRef: ref, Level: levelNames[m.GetLevel()], Counterparty: cps[i], LiaisonContact: m.GetLiaisonContact(), MatchRef: m.GetMatchRef()}
		if row, ok := entries.entry(ref); ok {
			out.Line, out.Value = row.Line, row.shown()
		}
		r.Matches = append(r.Matches, out)
	})
	for _, c := range cs {
		r.Counts = append(r.Counts, ClassCount{Class: c.GetClass(), Matches: c.GetMatches(), MatchRef: c.GetMatchRef()})
	}
	return r
}

// merge calls fn for each entry of each match, by entry and then by
// match index: a k-way merge, each match's entries being ascending (an
// entry out of order in a malformed answer is merely out of order).
func merge(ms []*veilmatchv1.Match, fn func(ref uint64, match int)) {
	h := heads{ms: ms, pos: make([]int, len(ms))}
	for i, m := range ms {
		if len(m.GetEntryRefs()) > 0 {
			h.live = append(h.live, i)
		}
	}
	heap.Init(&h)
	for h.Len() > 0 {
		i := h.live[0]
		fn(h.head(i), i)
		if h.pos[i]++; h.pos[i] == len(ms[i].GetEntryRefs()) {
			heap.Pop(&h)
		} else {
			heap.Fix(&h, 0)
		}
	}
}

// heads is merge's heap: the matches with entries left (live), ordered
// by their next entry (at pos) and then by index.
type heads struct {
	ms   []*veilmatchv1.Match
	pos  []int
	live []int
}

func (h *heads) head(i int) uint64 { return h.ms[i].GetEntryRefs()[h.pos[i]] }
func (h *heads) Len() int          { return len(h.live) }
func (h *heads) Less(a, b int) bool {
	i, j := h.live[a], h.live[b]
	return h.head(i) < h.head(j) || h.head(i) == h.head(j) && i < j
}
func (h *heads) Swap(a, b int) { h.live[a], h.live[b] = h.live[b], h.live[a] }
func (h *heads) Push(x any)    { h.live = append(h.live, x.(int)) }
func (h *heads) Pop() any {
	x := h.live[len(h.live)-1]
	h.live = h.live[:len(h.live)-1]
	return x
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
	// The list's local state is read while the hub answers.
	type loaded struct {
		l   *localList
		err error
	}
	local := make(chan loaded, 1)
	go func() {
		l, err := c.state.loadList(c.localName(list))
		local <- loaded{l, err}
	}()
	resp, err := c.hub.Overlaps(ctx, &veilmatchv1.OverlapsRequest{List: list, Purpose: q.Purpose, CaseRef: q.CaseRef})
	ld := <-local
	if err != nil {
		return Result{}, fmt.Errorf("overlaps of list %s: %w", list, err)
	}
	entries, err := c.versionRows(list, resp.GetUploadId(), ld.l, ld.err)
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
	local, err := c.state.loadList(c.localName(list))
	return c.versionRows(list, uploadID, local, err)
}

// versionRows is rows, given what loadList returned for list.
func (c *Client) versionRows(list, uploadID string, local *localList, err error) (rowTable, error) {
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: list %s has no local state on this machine (%s); run this where it was published, or publish it again from here",
			ErrNoMapping, list, c.state.listPath(c.localName(list)))
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
	limit := MaxCheckEntries
	if kind == token.PDQKind {
		limit = MaxCheckImages
	}
	var entries []localEntry
	rep, err := normalize.ReadCSV(r, o.Column, o.Kind, o.Normalize, func(row normalize.Row) error {
		if len(entries) == limit {
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
	// One request carries at most CheckTokens tokens: images, at
	// token.PDQTokens each, go in several, each its own decision.
	res := Result{List: o.Name, Matches: []Match{}, Counts: []ClassCount{}, Report: &rep}
	var decisions []string
	p := &progress{c: c, what: "check", total: len(entries)}
	perRequest := max(1, c.cfg.CheckTokens/tokensPerRow(kind))
	for lo := 0; lo < len(entries); lo += perRequest {
		part := entries[lo:min(lo+perRequest, len(entries))]
		resp, err := c.checkPart(ctx, ks, kind, part, q, p)
		if err != nil {
			res.KeyServersSkipped = ks.Skipped()
			return res, err
		}
		r := result(o.Name, resp.GetDecisionId(), resp.GetMatches(), resp.GetCounts(), entrySlice(part))
		for _, m := range r.Matches {
			m.EntryRef += uint64(lo)
			res.Matches = append(res.Matches, m)
		}
		res.Counts = append(res.Counts, r.Counts...)
		decisions = append(decisions, r.DecisionID)
	}
	res.DecisionID, res.KeyServersSkipped = strings.Join(decisions, ","), ks.Skipped()
	return res, nil
}

// checkPart tokenizes entries and checks them in one request.
func (c *Client) checkPart(ctx context.Context, ks *session, kind string, entries []localEntry, q Query, p *progress) (*veilmatchv1.CheckResponse, error) {
	per, perRow := c.rowsPerBatch(kind), tokensPerRow(kind)
	toks := make([][]byte, len(entries)*perRow)
	seqs := make([]int, (len(entries)+per-1)/per)
	for i := range seqs {
		seqs[i] = i
	}
	err := c.tokenize(ctx, ks, kind, entries, seqs, func(b batchResult) error {
		for i, t := range b.toks {
			toks[b.seq*per*perRow+i] = t.Bytes()
		}
		p.add(len(b.toks) / perRow)
		return nil
	})
	if err != nil {
		return nil, err
	}
	resp, err := c.hub.Check(ctx, &veilmatchv1.CheckRequest{Kind: kind, KeyId: ks.KeyID(), Tokens: toks, Purpose: q.Purpose, CaseRef: q.CaseRef})
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	return resp, nil
}
