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
	"query":   func(f filter, extra ...string) template.URL { return template.URL(f.query(extra...)) },
	"hexroot": func(b []byte) string { return hex.EncodeToString(b) },
}).ParseFS(webFS, "web/*.html"))

// pageSize is the decisions table's page; overviewRows the rows of the
// overview's tables (the newest; the decisions page has them all).
const (
	pageSize     = 100
	overviewRows = 20
)

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
	FlagsTotal int
	Summary    auditor.Summary
	// Disclosure are the newest disclosure requests and answers, of
	// DisclosureTotal.
	Disclosure      []record
	DisclosureTotal int
	Empty           bool
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
		ch := x.overview(c.cfg.QuotaDaily)
		d.ByAgency, d.ByLevel, d.Quota, d.Probing = ch.byAgency, ch.byLevel, ch.quota, ch.probing
		d.Flags, d.FlagsTotal = ch.flags[max(0, len(ch.flags)-overviewRows):], len(ch.flags)
		slices.Reverse(d.Flags)
		d.Summary = ch.summary
		d.DisclosureTotal = len(x.disclosures)
		for _, i := range slices.Backward(x.disclosures[max(0, len(x.disclosures)-overviewRows):]) {
			d.Disclosure = append(d.Disclosure, x.record(&x.rows[i]))
		}
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
		out["summary"] = v.x.overview(c.cfg.QuotaDaily).summary
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
	// On the per-agency page: the agency's decisions by purpose, its
	// key-server use against the quota, and its days flagged as probing.
	AgencySummary []auditor.DecisionRow
	AgencyQuota   template.HTML
	AgencyFlags   []auditor.CheckRow
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
	if agency != "" {
		ch := v.x.overview(c.cfg.QuotaDaily)
		d.AgencyQuota = ch.quotaOf[agency]
		for _, r := range ch.summary.Decisions {
			if r.Agency == agency {
				d.AgencySummary = append(d.AgencySummary, r)
			}
		}
		for _, r := range ch.flags {
			if r.Agency == agency {
				d.AgencyFlags = append(d.AgencyFlags, r)
			}
		}
	}
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
// or as one JSON array, streamed.
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
