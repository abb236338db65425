package console_test

import (
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veilmatch/veilmatch/client/auditor/console"
	"github.com/veilmatch/veilmatch/internal/servertest"
)

// newConsole verifies e's log in a console served on loopback.
func newConsole(t *testing.T, e *servertest.AuditLog) (*console.Console, *httptest.Server, string) {
	t.Helper()
	state := filepath.Join(t.TempDir(), "audit-state.json")
	c := console.New(console.Config{Audit: e.Client(t, "auditor"), Verifier: e.Key.Verifier, Origin: servertest.AuditOrigin, StatePath: state})
	if err := c.Verify(t.Context()); err != nil {
		t.Fatalf("first verification: %v", err)
	}
	srv := httptest.NewServer(c.Handler())
	t.Cleanup(srv.Close)
	return c, srv, state
}

// get returns the status and body of GET path.
func get(t *testing.T, srv *httptest.Server, path string) (int, string) {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestConsolePages: the overview shows the verified size and the charts'
// totals; filters select decisions, exports return them, a record's
// inclusion proof checks; bad input is a 400 naming the parameter.
func TestConsolePages(t *testing.T) {
	e := servertest.NewAuditLog(t, servertest.SampleDecisions())
	_, srv, _ := newConsole(t, e)

	code, body := get(t, srv, "/")
	for _, want := range []string{`class="banner ok"`, `data-size="8"`, "Verified: 8 records, checkpoint size 8", "first verification",
		`id="by-agency"`, `id="by-level"`, `id="quota-police-gb"`, "request_disclosure"} {
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("overview (%d) lacks %q", code, want)
		}
	}
	// 7 decisions a day chart counts (the quota record is drawn apart).
	if !strings.Contains(body, `id="by-agency" class="chart" viewBox="0 0 760 220" role="img" aria-label="Decisions per day, by agency" data-total="7"`) {
		t.Errorf("by-agency chart total is not 7:\n%s", body)
	}

	code, body = get(t, srv, "/decisions?agency=police-gb&action=overlaps")
	if code != http.StatusOK || !strings.Contains(body, `data-total="1"`) || !strings.Contains(body, `data-index="1"`) {
		t.Errorf("filtered decisions (%d):\n%s", code, body)
	}
	code, body = get(t, srv, "/decisions?level=full")
	if code != http.StatusOK || !strings.Contains(body, `data-total="1"`) {
		t.Errorf("level=full (%d) does not select one decision", code)
	}
	code, body = get(t, srv, "/agency/ngo-shelter")
	if code != http.StatusOK || !strings.Contains(body, `data-total="2"`) || !strings.Contains(body, "<td>victim_support</td><td>1</td><td>0</td><td>0</td><td>1</td>") {
		t.Errorf("agency page of ngo-shelter (%d) does not show its 2 decisions and its summary:\n%s", code, body)
	}
	if _, body = get(t, srv, "/agency/police-gb"); !strings.Contains(body, `id="quota-police-gb"`) {
		t.Errorf("agency page of police-gb lacks its key-server use")
	}
	code, body = get(t, srv, "/decisions?level=loud")
	if code != http.StatusBadRequest || !strings.Contains(body, "level: &#34;loud&#34; is not one of none, count, flag, full") {
		t.Errorf("bad level: %d\n%s", code, body)
	}

	code, body = get(t, srv, "/decisions.csv?agency=police-gb")
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if code != http.StatusOK || err != nil || len(rows) != 5 || rows[0][0] != "index" || rows[1][3] != "police-gb" {
		t.Errorf("CSV export (%d, %v): %q", code, err, rows)
	}
	code, body = get(t, srv, "/decisions.json?purpose=investigation")
	var recs []map[string]any
	if err := json.Unmarshal([]byte(body), &recs); code != http.StatusOK || err != nil || len(recs) != 4 {
		t.Errorf("JSON export (%d, %v): %d records, want 4", code, err, len(recs))
	}

	code, body = get(t, srv, "/proof?index=3")
	if code != http.StatusOK || !strings.Contains(body, "Record 3 is included in the verified checkpoint of size 8") {
		t.Errorf("proof of record 3 (%d):\n%s", code, body)
	}
	if code, _ = get(t, srv, "/proof?index=99"); code != http.StatusUnprocessableEntity {
		t.Errorf("proof of record 99: %d, want 422", code)
	}
}

// TestConsoleTampered: a record changed at the hub turns the banner red,
// naming the first bad record, and the state file keeps the good
// checkpoint.
func TestConsoleTampered(t *testing.T) {
	e := servertest.NewAuditLog(t, servertest.SampleDecisions())
	c, srv, _ := newConsole(t, e)
	e.Tamper(t, `UPDATE log_records SET record = CAST(replace(CAST(record AS TEXT), '"GB-2"', '"GB-3"') AS BLOB) WHERE idx = 4`)
	if err := c.Verify(t.Context()); err == nil {
		t.Fatal("a tampered log verified")
	}
	_, body := get(t, srv, "/")
	for _, want := range []string{`class="banner fail"`, "VERIFICATION FAILED: record 4: changed", `data-index="4"`, "not the hub's current log"} {
		if !strings.Contains(body, want) {
			t.Errorf("overview after tampering lacks %q:\n%s", want, body)
		}
	}
}

// TestConsoleLoopbackOnly: a request naming another host (DNS rebinding)
// is refused; the pages allow no script and no outside source.
func TestConsoleLoopbackOnly(t *testing.T) {
	e := servertest.NewAuditLog(t, servertest.SampleDecisions())
	_, srv, _ := newConsole(t, e)
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/decisions.csv", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "attacker.example:80"
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("Host attacker.example: %d, want %d", resp.StatusCode, http.StatusMisdirectedRequest)
	}
	resp, err = srv.Client().Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
}
