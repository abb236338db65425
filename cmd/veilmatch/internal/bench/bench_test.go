package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veilmatch/veilmatch/client/normalize"
	"github.com/veilmatch/veilmatch/crypto/token"
)

// tinyOptions is a profile small enough for `go test -short` and -race.
func tinyOptions(t *testing.T) Options {
	o := DefaultOptions()
	o.Agencies, o.Entries, o.Query, o.Overlap, o.Background = 2, 300, 300, 0.2, 3000
	o.Batch = 128
	o.CryptoTime, o.KeyServerTime, o.Repetitions, o.Images = time.Millisecond, 50*time.Millisecond, 2, 2
	o.Dir = filepath.Join(t.TempDir(), "bench")
	return o
}

// TestRunTiny runs the whole benchmark on a tiny profile and checks that
// every figure is present and plausible. It asserts nothing about speed.
func TestRunTiny(t *testing.T) {
	o := tinyOptions(t)
	var progress bytes.Buffer
	r, err := Run(context.Background(), o, &progress)
	if err != nil {
		t.Fatalf("Run: %v\nprogress:\n%s", err, progress.String())
	}
	table := checkReport(t, o, r, progress.String())
	if r.Postgres != nil || strings.Contains(table, "PostgreSQL") {
		t.Errorf("a PostgreSQL run without a store URL:\n%s", table)
	}
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte(`"postgres"`)) {
		t.Errorf("the JSON has a postgres field without a store URL: %s", data)
	}
	t.Logf("\n%s", table)
}

// checkReport checks that every figure of the SQLite run is present and
// plausible, and returns the report as a table.
func checkReport(t *testing.T, o Options, r Report, progress string) string {
	t.Helper()
	pl := newPlan(o)

	checkFigures(t, r)
	if r.Publish.Rows != pl.rows() || r.Publish.Lists != o.Agencies+1 {
		t.Errorf("published %d rows in %d lists, want %d in %d", r.Publish.Rows, r.Publish.Lists, pl.rows(), o.Agencies+1)
	}
	if r.Publish.Warnings != 0 {
		t.Errorf("%d normalization warnings on synthetic numbers", r.Publish.Warnings)
	}
	if r.KeyServer.Evaluations < int64(r.KeyServer.Callers*o.Batch) {
		t.Errorf("%d evaluations by %d callers, want at least one batch each", r.KeyServer.Evaluations, r.KeyServer.Callers)
	}

	// 60 of the query's rows are shared with both agency lists (police-us
	// and police-th, counterparties of police-gb's query list).
	if r.Overlaps.Pairs == 0 || r.Overlaps.Pairs != int64(pl.expectedPairs()) {
		t.Errorf("overlaps joined %d pairs, want %d (> 0)", r.Overlaps.Pairs, pl.expectedPairs())
	}
	if r.Overlaps.Matches+r.Overlaps.CountedClasses == 0 {
		t.Error("the overlaps answer disclosed nothing")
	}
	tokens := int64(pl.rows() + o.Background)
	images := int64(o.Images * token.PDQTokens) // published after overlaps
	if r.Storage.Tokens != tokens+images || r.Overlaps.HubTokens != tokens {
		t.Errorf("hub holds %d tokens (overlaps saw %d), want %d (%d before the images)", r.Storage.Tokens, r.Overlaps.HubTokens, tokens+images, tokens)
	}
	if im := r.Images; im.CopiesFound != im.Copies || im.UnrelatedFound != 0 || im.ImagesPerSec <= 0 || im.HashMillis <= 0 || im.HubBytesPerImage <= 0 {
		t.Errorf("images = %+v; want every near copy found, no unrelated hash, and every figure measured", im)
	}
	if l := r.Images.Lists; l.Within31 != 6488 || l.Within16 == 0 || l.Within16Paired != l.Within16 || l.Unrelated < 1_000_000 || l.UnrelatedPaired != 0 ||
		float64(l.Within31Paired) < 0.95*float64(l.Within31) {
		t.Errorf("the hub's rule on Meta's hash lists: %+v; want recall >= 0.95 (1 within 16 bits) and no unrelated pair", l)
	}
	if r.Storage.BytesPerToken < 32 {
		t.Errorf("%.1f bytes on disk per token: less than the token itself", r.Storage.BytesPerToken)
	}
	if r.Overlaps.MemoryTokens == 0 || r.Overlaps.MemoryTokens >= tokens {
		t.Errorf("the in-memory join held %d tokens, want some but not the query owner's (%d in the hub)", r.Overlaps.MemoryTokens, tokens)
	}
	targets := 9
	if o.Store != "" {
		targets++
	}
	if len(r.Targets) != targets {
		t.Errorf("%d targets, want %d", len(r.Targets), targets)
	}
	if th := r.Threshold; th.Single.RowsPerSec <= 0 || len(th.Runs) != 2 || th.Runs[0].RatioToSingle <= 0 || th.Runs[1].Shares != 5 || th.Rows != o.Agencies*o.Entries {
		t.Errorf("threshold publish = %+v, want the whole key, 2-of-3 and 3-of-5 over %d rows", th, o.Agencies*o.Entries)
	}

	if _, err := json.Marshal(r); err != nil {
		t.Errorf("the report does not marshal (a ratio that is not finite?): %v", err)
	}
	var table bytes.Buffer
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"physical limit", "publish / physical limit", "key server / bare evaluate", "publish / circl round trip", "key server / circl evaluate", "(circl ", "through 2-of-3 share servers", "through 3-of-5 share servers", "overlaps p50 / p95", "in-memory hash join", "B/token", "VmHWM", "RSS during publish", "RSS during overlaps", "images: Meta's hash lists", "images: publish", "background: 3,000 synthetic tokens inserted directly"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	if got := strings.Count(table.String(), "PASS") + strings.Count(table.String(), "MISS"); got != targets {
		t.Errorf("table has %d PASS/MISS verdicts, want %d:\n%s", got, targets, table.String())
	}
	if !strings.Contains(progress, "publish") {
		t.Errorf("no progress for the publish phase:\n%s", progress)
	}
	return table.String()
}

