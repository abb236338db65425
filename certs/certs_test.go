package certs_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/veilmatch/veilmatch/certs"
	"github.com/veilmatch/veilmatch/crypto/mtls"
)

// readCert parses the single certificate in name from fsys.
func readCert(t *testing.T, fsys fs.FS, name string) *x509.Certificate {
	t.Helper()
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		t.Fatal(err)
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" || len(rest) != 0 {
		t.Fatalf("%s: want exactly one CERTIFICATE PEM block", name)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return c
}

// usage returns the extended key usages a party's certificate must have and
// the ones it must not: servers serve and call each other, parties only
// call.
func usage(p certs.Party) (want, wrong []x509.ExtKeyUsage) {
	if p.Kind == mtls.KindServer {
		return []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, nil
	}
	return []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
}

// checkSet verifies every certificate of parties in fsys against its ca.crt
// at time at, and that each key file matches its certificate.
func checkSet(t *testing.T, fsys fs.FS, trustDomain string, parties []certs.Party, at time.Time) {
	t.Helper()
	ca := readCert(t, fsys, "ca.crt")
	if !ca.IsCA || !ca.BasicConstraintsValid {
		t.Fatal("ca.crt is not a CA certificate")
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, p := range parties {
		t.Run(p.ID, func(t *testing.T) {
			leaf := readCert(t, fsys, p.ID+".crt")
			want, wrong := usage(p)
			for _, u := range want {
				opts := x509.VerifyOptions{Roots: roots, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{u}}
				if _, err := leaf.Verify(opts); err != nil {
					t.Fatalf("verify with %v: %v", u, err)
				}
			}
			for _, u := range wrong {
				opts := x509.VerifyOptions{Roots: roots, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{u}}
				if _, err := leaf.Verify(opts); err == nil {
					t.Errorf("certificate also verifies for %v", u)
				}
			}

			id, err := mtls.FromCertificate(leaf)
			if err != nil {
				t.Fatalf("FromCertificate: %v", err)
			}
			if wantID := (mtls.Identity{TrustDomain: trustDomain, Kind: p.Kind, ID: p.ID}); id != wantID {
				t.Errorf("identity = %v, want %v", id, wantID)
			}

			if p.Kind == mtls.KindServer {
				for _, host := range []string{"localhost", "127.0.0.1", "::1"} {
					if err := leaf.VerifyHostname(host); err != nil {
						t.Errorf("VerifyHostname(%s): %v", host, err)
					}
				}
			} else if len(leaf.DNSNames)+len(leaf.IPAddresses) != 0 {
				t.Errorf("client certificate has DNS or IP SANs: %v %v", leaf.DNSNames, leaf.IPAddresses)
			}

			certPEM, err := fs.ReadFile(fsys, p.ID+".crt")
			if err != nil {
				t.Fatal(err)
			}
			keyPEM, err := fs.ReadFile(fsys, p.ID+".key")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
				t.Errorf("key does not match certificate: %v", err)
			}
			checkKey(t, keyPEM)
		})
	}
}

// checkKey asserts that keyPEM is one PKCS#8 ECDSA P-256 private key.
func checkKey(t *testing.T, keyPEM []byte) {
	t.Helper()
	block, rest := pem.Decode(keyPEM)
	if block == nil || block.Type != "PRIVATE KEY" || len(rest) != 0 {
		t.Fatal("key: want exactly one PRIVATE KEY PEM block")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatalf("key: %v", err)
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		t.Fatalf("key is %T, want ECDSA P-256", key)
	}
}

func TestGenerate(t *testing.T) {
	dir := t.TempDir()
	if err := certs.Generate(dir, certs.Options{}); err != nil {
		t.Fatalf("Generate: %v", err)
	}
	fsys := os.DirFS(dir)
	checkSet(t, fsys, certs.DefaultTrustDomain, certs.DefaultParties, time.Now())

	ca := readCert(t, fsys, "ca.crt")
	if got, want := time.Until(ca.NotAfter), 10*365*24*time.Hour; got < want {
		t.Errorf("CA valid for %v, want at least %v", got, want)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	checkKey(t, keyPEM)

	names := []string{"ca"}
	for _, p := range certs.DefaultParties {
		names = append(names, p.ID)
	}
	for _, name := range names {
		for ext, perm := range map[string]os.FileMode{".key": 0o600, ".crt": 0o644} {
			fi, err := os.Stat(filepath.Join(dir, name+ext))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != perm {
				t.Errorf("%s%s mode = %v, want %v", name, ext, fi.Mode().Perm(), perm)
			}
		}
	}
}

func TestGenerateOverwritesWithTightMode(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "ca.key")
	if err := os.WriteFile(key, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := certs.Generate(dir, certs.Options{}); err != nil {
		t.Fatalf("Generate: %v", err)
	}
	fi, err := os.Stat(key)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("ca.key mode = %v, want 0600", fi.Mode().Perm())
	}
}

