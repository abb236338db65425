package metrics_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

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

// serveScrape serves m on loopback, as the servers do, and returns what
// its /metrics endpoint answers.
func serveScrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addr, wait, err := m.Serve(ctx, "127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		if err := wait(); err != nil {
			t.Error(err)
		}
	}()
	resp, err := http.Get("http://" + addr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s, %v", resp.Status, err)
	}
	return string(b)
}

// sample returns the value of the sample whose name and labels are series
// in a scrape, and whether there is one.
func sample(t *testing.T, body, series string) (float64, bool) {
	t.Helper()
	for line := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", series, err)
			}
			return f, true
		}
	}
	return 0, false
}

// TestBuildInfo: veilmatch_build_info is 1 and names the version given
// and the Go version.
func TestBuildInfo(t *testing.T) {
	for version, label := range map[string]string{"v1.2.3": "v1.2.3", "": "unknown"} {
		body := serveScrape(t, metrics.New(metrics.Options{Version: version}))
		series := `veilmatch_build_info{go_version="` + runtime.Version() + `",version="` + label + `"}`
		if v, ok := sample(t, body, series); !ok || v != 1 {
			t.Errorf("version %q: %s = %v (present %t), want 1", version, series, v, ok)
		}
	}
}

// TestCertificateExpiry: the gauge counts down to the NotAfter the func
// returns at scrape time, so it follows a certificate reload.
func TestCertificateExpiry(t *testing.T) {
	m := metrics.New(metrics.Options{})
	var mu sync.Mutex
	notAfter := time.Now().Add(time.Hour)
	m.CertificateExpiry("hub", func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return notAfter
	})
	m.CertificateExpiry("keyserver", func() time.Time { return time.Now().Add(-time.Minute) })
	const hub = `veilmatch_tls_certificate_expiry_seconds{role="hub"}`
	if v, ok := sample(t, serveScrape(t, m), hub); !ok || v <= 3500 || v > 3600 {
		t.Errorf("%s = %v (present %t), want about 3600", hub, v, ok)
	}
	mu.Lock()
	notAfter = time.Now().Add(90 * 24 * time.Hour)
	mu.Unlock()
	body := serveScrape(t, m)
	if v, ok := sample(t, body, hub); !ok || v < 89*24*3600 {
		t.Errorf("after a reload: %s = %v (present %t), want about 90 days", hub, v, ok)
	}
	const ks = `veilmatch_tls_certificate_expiry_seconds{role="keyserver"}`
	if v, ok := sample(t, body, ks); !ok || v >= 0 {
		t.Errorf("expired certificate: %s = %v (present %t), want negative", ks, v, ok)
	}
}

// TestCheckpointAge: the gauge shows the age the hub's func returns, and
// is left out of a scrape at which the func fails.
func TestCheckpointAge(t *testing.T) {
	m := metrics.New(metrics.Options{})
	var mu sync.Mutex
	age, ageErr := 90*time.Second, error(nil)
	m.CheckpointAge(func() (time.Duration, error) {
		mu.Lock()
		defer mu.Unlock()
		return age, ageErr
	})
	const series = "veilmatch_hub_checkpoint_age_seconds"
	if v, ok := sample(t, serveScrape(t, m), series); !ok || v != 90 {
		t.Errorf("%s = %v (present %t), want 90", series, v, ok)
	}
	mu.Lock()
	ageErr = errors.New("store unavailable")
	mu.Unlock()
	body := serveScrape(t, m)
	if v, ok := sample(t, body, series); ok {
		t.Errorf("%s = %v while its func fails, want it left out", series, v)
	}
	if !strings.Contains(body, "veilmatch_build_info") {
		t.Error("a failing gauge broke the rest of the scrape")
	}
}

// TestNilMetrics: the new registrations are no-ops on nil metrics, as the
// servers' other calls are.
func TestNilMetrics(t *testing.T) {
	var m *metrics.Metrics
	m.CertificateExpiry("hub", time.Now)
	m.CheckpointAge(func() (time.Duration, error) { return 0, nil })
}
