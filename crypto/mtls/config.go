package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Files names the PEM files of one party: its certificate (leaf first,
// optionally followed by intermediates), its private key, and the CA
// certificates it trusts for its peers.
type Files struct {
	Cert, Key, CA string
}

// DevFiles returns the files of name in a directory laid out like certs/dev:
// dir/name.crt, dir/name.key and dir/ca.crt. With dir "." the names also work
// as paths in an fs.FS such as certs.DevFS.
func DevFiles(dir, name string) Files {
	return Files{
		Cert: filepath.Join(dir, name+".crt"),
		Key:  filepath.Join(dir, name+".key"),
		CA:   filepath.Join(dir, "ca.crt"),
	}
}

// ServerConfig loads f from disk and returns a TLS 1.3 server configuration
// that requires a client certificate chaining to f.CA. The client leaf must
// carry a SPIFFE ID in the trust domain of the server's own certificate, which
// must itself carry a SPIFFE ID; otherwise the handshake fails.
func ServerConfig(f Files) (*tls.Config, error) {
	return serverConfig(os.ReadFile, f)
}

// ServerConfigFS is ServerConfig with f's paths read from fsys.
func ServerConfigFS(fsys fs.FS, f Files) (*tls.Config, error) {
	return serverConfig(readFS(fsys), f)
}

// ClientConfig loads f from disk and returns a TLS 1.3 client configuration
// that presents f.Cert, trusts f.CA for the server, and checks the server's
// certificate against serverName (empty: the host being dialled). The server
// leaf must also carry a SPIFFE ID of kind server in the trust domain of the
// client's own certificate.
func ClientConfig(f Files, serverName string) (*tls.Config, error) {
	return clientConfig(os.ReadFile, f, serverName)
}

// ClientConfigFS is ClientConfig with f's paths read from fsys.
func ClientConfigFS(fsys fs.FS, f Files, serverName string) (*tls.Config, error) {
	return clientConfig(readFS(fsys), f, serverName)
}

type readFunc func(name string) ([]byte, error)

func readFS(fsys fs.FS) readFunc {
	return func(name string) ([]byte, error) { return fs.ReadFile(fsys, name) }
}

func serverConfig(read readFunc, f Files) (*tls.Config, error) {
	m, err := load(read, f)
	if err != nil {
		return nil, err
	}
	return m.serverConfig(), nil
}

func clientConfig(read readFunc, f Files, serverName string) (*tls.Config, error) {
	m, err := load(read, f)
	if err != nil {
		return nil, err
	}
	return m.clientConfig(serverName), nil
}

// serverConfig is the server configuration of ServerConfig for m.
func (m material) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS13,
		Certificates:     []tls.Certificate{m.cert},
		ClientAuth:       tls.RequireAndVerifyClientCert,
		ClientCAs:        m.roots,
		VerifyConnection: verifyPeer(m.id.TrustDomain, ""),
	}
}

// clientConfig is the client configuration of ClientConfig for m.
func (m material) clientConfig(serverName string) *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS13,
		Certificates:     []tls.Certificate{m.cert},
		RootCAs:          m.roots,
		ServerName:       serverName,
		VerifyConnection: verifyPeer(m.id.TrustDomain, KindServer),
	}
}

// verifyPeer returns a tls.Config.VerifyConnection callback that accepts a
// peer only if the leaf of its verified chain has a SPIFFE ID in trustDomain
// and, unless kind is empty, of that kind. It also runs on resumed sessions.
func verifyPeer(trustDomain, kind string) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		id, err := verifiedLeaf(cs.VerifiedChains)
		if err != nil {
			return err
		}
		if id.TrustDomain != trustDomain {
			return fmt.Errorf("%w: %s is outside trust domain %s", ErrUntrustedPeer, id, trustDomain)
		}
		if kind != "" && id.Kind != kind {
			return fmt.Errorf("%w: %s is not of kind %s", ErrUntrustedPeer, id, kind)
		}
		return nil
	}
}