// checkFigures checks that every figure of the SQLite run is a positive
// finite number, and that the limits follow from the crypto's times.
func checkFigures(t *testing.T, r Report) {
	t.Helper()
	positive := map[string]float64{
		"crypto blind µs":            r.Crypto.Blind.SingleCoreMicros,
		"crypto evaluate µs":         r.Crypto.Evaluate.SingleCoreMicros,
		"crypto finalize µs":         r.Crypto.Finalize.SingleCoreMicros,
		"crypto blind all cores":     r.Crypto.Blind.AllCoresPerSec,
		"crypto evaluate all cores":  r.Crypto.Evaluate.AllCoresPerSec,
		"crypto finalize all cores":  r.Crypto.Finalize.AllCoresPerSec,
		"limit":                      r.Crypto.LimitPerSec,
		"measured limit":             r.Crypto.MeasuredLimitPerSec,
		"normalize µs":               r.Crypto.NormalizeMicros,
		"circl blind µs":             r.Crypto.Circl.Blind.SingleCoreMicros,
		"circl evaluate µs":          r.Crypto.Circl.Evaluate.SingleCoreMicros,
		"circl finalize µs":          r.Crypto.Circl.Finalize.SingleCoreMicros,
		"circl evaluate all cores":   r.Crypto.Circl.Evaluate.AllCoresPerSec,
		"circl limit":                r.Crypto.Circl.LimitPerSec,
		"publish ratio to circl":     r.Publish.RatioToCirclRoundTrip,
		"keyserver ratio to circl":   r.KeyServer.RatioToCirclEvaluate,
		"publish rows/s":             r.Publish.RowsPerSec,
		"publish ratio":              r.Publish.RatioToLimit,
		"publish ratio measured":     r.Publish.RatioToMeasuredLimit,
		"publish store busy seconds": r.Publish.StoreBusySeconds,
		"publish commit seconds":     r.Publish.CommitSeconds,
		"keyserver evaluations/s":    r.KeyServer.PerSec,
		"keyserver ratio":            r.KeyServer.RatioToBare,
		"overlaps p50":               r.Overlaps.P50Millis,
		"overlaps p95":               r.Overlaps.P95Millis,
		"rpc p50":                    r.Overlaps.RPCP50Millis,
		"rpc p95":                    r.Overlaps.RPCP95Millis,
		"store join p50":             r.Overlaps.StoreP50Millis,
		"store join p95":             r.Overlaps.StoreP95Millis,
		"memory join p50":            r.Overlaps.MemoryP50Millis,
		"memory join p95":            r.Overlaps.MemoryP95Millis,
		"overlaps ratio":             r.Overlaps.RatioToMemory,
		"bytes per token":            r.Storage.BytesPerToken,
	}
	if _, err := os.Stat("/proc/self/status"); err == nil {
		positive["peak RSS"] = r.Memory.PeakRSSMiB
		positive["publish RSS max"] = r.Memory.Publish.MaxMiB
		positive["overlaps RSS max"] = r.Memory.Overlaps.MaxMiB
		positive["publish CPU per row"] = r.Publish.CPUMicrosPerRow
	}
	for name, v := range positive {
		if !(v > 0) || math.IsInf(v, 0) {
			t.Errorf("%s = %v, want a positive finite number", name, v)
		}
	}

	// The limit follows from the single-core times.
	sum := r.Crypto.Blind.SingleCoreMicros + r.Crypto.Evaluate.SingleCoreMicros + r.Crypto.Finalize.SingleCoreMicros
	if want := float64(r.Profile.Cores) * 1e6 / sum; math.Abs(r.Crypto.LimitPerSec-want) > 1e-6*want {
		t.Errorf("limit = %v, want cores / (t_blind + t_eval + t_final) = %v", r.Crypto.LimitPerSec, want)
	}
	for name, cc := range map[string]CryptoCost{"veilmatch": r.Crypto.CryptoCost, "circl": r.Crypto.Circl} {
		sum := cc.Blind.SingleCoreMicros + cc.Evaluate.SingleCoreMicros + cc.Finalize.SingleCoreMicros
		if math.Abs(cc.RoundTripMicros-sum) > 1e-6*sum {
			t.Errorf("%s round trip = %v µs, want t_blind + t_eval + t_final = %v", name, cc.RoundTripMicros, sum)
		}
	}
}

