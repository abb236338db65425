package bench

import (
	"fmt"
	"io"
	"math"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Report is everything one run measured. It marshals to the JSON of
// `veilmatch bench --format json`.
type Report struct {
	Profile   Profile   `json:"profile"`
	Crypto    Crypto    `json:"crypto"`
	Publish   Publish   `json:"publish"`
	KeyServer KeyServer `json:"keyserver"`
	Threshold Threshold `json:"threshold"`
	Overlaps  Overlaps  `json:"overlaps"`
	Images    Images    `json:"images"`
	Storage   Storage   `json:"storage"`
	Memory    Memory    `json:"memory"`
	// Postgres is the phases that depend on the hub's store run again on
	// PostgreSQL (Options.Store); nil without.
	Postgres *Postgres `json:"postgres,omitempty"`
	Targets  []Target  `json:"targets"`
	Notes    []string  `json:"notes"`
	Seconds  float64   `json:"seconds"`
}

// Profile is what was run, on what.
type Profile struct {
	Name       string  `json:"name"`
	Agencies   int     `json:"agencies"`
	Entries    int     `json:"entries"`
	Query      int     `json:"query"`
	Overlap    float64 `json:"overlap"`
	Background int     `json:"background"`
	Lists      int     `json:"lists"`
	Rows       int     `json:"rows"`
	Batch      int     `json:"batch"`
	Cores      int     `json:"cores"`
	CPUs       int     `json:"cpus"`
	Go         string  `json:"go"`
	Platform   string  `json:"platform"`
}

func newProfile(o Options) Profile {
	pl := newPlan(o)
	name := "default"
	if o.Large {
		name = "large"
	}
	return Profile{
		Name: name, Agencies: o.Agencies, Entries: o.Entries, Query: o.Query, Overlap: o.Overlap, Background: o.Background,
		Lists: pl.lists(), Rows: pl.rows(), Batch: o.Batch, Cores: cores(), CPUs: runtime.NumCPU(),
		Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH,
	}
}

// Crypto is the bare cost of the VOPRF on this machine: veilmatch's
// (crypto/oprf), whose figures sit at the top level as they always have,
// and circl's oprf package beside it, the reference.
type Crypto struct {
	Batch int `json:"batch"`
	Cores int `json:"cores"`
	CryptoCost
	// Circl is circl's cost for the same operations on the same bytes.
	Circl CryptoCost `json:"circl"`
	// NormalizeMicros is the single-core cost of reading and normalizing
	// one CSV row, for comparison; it is not part of the limit.
	NormalizeMicros float64 `json:"normalize_us_per_row"`
}

// CryptoCost is one implementation's cost per element.
type CryptoCost struct {
	Blind    CryptoOp `json:"blind"`
	Evaluate CryptoOp `json:"evaluate"`
	Finalize CryptoOp `json:"finalize"`
	// RoundTripMicros is t_blind + t_evaluate + t_finalize on one core.
	RoundTripMicros float64 `json:"round_trip_us"`
	// LimitPerSec is the physical limit of the pipeline on all cores:
	// cores / (t_blind + t_evaluate + t_finalize), single-core times.
	LimitPerSec float64 `json:"limit_per_sec"`
	// MeasuredLimitPerSec is the same limit from the all-core rates:
	// 1 / (1/r_blind + 1/r_evaluate + 1/r_finalize).
	MeasuredLimitPerSec float64 `json:"measured_limit_per_sec"`
}

// CryptoOp is one operation's cost per element.
type CryptoOp struct {
	SingleCoreMicros float64 `json:"single_core_us_per_element"`
	AllCoresPerSec   float64 `json:"all_cores_per_sec"`
}

// Publish is the end-to-end publish of every list, concurrently.
type Publish struct {
	Lists      int     `json:"lists"`
	Rows       int     `json:"rows"`
	Seconds    float64 `json:"seconds"`
	RowsPerSec float64 `json:"rows_per_sec"`
	// RatioToLimit is RowsPerSec / Crypto.LimitPerSec.
	RatioToLimit         float64 `json:"ratio_to_limit"`
	RatioToMeasuredLimit float64 `json:"ratio_to_measured_limit"`
	// RatioToCirclRoundTrip is RowsPerSec / Crypto.Circl.LimitPerSec: the
	// pipeline against a bare circl round trip on the same cores.
	RatioToCirclRoundTrip float64 `json:"ratio_to_circl_round_trip"`
	// CPUMicrosPerRow is the process's CPU time (clients, key server and
	// hub together) per row.
	CPUMicrosPerRow float64 `json:"cpu_us_per_row"`
	// CPUUtilization is CPU time / (wall time × cores).
	CPUUtilization float64 `json:"cpu_utilization"`
	// StoreBusySeconds is the wall time during which the store had a batch
	// write or a commit in flight; it serializes them on one connection,
	// so near Seconds it is the bottleneck.
	StoreBusySeconds float64 `json:"store_busy_seconds"`
	// CommitSeconds is the time spent committing the lists: above all,
	// joining each new version's tokens against the hub's to store its
	// standing matches. It is the cost of match maintenance.
	CommitSeconds float64 `json:"commit_seconds"`
	// OtherLoad is the share of the machine's cores other processes used
	// meanwhile (0 where unknown).
	OtherLoad float64 `json:"other_load"`
	Warnings  int     `json:"warnings"`
}

// KeyServer is the key server's throughput over gRPC+mTLS.
type KeyServer struct {
	Callers          int     `json:"callers"`
	Batch            int     `json:"batch"`
	Seconds          float64 `json:"seconds"`
	Evaluations      int64   `json:"evaluations"`
	PerSec           float64 `json:"per_sec"`
	CPUMicrosPerEval float64 `json:"cpu_us_per_evaluation"`
	OtherLoad        float64 `json:"other_load"`
	// RatioToBare is PerSec / Crypto.Evaluate.AllCoresPerSec.
	RatioToBare float64 `json:"ratio_to_bare_evaluate"`
	// RatioToCirclEvaluate is PerSec / Crypto.Circl.Evaluate.AllCoresPerSec.
	RatioToCirclEvaluate float64 `json:"ratio_to_circl_evaluate"`
}

// Overlaps is the query list's overlaps latency and its reference.
type Overlaps struct {
	QueryEntries int   `json:"query_entries"`
	HubTokens    int64 `json:"hub_tokens"`
	Repetitions  int   `json:"repetitions"`
	// P50Millis and P95Millis time client.Overlaps end to end.
	P50Millis float64 `json:"p50_ms"`
	P95Millis float64 `json:"p95_ms"`
	// RPCP50Millis and RPCP95Millis time the hub's Overlaps RPC alone.
	RPCP50Millis float64 `json:"rpc_p50_ms"`
	RPCP95Millis float64 `json:"rpc_p95_ms"`
	// StoreP50Millis and StoreP95Millis time the store's join alone.
	StoreP50Millis float64 `json:"store_join_p50_ms"`
	StoreP95Millis float64 `json:"store_join_p95_ms"`
	// MemoryP50Millis and MemoryP95Millis time probing a Go map of the
	// MemoryTokens counterparty tokens with the query list's tokens.
	MemoryP50Millis    float64 `json:"memory_join_p50_ms"`
	MemoryP95Millis    float64 `json:"memory_join_p95_ms"`
	MemoryTokens       int64   `json:"memory_join_tokens"`
	MemoryBuildSeconds float64 `json:"memory_join_build_seconds"`
	// RatioToMemory is P50Millis / MemoryP50Millis.
	RatioToMemory    float64 `json:"ratio_to_memory_join"`
	RatioToMemoryP95 float64 `json:"ratio_to_memory_join_p95"`
	// Pairs is the distinct (entry, counterparty list) pairs joined, equal
	// to ExpectedPairs from the synthetic data.
	Pairs         int64 `json:"pairs"`
	ExpectedPairs int64 `json:"expected_pairs"`
	// Matches and CountedClasses are the size of the policy-filtered answer.
	Matches        int `json:"matches"`
	CountedClasses int `json:"counted_classes"`
}

// Storage is the hub's store at rest: the files of its data directory
// (SQLite), or its tables (PostgreSQL, no files).
type Storage struct {
	Bytes         int64   `json:"bytes"`
	Files         int     `json:"files,omitempty"`
	Tokens        int64   `json:"tokens"`
	Background    int64   `json:"background_tokens"`
	BytesPerToken float64 `json:"bytes_per_token"`
}

// Memory is the process's resident memory: clients, key server and hub.
type Memory struct {
	// PeakRSSMiB is VmHWM before the in-memory reference join.
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	// Background is resident memory before and after the background
	// tokens were written (no samples when there were none).
	Background PhaseRSS `json:"background"`
	Publish    PhaseRSS `json:"publish"`
	Overlaps   PhaseRSS `json:"overlaps"`
}

// PhaseRSS is resident memory sampled through one phase, with the number of
// tokens in the hub at its start and end.
type PhaseRSS struct {
	Samples        int     `json:"samples"`
	StartMiB       float64 `json:"start_mib"`
	MaxMiB         float64 `json:"max_mib"`
	EndMiB         float64 `json:"end_mib"`
	HubTokensStart int64   `json:"hub_tokens_start"`
	HubTokensEnd   int64   `json:"hub_tokens_end"`
}

// Target is one goal and whether this run met it.
type Target struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Goal  string  `json:"goal"`
	Pass  bool    `json:"pass"`
}

