package vaulttest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// transitKey is a named Transit key ring.
type transitKey struct {
	name     string
	typ      string // "ed25519" or "aes256-gcm96"
	versions map[int]*transitVersion
	latest   int
}

type transitVersion struct {
	priv    ed25519.PrivateKey // nil for aes256-gcm96 (which is never used)
	created time.Time
}

func (k *transitKey) rotate() {
	v := &transitVersion{created: time.Now()}
	if k.typ == "ed25519" {
		_, v.priv, _ = ed25519.GenerateKey(rand.Reader)
	}
	k.latest++
	k.versions[k.latest] = v
}

// info is the body of a read-key response.
func (k *transitKey) info() map[string]any {
	keys := map[string]any{}
	for n, v := range k.versions {
		if k.typ == "ed25519" {
			keys[strconv.Itoa(n)] = map[string]any{
				"name":              "ed25519",
				"public_key":        base64.StdEncoding.EncodeToString(v.priv.Public().(ed25519.PublicKey)),
				"certificate_chain": "",
				"creation_time":     timeString(v.created),
				"hybrid_public_key": "",
			}
		} else {
			keys[strconv.Itoa(n)] = v.created.Unix()
		}
	}
	signing := k.typ == "ed25519"
	return map[string]any{
		"name": k.name, "type": k.typ, "keys": keys, "latest_version": k.latest,
		"derived": false, "deletion_allowed": false, "exportable": false, "allow_plaintext_backup": false,
		"min_available_version": 0, "min_decryption_version": 1, "min_encryption_version": 0,
		"supports_encryption": !signing, "supports_decryption": !signing, "supports_signing": signing,
		"supports_derivation": true, "auto_rotate_period": 0, "imported_key": false,
	}
}

// transitRoute routes a request under a Transit mount.
func (s *Server) transitRoute(keys map[string]*transitKey, method, rest string) (handler, string) {
	parts := strings.Split(rest, "/")
	if len(parts) < 2 || parts[1] == "" {
		return nil, "read"
	}
	op, name := parts[0], parts[1]
	k := keys[name]
	switch {
	case op == "keys" && len(parts) == 2 && method == http.MethodGet:
		return func(w http.ResponseWriter, _ map[string]any, _ map[string][]string) {
			if k == nil {
				fail(w, http.StatusNotFound)
				return
			}
			respond(w, "transit", k.info())
		}, "read"
	case op == "keys" && len(parts) == 2 && method == http.MethodPost:
		capability := "update"
		if k == nil {
			capability = "create"
		}
		return func(w http.ResponseWriter, body map[string]any, _ map[string][]string) {
			s.transitCreate(w, keys, name, body)
		}, capability
	case op == "keys" && len(parts) == 3 && parts[2] == "rotate" && method == http.MethodPost:
		return func(w http.ResponseWriter, _ map[string]any, _ map[string][]string) {
			if k == nil {
				fail(w, http.StatusBadRequest, "key not found")
				return
			}
			k.rotate()
			respond(w, "transit", k.info())
		}, "update"
	case op == "sign" && len(parts) <= 3 && method == http.MethodPost:
		return func(w http.ResponseWriter, body map[string]any, _ map[string][]string) { s.transitSign(w, k, body) }, "update"
	case op == "verify" && len(parts) <= 3 && method == http.MethodPost:
		return func(w http.ResponseWriter, body map[string]any, _ map[string][]string) { s.transitVerify(w, k, body) }, "update"
	}
	return nil, "read"
}

func (s *Server) transitCreate(w http.ResponseWriter, keys map[string]*transitKey, name string, body map[string]any) {
	typ, _ := body["type"].(string)
	if typ == "" {
		typ = "aes256-gcm96"
	}
	if typ != "ed25519" && typ != "aes256-gcm96" {
		fail(w, http.StatusBadRequest, fmt.Sprintf("unknown key type %q", typ))
		return
	}
	if k := keys[name]; k != nil {
		respond(w, "transit", k.info(), fmt.Sprintf("key %s already existed", name))
		return
	}
	k := &transitKey{name: name, typ: typ, versions: map[int]*transitVersion{}}
	k.rotate()
	keys[name] = k
	respond(w, "transit", k.info())
}

// signingVersion returns the key version a sign request asks for.
func signingVersion(w http.ResponseWriter, k *transitKey, body map[string]any) (*transitVersion, int, bool) {
	if k == nil {
		fail(w, http.StatusBadRequest, "signing key not found")
		return nil, 0, false
	}
	if k.typ != "ed25519" {
		fail(w, http.StatusBadRequest, fmt.Sprintf("key type %s does not support signing", k.typ))
		return nil, 0, false
	}
	n := k.latest
	if raw, set := body["key_version"]; set {
		v, valid := intParam(raw)
		if !valid || v < 0 {
			fail(w, http.StatusBadRequest, "invalid key_version")
			return nil, 0, false
		}
		if v > k.latest {
			fail(w, http.StatusBadRequest, "requested version for signing is higher than the latest key version")
			return nil, 0, false
		}
		if v > 0 {
			n = v
		}
	}
	return k.versions[n], n, true
}

func (s *Server) transitSign(w http.ResponseWriter, k *transitKey, body map[string]any) {
	v, n, found := signingVersion(w, k, body)
	if !found {
		return
	}
	input, valid := base64Param(body["input"])
	if !valid {
		fail(w, http.StatusBadRequest, "unable to decode input as base64")
		return
	}
	sig := ed25519.Sign(v.priv, input)
	respond(w, "transit", map[string]any{
		"signature":   fmt.Sprintf("vault:v%d:%s", n, base64.StdEncoding.EncodeToString(sig)),
		"key_version": n,
	})
}

func (s *Server) transitVerify(w http.ResponseWriter, k *transitKey, body map[string]any) {
	if k == nil {
		fail(w, http.StatusBadRequest, "signature verification key not found")
		return
	}
	input, valid := base64Param(body["input"])
	if !valid {
		fail(w, http.StatusBadRequest, "unable to decode input as base64")
		return
	}
	sigText, _ := body["signature"].(string)
	rest, found := strings.CutPrefix(sigText, "vault:v")
	verText, sigB64, found2 := strings.Cut(rest, ":")
	n, err := strconv.Atoi(verText)
	sig, err2 := base64.StdEncoding.DecodeString(sigB64)
	if !found || !found2 || err != nil || err2 != nil {
		fail(w, http.StatusBadRequest, "invalid signature")
		return
	}
	v := k.versions[n]
	if v == nil || k.typ != "ed25519" {
		fail(w, http.StatusBadRequest, "invalid key version")
		return
	}
	respond(w, "transit", map[string]any{"valid": ed25519.Verify(v.priv.Public().(ed25519.PublicKey), input, sig)})
}