func TestGenerateOptions(t *testing.T) {
	parties := []certs.Party{
		{Kind: mtls.KindServer, ID: "hub"},
		{Kind: mtls.KindAgency, ID: "police-fr"},
	}
	dir := t.TempDir()
	opts := certs.Options{TrustDomain: "example.org", Parties: parties}
	if err := certs.Generate(dir, opts); err != nil {
		t.Fatalf("Generate: %v", err)
	}
	checkSet(t, os.DirFS(dir), "example.org", parties, time.Now())
	if _, err := os.Stat(filepath.Join(dir, "police-gb.crt")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("police-gb.crt written although not in Parties: %v", err)
	}

	t.Run("expired", func(t *testing.T) {
		dir := t.TempDir()
		now := time.Now()
		opts := certs.Options{NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour)}
		if err := certs.Generate(dir, opts); err != nil {
			t.Fatalf("Generate: %v", err)
		}
		fsys := os.DirFS(dir)
		checkSet(t, fsys, certs.DefaultTrustDomain, certs.DefaultParties, now.Add(-36*time.Hour))
		roots := x509.NewCertPool()
		roots.AddCert(readCert(t, fsys, "ca.crt"))
		leaf := readCert(t, fsys, "police-gb.crt")
		_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		var invalid x509.CertificateInvalidError
		if !errors.As(err, &invalid) || invalid.Reason != x509.Expired {
			t.Errorf("Verify(now) = %v, want expired", err)
		}
	})

	t.Run("second CA", func(t *testing.T) {
		other := t.TempDir()
		if err := certs.Generate(other, certs.Options{}); err != nil {
			t.Fatalf("Generate: %v", err)
		}
		roots := x509.NewCertPool()
		roots.AddCert(readCert(t, os.DirFS(dir), "ca.crt"))
		leaf := readCert(t, os.DirFS(other), "hub.crt")
		_, err := leaf.Verify(x509.VerifyOptions{Roots: roots})
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Errorf("Verify against the first CA = %v, want unknown authority", err)
		}
	})
}

func TestGenerateRejects(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name string
		opts certs.Options
	}{
		{"bad trust domain", certs.Options{TrustDomain: "Bad Domain"}},
		{"bad kind", certs.Options{Parties: []certs.Party{{Kind: "admin", ID: "root"}}}},
		{"bad id", certs.Options{Parties: []certs.Party{{Kind: mtls.KindAgency, ID: "../evil"}}}},
		{"empty id", certs.Options{Parties: []certs.Party{{Kind: mtls.KindAgency}}}},
		{"duplicate id", certs.Options{Parties: []certs.Party{{Kind: mtls.KindAgency, ID: "a"}, {Kind: mtls.KindAuditor, ID: "a"}}}},
		{"id clashes with CA", certs.Options{Parties: []certs.Party{{Kind: mtls.KindAgency, ID: "ca"}}}},
		{"NotAfter before NotBefore", certs.Options{NotBefore: now, NotAfter: now.Add(-time.Hour)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out")
			if err := certs.Generate(dir, tt.opts); err == nil {
				t.Fatal("Generate succeeded")
			}
			if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Generate left %s behind: %v", dir, err)
			}
		})
	}
}

// TestCommittedDevSet checks the committed certs/dev set, through both the
// files on disk and the embedded DevFS.
func TestCommittedDevSet(t *testing.T) {
	for name, fsys := range map[string]fs.FS{"disk": os.DirFS("dev"), "DevFS": certs.DevFS} {
		t.Run(name, func(t *testing.T) {
			in5y := time.Now().AddDate(5, 0, 0)
			checkSet(t, fsys, certs.DefaultTrustDomain, certs.DefaultParties, time.Now())
			checkSet(t, fsys, certs.DefaultTrustDomain, certs.DefaultParties, in5y)
			for _, p := range append([]certs.Party{{ID: "ca"}}, certs.DefaultParties...) {
				if c := readCert(t, fsys, p.ID+".crt"); c.NotAfter.Before(in5y) {
					t.Errorf("%s.crt expires %s, less than 5 years from now", p.ID, c.NotAfter)
				}
			}
		})
	}
}

func TestCommittedDevSetLoadsWithMTLS(t *testing.T) {
	if _, err := mtls.ServerConfigFS(certs.DevFS, mtls.DevFiles(".", "hub")); err != nil {
		t.Errorf("ServerConfigFS(hub): %v", err)
	}
	if _, err := mtls.ServerConfig(mtls.DevFiles("dev", "keyserver")); err != nil {
		t.Errorf("ServerConfig(keyserver): %v", err)
	}
	for _, p := range certs.DefaultParties {
		if p.Kind == mtls.KindServer {
			continue
		}
		if _, err := mtls.ClientConfigFS(certs.DevFS, mtls.DevFiles(".", p.ID), "localhost"); err != nil {
			t.Errorf("ClientConfigFS(%s): %v", p.ID, err)
		}
	}
}