// ratio is the publish rate of the t-of-n run to the whole key's, or 0.
func (th Threshold) ratio(t, n int) float64 {
	for _, r := range th.Runs {
		if r.Threshold == t && r.Shares == n {
			return r.RatioToSingle
		}
	}
	return 0
}

// ratio is a/b, or 0 when it is not a finite number.
func ratio(a, b float64) float64 {
	r := a / b
	if math.IsNaN(r) || math.IsInf(r, 0) {
		return 0
	}
	return r
}

// The targets of issue 7, of issue 12 against circl, and of issue 16
// (images).
const (
	targetImageRecall    = 0.95
	targetImageFalse     = 1e-6
	targetPublish        = 0.80
	targetKeyServer      = 0.90
	targetOverlaps       = 5.0
	targetBytes          = 100.0
	targetPublishCircl   = 1.25
	targetKeyServerCircl = 1.30
	targetThreshold2of3  = 0.60
)

// evaluate derives the ratios, the targets and the notes.
func (r *Report) evaluate() {
	c := r.Crypto
	r.Publish.compare(c)
	r.KeyServer.RatioToBare = ratio(r.KeyServer.PerSec, c.Evaluate.AllCoresPerSec)
	r.KeyServer.RatioToCirclEvaluate = ratio(r.KeyServer.PerSec, c.Circl.Evaluate.AllCoresPerSec)
	r.Overlaps.compare()

	r.Targets = []Target{
		{Name: "publish_vs_limit", Value: r.Publish.RatioToLimit, Goal: "≥ 80% of the limit", Pass: r.Publish.RatioToLimit >= targetPublish},
		{Name: "keyserver_vs_bare_evaluate", Value: r.KeyServer.RatioToBare, Goal: "≥ 90% of bare evaluate", Pass: r.KeyServer.RatioToBare >= targetKeyServer},
		{Name: "publish_vs_circl_round_trip", Value: r.Publish.RatioToCirclRoundTrip, Goal: "≥ 1.25× a circl round trip", Pass: r.Publish.RatioToCirclRoundTrip >= targetPublishCircl},
		{Name: "keyserver_vs_circl_evaluate", Value: r.KeyServer.RatioToCirclEvaluate, Goal: "≥ 1.3× circl evaluate", Pass: r.KeyServer.RatioToCirclEvaluate >= targetKeyServerCircl},
		{Name: "threshold_2of3_vs_single", Value: r.Threshold.ratio(2, 3), Goal: "≥ 0.6× the whole key", Pass: r.Threshold.ratio(2, 3) >= targetThreshold2of3},
		{Name: "overlaps_vs_memory_join", Value: r.Overlaps.RatioToMemory, Goal: "≤ 5× the in-memory join", Pass: r.Overlaps.RatioToMemory > 0 && r.Overlaps.RatioToMemory <= targetOverlaps},
		{Name: "bytes_per_token", Value: r.Storage.BytesPerToken, Goal: "≤ 100 B/token", Pass: r.Storage.BytesPerToken > 0 && r.Storage.BytesPerToken <= targetBytes},
	}
	l := r.Images.Lists
	recall, falseRate := ratio(float64(l.Within31Paired), float64(l.Within31)), ratio(float64(l.UnrelatedPaired), float64(l.Unrelated))
	r.Targets = append(r.Targets,
		Target{Name: "image_recall", Value: recall, Goal: "≥ 0.95 within 31 bits, 1 within 16", Pass: recall >= targetImageRecall && l.Within16 > 0 && l.Within16Paired == l.Within16},
		Target{Name: "image_false_matches", Value: falseRate, Goal: "≤ 1e-6 per unrelated pair, over ≥ 1M pairs", Pass: l.Unrelated >= 1_000_000 && falseRate <= targetImageFalse})

	r.Notes = []string{}
	if n := r.Profile.Background; n > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("background: %s synthetic tokens inserted directly into the hub's store before it started (random 32-byte tokens, not through the OPRF)", count(n)))
	}
	cryptoCPU := c.Blind.SingleCoreMicros + c.Evaluate.SingleCoreMicros + c.Finalize.SingleCoreMicros
	if p := r.Publish; p.CPUMicrosPerRow > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("publish: %.0f µs of CPU per row against %.0f µs of bare crypto per element (%.0f%% crypto); normalizing a row costs %.1f µs; the rest is gRPC and TLS, protobuf, the hub's validation and SQLite writes, and the client's state; cores were %.0f%% busy; the store, which writes on one connection, had writes in flight for %.1fs of %.1fs",
			p.CPUMicrosPerRow, cryptoCPU, 100*ratio(cryptoCPU, p.CPUMicrosPerRow), c.NormalizeMicros, 100*p.CPUUtilization, p.StoreBusySeconds, p.Seconds))
	}
	if k := r.KeyServer; k.CPUMicrosPerEval > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("key server: %.1f µs of CPU per evaluation (callers included) against %.1f µs of bare evaluate", k.CPUMicrosPerEval, c.Evaluate.SingleCoreMicros))
	}
	for _, l := range []struct {
		phase string
		load  float64
	}{{"the key-server test", r.KeyServer.OtherLoad}, {"publish", r.Publish.OtherLoad}} {
		if l.load >= 0.05 {
			r.Notes = append(r.Notes, fmt.Sprintf("other processes used %.0f%% of the machine's cores during %s: its figures are lower than on an idle machine", 100*l.load, l.phase))
		}
	}
	if ov := r.Overlaps; ov.StoreP50Millis > 0 && ov.StoreP50Millis <= ov.RPCP50Millis && ov.RPCP50Millis <= ov.P50Millis {
		r.Notes = append(r.Notes, fmt.Sprintf("overlaps: of the end-to-end p50, the store's join is %.0f%%, the rest of the hub's RPC (policy per counterparty list, the decision log, building and sending the answer) %.0f%%, and the client (reading its state of %s entries, mapping matches to rows) %.0f%%; the in-memory map held %s counterparty tokens and took %.1fs to build (not timed)",
			100*ratio(ov.StoreP50Millis, ov.P50Millis), 100*ratio(ov.RPCP50Millis-ov.StoreP50Millis, ov.P50Millis),
			count(ov.QueryEntries), 100*ratio(ov.P50Millis-ov.RPCP50Millis, ov.P50Millis), count(int(ov.MemoryTokens)), ov.MemoryBuildSeconds))
	}
	r.evaluatePostgres()
}

