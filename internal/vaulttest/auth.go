package vaulttest

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
)

// token is a Vault service token.
type token struct {
	id, accessor string
	policies     []string
	path         string // the auth path that made it
	meta         map[string]string
	ttl, maxTTL  time.Duration
	renewable    bool
	issued       time.Time
	expires      time.Time // zero: never
	maxExpires   time.Time // zero: no cap
}

type tokenOptions struct {
	policies    []string
	ttl, maxTTL time.Duration
	renewable   bool
	path        string
	meta        map[string]string
}

// appRole is an AppRole with its one secret id.
type appRole struct {
	name     string
	secretID string
	opts     RoleOptions
}

// newToken stores and returns a new token. s.mu must be held.
func (s *Server) newToken(o tokenOptions) string {
	var b [18]byte
	_, _ = rand.Read(b[:])
	now := time.Now()
	t := &token{
		id:        "hvs." + base64.RawURLEncoding.EncodeToString(b[:]),
		accessor:  uuid(),
		policies:  o.policies,
		path:      o.path,
		meta:      o.meta,
		ttl:       o.ttl,
		maxTTL:    o.maxTTL,
		renewable: o.renewable && o.ttl > 0,
		issued:    now,
	}
	if o.ttl > 0 {
		t.expires = now.Add(o.ttl)
	}
	if o.maxTTL > 0 {
		t.maxExpires = now.Add(o.maxTTL)
		if t.expires.IsZero() || t.expires.After(t.maxExpires) {
			t.expires = t.maxExpires
		}
	}
	s.tokens[t.id] = t
	return t.id
}

// lookupToken returns the live token with the given id, or nil; expired
// tokens are revoked. s.mu must be held.
func (s *Server) lookupToken(id string) *token {
	t := s.tokens[id]
	if t == nil {
		return nil
	}
	if !t.expires.IsZero() && !time.Now().Before(t.expires) {
		delete(s.tokens, id)
		return nil
	}
	return t
}

// ttlSeconds is the token's remaining lifetime, rounded to seconds as
// Vault's TTLs are (0: never expires).
func (t *token) ttlSeconds() int {
	if t.expires.IsZero() {
		return 0
	}
	return int(time.Until(t.expires).Round(time.Second).Seconds())
}

// auth is the "auth" block of a login or renewal response.
func (t *token) auth() map[string]any {
	return map[string]any{
		"client_token":    t.id,
		"accessor":        t.accessor,
		"policies":        t.policies,
		"token_policies":  t.policies,
		"metadata":        t.meta,
		"lease_duration":  t.ttlSeconds(),
		"renewable":       t.renewable,
		"entity_id":       "",
		"token_type":      "service",
		"orphan":          true,
		"mfa_requirement": nil,
		"num_uses":        0,
	}
}

func (s *Server) lookupSelf(w http.ResponseWriter, t *token) {
	var expire any
	if !t.expires.IsZero() {
		expire = timeString(t.expires)
	}
	respond(w, "token", map[string]any{
		"accessor":         t.accessor,
		"creation_time":    t.issued.Unix(),
		"creation_ttl":     int(t.ttl.Seconds()),
		"display_name":     strings.ReplaceAll(strings.TrimPrefix(t.path, "auth/"), "/", "-"),
		"entity_id":        "",
		"expire_time":      expire,
		"explicit_max_ttl": int(t.maxTTL.Seconds()),
		"id":               t.id,
		"issue_time":       timeString(t.issued),
		"meta":             t.meta,
		"num_uses":         0,
		"orphan":           true,
		"path":             t.path,
		"policies":         t.policies,
		"renewable":        t.renewable,
		"ttl":              t.ttlSeconds(),
		"type":             "service",
	})
}

func (s *Server) renewSelf(w http.ResponseWriter, t *token, body map[string]any) {
	if !t.renewable {
		fail(w, http.StatusBadRequest, "lease is not renewable")
		return
	}
	inc, _ := durationParam(body["increment"])
	if inc <= 0 {
		inc = t.ttl
	}
	var warnings []string
	t.expires = time.Now().Add(inc)
	if !t.maxExpires.IsZero() && t.expires.After(t.maxExpires) {
		t.expires = t.maxExpires
		warnings = append(warnings, fmt.Sprintf("TTL of %q exceeded the effective max_ttl of %q; TTL value is capped accordingly",
			inc.String(), time.Until(t.maxExpires).Round(time.Second).String()))
	}
	reply(w, http.StatusOK, envelope{RequestID: uuid(), Auth: t.auth(), Warnings: warnings})
}

