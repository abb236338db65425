package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/veilmatch/veilmatch/crypto/mtls"
	"github.com/veilmatch/veilmatch/internal/atomicfile"
)

// CA is a certificate authority of one trust domain: it issues the
// certificates of its servers, agencies and auditors, each carrying its
// SPIFFE ID. Its own certificate names the trust domain in a URI SAN,
// spiffe://<trust domain>, from which LoadCA reads it back.
type CA struct {
	// TrustDomain of every SPIFFE ID the CA issues.
	TrustDomain string
	// Certificate is the CA's self-signed certificate.
	Certificate *x509.Certificate
	key         crypto.Signer
}

// CAOptions configures NewCA.
type CAOptions struct {
	// TrustDomain of the CA; it must satisfy mtls.ValidTrustDomain.
	TrustDomain string
	// CommonName of the CA; default "veilmatch CA <trust domain>".
	CommonName string
	// Organization of the CA and of every certificate it issues; default
	// none.
	Organization string
	// NotBefore and NotAfter bound the CA's validity, and so that of every
	// certificate it issues.
	NotBefore, NotAfter time.Time
}

// NewCA creates a CA with a new ECDSA P-256 key, in memory.
func NewCA(o CAOptions) (*CA, error) {
	if !mtls.ValidTrustDomain(o.TrustDomain) {
		return nil, fmt.Errorf("certs: trust domain %q: want 1 to 255 lower-case letters, digits, '.', '-' or '_'", o.TrustDomain)
	}
	if err := checkValidity(o.NotBefore, o.NotAfter); err != nil {
		return nil, err
	}
	if o.CommonName == "" {
		o.CommonName = "veilmatch CA " + o.TrustDomain
	}
	subject := pkix.Name{CommonName: o.CommonName}
	if o.Organization != "" {
		subject.Organization = []string{o.Organization}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:               subject,
		NotBefore:             o.NotBefore,
		NotAfter:              o.NotAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		URIs:                  []*url.URL{{Scheme: "spiffe", Host: o.TrustDomain}},
	}
	cert, err := sign(tmpl, nil, key, key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	return &CA{TrustDomain: o.TrustDomain, Certificate: cert, key: key}, nil
}

// LoadCA reads a CA from dir/ca.crt and dir/ca.key, as NewCA and Save make
// it. Errors name the file at fault.
func LoadCA(dir string) (*CA, error) {
	certFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("load CA certificate %s: %w", certFile, err)
	}
	cert, td, err := parseCA(certPEM)
	if err != nil {
		return nil, fmt.Errorf("load CA certificate %s: %w", certFile, err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("load CA key %s: %w", keyFile, err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load CA key %s: %w", keyFile, err)
	}
	key, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("load CA key %s: %T cannot sign", keyFile, pair.PrivateKey)
	}
	return &CA{TrustDomain: td, Certificate: cert, key: key}, nil
}

// parseCA parses the first certificate in certPEM, which must be a CA's
// naming its trust domain in its URI SAN spiffe://<trust domain>.
func parseCA(certPEM []byte) (*x509.Certificate, string, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, "", errors.New("no PEM CERTIFICATE block first")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, "", err
	}
	if !cert.IsCA || !cert.BasicConstraintsValid {
		return nil, "", errors.New("not a CA certificate")
	}
	if len(cert.URIs) != 1 {
		return nil, "", errors.New("it names no trust domain: want exactly one URI SAN spiffe://<trust domain> (a CA made by 'veilmatch certs init-ca')")
	}
	u := cert.URIs[0]
	if u.Scheme != "spiffe" || u.String() != "spiffe://"+u.Host || !mtls.ValidTrustDomain(u.Host) {
		return nil, "", fmt.Errorf("URI SAN %q is not spiffe://<trust domain>", u)
	}
	return cert, u.Host, nil
}

// Save writes the CA to dir/ca.crt and dir/ca.key (mode 0600), creating
// dir (mode 0700) if needed. It never overwrites: if either file exists, it
// writes nothing and fails with an error matching fs.ErrExist.
func (ca *CA) Save(dir string) error {
	return saveNew(dir, "ca", ca.Certificate, ca.key)
}

// Request describes a certificate for Issue to sign.
type Request struct {
	Party
	// DNSNames and IPAddresses are the names clients dial a server by; a
	// server needs at least one, agencies and auditors have none.
	DNSNames    []string
	IPAddresses []net.IP
	// NotBefore and NotAfter bound the certificate's validity, which must
	// lie within the CA's.
	NotBefore, NotAfter time.Time
}