// commits is the commits' share of the publish, per row and of its time.
func (p Publish) commits() string {
	return fmt.Sprintf("%.2fs in all, %.1f µs/row (%.1f%% of the publish's time)", p.CommitSeconds, 1e6*ratio(p.CommitSeconds, float64(p.Rows)), 100*ratio(p.CommitSeconds, p.Seconds))
}

// compare derives the publish rate's ratios to the limits of c.
func (p *Publish) compare(c Crypto) {
	p.RatioToLimit = ratio(p.RowsPerSec, c.LimitPerSec)
	p.RatioToMeasuredLimit = ratio(p.RowsPerSec, c.MeasuredLimitPerSec)
	p.RatioToCirclRoundTrip = ratio(p.RowsPerSec, c.Circl.LimitPerSec)
}

// compare derives the latencies' ratios to the in-memory join's.
func (ov *Overlaps) compare() {
	ov.RatioToMemory = ratio(ov.P50Millis, ov.MemoryP50Millis)
	ov.RatioToMemoryP95 = ratio(ov.P95Millis, ov.MemoryP95Millis)
}

// verdict returns the goal of the named target and PASS or MISS, or
// nothing when the report has no such target.
func (r Report) verdict(name string) (goal, result string) {
	for _, t := range r.Targets {
		if t.Name == name {
			if t.Pass {
				return t.Goal, "PASS"
			}
			return t.Goal, "MISS"
		}
	}
	return "", ""
}

