package certs_test

import (
	"bytes"
	"crypto/x509"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/veilmatch/veilmatch/certs"
	"github.com/veilmatch/veilmatch/crypto/mtls"
)

func newCA(t *testing.T, trustDomain string) *certs.CA {
	t.Helper()
	now := time.Now()
	ca, err := certs.NewCA(certs.CAOptions{TrustDomain: trustDomain, Organization: "Example", NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0)})
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	return ca
}

// request returns a request valid for a day.
func request(kind, id string, dns ...string) certs.Request {
	now := time.Now()
	return certs.Request{Party: certs.Party{Kind: kind, ID: id}, DNSNames: dns, NotBefore: now.Add(-time.Minute), NotAfter: now.Add(24 * time.Hour)}
}

// TestIssue: each kind gets its SPIFFE ID as its only URI SAN in the CA's
// trust domain, the usages of its kind, and a chain to the CA.
func TestIssue(t *testing.T) {
	ca := newCA(t, "example.org")
	roots := x509.NewCertPool()
	roots.AddCert(ca.Certificate)
	server := request(mtls.KindServer, "hub", "hub.example.org")
	server.IPAddresses = []net.IP{net.ParseIP("10.0.0.5")}
	for _, r := range []certs.Request{server, request(mtls.KindAgency, "police-fr"), request(mtls.KindAuditor, "oversight")} {
		t.Run(r.Kind, func(t *testing.T) {
			leaf, err := ca.Issue(r)
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			c := leaf.Certificate
			if len(c.URIs) != 1 || c.URIs[0].String() != "spiffe://example.org/"+r.Kind+"/"+r.ID {
				t.Errorf("URI SANs = %v, want spiffe://example.org/%s/%s", c.URIs, r.Kind, r.ID)
			}
			if c.Subject.CommonName != r.ID || !slices.Equal(c.Subject.Organization, []string{"Example"}) {
				t.Errorf("subject = %v, want CN=%s,O=Example", c.Subject, r.ID)
			}
			if !c.NotAfter.Equal(r.NotAfter.Truncate(time.Second)) {
				t.Errorf("NotAfter = %v, want %v", c.NotAfter, r.NotAfter)
			}
			want := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
			if r.Kind == mtls.KindServer {
				want = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
			}
			if !slices.Equal(c.ExtKeyUsage, want) {
				t.Errorf("ExtKeyUsage = %v, want %v", c.ExtKeyUsage, want)
			}
			if !slices.Equal(c.DNSNames, r.DNSNames) || len(c.IPAddresses) != len(r.IPAddresses) {
				t.Errorf("DNS and IP SANs = %v %v, want %v %v", c.DNSNames, c.IPAddresses, r.DNSNames, r.IPAddresses)
			}
			for _, u := range want {
				if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
					t.Errorf("verify for %v: %v", u, err)
				}
			}
		})
	}
}

func TestIssueRejects(t *testing.T) {
	ca := newCA(t, "example.org")
	withIP := request(mtls.KindAgency, "police-fr")
	withIP.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	outlives := request(mtls.KindAgency, "police-fr")
	outlives.NotAfter = ca.Certificate.NotAfter.Add(time.Hour)
	early := request(mtls.KindAgency, "police-fr")
	early.NotBefore = ca.Certificate.NotBefore.Add(-time.Hour)
	empty := request(mtls.KindAgency, "police-fr")
	empty.NotAfter = empty.NotBefore
	tests := []struct {
		name string
		r    certs.Request
		want string
	}{
		{"bad kind", request("admin", "root"), "kind is not agency, auditor or server"},
		{"bad id", request(mtls.KindAgency, "../evil"), "invalid SPIFFE ID"},
		{"upper-case id", request(mtls.KindAgency, "Police"), "bad id"},
		{"id of the CA's files", request(mtls.KindAgency, "ca"), "reserved"},
		{"server without names", request(mtls.KindServer, "hub"), "needs a DNS name or IP address"},
		{"agency with a DNS name", request(mtls.KindAgency, "police-fr", "police.example.org"), "only servers"},
		{"auditor with an IP", withIP, "only servers"},
		{"outlives the CA", outlives, "not within the CA's"},
		{"valid before the CA", early, "not within the CA's"},
		{"empty validity", empty, "is not after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ca.Issue(tt.r); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Issue error = %v, want one saying %q", err, tt.want)
			}
		})
	}
	if _, err := certs.NewCA(certs.CAOptions{TrustDomain: "Example.org", NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}); err == nil {
		t.Error("NewCA accepted an upper-case trust domain")
	}
}

