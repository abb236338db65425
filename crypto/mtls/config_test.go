package mtls_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/veilmatch/veilmatch/certs"
	"github.com/veilmatch/veilmatch/crypto/mtls"
)

// pki generates a fresh development set in a temporary directory.
func pki(t *testing.T, opts certs.Options) string {
	t.Helper()
	dir := t.TempDir()
	if err := certs.Generate(dir, opts); err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return dir
}

// issue signs tmpl with the CA in dir and writes dir/name.crt and
// dir/name.key. Unset validity defaults to one hour ago .. one hour ahead.
func issue(t *testing.T, dir, name string, tmpl *x509.Certificate) {
	t.Helper()
	caCert, err := tls.LoadX509KeyPair(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = time.Now().Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = time.Now().Add(time.Hour)
	}
	tmpl.Subject = pkix.Name{CommonName: name}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert.Leaf, &key.PublicKey, caCert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(path, typ string, b []byte) {
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, name+".crt"), "CERTIFICATE", der)
	write(filepath.Join(dir, name+".key"), "PRIVATE KEY", keyDER)
}

func mustURIs(t *testing.T, ss ...string) []*url.URL {
	t.Helper()
	var us []*url.URL
	for _, s := range ss {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		us = append(us, u)
	}
	return us
}

// withCert returns a copy of cfg presenting the key pair dir/name.{crt,key}
// instead of its own, bypassing the SPIFFE check of ClientConfig.
func withCert(t *testing.T, cfg *tls.Config, dir, name string) *tls.Config {
	t.Helper()
	c, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"))
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.Clone()
	cfg.Certificates = []tls.Certificate{c}
	return cfg
}

func serverConfig(t *testing.T, f mtls.Files) *tls.Config {
	t.Helper()
	cfg, err := mtls.ServerConfig(f)
	if err != nil {
		t.Fatalf("ServerConfig: %v", err)
	}
	return cfg
}

func clientConfig(t *testing.T, f mtls.Files, serverName string) *tls.Config {
	t.Helper()
	cfg, err := mtls.ClientConfig(f, serverName)
	if err != nil {
		t.Fatalf("ClientConfig: %v", err)
	}
	return cfg
}

// handshake runs one TLS connection over 127.0.0.1 and returns the server's
// and the client's error. The server writes "ok" after its handshake, so a
// client certificate rejected by the server surfaces on the client too.
func handshake(t *testing.T, srv, cli *tls.Config) (srvErr, cliErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Server(conn, srv)
		if err := tc.Handshake(); err != nil {
			done <- err
			return
		}
		_, err = tc.Write([]byte("ok"))
		done <- err
	}()

	dialer := &net.Dialer{Timeout: 10 * time.Second}
	conn, err := tls.DialWithDialer(dialer, "tcp", ln.Addr().String(), cli)
	if err == nil {
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = io.ReadFull(conn, make([]byte, 2))
		conn.Close()
	}
	return <-done, err
}

func errIs(target error) func(error) bool {
	return func(err error) bool { return errors.Is(err, target) }
}

func certInvalid(reason x509.InvalidReason) func(error) bool {
	return func(err error) bool {
		var e x509.CertificateInvalidError
		return errors.As(err, &e) && e.Reason == reason
	}
}

func unknownAuthority(err error) bool {
	var e x509.UnknownAuthorityError
	return errors.As(err, &e)
}

func hostnameMismatch(err error) bool {
	var e x509.HostnameError
	return errors.As(err, &e)
}

func anyError(err error) bool { return err != nil }

