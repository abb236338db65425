package console_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/veilmatch/veilmatch/internal/servertest"
)

// tab is a headless Chromium tab driven by a test.
type tab struct {
	t   *testing.T
	ctx context.Context
}

// browser returns a headless Chromium tab for the test. Without Chromium
// the test fails: .ci/run installs Debian's chromium package.
func browser(t *testing.T) tab {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		t.Fatal("no Chromium on PATH: install it (Debian: apt-get install chromium); the console's browser tests need a real browser")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU)
	actx, cancel := chromedp.NewExecAllocator(t.Context(), opts...)
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(cancel)
	return tab{t, ctx}
}

// do runs steps, failing the test on error.
func (b tab) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatal(err)
	}
}

// eval evaluates a script in the page.
func eval[T any](b tab, js string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](js))
	if err != nil {
		b.t.Fatalf("%s: %v", js, err)
	}
	return v
}

// attr returns attribute name of the element sel selects.
func (b tab) attr(sel, name string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.AttributeValue(chromedp.CSS(sel), name))
	if err != nil {
		b.t.Fatalf("%s[%s]: %v", sel, name, err)
	}
	return v.Value
}

// text returns the visible text of the element sel selects.
func (b tab) text(sel string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("%s: %v", sel, err)
	}
	return v
}

// loaded waits until the page that cond (a script) recognizes has
// loaded, for up to 10 seconds. It asks again and again: a script in a
// page that is being replaced fails, and is asked again in the next one.
func (b tab) loaded(cond string) {
	b.t.Helper()
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var ok bool
		ok, err = chromedp.Run(b.ctx, chromedp.Evaluate[bool](`document.readyState === "complete" && (`+cond+`)`))
		if err == nil && ok {
			return
		}
	}
	b.t.Fatalf("waiting for %s: not after 10s (%v)", cond, err)
}

// openConsole opens page path of a console verifying the sample log.
func openConsole(t *testing.T, path string) (*servertest.AuditLog, tab) {
	t.Helper()
	e := servertest.NewAuditLog(t, servertest.SampleDecisions())
	_, srv, _ := newConsole(t, e)
	b := browser(t)
	b.do(chromedp.Navigate(srv.URL + path))
	return e, b
}

// sumOf is a script adding up the data-value of the elements selected.
func sumOf(selector string) string {
	return `[...document.querySelectorAll("` + selector + `")].reduce((s, r) => s + Number(r.dataset.value), 0)`
}

// TestBrowserOverview: in a real browser, the overview shows the verified
// size under a green banner, and the decisions charts draw bars whose
// values add up to the decisions of the log (7: the key-server usage
// record is drawn on its own chart, with its 100 evaluations).
func TestBrowserOverview(t *testing.T) {
	_, b := openConsole(t, "/")
	size, class := b.text("#size"), b.attr("#banner", "class")
	color := eval[string](b, `getComputedStyle(document.getElementById("banner")).backgroundColor`)
	if size != "8 records" || class != "banner ok" || color != "rgb(229, 244, 232)" {
		t.Errorf("overview: size %q, banner %q in %s; want 8 records under a green banner", size, class, color)
	}
	byAgency, byLevel := eval[float64](b, sumOf("#by-agency rect[data-value]")), eval[float64](b, sumOf("#by-level rect[data-value]"))
	quota := eval[float64](b, sumOf("#quota-police-gb rect[data-value]"))
	if byAgency != 7 || byLevel != 7 || quota != 100 {
		t.Errorf("chart totals: by agency %v, by level %v, key-server use %v; want 7, 7, 100", byAgency, byLevel, quota)
	}
	if w := eval[float64](b, `document.getElementById("by-agency").getBoundingClientRect().width`); w < 100 {
		t.Errorf("the chart is %v px wide: not rendered", w)
	}
}

// TestBrowserFilters: choosing an agency and an action in the form and
// applying them narrows the table to those decisions; the export link
// carries the same filter.
func TestBrowserFilters(t *testing.T) {
	_, b := openConsole(t, "/decisions")
	rows := `document.querySelectorAll("#decisions tbody tr").length`
	before := eval[int](b, rows)
	b.do(
		chromedp.SetValue(chromedp.CSS(`select[name="agency"]`), "police-gb"),
		chromedp.SetValue(chromedp.CSS(`select[name="action"]`), "check"),
		chromedp.Click(chromedp.CSS("#apply")),
	)
	b.loaded(`location.search.includes("action=check")`)
	after, total := eval[int](b, rows), b.attr("#total", "data-total")
	agencies := eval[string](b, `[...document.querySelectorAll("#decisions tbody tr td:nth-child(3)")].map(td => td.textContent).join(",")`)
	if before != 8 || after != 1 || total != "1" || agencies != "police-gb" {
		t.Errorf("table: %d rows before the filter, %d after (total %s, agencies %q); want 8, then police-gb's one check", before, after, total, agencies)
	}
	if u := b.attr("#export-csv", "href"); !strings.Contains(u, "agency=police-gb") || !strings.Contains(u, "action=check") {
		t.Errorf("export link %q does not carry the filter", u)
	}
}

// TestBrowserTampered: after a record is changed at the hub, "Verify now"
// turns the banner red and names the first bad record.
func TestBrowserTampered(t *testing.T) {
	e, b := openConsole(t, "/")
	if class := b.attr("#banner", "class"); class != "banner ok" {
		t.Fatalf("banner before tampering: %q", class)
	}
	e.Tamper(t, `UPDATE log_records SET record = CAST(replace(CAST(record AS TEXT), '"US-7"', '"US-8"') AS BLOB) WHERE idx = 6`)
	b.do(chromedp.Click(chromedp.CSS("#verify-now")))
	b.loaded(`document.getElementById("first-bad") !== null`)
	class, title, firstBad := b.attr("#banner", "class"), b.text("#banner-title"), b.attr("#first-bad", "data-index")
	color := eval[string](b, `getComputedStyle(document.getElementById("banner")).backgroundColor`)
	if class != "banner fail" || color != "rgb(198, 40, 40)" || firstBad != "6" || !strings.Contains(title, "record 6: changed") {
		t.Errorf("after tampering: banner %q in %s, title %q, first bad %q; want red, naming record 6", class, color, title, firstBad)
	}
}
