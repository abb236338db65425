package mtls_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veilmatch/veilmatch/certs"
	"github.com/veilmatch/veilmatch/crypto/mtls"
)

// echoServer serves TLS with cfg on loopback until the test ends: it
// completes each connection's handshake and echoes what it reads.
func echoServer(t *testing.T, cfg *tls.Config) string {
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
				_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
				_, _ = io.Copy(conn, conn)
			}()
		}
	}()
	return ln.Addr().String()
}

// dial connects to addr with cli and exchanges one echo, so that a client
// the server rejects fails here too. The connection stays open until the
// test ends.
func dial(t *testing.T, addr string, cli *tls.Config) (*tls.Conn, error) {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cli)
	if err != nil {
		return nil, err
	}
	if err := echo(conn); err != nil {
		conn.Close()
		return nil, err
	}
	t.Cleanup(func() { conn.Close() })
	return conn, nil
}

func mustDial(t *testing.T, addr string, cli *tls.Config) *tls.Conn {
	t.Helper()
	conn, err := dial(t, addr, cli)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return conn
}

// echo writes a message on conn and reads it back.
func echo(conn *tls.Conn) error {
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	msg := []byte("ping")
	if _, err := conn.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, got); err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo = %q, want %q", got, msg)
	}
	return nil
}

// served returns the certificate the server presented on conn.
func served(conn *tls.Conn) *x509.Certificate {
	return conn.ConnectionState().PeerCertificates[0]
}