func TestRunRefusesNonEmptyDir(t *testing.T) {
	o := tinyOptions(t)
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(o.Dir, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), o, nil); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("err = %v, want a refusal of a non-empty directory", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	for name, mut := range map[string]func(*Options){
		"agencies":   func(o *Options) { o.Agencies = 0 },
		"entries":    func(o *Options) { o.Entries = 0 },
		"query":      func(o *Options) { o.Query = 0 },
		"overlap":    func(o *Options) { o.Overlap = 1.5 },
		"nan":        func(o *Options) { o.Overlap = math.NaN() },
		"background": func(o *Options) { o.Background = -1 },
		"batch":      func(o *Options) { o.Batch = 5000 },
		"numbers":    func(o *Options) { o.Agencies, o.Entries = 100, 100_000 },
		"store":      func(o *Options) { o.Store = "host=db user=hub" },
		"store url":  func(o *Options) { o.Store = "postgres://hub:secret@db:port/hub" },
	} {
		t.Run(name, func(t *testing.T) {
			o := DefaultOptions()
			mut(&o)
			err := o.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
	for _, o := range []Options{DefaultOptions(), LargeOptions()} {
		if err := o.Validate(); err != nil {
			t.Errorf("profile refused: %v", err)
		}
	}
}

// TestPlan checks the synthetic data: unique numbers within and across
// lists except the shared pool, all accepted without warnings.
func TestPlan(t *testing.T) {
	o := DefaultOptions()
	o.Agencies, o.Entries, o.Query, o.Overlap = 3, 50, 80, 0.2
	pl := newPlan(o)
	if pl.rows() != 3*50+80 || pl.query.shared != 10 || pl.pool != 10 {
		t.Fatalf("plan: %d rows, query shares %d, pool %d", pl.rows(), pl.query.shared, pl.pool)
	}
	seen := map[string]int{}
	for _, l := range append([]list{pl.query}, pl.agencies...) {
		rep, err := normalize.ReadCSV(bytes.NewReader(l.csv()), "", normalize.Phone, normalize.Options{}, func(r normalize.Row) error {
			seen[r.Value]++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Accepted != l.rows() || len(rep.Warnings) != 0 {
			t.Errorf("%s: %d of %d rows accepted, %d warnings", l.name, rep.Accepted, l.rows(), len(rep.Warnings))
		}
	}
	shared := 0
	for _, n := range seen {
		if n > 1 {
			shared++
		}
	}
	if shared != pl.pool || len(seen) != pl.distinct() {
		t.Errorf("%d numbers on several lists, %d distinct; want %d and %d", shared, len(seen), pl.pool, pl.distinct())
	}
	// Owners: police-us, police-th, police-gb; the query is police-gb's,
	// so two counterparties.
	if got := pl.expectedPairs(); got != 10*2 {
		t.Errorf("expected pairs = %d, want 20", got)
	}
	if n := number(maxNumbers - 1); n != "+14159999999" {
		t.Errorf("last synthetic number %s", n)
	}
}
