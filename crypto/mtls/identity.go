// Package mtls holds veilmatch's transport identity: SPIFFE-style IDs carried
// as URI SANs in X.509 certificates, and the mutual-TLS configurations that
// accept only peers presenting such an ID.
//
// An ID has the form spiffe://<trust-domain>/<kind>/<id>, where kind is one of
// "agency", "auditor" or "server". It is the only identity the services trust.
package mtls

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Kinds of party a SPIFFE ID can name.
const (
	KindAgency  = "agency"
	KindAuditor = "auditor"
	KindServer  = "server"
)

var (
	// ErrInvalidID reports a string or certificate SAN that is not a valid
	// veilmatch SPIFFE ID.
	ErrInvalidID = errors.New("mtls: invalid SPIFFE ID")
	// ErrNoID reports a certificate without a SPIFFE URI SAN.
	ErrNoID = errors.New("mtls: certificate has no SPIFFE ID")
	// ErrNoPeer reports a connection or context without a verified TLS peer.
	ErrNoPeer = errors.New("mtls: no verified TLS peer")
	// ErrUntrustedPeer reports a verified peer whose SPIFFE ID is outside the
	// local trust domain or of the wrong kind.
	ErrUntrustedPeer = errors.New("mtls: peer identity not accepted")
)

const scheme = "spiffe://"

var (
	trustDomainRE = regexp.MustCompile(`^[a-z0-9._-]{1,255}$`)
	idRE          = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
)

// Identity is a parsed SPIFFE ID: spiffe://TrustDomain/Kind/ID.
type Identity struct {
	TrustDomain string
	Kind        string
	ID          string
}

// String returns the SPIFFE ID, spiffe://<trust-domain>/<kind>/<id>.
func (i Identity) String() string {
	return scheme + i.TrustDomain + "/" + i.Kind + "/" + i.ID
}

// ParseID parses a SPIFFE ID strictly: the scheme must be spiffe, the trust
// domain non-empty (lower-case letters, digits, '.', '-', '_'), and the path
// exactly /<kind>/<id> with kind agency, auditor or server and id matching
// ^[a-z0-9][a-z0-9._-]{0,62}$. Ports, user info, queries, fragments and
// percent-encoding are rejected, so a parsed ID's String equals its input.
func ParseID(uri string) (Identity, error) {
	rest, ok := strings.CutPrefix(uri, scheme)
	if !ok {
		return Identity{}, fmt.Errorf("%w %q: scheme is not spiffe", ErrInvalidID, uri)
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return Identity{}, fmt.Errorf("%w %q: want spiffe://<trust-domain>/<kind>/<id>", ErrInvalidID, uri)
	}
	id := Identity{TrustDomain: parts[0], Kind: parts[1], ID: parts[2]}
	if !ValidTrustDomain(id.TrustDomain) {
		return Identity{}, fmt.Errorf("%w %q: bad trust domain", ErrInvalidID, uri)
	}
	switch id.Kind {
	case KindAgency, KindAuditor, KindServer:
	default:
		return Identity{}, fmt.Errorf("%w %q: kind is not agency, auditor or server", ErrInvalidID, uri)
	}
	if !ValidID(id.ID) {
		return Identity{}, fmt.Errorf("%w %q: bad id", ErrInvalidID, uri)
	}
	return id, nil
}

// ValidTrustDomain reports whether td may be the trust domain of a SPIFFE
// ID: 1 to 255 lower-case letters, digits, '.', '-' and '_'.
func ValidTrustDomain(td string) bool { return trustDomainRE.MatchString(td) }

// ValidID reports whether id may be the last segment of a SPIFFE ID: 1 to
// 63 lower-case letters, digits, '.', '-' and '_', starting with a letter or
// a digit.
func ValidID(id string) bool { return idRE.MatchString(id) }

// FromCertificate returns the SPIFFE ID of cert, which must carry exactly one
// URI SAN, and that one a valid SPIFFE ID. It does not verify the certificate.
func FromCertificate(cert *x509.Certificate) (Identity, error) {
	if cert == nil || len(cert.URIs) == 0 {
		return Identity{}, ErrNoID
	}
	if n := len(cert.URIs); n != 1 {
		return Identity{}, fmt.Errorf("%w: certificate has %d URI SANs, want exactly one", ErrInvalidID, n)
	}
	return ParseID(cert.URIs[0].String())
}

// FromContext returns the SPIFFE ID of the gRPC peer in ctx. Only the leaf of
// the verified chain is used; a connection without one yields ErrNoPeer.
func FromContext(ctx context.Context) (Identity, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return Identity{}, ErrNoPeer
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return Identity{}, ErrNoPeer
	}
	return verifiedLeaf(info.State.VerifiedChains)
}

// verifiedLeaf returns the SPIFFE ID of the leaf of the first verified chain.
func verifiedLeaf(chains [][]*x509.Certificate) (Identity, error) {
	if len(chains) == 0 || len(chains[0]) == 0 {
		return Identity{}, ErrNoPeer
	}
	return FromCertificate(chains[0][0])
}