// Issued is a certificate Issue signed, with its private key.
type Issued struct {
	Party
	Certificate *x509.Certificate
	key         *ecdsa.PrivateKey
}

// Issue signs a certificate for a new ECDSA P-256 key. Its only URI SAN is
// the SPIFFE ID spiffe://<CA's trust domain>/<kind>/<id>, valid by
// mtls.ParseID's rules; its subject is CN=<id>, with the CA's organization.
// Servers get ServerAuth and ClientAuth (they also call each other), with
// r's DNS names and IPs; agencies and auditors get ClientAuth only. The id
// "ca" is reserved for the CA's own files.
func (ca *CA) Issue(r Request) (*Issued, error) {
	id, err := mtls.ParseID(mtls.Identity{TrustDomain: ca.TrustDomain, Kind: r.Kind, ID: r.ID}.String())
	if err != nil {
		return nil, fmt.Errorf("certs: party %q: %w", r.ID, err)
	}
	tmpl, err := ca.leafTemplate(r, id)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key for %s: %w", r.ID, err)
	}
	cert, err := sign(tmpl, ca.Certificate, key, ca.key)
	if err != nil {
		return nil, fmt.Errorf("create certificate for %s: %w", r.ID, err)
	}
	return &Issued{Party: r.Party, Certificate: cert, key: key}, nil
}

// leafTemplate checks r against the CA and returns its certificate
// template.
func (ca *CA) leafTemplate(r Request, id mtls.Identity) (*x509.Certificate, error) {
	names := len(r.DNSNames) + len(r.IPAddresses)
	switch {
	case r.ID == "ca":
		return nil, fmt.Errorf("certs: party %q: reserved for the CA's files", r.ID)
	case r.Kind == mtls.KindServer && names == 0:
		return nil, fmt.Errorf("certs: server %q: needs a DNS name or IP address, the name clients dial it by", r.ID)
	case r.Kind != mtls.KindServer && names != 0:
		return nil, fmt.Errorf("certs: %s %q: only servers carry DNS names or IP addresses", r.Kind, r.ID)
	}
	notBefore, notAfter := r.NotBefore.Truncate(time.Second), r.NotAfter.Truncate(time.Second)
	if err := checkValidity(notBefore, notAfter); err != nil {
		return nil, err
	}
	if notBefore.Before(ca.Certificate.NotBefore) || notAfter.After(ca.Certificate.NotAfter) {
		return nil, fmt.Errorf("certs: party %q: validity %s to %s is not within the CA's, %s to %s", r.ID,
			rfc3339(notBefore), rfc3339(notAfter), rfc3339(ca.Certificate.NotBefore), rfc3339(ca.Certificate.NotAfter))
	}
	uri, err := url.Parse(id.String())
	if err != nil {
		return nil, fmt.Errorf("certs: party %q: %w", r.ID, err)
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{Organization: ca.Certificate.Subject.Organization, CommonName: r.ID},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{uri},
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if r.Kind == mtls.KindServer {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		tmpl.DNSNames, tmpl.IPAddresses = r.DNSNames, r.IPAddresses
	}
	return tmpl, nil
}

// Save writes the certificate to dir/<id>.crt and its key to dir/<id>.key
// (mode 0600), creating dir (mode 0700) if needed. It never overwrites: if
// either file exists, it writes nothing and fails with an error matching
// fs.ErrExist.
func (i *Issued) Save(dir string) error {
	return saveNew(dir, i.ID, i.Certificate, i.key)
}

// checkValidity rejects an empty validity period.
func checkValidity(notBefore, notAfter time.Time) error {
	if !notAfter.After(notBefore) {
		return fmt.Errorf("certs: NotAfter %s is not after NotBefore %s", rfc3339(notAfter), rfc3339(notBefore))
	}
	return nil
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// sign signs tmpl for key's public key with parent's key (a self-signed
// certificate when parent is nil) and returns the parsed certificate.
func sign(tmpl, parent *x509.Certificate, key *ecdsa.PrivateKey, parentKey crypto.Signer) (*x509.Certificate, error) {
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// saveNew writes cert and key as dir/name.crt and dir/name.key, both new:
// if either exists, it writes neither.
func saveNew(dir, name string, cert *x509.Certificate, key crypto.Signer) error {
	files, err := pemFiles(name, cert.Raw, key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("write %s: %w; certificates and keys are never overwritten", path, fs.ErrExist)
		}
	}
	var written []string
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		if err := atomicfile.Create(path, f.data, f.perm); err != nil {
			for _, p := range written {
				os.Remove(p)
			}
			return err
		}
		written = append(written, path)
	}
	return nil
}