// material is a loaded Files: key pair, its parsed leaf, trusted roots and
// own identity.
type material struct {
	cert  tls.Certificate
	leaf  *x509.Certificate
	roots *x509.CertPool
	id    Identity
}

func load(read readFunc, f Files) (material, error) {
	certPEM, err := read(f.Cert)
	if err != nil {
		return material{}, fmt.Errorf("load certificate %s: %w", f.Cert, err)
	}
	chain, err := parseCertificates(certPEM)
	if err != nil {
		return material{}, fmt.Errorf("load certificate %s: %w", f.Cert, err)
	}
	id, err := FromCertificate(chain[0])
	if err != nil {
		return material{}, fmt.Errorf("load certificate %s: %w", f.Cert, err)
	}
	keyPEM, err := read(f.Key)
	if err != nil {
		return material{}, fmt.Errorf("load key %s: %w", f.Key, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return material{}, fmt.Errorf("load key %s: %w", f.Key, err)
	}
	caPEM, err := read(f.CA)
	if err != nil {
		return material{}, fmt.Errorf("load CA %s: %w", f.CA, err)
	}
	cas, err := parseCertificates(caPEM)
	if err != nil {
		return material{}, fmt.Errorf("load CA %s: %w", f.CA, err)
	}
	roots := x509.NewCertPool()
	for _, ca := range cas {
		roots.AddCert(ca)
	}
	return material{cert: cert, leaf: chain[0], roots: roots, id: id}, nil
}

// parseCertificates parses every CERTIFICATE block in data, in order, and
// fails if there is none.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return certs, nil
}

// ForServer returns a copy of a client configuration that accepts only the
// server whose SPIFFE ID is spiffe://<trust domain>/server/<id>, so that one
// veilmatch server cannot stand in for another (the hub for the key server,
// say). The trust domain is the client certificate's own.
func ForServer(cfg *tls.Config, id string) (*tls.Config, error) {
	return forServer(cfg, id, func(got string) bool { return got == id })
}

// ForServerFamily is ForServer for a family of servers: it accepts the
// server id family itself and family-<name>, such as keyserver and
// keyserver-gb, the several key servers of a threshold key.
func ForServerFamily(cfg *tls.Config, family string) (*tls.Config, error) {
	return forServer(cfg, family, func(got string) bool { return InFamily(got, family) })
}

// InFamily reports whether a server id is family or family-<name>.
func InFamily(id, family string) bool {
	return id == family || strings.HasPrefix(id, family+"-") && len(id) > len(family)+1
}

func forServer(cfg *tls.Config, id string, match func(string) bool) (*tls.Config, error) {
	if len(cfg.Certificates) == 0 || cfg.Certificates[0].Leaf == nil && len(cfg.Certificates[0].Certificate) == 0 {
		return nil, errors.New("mtls: ForServer needs a client configuration with a certificate")
	}
	leaf := cfg.Certificates[0].Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(cfg.Certificates[0].Certificate[0]); err != nil {
			return nil, fmt.Errorf("mtls: parse client certificate: %w", err)
		}
	}
	own, err := FromCertificate(leaf)
	if err != nil {
		return nil, err
	}
	want := Identity{TrustDomain: own.TrustDomain, Kind: KindServer, ID: id}
	if _, err := ParseID(want.String()); err != nil {
		return nil, err
	}
	out := cfg.Clone()
	out.VerifyConnection = func(cs tls.ConnectionState) error {
		got, err := verifiedLeaf(cs.VerifiedChains)
		if err != nil {
			return err
		}
		if got.TrustDomain != want.TrustDomain || got.Kind != KindServer || !match(got.ID) {
			return fmt.Errorf("%w: connected to %s, expected %s", ErrUntrustedPeer, got, want)
		}
		return nil
	}
	return out, nil
}
