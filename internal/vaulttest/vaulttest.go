// Package vaulttest is an in-process HashiCorp Vault for tests: an
// httptest TLS server that answers, with Vault's request and response JSON
// shapes and status codes, exactly the endpoints veilmatch uses, so that
// tests drive it through the real github.com/hashicorp/vault/api client.
//
// It covers, under /v1/:
//
//   - GET  sys/health (unauthenticated)
//   - POST auth/approle/login (unauthenticated): role_id and secret_id
//   - GET  auth/token/lookup-self, POST auth/token/renew-self: tokens have
//     TTLs that really expire (an expired token gets 403) and a max TTL that
//     caps renewal
//   - KV v2 at each mount enabled with [Server.EnableKV]:
//     GET and POST <mount>/data/<path> (versions, options.cas, ?version=N,
//     404 with metadata for deleted or destroyed versions),
//     GET <mount>/metadata/<path>, POST <mount>/delete/<path> and
//     POST <mount>/destroy/<path> (versions list); 10 versions are kept
//   - Transit at each mount enabled with [Server.EnableTransit]:
//     GET and POST <mount>/keys/<name> (types ed25519 and aes256-gcm96),
//     POST <mount>/keys/<name>/rotate, POST <mount>/sign/<name> and
//     POST <mount>/verify/<name> with real Ed25519 signatures
//     ("vault:v<N>:<base64>", key_version honoured)
//
// PUT is accepted wherever POST is, as Vault does. Every other token-bearing
// request is checked against the token's policies (see [Policy]): outside
// them the answer is 403 {"errors":["permission denied"]}, as is any request
// with a missing, unknown or expired token. The root token may do anything.
// Unmounted paths get Vault's 404 "no handler for route". The
// X-Vault-Namespace header of every request is recorded (see
// [Server.Requests]); namespaces do not partition the data.
//
// [Server.Stop] and [Server.Start] take the server down (connections are
// refused) and bring it back on the same address with its state intact.
package vaulttest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is a running test Vault.
type Server struct {
	// Addr is the server's address, such as https://127.0.0.1:41234: the
	// VAULT_ADDR of clients.
	Addr string
	// CACert is the path of a PEM file with the certificate clients must
	// trust (VAULT_CACERT).
	CACert string
	// CACertPEM is the content of CACert.
	CACertPEM []byte
	// RootToken is a token that may do anything and never expires.
	RootToken string

	srv *httptest.Server
	lis *switchListener

	mu       sync.Mutex
	kv       map[string]map[string]*kvSecret // mount → path → secret
	transit  map[string]map[string]*transitKey
	tokens   map[string]*token
	policies map[string]Policy
	roles    map[string]*appRole // by role id
	requests []Request
}

// Request is one request the server received.
type Request struct {
	Method    string
	Path      string // without the /v1/ prefix or the query
	Namespace string // X-Vault-Namespace, if any
}

// New starts a server and closes it when the test ends.
func New(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{
		kv:       map[string]map[string]*kvSecret{},
		transit:  map[string]map[string]*transitKey{},
		tokens:   map[string]*token{},
		policies: map[string]Policy{},
		roles:    map[string]*appRole{},
	}
	s.RootToken = s.newToken(tokenOptions{policies: []string{"root"}, path: "auth/token/root"})
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serveHTTP))
	// Clients that distrust the certificate, or a Stop mid-handshake, are
	// expected; the client side reports them.
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.lis = &switchListener{l: s.srv.Listener, addr: s.srv.Listener.Addr(), wake: closedChan()}
	s.srv.Listener = s.lis
	s.srv.StartTLS()
	tb.Cleanup(s.srv.Close)
	s.Addr = s.srv.URL
	s.CACertPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
	s.CACert = filepath.Join(tb.TempDir(), "vault-ca.pem")
	if err := os.WriteFile(s.CACert, s.CACertPEM, 0o644); err != nil {
		tb.Fatalf("vaulttest: write CA certificate: %v", err)
	}
	return s
}

// Stop takes the server down: open connections are closed and new ones are
// refused until Start.
func (s *Server) Stop() {
	s.lis.stop()
	s.srv.CloseClientConnections()
}

// Start brings a stopped server back on the same address.
func (s *Server) Start() error { return s.lis.start() }

// EnableKV mounts a KV version 2 secrets engine at mount, such as "secret".
func (s *Server) EnableKV(mount string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kv[strings.Trim(mount, "/")] = map[string]*kvSecret{}
}

// EnableTransit mounts a Transit secrets engine at mount, such as "transit".
func (s *Server) EnableTransit(mount string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.transit[strings.Trim(mount, "/")] = map[string]*transitKey{}
}