func TestHandshake(t *testing.T) {
	dir := pki(t, certs.Options{})
	other := pki(t, certs.Options{})

	issue(t, dir, "expired", &x509.Certificate{
		NotBefore:   time.Now().Add(-48 * time.Hour),
		NotAfter:    time.Now().Add(-24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:        mustURIs(t, "spiffe://veilmatch.dev/agency/expired"),
	})
	issue(t, dir, "no-spiffe", &x509.Certificate{
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	issue(t, dir, "dns-only", &x509.Certificate{
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{"police-gb.veilmatch.dev"},
	})
	issue(t, dir, "two-ids", &x509.Certificate{
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:        mustURIs(t, "spiffe://veilmatch.dev/agency/a", "spiffe://veilmatch.dev/agency/b"),
	})
	issue(t, dir, "foreign-td", &x509.Certificate{
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:        mustURIs(t, "spiffe://evil.example/agency/police-gb"),
	})
	issue(t, dir, "agency-as-server", &x509.Certificate{
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost"},
		URIs:        mustURIs(t, "spiffe://veilmatch.dev/agency/police-gb"),
	})

	issue(t, dir, "server-with-client-usage", &x509.Certificate{
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{"localhost"},
		URIs:        mustURIs(t, "spiffe://veilmatch.dev/server/hub"),
	})

	hub := serverConfig(t, mtls.DevFiles(dir, "hub"))
	gb := clientConfig(t, mtls.DevFiles(dir, "police-gb"), "localhost")
	noCert := gb.Clone()
	noCert.Certificates = nil

	tests := []struct {
		name   string
		srv    *tls.Config
		cli    *tls.Config
		reject string // "", "server" or "client": the side that must fail
		match  func(error) bool
	}{
		{name: "agency", srv: hub, cli: gb},
		{name: "auditor", srv: hub, cli: clientConfig(t, mtls.DevFiles(dir, "auditor"), "localhost")},
		{name: "key server", srv: serverConfig(t, mtls.DevFiles(dir, "keyserver")), cli: gb},
		{name: "server by IP", srv: hub, cli: clientConfig(t, mtls.DevFiles(dir, "police-gb"), "127.0.0.1")},

		{name: "no client cert", srv: hub, cli: noCert, reject: "server", match: anyError},
		{name: "client cert from another CA", srv: hub, cli: withCert(t, gb, other, "police-gb"), reject: "server", match: unknownAuthority},
		{name: "expired client cert", srv: hub, cli: withCert(t, gb, dir, "expired"), reject: "server", match: certInvalid(x509.Expired)},
		{name: "client cert without SPIFFE URI", srv: hub, cli: withCert(t, gb, dir, "no-spiffe"), reject: "server", match: errIs(mtls.ErrNoID)},
		{name: "client cert with DNS SAN only", srv: hub, cli: withCert(t, gb, dir, "dns-only"), reject: "server", match: errIs(mtls.ErrNoID)},
		{name: "client cert with two SPIFFE URIs", srv: hub, cli: withCert(t, gb, dir, "two-ids"), reject: "server", match: errIs(mtls.ErrInvalidID)},
		{name: "client cert of another trust domain", srv: hub, cli: withCert(t, gb, dir, "foreign-td"), reject: "server", match: errIs(mtls.ErrUntrustedPeer)},
		{name: "server calling another server", srv: hub, cli: withCert(t, gb, dir, "keyserver")},

		{name: "server from another CA", srv: serverConfig(t, mtls.DevFiles(other, "hub")), cli: gb, reject: "client", match: unknownAuthority},
		{name: "wrong server name", srv: hub, cli: clientConfig(t, mtls.DevFiles(dir, "police-gb"), "hub.example"), reject: "client", match: hostnameMismatch},
		{name: "server without server kind", srv: withCert(t, hub, dir, "agency-as-server"), cli: gb, reject: "client", match: errIs(mtls.ErrUntrustedPeer)},
		{name: "server cert with client usage", srv: withCert(t, hub, dir, "server-with-client-usage"), cli: gb, reject: "client", match: certInvalid(x509.IncompatibleUsage)},
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
				if !tt.match(srvErr) {
					t.Fatalf("server error = %v, want rejection (client: %v)", srvErr, cliErr)
				}
				if cliErr == nil {
					t.Fatal("client saw no error after the server rejected it")
				}
			case "client":
				if !tt.match(cliErr) {
					t.Fatalf("client error = %v, want rejection (server: %v)", cliErr, srvErr)
				}
			}
		})
	}
}

func TestConfigTLS13(t *testing.T) {
	dir := pki(t, certs.Options{})
	srv := serverConfig(t, mtls.DevFiles(dir, "hub"))
	cli := clientConfig(t, mtls.DevFiles(dir, "police-gb"), "localhost")
	if srv.MinVersion != tls.VersionTLS13 || cli.MinVersion != tls.VersionTLS13 {
		t.Errorf("MinVersion = %#x, %#x; want TLS 1.3", srv.MinVersion, cli.MinVersion)
	}
	if srv.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("ClientAuth = %v, want RequireAndVerifyClientCert", srv.ClientAuth)
	}
	old := cli.Clone()
	old.MinVersion, old.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	if srvErr, _ := handshake(t, srv, old); srvErr == nil {
		t.Error("server accepted a TLS 1.2 client")
	}
}

