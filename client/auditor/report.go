package auditor

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/veilmatch/veilmatch/policy"
	"github.com/veilmatch/veilmatch/server/audit"
)

// Summary is what an oversight body reads first: decisions, levels
// disclosed and refusals per agency and purpose, the key server's use per
// agency and day, and each agency's checks per day against the check
// budget.
type Summary struct {
	Decisions []DecisionRow `json:"decisions"`
	Quota     []QuotaRow    `json:"quota"`
	Checks    []CheckRow    `json:"checks"`
}

// LevelCount is what one level disclosed.
type LevelCount struct {
	// Decisions is how many decisions disclosed at this level.
	Decisions uint64 `json:"decisions"`
	// Entries is how many matching entries were disclosed at this level.
	Entries uint64 `json:"entries"`
}

// DecisionRow sums up the decisions of one agency for one purpose.
type DecisionRow struct {
	Agency    string                `json:"agency"`
	Purpose   string                `json:"purpose"`
	Decisions uint64                `json:"decisions"`
	Refusals  uint64                `json:"refusals"`
	Levels    map[string]LevelCount `json:"levels"`
}

// QuotaRow is one agency's key-server use on one UTC day.
type QuotaRow struct {
	Agency string `json:"agency"`
	Day    string `json:"day"`
	// Evaluations and Requests are the day's cumulative use, from the
	// latest quota_usage record of the day: each supersedes the earlier.
	Evaluations uint64 `json:"evaluations"`
	Requests    uint64 `json:"requests"`
	// Refusals counts the day's quota_refusal records.
	Refusals uint64 `json:"refusals"`
}

// CheckRow is one agency's use of check on one UTC day, against the hub's
// daily check budget. Many small checks in a day are how an agency would
// learn which of its entries a count covers, one entry at a time: Probing
// flags them for a closer look.
type CheckRow struct {
	Agency string `json:"agency"`
	Day    string `json:"day"`
	// Checks and Entries are the checks answered and the entries they
	// checked; Refused counts checks refused for the budget.
	Checks  uint64 `json:"checks"`
	Entries uint64 `json:"entries"`
	Refused uint64 `json:"refused"`
	// SmallChecks are checks of at most SmallCheck entries.
	SmallChecks uint64 `json:"small_checks"`
	Probing     bool   `json:"probing"`
}

// A check of at most SmallCheck entries is small; ProbingChecks small
// checks by one agency in one day flag it as probing.
const (
	SmallCheck    = 10
	ProbingChecks = 10
)

// ReportLevels are the levels a summary counts, most revealing first.
var ReportLevels = []policy.Level{policy.LevelFull, policy.LevelFlag, policy.LevelCount}

// Summarize sums up records, which come in log order.
func Summarize(recs []audit.Record) Summary {
	s := NewSummarizer()
	for _, r := range recs {
		s.Add(r)
	}
	return s.Summary()
}

// Summarizer sums up records one at a time, in log order, so that a log
// of millions of records need not be held at once.
type Summarizer struct {
	decisions map[[2]string]*DecisionRow
	quota     map[[2]string]*QuotaRow
	checks    map[[2]string]*CheckRow
}

// NewSummarizer returns an empty Summarizer.
func NewSummarizer() *Summarizer {
	return &Summarizer{decisions: map[[2]string]*DecisionRow{}, quota: map[[2]string]*QuotaRow{}, checks: map[[2]string]*CheckRow{}}
}

// Add takes in the next record.
func (s *Summarizer) Add(r audit.Record) {
	switch r.Action {
	case audit.ActionQuotaUsage, audit.ActionQuotaRefusal:
		tallyQuota(s.quota, r)
		return
	case audit.ActionCheck:
		tallyCheck(s.checks, r)
	}
	tallyDecision(s.decisions, r)
}

// Summary returns the sums of the records added so far.
func (s *Summarizer) Summary() Summary {
	return Summary{
		Decisions: sortedRows(s.decisions, func(r *DecisionRow) string { return r.Agency + "\x00" + r.Purpose }),
		Quota:     sortedRows(s.quota, func(r *QuotaRow) string { return r.Agency + "\x00" + r.Day }),
		Checks:    sortedRows(s.checks, func(r *CheckRow) string { return r.Agency + "\x00" + r.Day }),
	}
}

// sortedRows returns the rows of m ordered by key.
func sortedRows[R any](m map[[2]string]*R, key func(*R) string) []R {
	out := make([]R, 0, len(m))
	for _, r := range m {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b R) int { return strings.Compare(key(&a), key(&b)) })
	return out
}

// row returns m's row for k, made by mk if there is none yet.
func row[R any](m map[[2]string]*R, k [2]string, mk func() *R) *R {
	r := m[k]
	if r == nil {
		r = mk()
		m[k] = r
	}
	return r
}

// day returns a record's UTC day.
func day(r audit.Record) string { return r.Time.UTC().Format(time.DateOnly) }

// tallyDecision adds a record to its agency's and purpose's row.
func tallyDecision(rows map[[2]string]*DecisionRow, r audit.Record) {
	d := row(rows, [2]string{r.Agency, r.Purpose}, func() *DecisionRow {
		d := &DecisionRow{Agency: r.Agency, Purpose: r.Purpose, Levels: map[string]LevelCount{}}
		for _, l := range ReportLevels {
			d.Levels[string(l)] = LevelCount{}
		}
		return d
	})
	d.Decisions++
	if r.Result == audit.ResultRefused {
		d.Refusals++
	}
	seen := map[string]bool{}
	for _, o := range r.Outcomes {
		lc, ok := d.Levels[o.Level]
		if !ok {
			continue
		}
		if !seen[o.Level] {
			seen[o.Level] = true
			lc.Decisions++
		}
		lc.Entries += o.Entries
		d.Levels[o.Level] = lc
	}
}

// tallyQuota adds a key-server usage or refusal record to its agency's
// and day's row.
func tallyQuota(rows map[[2]string]*QuotaRow, r audit.Record) {
	d := r.Details["day"]
	if d == "" {
		d = day(r)
	}
	q := row(rows, [2]string{r.Agency, d}, func() *QuotaRow { return &QuotaRow{Agency: r.Agency, Day: d} })
	if r.Action == audit.ActionQuotaRefusal {
		q.Refusals++
		return
	}
	// Records come in log order: the latest usage row wins.
	q.Evaluations, _ = strconv.ParseUint(r.Details["evaluations"], 10, 64)
	q.Requests, _ = strconv.ParseUint(r.Details["requests"], 10, 64)
}

// tallyCheck adds a check record to its agency's and day's row.
func tallyCheck(rows map[[2]string]*CheckRow, r audit.Record) {
	n, err := strconv.ParseUint(r.Details["entries"], 10, 64)
	if err != nil {
		return // refused by policy before any entry was counted
	}
	c := row(rows, [2]string{r.Agency, day(r)}, func() *CheckRow { return &CheckRow{Agency: r.Agency, Day: day(r)} })
	if r.Result == audit.ResultRefused {
		c.Refused++
		return
	}
	c.Checks++
	c.Entries += n
	if n <= SmallCheck {
		c.SmallChecks++
	}
	c.Probing = c.SmallChecks >= ProbingChecks
}