func (s *Server) appRoleLogin(w http.ResponseWriter, body map[string]any) {
	roleID, _ := body["role_id"].(string)
	secretID, _ := body["secret_id"].(string)
	if roleID == "" {
		fail(w, http.StatusBadRequest, "missing role_id")
		return
	}
	role := s.roles[roleID]
	if role == nil || secretID != role.secretID {
		fail(w, http.StatusBadRequest, "invalid role or secret ID")
		return
	}
	id := s.newToken(tokenOptions{
		policies:  append([]string{"default"}, role.opts.Policies...),
		ttl:       role.opts.TokenTTL,
		maxTTL:    role.opts.TokenMaxTTL,
		renewable: true,
		path:      "auth/approle/login",
		meta:      map[string]string{"role_name": role.name},
	})
	reply(w, http.StatusOK, envelope{RequestID: uuid(), Auth: s.tokens[id].auth()})
}

// Policy is a Vault ACL policy: path patterns and their capabilities
// ("create", "read", "update", "delete", "list", "patch", "deny"). A
// pattern is an exact path or ends in "*" to match every path with that
// prefix; the most specific matching pattern of a policy applies, and "deny"
// wins. As in Vault, every token may also look itself up and renew itself.
type Policy map[string][]string

var (
	policyComment = regexp.MustCompile(`(?m)(#|//).*$`)
	policyBlock   = regexp.MustCompile(`path\s+"([^"]+)"\s*\{([^}]*)\}`)
	policyCaps    = regexp.MustCompile(`^\s*capabilities\s*=\s*\[([^\]]*)\]\s*$`)
)

// ParsePolicy parses the subset of Vault's HCL policy syntax that policy
// files normally use: `path "PATTERN" { capabilities = ["read", ...] }`
// blocks and comments.
func ParsePolicy(hcl string) (Policy, error) {
	hcl = policyComment.ReplaceAllString(hcl, "")
	p := Policy{}
	for _, m := range policyBlock.FindAllStringSubmatch(hcl, -1) {
		caps := policyCaps.FindStringSubmatch(m[2])
		if caps == nil {
			return nil, fmt.Errorf("vaulttest: policy path %q: want exactly `capabilities = [...]`", m[1])
		}
		for _, c := range strings.Split(caps[1], ",") {
			if c = strings.Trim(strings.TrimSpace(c), `"`); c != "" {
				p[m[1]] = append(p[m[1]], c)
			}
		}
	}
	if len(p) == 0 {
		return nil, errors.New("vaulttest: policy has no path blocks")
	}
	return p, nil
}

// defaultPolicy is the part of Vault's default policy that matters here.
var defaultPolicy = Policy{
	"auth/token/lookup-self": {"read"},
	"auth/token/renew-self":  {"update"},
}

// allowed reports whether t's policies grant capability on path. s.mu must
// be held.
func (s *Server) allowed(t *token, path, capability string) bool {
	if slices.Contains(t.policies, "root") {
		return true
	}
	var caps []string
	for _, name := range append([]string{"default"}, t.policies...) {
		p := s.policies[name]
		if name == "default" {
			p = defaultPolicy
		}
		caps = append(caps, p.match(path)...)
	}
	return !slices.Contains(caps, "deny") && slices.Contains(caps, capability)
}

// match returns the capabilities of the most specific pattern matching path:
// the exact path, else the longest matching glob.
func (p Policy) match(path string) []string {
	if caps, ok := p[path]; ok {
		return caps
	}
	best := ""
	for pattern := range p {
		prefix, glob := strings.CutSuffix(pattern, "*")
		if glob && strings.HasPrefix(path, prefix) && len(pattern) > len(best) {
			best = pattern
		}
	}
	return p[best]
}
