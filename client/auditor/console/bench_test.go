package console

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/veilmatch/veilmatch/client/auditor"
	"github.com/veilmatch/veilmatch/server/audit"
)

// benchRecords is the size of the benchmarks' log.
const benchRecords = 1_000_000

// syntheticLog is an index of n records like a busy hub's over a year:
// 40 agencies, every action, levels, purposes, cases, key-server usage and
// some probing.
func syntheticLog(n int) *index {
	rng := rand.New(rand.NewPCG(1, 2))
	x := newIndex()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	actions := []string{audit.ActionOverlaps, audit.ActionOverlaps, audit.ActionCheck, audit.ActionPublish, audit.ActionAlert,
		audit.ActionRequestDisclosure, audit.ActionApproveDisclosure, audit.ActionQuotaUsage, audit.ActionRetract}
	levels := []string{"none", "count", "flag", "full"}
	purposes := []string{"investigation", "victim_support", "research"}
	for i := range n {
		agency := "agency-" + strconv.Itoa(rng.IntN(40))
		r := audit.Record{
			Index: uint64(i), Time: start.Add(time.Duration(i) * 365 * 24 * time.Hour / time.Duration(n)),
			DecisionID: fmt.Sprintf("%024x", rng.Uint64()), Caller: "spiffe://veilmatch.dev/agency/" + agency, Agency: agency,
			Action: actions[rng.IntN(len(actions))], Result: audit.ResultAllowed, Purpose: purposes[rng.IntN(len(purposes))],
			CaseRef: "CASE-" + strconv.Itoa(rng.IntN(5000)), Lists: []string{agency + "/suspects"}, Rules: []string{"le_full"}, PolicyRevision: "rev-1",
		}
		switch r.Action {
		case audit.ActionQuotaUsage:
			r.Details = map[string]string{"day": r.Time.Format(time.DateOnly), "evaluations": strconv.Itoa(rng.IntN(100_000)), "requests": "10"}
		case audit.ActionCheck:
			r.Details = map[string]string{"entries": strconv.Itoa(1 + rng.IntN(20))}
		}
		if rng.IntN(10) == 0 {
			r.Result, r.Reason = audit.ResultRefused, "no agreement"
		}
		r.Outcomes = []audit.Outcome{{Class: "law_enforcement/GB", Level: levels[rng.IntN(4)], Entries: uint64(rng.IntN(50))}}
		x.add(r)
	}
	x.finish()
	return x
}

// benchConsole is a console showing a verified log of benchRecords
// records, built once.
var benchConsole = func() func() *Console {
	var c *Console
	return func() *Console {
		if c == nil {
			x := syntheticLog(benchRecords)
			c = New(Config{})
			x.overview(c.cfg.QuotaDaily)
			c.view = &view{rep: auditor.VerifyReport{Size: benchRecords, Records: benchRecords}, verifiedAt: time.Now(), x: x}
			c.status = status{OK: true, At: time.Now()}
		}
		return c
	}
}()

// benchmarkPage serves path from the 1M-record console.
func benchmarkPage(b *testing.B, path string) {
	h := benchConsole().Handler()
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "http://127.0.0.1:7480"+path, nil))
		if w.Code != http.StatusOK {
			b.Fatalf("%s: %d", path, w.Code)
		}
	}
}

// BenchmarkOverview1M: the overview of a 1M-record log, charts included
// (target: under a second).
func BenchmarkOverview1M(b *testing.B) { benchmarkPage(b, "/") }

// BenchmarkDecisionsFiltered1M: a filtered page of decisions of a
// 1M-record log (target: under a second).
func BenchmarkDecisionsFiltered1M(b *testing.B) {
	benchmarkPage(b, "/decisions?agency=agency-7&action=overlaps&level=full&since=2026-03-01&until=2026-09-30")
}

// BenchmarkDecisionsLastPage1M: the oldest page of the whole log.
func BenchmarkDecisionsLastPage1M(b *testing.B) {
	benchmarkPage(b, "/decisions?offset="+strconv.Itoa(benchRecords-pageSize))
}

// BenchmarkIndex1M: taking in 1M parsed records and drawing the
// overview's charts, which the console does once per verification (the
// verification's own download and hashing are audit verify's).
func BenchmarkIndex1M(b *testing.B) {
	for b.Loop() {
		syntheticLog(benchRecords).overview(100_000)
	}
}
