package console

import (
	"context"
	"embed"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/veilmatch/veilmatch/client/auditor"
)

//go:embed web
var webFS embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"ago":     ago,
	"when":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"add":     func(a, b int) int { return a + b },
	"query":   func(f filter, extra ...string) template.URL { return template.URL(f.query(extra...)) },
	"hexroot": func(b []byte) string { return hex.EncodeToString(b) },
}).ParseFS(webFS, "web/*.html"))

// pageSize is the decisions table's page.
const pageSize = 100

// Handler serves the console. Requests whose Host is not a loopback name
// or address are refused, so that a web page elsewhere cannot read the
// console through DNS rebinding; every response forbids scripts, frames
// and any source but the console.
func (c *Console) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", c.overview)
	mux.HandleFunc("GET /overview.json", c.overviewJSON)
	mux.HandleFunc("GET /decisions", c.decisions)
	mux.HandleFunc("GET /decisions.csv", c.export(false))
	mux.HandleFunc("GET /decisions.json", c.export(true))
	mux.HandleFunc("GET /agency/{id}", c.agency)
	mux.HandleFunc("GET /proof", c.proof)
	mux.HandleFunc("POST /verify", c.reverify)
	static, _ := fs.Sub(webFS, "web") // a directory the binary embeds
	mux.Handle("GET /static/", http.FileServerFS(static))
	return guard(mux)
}

// guard refuses non-loopback Host headers and sets the security headers.
func guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		ip := net.ParseIP(strings.Trim(host, "[]"))
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			http.Error(w, "the auditor console answers only to localhost or a loopback address", http.StatusMisdirectedRequest)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// banner is the verification status as the top of every page shows it.
type banner struct {
	OK            bool
	Title, Detail string
	At            time.Time
	FirstBad      string
	Stale         bool // showing an older verified view under a failure
}

func (c *Console) banner(v *view, st status) banner {
	b := banner{OK: st.OK, At: st.At}
	switch {
	case st.OK:
		b.Title = fmt.Sprintf("Verified: %d records, checkpoint size %d", v.rep.Records, v.rep.Size)
		if v.rep.Consistent {
			b.Detail = fmt.Sprintf("consistent with the checkpoint of size %d verified before", v.rep.PreviousSize)
		} else {
			b.Detail = "first verification: this checkpoint is trusted on first use; later ones must extend it"
		}
	case st.Failure != nil:
		b.Title = "VERIFICATION FAILED: " + st.Failure.Error()
		b.FirstBad = strconv.FormatUint(st.Failure.Index, 10)
		b.Detail = "keep the state file and the hub's database as evidence and report this to the hub operator and the oversight body"
	default:
		b.Title = "Verification could not be done"
		if st.Err != nil {
			b.Detail = st.Err.Error()
		}
	}
	b.Stale = !st.OK && v != nil
	return b
}

// overviewData is the overview page.
type overviewData struct {
	Banner     banner
	Size       uint64
	Root       []byte
	Checkpoint string
	Newest     time.Time
	VerifiedAt time.Time
	Now        time.Time
	ByAgency   template.HTML
	ByLevel    template.HTML
	Quota      []template.HTML
	Probing    template.HTML
	Flags      []auditor.CheckRow
	Summary    auditor.Summary
	Disclosure []record
	Agencies   []string
	Empty      bool
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	v, st := c.current()
	d := overviewData{Banner: c.banner(v, st), Now: c.cfg.Now()}
	if v != nil {
		x := v.x
		d.Size, d.Root, d.Checkpoint, d.VerifiedAt = v.rep.Size, v.rep.Root, v.checkpoint, v.verifiedAt
		if n := len(x.rows); n > 0 {
			d.Newest = time.Unix(0, x.rows[n-1].time).UTC()
		}
		d.ByAgency, d.ByLevel = x.dayCharts()
		d.Quota = x.quotaCharts(c.cfg.QuotaDaily)
		d.Probing, d.Flags = x.probingChart()
		d.Summary = x.sum.Summary()
		for _, i := range x.disclosures {
			d.Disclosure = append(d.Disclosure, x.record(&x.rows[i]))
		}
		d.Agencies = x.choices["agency"]
	} else {
		d.Empty = true
	}
	render(w, "overview.html", d)
}

// overviewJSON exports the overview's figures.
func (c *Console) overviewJSON(w http.ResponseWriter, r *http.Request) {
	v, st := c.current()
	out := map[string]any{"verified": st.OK, "verification_time": st.At}
	if st.Failure != nil {
		out["failure"], out["first_bad_record"] = st.Failure.Error(), st.Failure.Index
	}
	if v != nil {
		out["size"], out["root"], out["verified_at"] = v.rep.Size, hex.EncodeToString(v.rep.Root), v.verifiedAt
		out["decisions_per_day"] = v.x.dayTable()
		out["summary"] = v.x.sum.Summary()
	}
	writeJSON(w, out)
}

