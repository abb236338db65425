// Package certs generates veilmatch's development PKI: a throwaway CA and a
// certificate per server and party, each carrying a SPIFFE ID as its URI SAN.
// The committed set lives in certs/dev and is embedded as DevFS. It is for
// development only; production certificates come from the agency's own PKI.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
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
// existing files. Servers get ServerAuth certificates for DNS localhost and
// IPs 127.0.0.1 and ::1; agencies and auditors get ClientAuth certificates.
// Keys are ECDSA P-256 in PKCS#8 PEM, written with mode 0600.
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
	if !opts.NotAfter.After(opts.NotBefore) {
		return nil, fmt.Errorf("certs: NotAfter %s is not after NotBefore %s", opts.NotAfter, opts.NotBefore)
	}
	if len(opts.Parties) == 0 {
		opts.Parties = DefaultParties
	}

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		Subject: pkix.Name{
			Organization: []string{"veilmatch DEV ONLY"},
			CommonName:   "veilmatch development CA " + opts.TrustDomain,
		},
		NotBefore:             opts.NotBefore,
		NotAfter:              opts.NotAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	caFiles, err := pemFiles("ca", caDER, caKey)
	if err != nil {
		return nil, err
	}

	files := caFiles
	seen := map[string]bool{"ca": true}
	for _, p := range opts.Parties {
		if seen[p.ID] {
			return nil, fmt.Errorf("certs: party %q: duplicate or reserved id", p.ID)
		}
		seen[p.ID] = true
		tmpl, err := leafTemplate(opts, p)
		if err != nil {
			return nil, err
		}
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate key for %s: %w", p.ID, err)
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return nil, fmt.Errorf("create certificate for %s: %w", p.ID, err)
		}
		leafFiles, err := pemFiles(p.ID, der, key)
		if err != nil {
			return nil, err
		}
		files = append(files, leafFiles...)
	}
	return files, nil
}

// leafTemplate returns the certificate template for p, with its SPIFFE ID
// validated by mtls.ParseID.
func leafTemplate(opts Options, p Party) (*x509.Certificate, error) {
	id, err := mtls.ParseID(mtls.Identity{TrustDomain: opts.TrustDomain, Kind: p.Kind, ID: p.ID}.String())
	if err != nil {
		return nil, fmt.Errorf("certs: party %q: %w", p.ID, err)
	}
	uri, err := url.Parse(id.String())
	if err != nil {
		return nil, fmt.Errorf("certs: party %q: %w", p.ID, err)
	}
	tmpl := &x509.Certificate{
		Subject: pkix.Name{
			Organization: []string{"veilmatch DEV ONLY"},
			CommonName:   p.ID,
		},
		NotBefore:             opts.NotBefore,
		NotAfter:              opts.NotAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{uri},
	}
	if p.Kind == mtls.KindServer {
		// Servers also call each other (the key server reports quota use
		// to the hub), so they may authenticate as clients too.
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	return tmpl, nil
}

// pemFiles encodes a certificate as <name>.crt and its key as <name>.key.
func pemFiles(name string, der []byte, key *ecdsa.PrivateKey) ([]file, error) {
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
