package hub_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"

	"github.com/veilmatch/veilmatch/server/metrics"
)

// TestMetrics: after publishing and querying, the metrics listener shows
// RPC latencies, evaluations per agency, publish, match and decision
// counters and the store's size — and no identifier.
func TestMetrics(t *testing.T) {
	m := metrics.New(metrics.Options{PerAgency: true})
	e := startWith(t, m)
	gb, us := e.client(t, "police-gb"), e.client(t, "police-us")
	publish(t, gb, "suspects", "GB", "phone\n07700 900123\n07700 900456\n")
	publish(t, us, "suspects", "US", "phone\n+44 7700 900123\n")
	if _, err := gb.Overlaps(context.Background(), "suspects", investigation); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`veilmatch_rpc_duration_seconds_count\{code="OK",method="/veilmatch.v1.KeyService/Evaluate"\} [1-9]`,
		`veilmatch_rpc_duration_seconds_bucket\{code="OK",method="/veilmatch.v1.HubService/Overlaps",le=`,
		`veilmatch_keyserver_evaluations_total\{agency="police-gb"\} 2`,
		`veilmatch_hub_published_entries_total\{agency="police-us"\} 1`,
		`veilmatch_hub_matches_total\{action="overlaps",level="full"\} 1`,
		`veilmatch_hub_decisions_total\{action="overlaps",result="allowed"\} 1`,
		`veilmatch_hub_store_bytes [1-9]`,
		`veilmatch_hub_decision_log_records [1-9]`,
	} {
		if !regexp.MustCompile(want).Match(body) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if regexp.MustCompile(`7700900123`).Match(body) {
		t.Error("metrics contain an identifier")
	}
}