// CreateSigningKey creates an ed25519 Transit key at mount/name, as
// `vault write -f transit/keys/NAME type=ed25519` does; mount must be
// enabled.
func (s *Server) CreateSigningKey(mount, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := s.transit[strings.Trim(mount, "/")]
	if keys == nil || keys[name] != nil {
		panic(fmt.Sprintf("vaulttest: transit mount %q not enabled or key %q exists", mount, name))
	}
	k := &transitKey{name: name, typ: "ed25519", versions: map[int]*transitVersion{}}
	k.rotate()
	keys[name] = k
}

// SetPolicy defines (or replaces) the named policy.
func (s *Server) SetPolicy(name string, p Policy) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.policies[name] = p
}

// TokenOptions configures a token made by CreateToken.
type TokenOptions struct {
	// Policies are the names of the token's policies (see SetPolicy).
	Policies []string
	// TTL is the token's lifetime, and what a renewal extends it by; zero
	// means it never expires.
	TTL time.Duration
	// MaxTTL caps the lifetime across renewals; zero means no cap.
	MaxTTL time.Duration
	// Renewable lets renew-self extend the token.
	Renewable bool
}

// CreateToken returns a new token.
func (s *Server) CreateToken(o TokenOptions) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newToken(tokenOptions{policies: o.Policies, ttl: o.TTL, maxTTL: o.MaxTTL, renewable: o.Renewable, path: "auth/token/create"})
}

// RoleOptions configures an AppRole.
type RoleOptions struct {
	// Policies are the names of the policies of the role's tokens.
	Policies []string
	// TokenTTL and TokenMaxTTL are the TTL and max TTL of the role's tokens,
	// which are renewable.
	TokenTTL, TokenMaxTTL time.Duration
}

// AddAppRole creates an AppRole named name and returns its role id and one
// secret id.
func (s *Server) AddAppRole(name string, o RoleOptions) (roleID, secretID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	roleID, secretID = uuid(), uuid()
	s.roles[roleID] = &appRole{name: name, secretID: secretID, opts: o}
	return roleID, secretID
}

// Requests returns the requests received so far, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Count returns how many requests had the given method and path.
func (s *Server) Count(method, path string) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Method == method && r.Path == path {
			n++
		}
	}
	return n
}

// TokenValid reports whether tok exists and has not expired.
func (s *Server) TokenValid(tok string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lookupToken(tok) != nil
}

// envelope is the body of every successful Vault response.
type envelope struct {
	RequestID     string   `json:"request_id"`
	LeaseID       string   `json:"lease_id"`
	Renewable     bool     `json:"renewable"`
	LeaseDuration int      `json:"lease_duration"`
	Data          any      `json:"data"`
	WrapInfo      any      `json:"wrap_info"`
	Warnings      []string `json:"warnings"`
	Auth          any      `json:"auth"`
	MountType     string   `json:"mount_type"`
}