// WriteTable writes the report as a table with a target and PASS or MISS
// beside each figure that has one.
func (r Report) WriteTable(w io.Writer) error {
	p := r.Profile
	fmt.Fprintf(w, "veilmatch bench, %s profile: %d agencies × %s rows + query list of %s (%s lists, %s rows), overlap %.0f%%, background %s tokens\n",
		p.Name, p.Agencies, count(p.Entries), count(p.Query), count(p.Lists), count(p.Rows), 100*p.Overlap, count(p.Background))
	fmt.Fprintf(w, "machine: %d cores (GOMAXPROCS %d of %d CPUs), %s %s; OPRF batch %d; %.0fs\n\n", p.Cores, p.Cores, p.CPUs, p.Go, p.Platform, p.Batch, r.Seconds)

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(figure, value, goal, result string) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", figure, value, goal, result)
	}
	n := strconv.Itoa(p.Cores)
	row("FIGURE", "VALUE", "TARGET", "RESULT")
	r.Crypto.writeRows(row, n)

	pub := r.Publish
	row(fmt.Sprintf("publish end to end, %s lists at once", count(pub.Lists)), pub.rate(), "", "")
	row("  commits: standing matches found", pub.commits(), "", "")
	g, res := r.verdict("publish_vs_limit")
	row("publish / physical limit", fmt.Sprintf("%.0f%% (%.0f%% of measured)", 100*pub.RatioToLimit, 100*pub.RatioToMeasuredLimit), g, res)
	g, res = r.verdict("publish_vs_circl_round_trip")
	row("publish / circl round trip on "+n+" cores", fmt.Sprintf("%.2f×", pub.RatioToCirclRoundTrip), g, res)

	ks := r.KeyServer
	row(fmt.Sprintf("key server over gRPC+mTLS, %d callers", ks.Callers), rate(ks.PerSec, "evaluations/s"), "", "")
	g, res = r.verdict("keyserver_vs_bare_evaluate")
	row("key server / bare evaluate on "+n+" cores", fmt.Sprintf("%.0f%%", 100*ks.RatioToBare), g, res)
	g, res = r.verdict("keyserver_vs_circl_evaluate")
	row("key server / circl evaluate on "+n+" cores", fmt.Sprintf("%.2f×", ks.RatioToCirclEvaluate), g, res)

	th := r.Threshold
	row(fmt.Sprintf("publish %s lists (%s rows), one key server", count(th.Lists), count(th.Rows)), rate(th.Single.RowsPerSec, "rows/s")+fmt.Sprintf(", %.0f µs CPU/row", th.Single.CPUMicrosPerRow), "", "")
	for _, run := range th.Runs {
		g, res = "", ""
		if run.Threshold == 2 && run.Shares == 3 {
			g, res = r.verdict("threshold_2of3_vs_single")
		}
		row(fmt.Sprintf("  through %d-of-%d share servers", run.Threshold, run.Shares),
			fmt.Sprintf("%s, %.0f µs CPU/row: %.2f× the whole key", rate(run.RowsPerSec, "rows/s"), run.CPUMicrosPerRow, run.RatioToSingle), g, res)
	}

	ov := r.Overlaps
	row(ov.title(), msPair(ov.P50Millis, ov.P95Millis), "", "")
	row(rpcTitle, msPair(ov.RPCP50Millis, ov.RPCP95Millis), "", "")
	row(storeJoinTitle, msPair(ov.StoreP50Millis, ov.StoreP95Millis), "", "")
	row(memoryJoinTitle, msPair(ov.MemoryP50Millis, ov.MemoryP95Millis), "", "")
	g, res = r.verdict("overlaps_vs_memory_join")
	row(toMemoryTitle, ov.toMemory(), g, res)
	classes := "classes"
	if ov.CountedClasses == 1 {
		classes = "class"
	}
	row("  joined", fmt.Sprintf("%s pairs; answer: %s matches, counts for %d %s", count(int(ov.Pairs)), count(ov.Matches), ov.CountedClasses, classes), "", "")

	im := r.Images
	row("images: PDQ hash of a decoded 1024×768 image, 1 core", fmt.Sprintf("%.1f ms", im.HashMillis), "", "")
	row(fmt.Sprintf("images: publish %d PDQ hashes end to end", im.Published), fmt.Sprintf("%.1f images/s (%s OPRF evaluations and tokens each)", im.ImagesPerSec, count(im.TokensPerImage)), "", "")
	row("  at the hub, at rest", fmt.Sprintf("%s KiB/image", num(im.HubBytesPerImage/1024)), "", "")
	row("  key-server default quota", fmt.Sprintf("%s images/day per agency", count(im.QuotaImagesPerDay)), "", "")
	l := im.Lists
	g, res = r.verdict("image_recall")
	row("images: Meta's hash lists, pairs within 31 bits paired", fmt.Sprintf("%s of %s (%.4f); within 16: %s of %s", count(l.Within31Paired), count(l.Within31),
		ratio(float64(l.Within31Paired), float64(l.Within31)), count(l.Within16Paired), count(l.Within16)), g, res)
	g, res = r.verdict("image_false_matches")
	row("  unrelated pairs (64 bits or more) paired", fmt.Sprintf("%s of %s (%.2g per pair)", count(l.UnrelatedPaired), count(l.Unrelated),
		ratio(float64(l.UnrelatedPaired), float64(l.Unrelated))), g, res)
	row(fmt.Sprintf("images: check %d near copies (10 bits) and %d unrelated", im.Copies, im.Unrelated),
		fmt.Sprintf("found %d of %d and %d of %d; %.0f ms/image", im.CopiesFound, im.Copies, im.UnrelatedFound, im.Unrelated, im.CheckMillisPerImage), "", "")

	st := r.Storage
	g, res = r.verdict("bytes_per_token")
	row(fmt.Sprintf("hub on disk at rest, %s tokens", count(int(st.Tokens))), st.size(), g, res)

	m := r.Memory
	row("peak resident memory (VmHWM)", mibOrNA(m.PeakRSSMiB), "", "")
	if m.Background.Samples > 0 {
		row("RSS while the background was written", phase(m.Background), "", "")
	}
	row("RSS during publish", phase(m.Publish), "", "")
	row("RSS during overlaps", phase(m.Overlaps), "", "")
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := r.writePostgres(w); err != nil {
		return err
	}
	if len(r.Notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range r.Notes {
			fmt.Fprintf(w, "note: %s\n", n)
		}
	}
	_, err := fmt.Fprintf(w, "\nmisses are reported, not failed: %s\n", r.summary())
	return err
}

