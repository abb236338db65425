package metrics_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/veilmatch/veilmatch/server/metrics"
)

// scrape returns what m serves.
func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAgencyLabels: counters name agencies only when the operator asks.
func TestAgencyLabels(t *testing.T) {
	for _, perAgency := range []bool{false, true} {
		m := metrics.New(metrics.Options{PerAgency: perAgency})
		m.Evaluated("police-gb", 3)
		m.Refused("police-gb")
		m.Published("police-gb", 2)
		body := scrape(t, m)
		for _, name := range []string{"veilmatch_keyserver_evaluations_total", "veilmatch_keyserver_quota_refusals_total", "veilmatch_hub_published_entries_total"} {
			labelled := strings.Contains(body, name+`{agency="police-gb"}`)
			total := strings.Contains(body, "\n"+name+" ")
			if labelled != perAgency || total == perAgency {
				t.Errorf("per agency %t: %s labelled %t, total %t", perAgency, name, labelled, total)
			}
		}
	}
}

// TestServeBindsLoopback: an address without a host binds to loopback.
func TestServeBindsLoopback(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	m := metrics.New(metrics.Options{})
	addr, wait, err := m.Serve(ctx, ":0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if ip := addr.(*net.TCPAddr).IP; !ip.IsLoopback() {
		t.Errorf("listening on %s, want loopback", addr)
	}
	resp, err := http.Get("http://" + addr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}
