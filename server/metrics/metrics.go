// Package metrics exposes veilmatch's operational metrics in the Prometheus
// format on a listener of its own: RPC latencies, OPRF evaluations and quota
// refusals, publish and match counters, the size of the hub's store, how long
// its decisions wait for a signed checkpoint, the build, and when the TLS
// certificates expire.
//
// The listener has no authentication: it is for the operator only, binds to
// loopback unless told otherwise, and its counters carry no agency label
// unless the operator asks (Options.PerAgency), since live per-agency use
// tells who is working on what. Labels never carry an identifier, a token
// or a list's contents.
package metrics

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds one process's collectors. A nil *Metrics records nothing,
// so services may be built without metrics.
type Metrics struct {
	perAgency   bool
	reg         *prometheus.Registry
	rpcDuration *prometheus.HistogramVec
	evaluations *prometheus.CounterVec
	refusals    *prometheus.CounterVec
	published   *prometheus.CounterVec
	matches     *prometheus.CounterVec
	decisions   *prometheus.CounterVec
}

// Options tune what the metrics show.
type Options struct {
	// PerAgency labels evaluations, refusals and published entries with the
	// agency; off, they are totals.
	PerAgency bool
	// Version is the release the process runs, the version label of
	// veilmatch_build_info; empty means "unknown".
	Version string
}

// New returns a registry with the veilmatch collectors and the standard
// process and Go runtime collectors.
func New(o Options) *Metrics {
	var agency []string
	if o.PerAgency {
		agency = []string{"agency"}
	}
	m := &Metrics{
		perAgency: o.PerAgency,
		reg:       prometheus.NewRegistry(),
		rpcDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "veilmatch_rpc_duration_seconds", Help: "Latency of gRPC calls by method and status code.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"method", "code"}),
		evaluations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veilmatch_keyserver_evaluations_total", Help: "OPRF evaluations granted.",
		}, agency),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veilmatch_keyserver_quota_refusals_total", Help: "Evaluate requests refused by quota.",
		}, agency),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veilmatch_hub_published_entries_total", Help: "Entries in committed lists.",
		}, agency),
		matches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veilmatch_hub_matches_total", Help: "Matches disclosed, by action and disclosure level.",
		}, []string{"action", "level"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veilmatch_hub_decisions_total", Help: "Decisions appended to the decision log, by action and result.",
		}, []string{"action", "result"}),
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "veilmatch_build_info", Help: "Always 1; its labels name the release and the Go version of the build.",
		ConstLabels: prometheus.Labels{"version": cmp.Or(o.Version, "unknown"), "go_version": runtime.Version()},
	})
	buildInfo.Set(1)
	m.reg.MustRegister(m.rpcDuration, m.evaluations, m.refusals, m.published, m.matches, m.decisions, buildInfo,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// agency returns the agency label's value, if the metrics have one.
func (m *Metrics) agency(id string) []string {
	if m.perAgency {
		return []string{id}
	}
	return nil
}

// ObserveRPC records one call's latency.
func (m *Metrics) ObserveRPC(method, code string, d time.Duration) {
	if m != nil {
		m.rpcDuration.WithLabelValues(method, code).Observe(d.Seconds())
	}
}

// Evaluated counts n evaluations granted to agency.
func (m *Metrics) Evaluated(agency string, n int) {
	if m != nil {
		m.evaluations.WithLabelValues(m.agency(agency)...).Add(float64(n))
	}
}

// Refused counts one quota refusal of agency.
func (m *Metrics) Refused(agency string) {
	if m != nil {
		m.refusals.WithLabelValues(m.agency(agency)...).Inc()
	}
}

// Published counts the entries of a committed list.
func (m *Metrics) Published(agency string, entries uint64) {
	if m != nil {
		m.published.WithLabelValues(m.agency(agency)...).Add(float64(entries))
	}
}

// Matched counts matches disclosed at a level by an action.
func (m *Metrics) Matched(action, level string, n int) {
	if m != nil && n > 0 {
		m.matches.WithLabelValues(action, level).Add(float64(n))
	}
}

// Decided counts one decision record.
func (m *Metrics) Decided(action, result string) {
	if m != nil {
		m.decisions.WithLabelValues(action, result).Inc()
	}
}

// GaugeFunc registers a gauge whose value is read on each scrape, such as
// the size of the store.
func (m *Metrics) GaugeFunc(name, help string, f func() float64) {
	if m != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
}

// CertificateExpiry exports veilmatch_tls_certificate_expiry_seconds with
// label role (such as "hub"): the seconds until notAfter, negative once it
// has passed. notAfter is read on each scrape, so the gauge follows
// certificate reloads (pass mtls.Reloader.NotAfter). Register each role
// once.
func (m *Metrics) CertificateExpiry(role string, notAfter func() time.Time) {
	if m != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "veilmatch_tls_certificate_expiry_seconds", Help: "Seconds until the served TLS certificate expires, by role.",
			ConstLabels: prometheus.Labels{"role": role},
		}, func() float64 { return time.Until(notAfter()).Seconds() }))
	}
}

// CheckpointAge exports veilmatch_hub_checkpoint_age_seconds, read from age
// on each scrape: how long the oldest decision-log record that no signed
// checkpoint covers has waited, zero when the latest checkpoint covers the
// whole log. A scrape at which age fails leaves the gauge out, so that an
// alert on it sees no value rather than a wrong one, and logs the error.
func (m *Metrics) CheckpointAge(age func() (time.Duration, error)) {
	if m != nil {
		const name = "veilmatch_hub_checkpoint_age_seconds"
		m.reg.MustRegister(optionalGauge{
			name:  name,
			desc:  prometheus.NewDesc(name, "Seconds the oldest decision-log record not covered by a signed checkpoint has waited (0: all covered).", nil, nil),
			value: age,
		})
	}
}

// optionalGauge is a gauge read on each scrape, left out of the scrapes at
// which it cannot be read.
type optionalGauge struct {
	name  string
	desc  *prometheus.Desc
	value func() (time.Duration, error)
}

// Describe implements prometheus.Collector.
func (g optionalGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

// Collect implements prometheus.Collector.
func (g optionalGauge) Collect(ch chan<- prometheus.Metric) {
	v, err := g.value()
	if err != nil {
		slog.Warn("metrics: gauge left out of the scrape", "gauge", g.name, "error", err)
		return
	}
	ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, v.Seconds())
}

// Handler serves the metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Serve serves /metrics on addr until ctx is done; the wait function it
// returns reports how serving ended. An addr without a host (":9090")
// binds to loopback; any other host is the operator's explicit choice and
// is logged as a warning, the listener having no authentication.
func (m *Metrics) Serve(ctx context.Context, addr string, log *slog.Logger) (net.Addr, func() error, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("metrics: address %q: %w", addr, err)
	}
	if host == "" {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	if ip, ok := lis.Addr().(*net.TCPAddr); ok && !ip.IP.IsLoopback() {
		log.Warn("metrics are served without authentication beyond loopback; keep the address reachable by the operator only", "addr", lis.Addr().String())
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() {
		err := srv.Serve(lis)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		done <- err
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("metrics listening", "addr", lis.Addr().String())
	return lis.Addr(), func() error { return <-done }, nil
}