// TestSaveLoad: a saved CA loads back with its trust domain and signs
// certificates that chain to the saved ca.crt; files are created with
// their modes and never overwritten.
func TestSaveLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	ca := newCA(t, "example.org")
	if err := ca.Save(dir); err != nil {
		t.Fatalf("Save: %v", err)
	}
	loaded, err := certs.LoadCA(dir)
	if err != nil {
		t.Fatalf("LoadCA: %v", err)
	}
	if loaded.TrustDomain != "example.org" || !loaded.Certificate.Equal(ca.Certificate) {
		t.Fatalf("LoadCA = %s %v, want the saved CA", loaded.TrustDomain, loaded.Certificate.Subject)
	}
	leaf, err := loaded.Issue(request(mtls.KindAgency, "police-fr"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := leaf.Save(out); err != nil {
		t.Fatalf("Save: %v", err)
	}
	fsys := os.DirFS(out)
	roots := x509.NewCertPool()
	roots.AddCert(readCert(t, os.DirFS(dir), "ca.crt"))
	if _, err := readCert(t, fsys, "police-fr.crt").Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("issued certificate does not chain to the saved CA: %v", err)
	}
	keyPEM, err := fs.ReadFile(fsys, "police-fr.key")
	if err != nil {
		t.Fatal(err)
	}
	checkKey(t, keyPEM)
	for path, perm := range map[string]os.FileMode{
		dir: 0o700, filepath.Join(dir, "ca.key"): 0o600, filepath.Join(dir, "ca.crt"): 0o644,
		filepath.Join(out, "police-fr.key"): 0o600, filepath.Join(out, "police-fr.crt"): 0o644,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != perm {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), perm)
		}
	}

	before := readAll(t, dir)
	if err := newCA(t, "example.org").Save(dir); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second Save = %v, want fs.ErrExist", err)
	}
	if !equalFiles(before, readAll(t, dir)) {
		t.Error("a refused Save changed the CA's files")
	}
	// With only the key there, neither file is written.
	if err := os.Remove(filepath.Join(out, "police-fr.crt")); err != nil {
		t.Fatal(err)
	}
	if err := leaf.Save(out); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Save over a key = %v, want fs.ErrExist", err)
	}
	if _, err := os.Stat(filepath.Join(out, "police-fr.crt")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused Save wrote the certificate: %v", err)
	}
}

// readAll returns the contents of every file in dir by name.
func readAll(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = data
	}
	return out
}

func equalFiles(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for name, data := range a {
		if !bytes.Equal(data, b[name]) {
			return false
		}
	}
	return true
}

func TestLoadCAErrors(t *testing.T) {
	gen := t.TempDir()
	if err := certs.Generate(gen, certs.Options{TrustDomain: "example.org"}); err != nil {
		t.Fatal(err)
	}
	if ca, err := certs.LoadCA(gen); err != nil || ca.TrustDomain != "example.org" {
		t.Fatalf("LoadCA of a generated set = %v, %v; want trust domain example.org", ca, err)
	}
	copyTo := func(from, dir, to string) {
		data, err := os.ReadFile(filepath.Join(gen, from))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, to), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	leafAsCA := t.TempDir()
	copyTo("police-gb.crt", leafAsCA, "ca.crt")
	copyTo("police-gb.key", leafAsCA, "ca.key")
	mismatched := t.TempDir()
	copyTo("ca.crt", mismatched, "ca.crt")
	copyTo("hub.key", mismatched, "ca.key")
	tests := []struct {
		name, dir, file, want string
	}{
		{"missing", t.TempDir(), "ca.crt", "no such file"},
		{"committed dev CA, without a trust domain", "dev", "ca.crt", "names no trust domain"},
		{"leaf certificate", leafAsCA, "ca.crt", "not a CA certificate"},
		{"key of another certificate", mismatched, "ca.key", "private key does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := certs.LoadCA(tt.dir)
			if err == nil || !strings.Contains(err.Error(), filepath.Join(tt.dir, tt.file)) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("LoadCA error = %v, want it to name %s and say %q", err, tt.file, tt.want)
			}
		})
	}
}