// reply writes a response. A nil body means 204 No Content.
func reply(w http.ResponseWriter, status int, body any) {
	if body == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// respond writes a 200 response with data (and warnings, if any).
func respond(w http.ResponseWriter, mountType string, data any, warnings ...string) {
	reply(w, http.StatusOK, envelope{RequestID: uuid(), Data: data, Warnings: warnings, MountType: mountType})
}

// fail writes Vault's error body {"errors":[...]}.
func fail(w http.ResponseWriter, status int, msgs ...string) {
	if msgs == nil {
		msgs = []string{}
	}
	reply(w, status, map[string][]string{"errors": msgs})
}

func denied(w http.ResponseWriter) { fail(w, http.StatusForbidden, "permission denied") }

// handler serves one routed request with the server's lock held.
type handler func(w http.ResponseWriter, body map[string]any, query map[string][]string)

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	path, found := strings.CutPrefix(r.URL.Path, "/v1/")
	if !found {
		fail(w, http.StatusNotFound)
		return
	}
	method := r.Method
	if method == http.MethodPut {
		method = http.MethodPost
	}
	if method == http.MethodGet && r.URL.Query().Get("list") == "true" {
		method = "LIST"
	}
	var body map[string]any
	if r.ContentLength != 0 && (method == http.MethodPost || method == http.MethodPatch) {
		dec := json.NewDecoder(r.Body)
		dec.UseNumber()
		if err := dec.Decode(&body); err != nil {
			fail(w, http.StatusBadRequest, "failed to parse JSON input: "+err.Error())
			return
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, Request{Method: method, Path: path, Namespace: r.Header.Get("X-Vault-Namespace")})

	switch {
	case path == "sys/health" && method == http.MethodGet:
		s.health(w)
		return
	case path == "auth/approle/login" && method == http.MethodPost:
		s.appRoleLogin(w, body)
		return
	}
	tok := s.lookupToken(r.Header.Get("X-Vault-Token"))
	if tok == nil {
		denied(w)
		return
	}
	h, capability := s.route(tok, method, path)
	if !s.allowed(tok, path, capability) {
		denied(w)
		return
	}
	if h == nil {
		fail(w, http.StatusNotFound, fmt.Sprintf("no handler for route %q. route entry not found.", path))
		return
	}
	h(w, body, r.URL.Query())
}

// route finds the handler for a request and the capability it needs.
func (s *Server) route(tok *token, method, path string) (handler, string) {
	capability := map[string]string{
		http.MethodGet: "read", http.MethodPost: "update", http.MethodDelete: "delete", "LIST": "list", http.MethodPatch: "patch",
	}[method]
	switch {
	case path == "auth/token/lookup-self" && method == http.MethodGet:
		return func(w http.ResponseWriter, _ map[string]any, _ map[string][]string) { s.lookupSelf(w, tok) }, capability
	case path == "auth/token/renew-self" && method == http.MethodPost:
		return func(w http.ResponseWriter, body map[string]any, _ map[string][]string) { s.renewSelf(w, tok, body) }, capability
	}
	if mount, rest := longestMount(s.kv, path); mount != "" {
		return s.kvRoute(s.kv[mount], method, rest)
	}
	if mount, rest := longestMount(s.transit, path); mount != "" {
		return s.transitRoute(s.transit[mount], method, rest)
	}
	return nil, capability
}

func (s *Server) health(w http.ResponseWriter) {
	reply(w, http.StatusOK, map[string]any{
		"initialized": true, "sealed": false, "standby": false, "performance_standby": false,
		"replication_performance_mode": "disabled", "replication_dr_mode": "disabled",
		"server_time_utc": time.Now().Unix(), "version": "1.21.0", "enterprise": false,
		"cluster_name": "vaulttest", "cluster_id": "00000000-0000-0000-0000-000000000000",
	})
}

// longestMount returns the longest mount in mounts that path is under, and
// the rest of the path.
func longestMount[V any](mounts map[string]V, path string) (mount, rest string) {
	for m := range mounts {
		if r, found := strings.CutPrefix(path, m+"/"); found && len(m) > len(mount) {
			mount, rest = m, r
		}
	}
	return mount, rest
}

// uuid returns a random UUID-shaped string, as Vault's ids are.
func uuid() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// timeString formats t as Vault does, RFC 3339 with nanoseconds, or "" for
// the zero time.
func timeString(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// intParam reads an integer parameter sent as a JSON number or a string.
func intParam(v any) (int, bool) {
	switch v := v.(type) {
	case json.Number:
		n, err := v.Int64()
		return int(n), err == nil
	case string:
		var n int
		_, err := fmt.Sscan(v, &n)
		return n, err == nil
	}
	return 0, false
}

// durationParam reads a duration sent as seconds or a Go duration string.
func durationParam(v any) (time.Duration, bool) {
	if n, ok := intParam(v); ok {
		return time.Duration(n) * time.Second, true
	}
	if str, ok := v.(string); ok {
		d, err := time.ParseDuration(str)
		return d, err == nil
	}
	return 0, false
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[int]V) []int {
	ks := make([]int, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Ints(ks)
	return ks
}

// base64Param decodes a standard base64 parameter.
func base64Param(v any) ([]byte, bool) {
	str, ok := v.(string)
	if !ok {
		return nil, false
	}
	b, err := base64.StdEncoding.DecodeString(str)
	return b, err == nil
}

// switchListener is a listener that can be closed and reopened on the same
// address, so that a server can go down and come back.
type switchListener struct {
	addr net.Addr

	mu     sync.Mutex
	l      net.Listener  // nil while stopped
	wake   chan struct{} // closed when l is set or the listener is closed
	closed bool
}

func closedChan() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

func (s *switchListener) Accept() (net.Conn, error) {
	for {
		s.mu.Lock()
		l, wake, closed := s.l, s.wake, s.closed
		s.mu.Unlock()
		if closed {
			return nil, net.ErrClosed
		}
		if l == nil {
			<-wake
			continue
		}
		c, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			stopped := s.l != l
			s.mu.Unlock()
			if stopped {
				continue
			}
			return nil, err
		}
		return c, nil
	}
}

func (s *switchListener) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.l != nil && !s.closed {
		s.l.Close()
		s.l = nil
		s.wake = make(chan struct{})
	}
}

func (s *switchListener) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.l != nil || s.closed {
		return nil
	}
	l, err := net.Listen("tcp", s.addr.String())
	if err != nil {
		return fmt.Errorf("vaulttest: listen again on %s: %w", s.addr, err)
	}
	s.l = l
	close(s.wake)
	return nil
}

func (s *switchListener) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.l == nil {
		close(s.wake)
		return nil
	}
	return s.l.Close()
}

func (s *switchListener) Addr() net.Addr { return s.addr }