// writeRows writes the crypto's rows of the table, on 1 core and on n.
func (c Crypto) writeRows(row func(figure, value, goal, result string), n string) {
	cc := c.Circl
	row("blind, 1 core", fmt.Sprintf("%.1f µs/element (circl %.1f)", c.Blind.SingleCoreMicros, cc.Blind.SingleCoreMicros), "", "")
	row("evaluate, 1 core (decode, evaluate, prove)", fmt.Sprintf("%.1f µs/element (circl %.1f)", c.Evaluate.SingleCoreMicros, cc.Evaluate.SingleCoreMicros), "", "")
	row("finalize, 1 core (verify, unblind, hash)", fmt.Sprintf("%.1f µs/element (circl %.1f)", c.Finalize.SingleCoreMicros, cc.Finalize.SingleCoreMicros), "", "")
	row("round trip, 1 core", fmt.Sprintf("%.1f µs/element (circl %.1f): %.2f× faster", c.RoundTripMicros, cc.RoundTripMicros, ratio(cc.RoundTripMicros, c.RoundTripMicros)), "", "")
	row("blind, "+n+" cores", rate(c.Blind.AllCoresPerSec, "elements/s")+" (circl "+num(cc.Blind.AllCoresPerSec)+")", "", "")
	row("evaluate, "+n+" cores", rate(c.Evaluate.AllCoresPerSec, "elements/s")+" (circl "+num(cc.Evaluate.AllCoresPerSec)+")", "", "")
	row("finalize, "+n+" cores", rate(c.Finalize.AllCoresPerSec, "elements/s")+" (circl "+num(cc.Finalize.AllCoresPerSec)+")", "", "")
	row("physical limit = "+n+" / (t_blind + t_eval + t_final)", rate(c.LimitPerSec, "elements/s")+" (circl "+num(cc.LimitPerSec)+")", "", "")
	row("physical limit, measured on "+n+" cores", rate(c.MeasuredLimitPerSec, "elements/s")+" (circl "+num(cc.MeasuredLimitPerSec)+")", "", "")
	row("normalize a CSV row, 1 core", fmt.Sprintf("%.1f µs/row", c.NormalizeMicros), "", "")
}