// decisionsData is the decisions page.
type decisionsData struct {
	Banner     banner
	Filter     filter
	Form       map[string]string
	Choices    map[string][]string
	Levels     []string
	Rows       []record
	Total      int
	From, To   int
	Prev, Next int
	HasPrev    bool
	HasNext    bool
	Error      string
	AgencyPage string
	Empty      bool
}

func (c *Console) decisions(w http.ResponseWriter, r *http.Request) {
	c.renderDecisions(w, r, "", "decisions.html")
}

func (c *Console) agency(w http.ResponseWriter, r *http.Request) {
	c.renderDecisions(w, r, r.PathValue("id"), "agency.html")
}

// renderDecisions renders a filtered page of decisions; agency, if set,
// fixes the agency filter (the per-agency page).
func (c *Console) renderDecisions(w http.ResponseWriter, r *http.Request, agency, page string) {
	v, st := c.current()
	q := r.URL.Query()
	if agency != "" {
		q.Set("agency", agency)
	}
	d := decisionsData{Banner: c.banner(v, st), Levels: levelNames, AgencyPage: agency, Form: map[string]string{}}
	for _, k := range []string{"agency", "action", "purpose", "level", "case", "since", "until"} {
		d.Form[k] = q.Get(k)
	}
	f, err := parseFilter(q.Get)
	offset, oerr := strconv.Atoi(q.Get("offset"))
	if q.Get("offset") == "" {
		offset, oerr = 0, nil
	}
	switch {
	case err != nil:
		d.Error = err.Error()
	case oerr != nil || offset < 0:
		d.Error = fmt.Sprintf("offset: %q is not a row number", q.Get("offset"))
	}
	d.Filter = f
	if v == nil {
		d.Empty = true
		render(w, page, d)
		return
	}
	d.Choices = v.x.choices
	if d.Error != "" {
		w.WriteHeader(http.StatusBadRequest)
		render(w, page, d)
		return
	}
	rows, total := v.x.page(f, offset, pageSize)
	for _, row := range rows {
		d.Rows = append(d.Rows, v.x.record(row))
	}
	d.Total, d.From, d.To = total, offset+1, offset+len(rows)
	d.HasPrev, d.Prev = offset > 0, max(0, offset-pageSize)
	d.HasNext, d.Next = offset+len(rows) < total, offset+pageSize
	render(w, page, d)
}

// export writes every decision the filter selects, oldest first, as CSV
// or JSON lines... as one JSON array.
func (c *Console) export(asJSON bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, _ := c.current()
		if v == nil {
			http.Error(w, "the log has not been verified yet", http.StatusServiceUnavailable)
			return
		}
		f, err := parseFilter(r.URL.Query().Get)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		name := "decisions-" + strconv.FormatUint(v.rep.Size, 10)
		if asJSON {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.json"`)
			enc := json.NewEncoder(w)
			first := true
			fmt.Fprint(w, "[")
			_ = v.x.each(f, func(row *row) error {
				if !first {
					fmt.Fprint(w, ",")
				}
				first = false
				return enc.Encode(v.x.record(row))
			})
			fmt.Fprintln(w, "]")
			return
		}
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.csv"`)
		cw := csv.NewWriter(w)
		_ = cw.Write(csvHeader)
		_ = v.x.each(f, func(row *row) error { return cw.Write(v.x.record(row).csvRow()) })
		cw.Flush()
	}
}

// proofData is the inclusion proof page.
type proofData struct {
	Banner banner
	Index  uint64
	Size   uint64
	Root   []byte
	Record *record
	OK     bool
	Error  string
}

func (c *Console) proof(w http.ResponseWriter, r *http.Request) {
	v, st := c.current()
	d := proofData{Banner: c.banner(v, st)}
	i, err := strconv.ParseUint(r.URL.Query().Get("index"), 10, 64)
	switch {
	case v == nil:
		d.Error = "the log has not been verified yet"
	case err != nil:
		d.Error = fmt.Sprintf("index: %q is not a record number", r.URL.Query().Get("index"))
	default:
		d.Index, d.Size, d.Root = i, v.rep.Size, v.rep.Root
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		if err := c.prove(ctx, v, i); err != nil {
			d.Error = err.Error()
		} else {
			d.OK = true
			rec := v.x.record(&v.x.rows[i])
			d.Record = &rec
		}
	}
	if !d.OK {
		w.WriteHeader(http.StatusUnprocessableEntity)
	}
	render(w, "proof.html", d)
}

