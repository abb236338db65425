package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/veilmatch/veilmatch/crypto/mtls"
	"github.com/veilmatch/veilmatch/server/metrics"
)

// runCLI runs veilmatch with args and fails the test unless it succeeds.
func runCLI(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("veilmatch %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// syncBuffer is a log destination safe for concurrent writes and reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// eventually polls cond until it holds, failing the test after 10 seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestServerTLSFlagsReload: certificates from 'veilmatch certs' serve
// through the hub's and key server's TLS flags. On SIGHUP a renewed
// certificate reaches new handshakes and the expiry gauge follows it; a
// broken one is refused, logged, and the renewed one kept.
func TestServerTLSFlagsReload(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGHUP on Windows")
	}
	dir := t.TempDir()
	path := func(elem ...string) string { return filepath.Join(append([]string{dir}, elem...)...) }
	runCLI(t, "certs", "init-ca", "--out", path("ca"), "--trust-domain", "example.org")
	runCLI(t, "certs", "issue", "--ca-dir", path("ca"), "--kind", "server", "--id", "hub", "--dns", "localhost", "--out", path("hub"))
	runCLI(t, "certs", "issue", "--ca-dir", path("ca"), "--kind", "agency", "--id", "police-fr", "--out", path("police-fr"))
	renewal := runCLI(t, "certs", "issue", "--ca-dir", path("ca"), "--kind", "server", "--id", "hub", "--dns", "localhost", "--days", "30", "--out", path("renewed"))

	f := serverTLSFlags{cert: path("hub", "hub.crt"), key: path("hub", "hub.key"), clientCA: path("ca", "ca.crt")}
	srv, err := f.load("hub", io.Discard)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	addr := serveTLS(t, srv)
	cli, err := mtls.ClientConfig(mtls.Files{Cert: path("police-fr", "police-fr.crt"), Key: path("police-fr", "police-fr.key"), CA: path("ca", "ca.crt")}, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	first := servedBy(t, addr, cli)

	// After the last run, which sets the default logger up.
	logs := &syncBuffer{}
	defer func(l *slog.Logger) { slog.SetDefault(l) }(slog.Default())
	slog.SetDefault(slog.New(slog.NewTextHandler(logs, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := metrics.New(metrics.Options{})
	f.watch(ctx, "hub", m)
	if days := expiryDays(t, m); days < 364 || days > 366 {
		t.Errorf("expiry gauge says %.1f days, want 365", days)
	}

	for _, name := range []string{"hub.crt", "hub.key"} {
		mustCopyFile(t, path("renewed", name), path("hub", name))
	}
	hangUp(t)
	eventually(t, "the renewed certificate", func() bool { return !servedBy(t, addr, cli).Equal(first) })
	if fp := fingerprint(servedBy(t, addr, cli)); !strings.Contains(renewal, "sha256       "+fp+"\n") {
		t.Errorf("served certificate %s is not the renewed one:\n%s", fp, renewal)
	}
	if days := expiryDays(t, m); days < 29 || days > 31 {
		t.Errorf("after the reload the expiry gauge says %.1f days, want 30", days)
	}

	renewed := servedBy(t, addr, cli)
	if err := os.WriteFile(path("hub", "hub.crt"), []byte("not PEM\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hangUp(t)
	eventually(t, "the refusal in the log", func() bool { return strings.Contains(logs.String(), "TLS reload refused") })
	if !strings.Contains(logs.String(), path("hub", "hub.crt")) {
		t.Errorf("the refusal does not name the file:\n%s", logs)
	}
	if !servedBy(t, addr, cli).Equal(renewed) {
		t.Error("a refused reload changed the served certificate")
	}
}

// serveTLS accepts TLS connections with cfg on loopback until the test
// ends, and answers each handshake with one byte.
func serveTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				_, _ = conn.Write([]byte{1})
			}()
		}
	}()
	return ln.Addr().String()
}

// servedBy connects to addr and returns the certificate the server
// presented, once the server too has accepted the client.
func servedBy(t *testing.T, addr string, cli *tls.Config) *x509.Certificate {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cli)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(conn, make([]byte, 1)); err != nil {
		t.Fatalf("read: %v", err)
	}
	return conn.ConnectionState().PeerCertificates[0]
}

// hangUp sends this process SIGHUP, as an operator would the server.
func hangUp(t *testing.T) {
	t.Helper()
	p, err := os.FindProcess(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

var expiryRE = regexp.MustCompile(`(?m)^veilmatch_tls_certificate_expiry_seconds\{role="hub"\} (\S+)$`)

// expiryDays scrapes m's /metrics and returns the hub certificate's expiry
// gauge in days.
func expiryDays(t *testing.T, m *metrics.Metrics) float64 {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	match := expiryRE.FindSubmatch(body)
	if match == nil {
		t.Fatalf("no expiry gauge in:\n%s", body)
	}
	v, err := strconv.ParseFloat(string(match[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v / (24 * 3600)
}

func mustCopyFile(t *testing.T, from, to string) {
	t.Helper()
	if err := copyFile(from, to); err != nil {
		t.Fatal(err)
	}
}

// TestServerTLSFlagsClient: the key server's client configuration comes
// from the credentials its server configuration uses, loaded once.
func TestServerTLSFlagsClient(t *testing.T) {
	f := serverTLSFlags{devCerts: filepath.Join("..", "..", "certs", "dev")}
	var warn bytes.Buffer
	if _, err := f.load("keyserver", &warn); err != nil {
		t.Fatalf("load: %v", err)
	}
	creds := f.creds
	cli, err := f.client("keyserver")
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	if f.creds != creds {
		t.Error("client loaded the credentials again")
	}
	if _, err := mtls.ForServer(cli, "hub"); err != nil {
		t.Errorf("ForServer: %v", err)
	}
	if !strings.Contains(warn.String(), "DEVELOPMENT certificates") {
		t.Errorf("no development warning: %q", warn.String())
	}
	if _, err := (&serverTLSFlags{devCerts: "x", cert: "y"}).load("hub", io.Discard); !isUsage(err) {
		t.Errorf("--dev-certs with --cert: %v, want a usage error", err)
	}
	if _, err := (&serverTLSFlags{cert: "y"}).load("hub", io.Discard); !isUsage(err) {
		t.Errorf("--cert alone: %v, want a usage error", err)
	}
}