// readLeaf parses the first certificate of a PEM file.
func readLeaf(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// rotate issues party a new key and certificate from the CA in dir, valid
// from notBefore to notAfter, and writes them over dir/<id>.crt and
// dir/<id>.key, as an operator renewing them does. It returns the new
// certificate.
func rotate(t *testing.T, dir string, p certs.Party, notBefore, notAfter time.Time) *x509.Certificate {
	t.Helper()
	ca, err := certs.LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := certs.Request{Party: p, NotBefore: notBefore, NotAfter: notAfter}
	if p.Kind == mtls.KindServer {
		r.DNSNames = []string{"localhost"}
	}
	leaf, err := ca.Issue(r)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	if err := leaf.Save(tmp); err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{".crt", ".key"} {
		copyFile(t, filepath.Join(tmp, p.ID+ext), filepath.Join(dir, p.ID+ext))
	}
	return leaf.Certificate
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func newReloader(t *testing.T, f mtls.Files) *mtls.Reloader {
	t.Helper()
	r, err := mtls.NewReloader(f)
	if err != nil {
		t.Fatalf("NewReloader: %v", err)
	}
	return r
}

var hubParty = certs.Party{Kind: mtls.KindServer, ID: "hub"}

// TestReloaderRotatesCertificate: a renewed certificate and key (same
// identity, new key) reach new handshakes after Reload and not before, and
// a connection made before the reload keeps working.
func TestReloaderRotatesCertificate(t *testing.T) {
	dir := pki(t, certs.Options{})
	old := readLeaf(t, filepath.Join(dir, "hub.crt"))
	r := newReloader(t, mtls.DevFiles(dir, "hub"))
	addr := echoServer(t, r.ServerConfig())
	cli := clientConfig(t, mtls.DevFiles(dir, "police-gb"), "localhost")

	established := mustDial(t, addr, cli)
	if !served(established).Equal(old) {
		t.Fatal("the server did not present hub.crt")
	}
	now := time.Now()
	renewed := rotate(t, dir, hubParty, now.Add(-time.Minute), now.Add(48*time.Hour))
	if !served(mustDial(t, addr, cli)).Equal(old) {
		t.Fatal("a new handshake saw the renewed certificate before Reload")
	}
	if err := r.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if !served(mustDial(t, addr, cli)).Equal(renewed) {
		t.Fatal("a new handshake after Reload did not see the renewed certificate")
	}
	if !r.NotAfter().Equal(renewed.NotAfter) {
		t.Errorf("NotAfter = %v, want the renewed certificate's %v", r.NotAfter(), renewed.NotAfter)
	}
	if err := echo(established); err != nil {
		t.Fatalf("connection made before the reload: %v", err)
	}
	if !served(established).Equal(old) {
		t.Error("the established connection changed certificate")
	}
}

// TestReloaderClientCAs: a client of a second CA is refused until its CA
// joins the client CA bundle and Reload runs, and refused again, session
// ticket and all, once the CA leaves the bundle.
func TestReloaderClientCAs(t *testing.T) {
	dir := pki(t, certs.Options{})
	other := pki(t, certs.Options{})
	bundle := filepath.Join(t.TempDir(), "client-ca.pem")
	copyFile(t, filepath.Join(dir, "ca.crt"), bundle)
	r := newReloader(t, mtls.Files{Cert: filepath.Join(dir, "hub.crt"), Key: filepath.Join(dir, "hub.key"), CA: bundle})
	addr := echoServer(t, r.ServerConfig())

	gb := clientConfig(t, mtls.DevFiles(dir, "police-gb"), "localhost")
	// police-gb of the other CA, which trusts the hub's CA.
	gb2 := clientConfig(t, mtls.Files{Cert: filepath.Join(other, "police-gb.crt"), Key: filepath.Join(other, "police-gb.key"), CA: filepath.Join(dir, "ca.crt")}, "localhost")
	gb2.ClientSessionCache = tls.NewLRUClientSessionCache(4)

	if _, err := dial(t, addr, gb2); err == nil {
		t.Fatal("client of the other CA accepted before its CA was in the bundle")
	}
	cas := append(readFile(t, filepath.Join(dir, "ca.crt")), readFile(t, filepath.Join(other, "ca.crt"))...)
	if err := os.WriteFile(bundle, cas, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := dial(t, addr, gb2); err == nil {
		t.Fatal("client of the other CA accepted before Reload")
	}
	if err := r.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	mustDial(t, addr, gb2)
	mustDial(t, addr, gb)
	if !mustDial(t, addr, gb2).ConnectionState().DidResume {
		t.Fatal("the client did not resume its session; the test below would prove nothing")
	}

	copyFile(t, filepath.Join(dir, "ca.crt"), bundle)
	if err := r.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if _, err := dial(t, addr, gb2); err == nil {
		t.Fatal("client of the removed CA accepted after Reload (resuming its session)")
	}
	mustDial(t, addr, gb)
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestReloaderKeepsCredentialsOnError: Reload refuses broken or unsuitable
// files, naming the file, and the server keeps serving its credentials.
func TestReloaderKeepsCredentialsOnError(t *testing.T) {
	tests := []struct {
		name  string
		brk   func(t *testing.T, dir string)
		file  string // the file the error must name
		cause string
	}{
		{"certificate not PEM", func(t *testing.T, dir string) { writeString(t, filepath.Join(dir, "hub.crt"), "not PEM\n") }, "hub.crt", "no PEM CERTIFICATE block"},
		{"key of another certificate", func(t *testing.T, dir string) {
			copyFile(t, filepath.Join(dir, "police-gb.key"), filepath.Join(dir, "hub.key"))
		}, "hub.key", "private key does not match"},
		{"client CA missing", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "ca.crt")); err != nil {
				t.Fatal(err)
			}
		}, "ca.crt", "no such file"},
		{"another identity", func(t *testing.T, dir string) {
			copyFile(t, filepath.Join(dir, "keyserver.crt"), filepath.Join(dir, "hub.crt"))
			copyFile(t, filepath.Join(dir, "keyserver.key"), filepath.Join(dir, "hub.key"))
		}, "hub.crt", "spiffe://veilmatch.dev/server/keyserver is not spiffe://veilmatch.dev/server/hub"},
		{"expired certificate", func(t *testing.T, dir string) {
			now := time.Now()
			rotate(t, dir, hubParty, now.Add(-30*time.Minute), now.Add(-time.Minute))
		}, "hub.crt", "expired at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := pki(t, certs.Options{})
			old := readLeaf(t, filepath.Join(dir, "hub.crt"))
			r := newReloader(t, mtls.DevFiles(dir, "hub"))
			addr := echoServer(t, r.ServerConfig())
			cli := clientConfig(t, mtls.DevFiles(dir, "police-gb"), "localhost")
			notAfter := r.NotAfter()

			tt.brk(t, dir)
			err := r.Reload()
			if err == nil {
				t.Fatal("Reload accepted the broken files")
			}
			if !strings.Contains(err.Error(), filepath.Join(dir, tt.file)) || !strings.Contains(err.Error(), tt.cause) {
				t.Errorf("Reload error = %q, want it to name %s and say %q", err, tt.file, tt.cause)
			}
			if !served(mustDial(t, addr, cli)).Equal(old) {
				t.Error("the server no longer presents its certificate")
			}
			if !r.NotAfter().Equal(notAfter) {
				t.Errorf("NotAfter changed to %v", r.NotAfter())
			}
		})
	}
}