// summary is one line: how many targets passed, and which missed by how
// much.
func (r Report) summary() string {
	var miss []string
	for _, t := range r.Targets {
		if t.Pass {
			continue
		}
		switch t.Name {
		case "publish_vs_limit":
			miss = append(miss, fmt.Sprintf("publish at %.0f%% of the limit (target 80%%)", 100*t.Value))
		case "keyserver_vs_bare_evaluate":
			miss = append(miss, fmt.Sprintf("key server at %.0f%% of bare evaluate (target 90%%)", 100*t.Value))
		case "overlaps_vs_memory_join":
			miss = append(miss, fmt.Sprintf("overlaps %.1f× the in-memory join (target 5×)", t.Value))
		case "publish_vs_circl_round_trip":
			miss = append(miss, fmt.Sprintf("publish at %.2f× a circl round trip (target 1.25×)", t.Value))
		case "keyserver_vs_circl_evaluate":
			miss = append(miss, fmt.Sprintf("key server at %.2f× circl evaluate (target 1.3×)", t.Value))
		case "threshold_2of3_vs_single":
			miss = append(miss, fmt.Sprintf("2-of-3 publish at %.2f× the whole key (target 0.6×)", t.Value))
		case "bytes_per_token":
			miss = append(miss, fmt.Sprintf("%.1f bytes per token (target 100)", t.Value))
		case "publish_postgres_vs_sqlite":
			miss = append(miss, fmt.Sprintf("publish on PostgreSQL at %.2f× SQLite (target 0.8×)", t.Value))
		}
	}
	s := fmt.Sprintf("%d of %d targets met", len(r.Targets)-len(miss), len(r.Targets))
	if len(miss) > 0 {
		s += "; missed: " + strings.Join(miss, "; ")
	}
	return s
}

