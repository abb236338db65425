package mtls_test

import (
	"context"
	"crypto/x509"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/veilmatch/veilmatch/crypto/mtls"
)

func TestParseID(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want mtls.Identity
		ok   bool
	}{
		{"agency", "spiffe://veilmatch.dev/agency/police-gb", mtls.Identity{"veilmatch.dev", "agency", "police-gb"}, true},
		{"auditor", "spiffe://veilmatch.dev/auditor/auditor", mtls.Identity{"veilmatch.dev", "auditor", "auditor"}, true},
		{"server", "spiffe://example.org/server/keyserver", mtls.Identity{"example.org", "server", "keyserver"}, true},
		{"id punctuation", "spiffe://td/agency/a.b_c-9", mtls.Identity{"td", "agency", "a.b_c-9"}, true},
		{"id 63 chars", "spiffe://td/agency/" + strings.Repeat("a", 63), mtls.Identity{"td", "agency", strings.Repeat("a", 63)}, true},

		{"empty", "", mtls.Identity{}, false},
		{"no scheme", "veilmatch.dev/agency/police-gb", mtls.Identity{}, false},
		{"https scheme", "https://veilmatch.dev/agency/police-gb", mtls.Identity{}, false},
		{"upper-case scheme", "SPIFFE://veilmatch.dev/agency/police-gb", mtls.Identity{}, false},
		{"opaque", "spiffe:veilmatch.dev/agency/police-gb", mtls.Identity{}, false},
		{"empty trust domain", "spiffe:///agency/police-gb", mtls.Identity{}, false},
		{"upper-case trust domain", "spiffe://Veilmatch.dev/agency/police-gb", mtls.Identity{}, false},
		{"port", "spiffe://veilmatch.dev:443/agency/police-gb", mtls.Identity{}, false},
		{"user info", "spiffe://u@veilmatch.dev/agency/police-gb", mtls.Identity{}, false},
		{"trust domain only", "spiffe://veilmatch.dev", mtls.Identity{}, false},
		{"root path", "spiffe://veilmatch.dev/", mtls.Identity{}, false},
		{"one segment", "spiffe://veilmatch.dev/agency", mtls.Identity{}, false},
		{"three segments", "spiffe://veilmatch.dev/agency/police/gb", mtls.Identity{}, false},
		{"trailing slash", "spiffe://veilmatch.dev/agency/police-gb/", mtls.Identity{}, false},
		{"double slash", "spiffe://veilmatch.dev//agency/police-gb", mtls.Identity{}, false},
		{"unknown kind", "spiffe://veilmatch.dev/admin/root", mtls.Identity{}, false},
		{"upper-case kind", "spiffe://veilmatch.dev/Agency/police-gb", mtls.Identity{}, false},
		{"empty id", "spiffe://veilmatch.dev/agency/", mtls.Identity{}, false},
		{"upper-case id", "spiffe://veilmatch.dev/agency/Police-GB", mtls.Identity{}, false},
		{"id leading dot", "spiffe://veilmatch.dev/agency/.hidden", mtls.Identity{}, false},
		{"id dot dot", "spiffe://veilmatch.dev/agency/..", mtls.Identity{}, false},
		{"id leading dash", "spiffe://veilmatch.dev/agency/-x", mtls.Identity{}, false},
		{"id 64 chars", "spiffe://td/agency/" + strings.Repeat("a", 64), mtls.Identity{}, false},
		{"id percent", "spiffe://veilmatch.dev/agency/police%2dgb", mtls.Identity{}, false},
		{"query", "spiffe://veilmatch.dev/agency/police-gb?x=1", mtls.Identity{}, false},
		{"fragment", "spiffe://veilmatch.dev/agency/police-gb#x", mtls.Identity{}, false},
		{"space", "spiffe://veilmatch.dev/agency/police gb", mtls.Identity{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mtls.ParseID(tt.in)
			if !tt.ok {
				if !errors.Is(err, mtls.ErrInvalidID) {
					t.Fatalf("ParseID(%q) = %v, %v; want ErrInvalidID", tt.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseID(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseID(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if s := got.String(); s != tt.in {
				t.Errorf("String() = %q, want %q", s, tt.in)
			}
		})
	}
}

func FuzzParseID(f *testing.F) {
	f.Add("spiffe://veilmatch.dev/agency/police-gb")
	f.Add("spiffe://veilmatch.dev/server/hub")
	f.Add("spiffe://veilmatch.dev/agency/a/b")
	f.Fuzz(func(t *testing.T, in string) {
		id, err := mtls.ParseID(in)
		if err != nil {
			return
		}
		if s := id.String(); s != in {
			t.Fatalf("ParseID(%q).String() = %q", in, s)
		}
	})
}

func TestFromCertificate(t *testing.T) {
	uris := func(ss ...string) []*url.URL {
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
	tests := []struct {
		name    string
		cert    *x509.Certificate
		want    mtls.Identity
		wantErr error
	}{
		{"one spiffe URI", &x509.Certificate{URIs: uris("spiffe://veilmatch.dev/agency/police-us")}, mtls.Identity{"veilmatch.dev", "agency", "police-us"}, nil},
		{"nil", nil, mtls.Identity{}, mtls.ErrNoID},
		{"no URI", &x509.Certificate{DNSNames: []string{"localhost"}}, mtls.Identity{}, mtls.ErrNoID},
		{"https URI", &x509.Certificate{URIs: uris("https://veilmatch.dev/agency/police-us")}, mtls.Identity{}, mtls.ErrInvalidID},
		{"two spiffe URIs", &x509.Certificate{URIs: uris("spiffe://veilmatch.dev/agency/a", "spiffe://veilmatch.dev/agency/b")}, mtls.Identity{}, mtls.ErrInvalidID},
		{"spiffe and other URI", &x509.Certificate{URIs: uris("spiffe://veilmatch.dev/agency/a", "https://example.org")}, mtls.Identity{}, mtls.ErrInvalidID},
		{"bad kind", &x509.Certificate{URIs: uris("spiffe://veilmatch.dev/admin/a")}, mtls.Identity{}, mtls.ErrInvalidID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mtls.FromCertificate(tt.cert)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("FromCertificate() error = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("FromCertificate() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestFromContextWithoutPeer(t *testing.T) {
	if _, err := mtls.FromContext(context.Background()); !errors.Is(err, mtls.ErrNoPeer) {
		t.Fatalf("FromContext(no peer) error = %v, want ErrNoPeer", err)
	}
}
