// Package certs issues veilmatch's certificates, each carrying a SPIFFE ID
// as its URI SAN: from a private CA of one trust domain (NewCA, LoadCA,
// CA.Issue, behind 'veilmatch certs'), and as a whole development PKI, a
// throwaway CA and a certificate per server and party (Generate). The
// committed development set lives in certs/dev and is embedded as DevFS; it
// is for development only. Production certificates come from the agency's
// own PKI or a private CA whose key is kept offline.
package certs

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/veilmatch/veilmatch/crypto/mtls"
)

// Party is one certificate holder. Kind (mtls.KindServer, KindAgency or
// KindAuditor) decides the certificate's usage; ID is the last segment of its
// SPIFFE ID and the stem of its file names, <ID>.crt and <ID>.key.
type Party struct {
	Kind string
	ID   string
}

// DefaultParties are the holders in the committed development set: the hub,
// the key server and five key servers for threshold keys (keyserver-1 to
// keyserver-5), four example agencies, and an auditor.
var DefaultParties = []Party{
	{Kind: mtls.KindServer, ID: "hub"},
	{Kind: mtls.KindServer, ID: "keyserver"},
	{Kind: mtls.KindServer, ID: "keyserver-1"},
	{Kind: mtls.KindServer, ID: "keyserver-2"},
	{Kind: mtls.KindServer, ID: "keyserver-3"},
	{Kind: mtls.KindServer, ID: "keyserver-4"},
	{Kind: mtls.KindServer, ID: "keyserver-5"},
	{Kind: mtls.KindAgency, ID: "police-gb"},
	{Kind: mtls.KindAgency, ID: "police-us"},
	{Kind: mtls.KindAgency, ID: "police-th"},
	{Kind: mtls.KindAgency, ID: "ngo-shelter"},
	{Kind: mtls.KindAuditor, ID: "auditor"},
}

// DefaultTrustDomain is the trust domain of the development PKI.
const DefaultTrustDomain = "veilmatch.dev"

// Options tunes Generate. The zero value produces the committed set.
type Options struct {
	// TrustDomain of every SPIFFE ID; default DefaultTrustDomain.
	TrustDomain string
	// NotBefore and NotAfter bound the validity of the CA and every
	// certificate; defaults one hour ago and ten years from now.
	NotBefore, NotAfter time.Time
	// Parties to issue certificates for; default DefaultParties.
	Parties []Party
}

// Generate writes a fresh development CA (ca.crt, ca.key) and a certificate
// and key for every party into dir, creating dir if needed and overwriting
// existing files. The certificates are those CA.Issue makes: servers get
// ServerAuth and ClientAuth certificates for DNS localhost and IPs 127.0.0.1
// and ::1; agencies and auditors get ClientAuth certificates. Keys are ECDSA
// P-256 in PKCS#8 PEM, written with mode 0600. LoadCA reads the CA back.
func Generate(dir string, opts Options) error {
	files, err := issue(opts, time.Now())
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		if err := writeFile(path, f.data, f.perm); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	return nil
}

type file struct {
	name string
	data []byte
	perm os.FileMode
}

// devOrganization marks every certificate of the development set.
const devOrganization = "veilmatch DEV ONLY"

// issue creates the CA and all certificates in memory, so invalid options
// leave nothing behind.
func issue(opts Options, now time.Time) ([]file, error) {
	if opts.TrustDomain == "" {
		opts.TrustDomain = DefaultTrustDomain
	}
	if opts.NotBefore.IsZero() {
		opts.NotBefore = now.Add(-time.Hour)
	}
	if opts.NotAfter.IsZero() {
		opts.NotAfter = now.AddDate(10, 0, 0)
	}
	if len(opts.Parties) == 0 {
		opts.Parties = DefaultParties
	}
	ca, err := NewCA(CAOptions{
		TrustDomain:  opts.TrustDomain,
		CommonName:   "veilmatch development CA " + opts.TrustDomain,
		Organization: devOrganization,
		NotBefore:    opts.NotBefore,
		NotAfter:     opts.NotAfter,
	})
	if err != nil {
		return nil, err
	}
	files, err := pemFiles("ca", ca.Certificate.Raw, ca.key)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, p := range opts.Parties {
		if seen[p.ID] {
			return nil, fmt.Errorf("certs: party %q: duplicate id", p.ID)
		}
		seen[p.ID] = true
		r := Request{Party: p, NotBefore: ca.Certificate.NotBefore, NotAfter: ca.Certificate.NotAfter}
		if p.Kind == mtls.KindServer {
			r.DNSNames = []string{"localhost"}
			r.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		}
		leaf, err := ca.Issue(r)
		if err != nil {
			return nil, err
		}
		leafFiles, err := pemFiles(p.ID, leaf.Certificate.Raw, leaf.key)
		if err != nil {
			return nil, err
		}
		files = append(files, leafFiles...)
	}
	return files, nil
}

// pemFiles encodes a certificate as <name>.crt and its key as <name>.key.
func pemFiles(name string, der []byte, key crypto.Signer) ([]file, error) {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key for %s: %w", name, err)
	}
	return []file{
		{name: name + ".crt", data: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), perm: 0o644},
		{name: name + ".key", data: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), perm: 0o600},
	}, nil
}

// writeFile writes data to path with perm, also tightening the mode of an
// existing file before any data is written.
func writeFile(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		return errors.Join(err, f.Close())
	}
	if _, err := f.Write(data); err != nil {
		return errors.Join(err, f.Close())
	}
	return f.Close()
}