func TestConfigFS(t *testing.T) {
	dir := pki(t, certs.Options{})
	fsys := os.DirFS(dir)
	srv, err := mtls.ServerConfigFS(fsys, mtls.DevFiles(".", "hub"))
	if err != nil {
		t.Fatalf("ServerConfigFS: %v", err)
	}
	cli, err := mtls.ClientConfigFS(fsys, mtls.DevFiles(".", "ngo-shelter"), "localhost")
	if err != nil {
		t.Fatalf("ClientConfigFS: %v", err)
	}
	if srvErr, cliErr := handshake(t, srv, cli); srvErr != nil || cliErr != nil {
		t.Fatalf("handshake failed: server: %v; client: %v", srvErr, cliErr)
	}
}

func TestConfigLoadErrors(t *testing.T) {
	dir := pki(t, certs.Options{})
	issue(t, dir, "no-spiffe", &x509.Certificate{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err := os.WriteFile(filepath.Join(dir, "garbage.pem"), []byte("not PEM\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := func(name string) string { return filepath.Join(dir, name) }
	good := mtls.DevFiles(dir, "police-gb")

	tests := []struct {
		name    string
		f       mtls.Files
		want    string
		wantErr error
	}{
		{"missing certificate", mtls.Files{Cert: path("nope.crt"), Key: good.Key, CA: good.CA}, "load certificate " + path("nope.crt") + ": ", os.ErrNotExist},
		{"certificate not PEM", mtls.Files{Cert: path("garbage.pem"), Key: good.Key, CA: good.CA}, "load certificate " + path("garbage.pem") + ": ", nil},
		{"certificate without SPIFFE ID", mtls.Files{Cert: path("no-spiffe.crt"), Key: path("no-spiffe.key"), CA: good.CA}, "load certificate " + path("no-spiffe.crt") + ": ", mtls.ErrNoID},
		{"missing key", mtls.Files{Cert: good.Cert, Key: path("nope.key"), CA: good.CA}, "load key " + path("nope.key") + ": ", os.ErrNotExist},
		{"key of another certificate", mtls.Files{Cert: good.Cert, Key: path("police-us.key"), CA: good.CA}, "load key " + path("police-us.key") + ": ", nil},
		{"missing CA", mtls.Files{Cert: good.Cert, Key: good.Key, CA: path("nope.crt")}, "load CA " + path("nope.crt") + ": ", os.ErrNotExist},
		{"CA not PEM", mtls.Files{Cert: good.Cert, Key: good.Key, CA: path("garbage.pem")}, "load CA " + path("garbage.pem") + ": ", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, srvErr := mtls.ServerConfig(tt.f)
			_, cliErr := mtls.ClientConfig(tt.f, "localhost")
			_, relErr := mtls.NewReloader(tt.f)
			for _, err := range []error{srvErr, cliErr, relErr} {
				if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
					t.Fatalf("error = %v, want prefix %q", err, tt.want)
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Fatalf("error = %v, want %v", err, tt.wantErr)
				}
			}
		})
	}
}

// whoami is a health service that records the caller's identity.
type whoami struct {
	*health.Server
	got chan mtls.Identity
}

func (w whoami) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	id, err := mtls.FromContext(ctx)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	w.got <- id
	return w.Server.Check(ctx, req)
}

func TestGRPCFromContext(t *testing.T) {
	dir := pki(t, certs.Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(serverConfig(t, mtls.DevFiles(dir, "hub")))))
	svc := whoami{Server: health.NewServer(), got: make(chan mtls.Identity, 1)}
	healthpb.RegisterHealthServer(srv, svc)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)

	creds := credentials.NewTLS(clientConfig(t, mtls.DevFiles(dir, "police-gb"), "localhost"))
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("status = %v, want SERVING", resp.GetStatus())
	}
	want := mtls.Identity{TrustDomain: "veilmatch.dev", Kind: mtls.KindAgency, ID: "police-gb"}
	if got := <-svc.got; got != want {
		t.Errorf("FromContext = %v, want %v", got, want)
	}
}