func writeString(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestReloaderChecks: the configurations of a Reloader make the checks of
// ServerConfig and ClientConfig.
func TestReloaderChecks(t *testing.T) {
	dir := pki(t, certs.Options{})
	other := pki(t, certs.Options{})
	issue(t, dir, "expired", &x509.Certificate{
		NotBefore:   time.Now().Add(-48 * time.Hour),
		NotAfter:    time.Now().Add(-24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:        mustURIs(t, "spiffe://veilmatch.dev/agency/expired"),
	})
	issue(t, dir, "no-spiffe", &x509.Certificate{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	issue(t, dir, "foreign-td", &x509.Certificate{
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:        mustURIs(t, "spiffe://evil.example/agency/police-gb"),
	})
	issue(t, dir, "agency-as-server", &x509.Certificate{
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost"},
		URIs:        mustURIs(t, "spiffe://veilmatch.dev/agency/police-gb"),
	})

	hub := newReloader(t, mtls.DevFiles(dir, "hub")).ServerConfig()
	gbCreds := newReloader(t, mtls.DevFiles(dir, "police-gb"))
	gb := gbCreds.ClientConfig("localhost")
	staticHub := serverConfig(t, mtls.DevFiles(dir, "hub"))
	staticGB := clientConfig(t, mtls.DevFiles(dir, "police-gb"), "localhost")
	noCert := staticGB.Clone()
	noCert.Certificates = nil
	tls12 := staticGB.Clone()
	tls12.MinVersion, tls12.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	toKS, err := mtls.ForServer(gb, "keyserver")
	if err != nil {
		t.Fatalf("ForServer on a Reloader's client configuration: %v", err)
	}

	tests := []struct {
		name     string
		srv, cli *tls.Config
		reject   string // "", "server" or "client"
		match    func(error) bool
	}{
		{name: "agency", srv: hub, cli: staticGB},
		{name: "auditor", srv: hub, cli: clientConfig(t, mtls.DevFiles(dir, "auditor"), "localhost")},
		{name: "reloading client", srv: staticHub, cli: gb},
		{name: "both reloading", srv: hub, cli: gb},
		{name: "pinned client", srv: serverConfig(t, mtls.DevFiles(dir, "keyserver")), cli: toKS},

		{name: "no client cert", srv: hub, cli: noCert, reject: "server", match: anyError},
		{name: "TLS 1.2 client", srv: hub, cli: tls12, reject: "server", match: anyError},
		{name: "client cert from another CA", srv: hub, cli: withCert(t, staticGB, other, "police-gb"), reject: "server", match: unknownAuthority},
		{name: "expired client cert", srv: hub, cli: withCert(t, staticGB, dir, "expired"), reject: "server", match: certInvalid(x509.Expired)},
		{name: "client cert without SPIFFE URI", srv: hub, cli: withCert(t, staticGB, dir, "no-spiffe"), reject: "server", match: errIs(mtls.ErrNoID)},
		{name: "client cert of another trust domain", srv: hub, cli: withCert(t, staticGB, dir, "foreign-td"), reject: "server", match: errIs(mtls.ErrUntrustedPeer)},

		{name: "server from another CA", srv: serverConfig(t, mtls.DevFiles(other, "hub")), cli: gb, reject: "client", match: unknownAuthority},
		{name: "wrong server name", srv: staticHub, cli: gbCreds.ClientConfig("hub.example"), reject: "client", match: hostnameMismatch},
		{name: "server without server kind", srv: withCert(t, staticHub, dir, "agency-as-server"), cli: gb, reject: "client", match: errIs(mtls.ErrUntrustedPeer)},
		{name: "pinned client and another server", srv: staticHub, cli: toKS, reject: "client", match: errIs(mtls.ErrUntrustedPeer)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srvErr, cliErr := handshake(t, tt.srv, tt.cli)
			switch tt.reject {
			case "":
				if srvErr != nil || cliErr != nil {
					t.Fatalf("handshake failed: server: %v; client: %v", srvErr, cliErr)
				}
			case "server":
				if !tt.match(srvErr) || cliErr == nil {
					t.Fatalf("server error = %v, client error = %v; want the server to reject", srvErr, cliErr)
				}
			case "client":
				if !tt.match(cliErr) {
					t.Fatalf("client error = %v, want rejection (server: %v)", cliErr, srvErr)
				}
			}
		})
	}
}

// TestReloaderClientCertificate: a Reloader's client configuration presents
// the certificate loaded last.
func TestReloaderClientCertificate(t *testing.T) {
	dir := pki(t, certs.Options{})
	seen := make(chan *x509.Certificate, 4)
	srv := serverConfig(t, mtls.DevFiles(dir, "hub"))
	verify := srv.VerifyConnection
	srv.VerifyConnection = func(cs tls.ConnectionState) error {
		seen <- cs.PeerCertificates[0]
		return verify(cs)
	}
	addr := echoServer(t, srv)
	r := newReloader(t, mtls.DevFiles(dir, "police-gb"))
	cli := r.ClientConfig("localhost")

	old := readLeaf(t, filepath.Join(dir, "police-gb.crt"))
	mustDial(t, addr, cli)
	if got := <-seen; !got.Equal(old) {
		t.Fatal("the client did not present police-gb.crt")
	}
	now := time.Now()
	renewed := rotate(t, dir, certs.Party{Kind: mtls.KindAgency, ID: "police-gb"}, now.Add(-time.Minute), now.Add(time.Hour))
	if err := r.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	mustDial(t, addr, cli)
	if got := <-seen; !got.Equal(renewed) {
		t.Fatal("the client did not present the renewed certificate after Reload")
	}
}

// TestWithVerify: WithVerify adds a check to every handshake of a static
// and of a reloading server configuration, where a VerifyConnection set on
// a clone misses the per-client configuration.
func TestWithVerify(t *testing.T) {
	dir := pki(t, certs.Options{})
	errNoAuditors := errors.New("no auditors here")
	noAuditors := func(cs tls.ConnectionState) error {
		id, err := mtls.FromCertificate(cs.VerifiedChains[0][0])
		if err == nil && id.Kind == mtls.KindAuditor {
			return errNoAuditors
		}
		return err
	}
	gb := clientConfig(t, mtls.DevFiles(dir, "police-gb"), "localhost")
	auditor := clientConfig(t, mtls.DevFiles(dir, "auditor"), "localhost")
	configs := map[string]*tls.Config{
		"static":    serverConfig(t, mtls.DevFiles(dir, "hub")),
		"reloading": newReloader(t, mtls.DevFiles(dir, "hub")).ServerConfig(),
	}
	for name, cfg := range configs {
		t.Run(name, func(t *testing.T) {
			srv := mtls.WithVerify(cfg, noAuditors)
			if srvErr, cliErr := handshake(t, srv, gb); srvErr != nil || cliErr != nil {
				t.Fatalf("agency refused: %v / %v", srvErr, cliErr)
			}
			if srvErr, _ := handshake(t, srv, auditor); !errors.Is(srvErr, errNoAuditors) {
				t.Fatalf("auditor: server error = %v, want %v", srvErr, errNoAuditors)
			}
		})
	}
	t.Run("clone and set VerifyConnection", func(t *testing.T) {
		naive := configs["reloading"].Clone()
		naive.VerifyConnection = noAuditors
		if srvErr, cliErr := handshake(t, naive, auditor); srvErr != nil || cliErr != nil {
			t.Fatalf("the check applied after all (%v / %v): WithVerify's doc is out of date", srvErr, cliErr)
		}
	})
}

// TestReloaderConcurrent: handshakes run while Reload does (run with -race).
func TestReloaderConcurrent(t *testing.T) {
	dir := pki(t, certs.Options{})
	r := newReloader(t, mtls.DevFiles(dir, "hub"))
	addr := echoServer(t, r.ServerConfig())
	cli := r.ClientConfig("localhost")
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for range 4 {
		wg.Go(func() {
			for range 10 {
				conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cli)
				if err == nil {
					err = echo(conn)
					conn.Close()
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	for range 10 {
		if err := r.Reload(); err != nil {
			t.Errorf("Reload: %v", err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("handshake during reloads: %v", err)
	}
}