// reverify verifies again and returns to the overview.
func (c *Console) reverify(w http.ResponseWriter, r *http.Request) {
	_ = c.Verify(r.Context()) // the banner shows the outcome
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// render executes a page template.
func render(w http.ResponseWriter, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pages.ExecuteTemplate(w, name, data); err != nil {
		http.Error(w, "render "+name+": "+err.Error(), http.StatusInternalServerError)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil && !errors.Is(err, http.ErrHandlerTimeout) {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

// query renders f as URL query parameters, with extra key, value pairs.
func (f filter) query(extra ...string) string {
	q := url.Values{}
	for k, v := range map[string]string{"agency": f.Agency, "action": f.Action, "purpose": f.Purpose, "level": f.Level, "case": f.Case} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339))
	}
	if !f.Until.IsZero() {
		q.Set("until", f.Until.UTC().Format(time.RFC3339))
	}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	return q.Encode()
}

// ago renders the time from t to now in words.
func ago(t, now time.Time) string {
	d := now.Sub(t).Round(time.Second)
	switch {
	case d < 0:
		return "in the future"
	case d < time.Minute:
		return d.String() + " ago"
	case d < 48*time.Hour:
		return d.Round(time.Minute).String() + " ago"
	}
	return strconv.Itoa(int(d.Hours()/24)) + " days ago"
}

// dayCharts draws decisions per day by agency and by level.
func (x *index) dayCharts() (byAgency, byLevel template.HTML) {
	days := slices.Sorted(maps.Keys(x.byDay))
	agencies := x.choices["agency"]
	var as, ls []series
	for i, a := range agencies {
		s := series{name: a, color: palette[i%len(palette)], values: make([]uint64, len(days))}
		for d, day := range days {
			for k, n := range x.byDay[day] {
				if k.agency == a {
					s.values[d] += n
				}
			}
		}
		as = append(as, s)
	}
	for l := range levelNames {
		s := series{name: levelNames[l], color: levelColors[uint8(l)], values: make([]uint64, len(days))}
		for d, day := range days {
			for k, n := range x.byDay[day] {
				if k.level == uint8(l) {
					s.values[d] += n
				}
			}
		}
		ls = append(ls, s)
	}
	return barChart{id: "by-agency", title: "Decisions per day, by agency", xs: days, series: as}.svg(),
		barChart{id: "by-level", title: "Decisions per day, by most revealing level disclosed", xs: days, series: ls}.svg()
}

// dayTable is the decisions per day, agency and level, for export.
func (x *index) dayTable() []map[string]any {
	var out []map[string]any
	for _, day := range slices.Sorted(maps.Keys(x.byDay)) {
		m := x.byDay[day]
		keys := slices.SortedFunc(maps.Keys(m), func(a, b dayKey) int {
			return strings.Compare(a.agency+levelNames[a.level], b.agency+levelNames[b.level])
		})
		for _, k := range keys {
			out = append(out, map[string]any{"day": day, "agency": k.agency, "level": levelNames[k.level], "decisions": m[k]})
		}
	}
	return out
}

// quotaCharts draws each agency's key-server evaluations per day against
// the daily cap, with a mark on each day with refusals.
func (x *index) quotaCharts(daily uint64) []template.HTML {
	rows := x.sum.Summary().Quota
	byAgency := map[string][]auditor.QuotaRow{}
	for _, q := range rows {
		byAgency[q.Agency] = append(byAgency[q.Agency], q)
	}
	var out []template.HTML
	for i, a := range slices.Sorted(maps.Keys(byAgency)) {
		qs := byAgency[a]
		c := barChart{id: "quota-" + a, title: "Key-server evaluations per day: " + a, limit: daily, limitName: "daily quota", marks: map[int]string{}}
		s := series{name: a + " evaluations", color: palette[i%len(palette)]}
		for j, q := range qs {
			c.xs = append(c.xs, q.Day)
			s.values = append(s.values, q.Evaluations)
			if q.Refusals > 0 {
				c.marks[j] = fmt.Sprintf("%s: %d requests refused", q.Day, q.Refusals)
			}
		}
		c.series = []series{s}
		out = append(out, c.svg())
	}
	return out
}

// probingChart draws small checks per agency and day against the probing
// threshold, and returns the flagged rows.
func (x *index) probingChart() (template.HTML, []auditor.CheckRow) {
	rows := x.sum.Summary().Checks
	var flagged []auditor.CheckRow
	c := barChart{id: "probing", title: fmt.Sprintf("Small checks (≤ %d entries) per agency and day; %d or more flag probing", auditor.SmallCheck, auditor.ProbingChecks),
		limit: auditor.ProbingChecks, limitName: "probing threshold", marks: map[int]string{}}
	s := series{name: "small checks", color: palette[0]}
	for j, r := range rows {
		c.xs = append(c.xs, r.Agency+" "+r.Day)
		s.values = append(s.values, r.SmallChecks)
		if r.Probing {
			flagged = append(flagged, r)
			c.marks[j] = r.Agency + " flagged as probing on " + r.Day
		}
	}
	c.series = []series{s}
	return c.svg(), flagged
}