// TestForServer: a client pinned to the key server refuses the hub.
func TestForServer(t *testing.T) {
	dir := t.TempDir()
	if err := certs.Generate(dir, certs.Options{}); err != nil {
		t.Fatal(err)
	}
	gb := clientConfig(t, mtls.DevFiles(dir, "police-gb"), "localhost")
	toKS, err := mtls.ForServer(gb, "keyserver")
	if err != nil {
		t.Fatal(err)
	}
	hub := serverConfig(t, mtls.DevFiles(dir, "hub"))
	ks := serverConfig(t, mtls.DevFiles(dir, "keyserver"))
	if srvErr, cliErr := handshake(t, ks, toKS); srvErr != nil || cliErr != nil {
		t.Fatalf("pinned client refused the key server: %v / %v", srvErr, cliErr)
	}
	if _, cliErr := handshake(t, hub, toKS); !errors.Is(cliErr, mtls.ErrUntrustedPeer) {
		t.Fatalf("pinned client accepted the hub as the key server: %v", cliErr)
	}
	if _, err := mtls.ForServer(gb, "Bad ID"); err == nil {
		t.Fatal("invalid server id accepted")
	}
	// A client pinned to the key server family accepts keyserver-2 as well,
	// still not the hub; one pinned to keyserver exactly refuses keyserver-2.
	toFamily, err := mtls.ForServerFamily(gb, "keyserver")
	if err != nil {
		t.Fatal(err)
	}
	ks2 := serverConfig(t, mtls.DevFiles(dir, "keyserver-2"))
	for name, srv := range map[string]*tls.Config{"keyserver": ks, "keyserver-2": ks2} {
		if srvErr, cliErr := handshake(t, srv, toFamily); srvErr != nil || cliErr != nil {
			t.Fatalf("family client refused %s: %v / %v", name, srvErr, cliErr)
		}
	}
	if _, cliErr := handshake(t, hub, toFamily); !errors.Is(cliErr, mtls.ErrUntrustedPeer) {
		t.Fatalf("family client accepted the hub: %v", cliErr)
	}
	if _, cliErr := handshake(t, ks2, toKS); !errors.Is(cliErr, mtls.ErrUntrustedPeer) {
		t.Fatalf("exact client accepted keyserver-2: %v", cliErr)
	}
	for id, want := range map[string]bool{"keyserver": true, "keyserver-gb": true, "keyserver-": false, "keyserverx": false, "hub": false} {
		if mtls.InFamily(id, "keyserver") != want {
			t.Errorf("InFamily(%q, keyserver) = %v", id, !want)
		}
	}
}

// TestIssuedCertificates: certificates from a private CA (certs.NewCA and
// CA.Issue, as 'veilmatch certs' makes them) work with ServerConfig and
// ClientConfig in their own trust domain, and an agency's cannot serve.
func TestIssuedCertificates(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca, err := certs.NewCA(certs.CAOptions{TrustDomain: "example.org", NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	for _, r := range []certs.Request{
		{Party: certs.Party{Kind: mtls.KindServer, ID: "hub"}, DNSNames: []string{"hub.example.org"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}},
		{Party: certs.Party{Kind: mtls.KindAgency, ID: "police-fr"}},
		{Party: certs.Party{Kind: mtls.KindAuditor, ID: "oversight"}},
	} {
		r.NotBefore, r.NotAfter = now.Add(-time.Minute), now.Add(time.Hour)
		leaf, err := ca.Issue(r)
		if err != nil {
			t.Fatalf("Issue %s: %v", r.ID, err)
		}
		if err := leaf.Save(dir); err != nil {
			t.Fatal(err)
		}
	}
	hub := serverConfig(t, mtls.DevFiles(dir, "hub"))
	for _, tt := range []struct{ party, serverName string }{
		{"police-fr", "hub.example.org"},
		{"police-fr", "127.0.0.1"},
		{"oversight", "hub.example.org"},
		{"hub", "hub.example.org"}, // servers call each other
	} {
		cli := clientConfig(t, mtls.DevFiles(dir, tt.party), tt.serverName)
		if srvErr, cliErr := handshake(t, hub, cli); srvErr != nil || cliErr != nil {
			t.Errorf("%s to %s: server: %v; client: %v", tt.party, tt.serverName, srvErr, cliErr)
		}
	}
	// An agency's certificate cannot serve: it lacks ServerAuth, names no
	// host, and is of kind agency.
	agencyServes := serverConfig(t, mtls.DevFiles(dir, "police-fr"))
	if _, cliErr := handshake(t, agencyServes, clientConfig(t, mtls.DevFiles(dir, "oversight"), "")); cliErr == nil {
		t.Error("a client accepted an agency's certificate as a server's")
	}
}
