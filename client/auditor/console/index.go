package console

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/veilmatch/veilmatch/client/auditor"
	"github.com/veilmatch/veilmatch/server/audit"
)

// Levels, most revealing last, as a row keeps the most revealing level a
// decision disclosed.
const (
	levelNone uint8 = iota
	levelCount
	levelFlag
	levelFull
)

var levelNames = []string{"none", "count", "flag", "full"}

// levelOf maps a level name to its rank (an unknown level ranks as none).
func levelOf(s string) uint8 {
	if i := slices.Index(levelNames, s); i > 0 {
		return uint8(i)
	}
	return levelNone
}

// row is one record of the log as the console keeps it: the fields it
// filters, counts and shows, strings interned. A million records take
// about 100 MB; the records themselves are not kept.
type row struct {
	index   uint64
	time    int64 // Unix nanoseconds
	id      string
	agency  uint32
	action  uint32
	result  uint32
	purpose uint32
	caseRef uint32
	reason  uint32
	lists   uint32 // joined with ", "
	rules   uint32
	details uint32 // "k=v, …", sorted
	level   uint8  // most revealing level disclosed
	entries uint64 // entries disclosed above none
}

// strs interns the strings of the rows.
type strs struct {
	ids  map[string]uint32
	vals []string
}

func newStrs() *strs { return &strs{ids: map[string]uint32{"": 0}, vals: []string{""}} }

func (s *strs) id(v string) uint32 {
	if id, ok := s.ids[v]; ok {
		return id
	}
	id := uint32(len(s.vals))
	s.ids[v] = id
	s.vals = append(s.vals, v)
	return id
}

func (s *strs) get(id uint32) string { return s.vals[id] }

// lookup returns v's id, or false if no row holds v.
func (s *strs) lookup(v string) (uint32, bool) {
	id, ok := s.ids[v]
	return id, ok
}

// index is the log as of one verified checkpoint: its rows and the
// aggregates the overview draws, computed once when it is built.
type index struct {
	strs *strs
	rows []row
	sum  *auditor.Summarizer
	// byDay counts decisions per UTC day (YYYY-MM-DD), agency and level.
	byDay map[string]map[dayKey]uint64
	// disclosures are the rows of disclosure requests and answers.
	disclosures []int
	// choices are the distinct values of each filterable field, sorted
	// (finish).
	choices map[string][]string
	// drawn is the overview's charts, drawn once (overview).
	drawOnce sync.Once
	drawn    *overviewCharts
}

// dayKey is an agency and a level, within a day.
type dayKey struct {
	agency string
	level  uint8
}

func newIndex() *index {
	return &index{strs: newStrs(), sum: auditor.NewSummarizer(), byDay: map[string]map[dayKey]uint64{}}
}

// add takes in the next record of the log.
func (x *index) add(r audit.Record) {
	w := row{
		index: r.Index, time: r.Time.UnixNano(), id: r.DecisionID,
		agency: x.strs.id(r.Agency), action: x.strs.id(r.Action), result: x.strs.id(r.Result),
		purpose: x.strs.id(r.Purpose), caseRef: x.strs.id(r.CaseRef), reason: x.strs.id(r.Reason),
		lists: x.strs.id(strings.Join(r.Lists, ", ")), rules: x.strs.id(strings.Join(r.Rules, ", ")),
		details: x.strs.id(joinDetails(r.Details)),
	}
	for _, o := range r.Outcomes {
		l := levelOf(o.Level)
		w.level = max(w.level, l)
		if l > levelNone {
			w.entries += o.Entries
		}
	}
	x.rows = append(x.rows, w)
	x.sum.Add(r)
	switch r.Action {
	case audit.ActionQuotaUsage, audit.ActionQuotaRefusal:
		return // key-server use, drawn apart
	case audit.ActionRequestDisclosure, audit.ActionApproveDisclosure, audit.ActionRefuseDisclosure:
		x.disclosures = append(x.disclosures, len(x.rows)-1)
	}
	day := r.Time.UTC().Format(time.DateOnly)
	m := x.byDay[day]
	if m == nil {
		m = map[dayKey]uint64{}
		x.byDay[day] = m
	}
	m[dayKey{r.Agency, w.level}]++
}

// joinDetails renders a record's details as "k=v, …" in key order.
func joinDetails(d map[string]string) string {
	if len(d) == 0 {
		return ""
	}
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k + "=" + d[k])
	}
	return b.String()
}

// filter selects rows. Zero fields select everything.
type filter struct {
	Agency, Action, Purpose, Level, Case string
	// Since and Until bound the time: Since inclusive, Until exclusive.
	Since, Until time.Time
}

// parseFilter returns the filter of URL query values (get), or an error
// naming the parameter at fault.
func parseFilter(get func(string) string) (filter, error) {
	f := filter{Agency: get("agency"), Action: get("action"), Purpose: get("purpose"), Level: get("level"), Case: get("case")}
	if f.Level != "" && !slices.Contains(levelNames, f.Level) {
		return f, &paramError{"level", f.Level, "one of none, count, flag, full"}
	}
	for _, b := range []struct {
		name string
		t    *time.Time
		next bool
	}{{"since", &f.Since, false}, {"until", &f.Until, true}} {
		v := get(b.name)
		if v == "" {
			continue
		}
		t, err := time.Parse(time.DateOnly, v)
		if err != nil {
			if t, err = time.Parse(time.RFC3339, v); err != nil {
				return f, &paramError{b.name, v, "a date (YYYY-MM-DD) or an RFC 3339 time"}
			}
		} else if b.next {
			t = t.AddDate(0, 0, 1) // until a date includes that day
		}
		*b.t = t
	}
	return f, nil
}