// Rows of the overlaps figures, in both tables.
const (
	rpcTitle        = "  hub RPC alone p50 / p95"
	storeJoinTitle  = "  store join alone p50 / p95"
	memoryJoinTitle = "  in-memory hash join p50 / p95"
	toMemoryTitle   = "overlaps / in-memory join, p50 (p95)"
)

// title names the end-to-end overlaps row.
func (ov Overlaps) title() string {
	return fmt.Sprintf("overlaps p50 / p95, %s vs hub of %s tokens", count(ov.QueryEntries), count(int(ov.HubTokens)))
}

// toMemory is the overlaps latency against the in-memory join's.
func (ov Overlaps) toMemory() string {
	return fmt.Sprintf("%.1f× (%.1f×)", ov.RatioToMemory, ov.RatioToMemoryP95)
}

// rate is the publish rate and time.
func (p Publish) rate() string {
	return fmt.Sprintf("%s in %.1fs", rate(p.RowsPerSec, "rows/s"), p.Seconds)
}

// size is the store's size at rest, whole and per token.
func (st Storage) size() string {
	return fmt.Sprintf("%.1f MiB, %.1f B/token", mib(st.Bytes), st.BytesPerToken)
}

// msPair writes a p50 and a p95 in milliseconds.
func msPair(p50, p95 float64) string { return fmt.Sprintf("%s / %s ms", ms(p50), ms(p95)) }

func phase(p PhaseRSS) string {
	if p.Samples == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f → max %.0f → %.0f MiB, hub %s → %s tokens", p.StartMiB, p.MaxMiB, p.EndMiB, count(int(p.HubTokensStart)), count(int(p.HubTokensEnd)))
}

func mibOrNA(v float64) string {
	if v == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f MiB", v)
}

func ms(v float64) string {
	if v < 1 {
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
	if v < 10 {
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

func rate(v float64, unit string) string { return num(v) + " " + unit }

// num writes v rounded, with thousands separators.
func num(v float64) string { return commas(int64(math.Round(v))) }

// count writes n with thousands separators, or as 10M, 250k when round.
func count(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return strconv.Itoa(n/1_000_000) + "M"
	case n >= 10_000 && n%1_000 == 0:
		return strconv.Itoa(n/1_000) + "k"
	}
	return commas(int64(n))
}

func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
