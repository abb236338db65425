package mtls

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Reloader holds one party's credentials loaded from Files and replaces
// them, without a restart, when Reload reads renewed files: a new
// certificate and key, a new client CA bundle, or both. Configurations from
// ServerConfig and ClientConfig take the credentials loaded last for every
// new handshake; established connections keep the ones they were made with.
// A Reloader is safe for concurrent use.
type Reloader struct {
	files Files
	mu    sync.Mutex // serializes Reload
	cur   atomic.Pointer[generation]
}

// generation is one load of a Reloader's files.
type generation struct {
	m material
	// server is the configuration of every server handshake made with m.
	server *tls.Config
}

// NewReloader loads f from disk with the checks of ServerConfig and
// ClientConfig, and also refuses a certificate that is expired or not yet
// valid. Errors name the file at fault.
func NewReloader(f Files) (*Reloader, error) {
	c, err := loadFiles(f)
	if err != nil {
		return nil, err
	}
	r := &Reloader{files: f}
	r.cur.Store(c)
	return r, nil
}

// Reload reads the files again and, if every one loads and passes the
// checks of NewReloader, hands the new credentials to new handshakes. The
// certificate must carry the SPIFFE ID the Reloader started with: an
// identity changes with a restart, not a reload. On error nothing changes:
// the previous credentials stay in force, and the error names the file at
// fault.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := loadFiles(r.files)
	if err != nil {
		return err
	}
	if was := r.cur.Load().m.id; c.m.id != was {
		return fmt.Errorf("load certificate %s: its SPIFFE ID %s is not %s, the one in use; restart the server to change its identity", r.files.Cert, c.m.id, was)
	}
	r.cur.Store(c)
	return nil
}

// loadFiles loads f and checks that its certificate is valid now.
func loadFiles(f Files) (*generation, error) {
	m, err := load(os.ReadFile, f)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	switch {
	case now.After(m.leaf.NotAfter):
		return nil, fmt.Errorf("load certificate %s: expired at %s", f.Cert, m.leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(m.leaf.NotBefore):
		return nil, fmt.Errorf("load certificate %s: not valid before %s", f.Cert, m.leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return &generation{m: m, server: m.serverConfig()}, nil
}

// ServerConfig returns a server configuration with the checks of the
// package's ServerConfig whose certificate and client CAs are, for every
// new handshake, those loaded last. It selects them in GetConfigForClient,
// whose configuration replaces this one for the handshake; to add a check
// to every handshake, use WithVerify: setting VerifyConnection on a clone
// would not apply.
func (r *Reloader) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ClientAuth: tls.RequireAndVerifyClientCert,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return r.cur.Load().server, nil
		},
	}
}

// ClientConfig returns a client configuration with the checks of the
// package's ClientConfig. The certificate it presents is, for every new
// handshake, the one loaded last; the CAs it trusts for the server are
// those loaded when ClientConfig is called, since a TLS client has no
// per-handshake configuration. Its Certificates hold the certificate loaded
// at that time, for ForServer to read the trust domain from.
func (r *Reloader) ClientConfig(serverName string) *tls.Config {
	cfg := r.cur.Load().m.clientConfig(serverName)
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return &r.cur.Load().m.cert, nil
	}
	return cfg
}

// NotAfter returns the expiry of the certificate loaded last.
func (r *Reloader) NotAfter() time.Time {
	return r.cur.Load().m.leaf.NotAfter
}

// WithVerify returns a copy of cfg whose handshakes also run check, after
// cfg's own VerifyConnection. Unlike setting VerifyConnection on a clone, it
// also covers the configurations a GetConfigForClient callback returns,
// which replace cfg for their handshakes (as in Reloader.ServerConfig).
func WithVerify(cfg *tls.Config, check func(tls.ConnectionState) error) *tls.Config {
	out := cfg.Clone()
	verify := cfg.VerifyConnection
	out.VerifyConnection = func(cs tls.ConnectionState) error {
		if verify != nil {
			if err := verify(cs); err != nil {
				return err
			}
		}
		return check(cs)
	}
	if get := cfg.GetConfigForClient; get != nil {
		out.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			c, err := get(hello)
			if err != nil || c == nil {
				return c, err
			}
			return WithVerify(c, check), nil
		}
	}
	return out
}