// paramError names a query parameter the console cannot use.
type paramError struct{ name, value, want string }

func (e *paramError) Error() string {
	return e.name + ": " + strconv.Quote(e.value) + " is not " + e.want
}

// matcher is a filter compiled against an index: string fields as ids.
type matcher struct {
	ok                                        bool // false: nothing can match
	agency, action, purpose, caseRef          uint32
	hasAgency, hasAction, hasPurpose, hasCase bool
	level                                     int // -1: any
	since, until                              int64
}

func (x *index) compile(f filter) matcher {
	m := matcher{ok: true, level: -1, since: minTime, until: maxTime}
	for _, s := range []struct {
		v   string
		id  *uint32
		has *bool
	}{{f.Agency, &m.agency, &m.hasAgency}, {f.Action, &m.action, &m.hasAction}, {f.Purpose, &m.purpose, &m.hasPurpose}, {f.Case, &m.caseRef, &m.hasCase}} {
		if s.v == "" {
			continue
		}
		id, found := x.strs.lookup(s.v)
		if !found {
			m.ok = false
		}
		*s.id, *s.has = id, true
	}
	if f.Level != "" {
		m.level = int(levelOf(f.Level))
	}
	if !f.Since.IsZero() {
		m.since = f.Since.UnixNano()
	}
	if !f.Until.IsZero() {
		m.until = f.Until.UnixNano()
	}
	return m
}

const (
	minTime = -1 << 63
	maxTime = 1<<63 - 1
)

func (m *matcher) match(w *row) bool {
	return m.ok && (!m.hasAgency || w.agency == m.agency) && (!m.hasAction || w.action == m.action) &&
		(!m.hasPurpose || w.purpose == m.purpose) && (!m.hasCase || w.caseRef == m.caseRef) &&
		(m.level < 0 || int(w.level) == m.level) && w.time >= m.since && w.time < m.until
}

// page returns the rows that match f, newest first, skipping offset and
// returning at most limit, and how many match in all.
func (x *index) page(f filter, offset, limit int) ([]*row, int) {
	m := x.compile(f)
	var out []*row
	total := 0
	for i := len(x.rows) - 1; i >= 0; i-- {
		w := &x.rows[i]
		if !m.match(w) {
			continue
		}
		if total >= offset && len(out) < limit {
			out = append(out, w)
		}
		total++
	}
	return out, total
}

// each calls fn with every row that matches f, oldest first.
func (x *index) each(f filter, fn func(*row) error) error {
	m := x.compile(f)
	for i := range x.rows {
		if w := &x.rows[i]; m.match(w) {
			if err := fn(w); err != nil {
				return err
			}
		}
	}
	return nil
}

// record is a row as the console shows and exports it.
type record struct {
	Index      uint64    `json:"index"`
	Time       time.Time `json:"time"`
	DecisionID string    `json:"decision_id"`
	Agency     string    `json:"agency"`
	Action     string    `json:"action"`
	Result     string    `json:"result"`
	Purpose    string    `json:"purpose"`
	CaseRef    string    `json:"case_ref"`
	Level      string    `json:"level"`
	Entries    uint64    `json:"entries"`
	Lists      string    `json:"lists"`
	Rules      string    `json:"rules"`
	Reason     string    `json:"reason"`
	Details    string    `json:"details"`
}

func (x *index) record(w *row) record {
	return record{
		Index: w.index, Time: time.Unix(0, w.time).UTC(), DecisionID: w.id,
		Agency: x.strs.get(w.agency), Action: x.strs.get(w.action), Result: x.strs.get(w.result),
		Purpose: x.strs.get(w.purpose), CaseRef: x.strs.get(w.caseRef), Level: levelNames[w.level], Entries: w.entries,
		Lists: x.strs.get(w.lists), Rules: x.strs.get(w.rules), Reason: x.strs.get(w.reason), Details: x.strs.get(w.details),
	}
}

// csvHeader and csvRow are a record as a CSV line.
var csvHeader = []string{"index", "time", "decision_id", "agency", "action", "result", "purpose", "case_ref", "level", "entries", "lists", "rules", "reason", "details"}

func (r record) csvRow() []string {
	return []string{strconv.FormatUint(r.Index, 10), r.Time.Format(time.RFC3339Nano), r.DecisionID, r.Agency, r.Action, r.Result,
		r.Purpose, r.CaseRef, r.Level, strconv.FormatUint(r.Entries, 10), r.Lists, r.Rules, r.Reason, r.Details}
}

// finish computes what the pages offer once all rows are in: the filter
// form's choices.
func (x *index) finish() {
	x.choices = map[string][]string{
		"agency":  x.values(func(w *row) uint32 { return w.agency }),
		"action":  x.values(func(w *row) uint32 { return w.action }),
		"purpose": x.values(func(w *row) uint32 { return w.purpose }),
	}
}

// values returns the distinct values of a field over the rows, sorted.
func (x *index) values(field func(*row) uint32) []string {
	seen := map[uint32]bool{}
	for i := range x.rows {
		seen[field(&x.rows[i])] = true
	}
	out := make([]string, 0, len(seen))
	for id := range seen {
		if v := x.strs.get(id); v != "" {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}
