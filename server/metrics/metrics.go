// Package metrics exposes veilmatch's operational metrics in the Prometheus
// format on a listener of its own: RPC latencies, OPRF evaluations and quota
// refusals per agency, publish and match counters, and the size of the
// hub's store. Labels carry agency ids, methods, levels and codes — never an
// identifier, a token or a list's contents.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds one process's collectors. A nil *Metrics records nothing,
// so services may be built without metrics.
type Metrics struct {
	reg         *prometheus.Registry
	rpcDuration *prometheus.HistogramVec
	evaluations *prometheus.CounterVec
	refusals    *prometheus.CounterVec
	published   *prometheus.CounterVec
	matches     *prometheus.CounterVec
	decisions   *prometheus.CounterVec
}

// New returns a registry with the veilmatch collectors and the standard
// process and Go runtime collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		rpcDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "veilmatch_rpc_duration_seconds", Help: "Latency of gRPC calls by method and status code.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"method", "code"}),
		evaluations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veilmatch_keyserver_evaluations_total", Help: "OPRF evaluations granted, per agency.",
		}, []string{"agency"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veilmatch_keyserver_quota_refusals_total", Help: "Evaluate requests refused by quota, per agency.",
		}, []string{"agency"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veilmatch_hub_published_entries_total", Help: "Entries in committed lists, per owning agency.",
		}, []string{"agency"}),
		matches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veilmatch_hub_matches_total", Help: "Matches disclosed, by action and disclosure level.",
		}, []string{"action", "level"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veilmatch_hub_decisions_total", Help: "Decisions appended to the decision log, by action and result.",
		}, []string{"action", "result"}),
	}
	m.reg.MustRegister(m.rpcDuration, m.evaluations, m.refusals, m.published, m.matches, m.decisions,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
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
		m.evaluations.WithLabelValues(agency).Add(float64(n))
	}
}

// Refused counts one quota refusal of agency.
func (m *Metrics) Refused(agency string) {
	if m != nil {
		m.refusals.WithLabelValues(agency).Inc()
	}
}

// Published counts the entries of a committed list.
func (m *Metrics) Published(agency string, entries uint64) {
	if m != nil {
		m.published.WithLabelValues(agency).Add(float64(entries))
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

// Handler serves the metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Serve serves /metrics on addr until ctx is done. It returns once
// listening fails or after shutdown.
func (m *Metrics) Serve(ctx context.Context, addr string, log *slog.Logger) (net.Addr, func() error, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
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
