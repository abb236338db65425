package keys

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/hashicorp/vault/api"

	"github.com/veilmatch/veilmatch/server/audit"
)

// transitSigner signs checkpoints with a Vault Transit ed25519 key.
type transitSigner struct {
	v         *Vault
	signPath  string // <mount>/sign/<key>
	keyPath   string // <mount>/keys/<key>
	version   int    // the pinned key version
	pub       ed25519.PublicKey
	name      string
	hash      uint32
	vkey      string
	vaultName string // "vault:v<version>:", the signature prefix
}

// TransitSigner returns a checkpoint signer named noteName (the log's
// origin) backed by the Transit key keyName in the Transit mount mount. It
// reads <mount>/keys/<keyName>, which must be a non-derived ed25519 key,
// and pins its latest version: the verifier key is built from that
// version's public key, and every signature is made with that version
// (key_version), so rotating the Transit key does not change what auditors
// verify until the signer is made again.
//
// Sign asks Vault to sign (<mount>/sign/<keyName>); when Vault is down it
// returns an error and the caller keeps its last signed checkpoint.
func (v *Vault) TransitSigner(ctx context.Context, mount, keyName, noteName string) (Signer, error) {
	keyPath := mount + "/keys/" + keyName
	var sec *api.Secret
	err := v.do(ctx, "read", keyPath, func(ctx context.Context) (err error) {
		sec, err = v.client.Logical().ReadWithContext(ctx, keyPath)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("keys: transit signer: %w", err)
	}
	if sec == nil || sec.Data == nil {
		return nil, fmt.Errorf("keys: transit signer: vault at %s has no key %s (create it with `vault write -f %s type=ed25519`): %w",
			v.addr, keyPath, keyPath, ErrNotFound)
	}
	if typ, _ := sec.Data["type"].(string); typ != "ed25519" {
		return nil, fmt.Errorf("keys: transit signer: key %s has type %q, want ed25519", keyPath, typ)
	}
	if derived, _ := sec.Data["derived"].(bool); derived {
		return nil, fmt.Errorf("keys: transit signer: key %s uses key derivation; create it without derived=true", keyPath)
	}
	version, ok := intValue(sec.Data["latest_version"])
	if !ok || version < 1 {
		return nil, fmt.Errorf("keys: transit signer: key %s has no latest_version", keyPath)
	}
	versions, _ := sec.Data["keys"].(map[string]any)
	entry, _ := versions[strconv.Itoa(version)].(map[string]any)
	pubText, _ := entry["public_key"].(string)
	pub, err := base64.StdEncoding.DecodeString(pubText)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("keys: transit signer: key %s version %d has no Ed25519 public key", keyPath, version)
	}
	vkey, err := audit.VerifierKey(noteName, pub)
	if err != nil {
		return nil, fmt.Errorf("keys: transit signer: %w", err)
	}
	verifier, err := audit.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("keys: transit signer: %w", err)
	}
	v.log.Info("transit checkpoint signer ready", "key", keyPath, "key_version", version, "verifier_key", vkey)
	return &transitSigner{
		v:         v,
		signPath:  mount + "/sign/" + keyName,
		keyPath:   keyPath,
		version:   version,
		pub:       pub,
		name:      noteName,
		hash:      verifier.KeyHash(),
		vkey:      vkey,
		vaultName: "vault:v" + strconv.Itoa(version) + ":",
	}, nil
}

// Name returns the note key name.
func (s *transitSigner) Name() string { return s.name }

// KeyHash returns the hash in the verifier key.
func (s *transitSigner) KeyHash() uint32 { return s.hash }

// VerifierKey returns the note verifier key auditors pin.
func (s *transitSigner) VerifierKey() string { return s.vkey }

// String names the key without anything secret (there is nothing secret
// here: the private key stays in Vault).
func (s *transitSigner) String() string {
	return fmt.Sprintf("keys.TransitSigner(%s v%d, %s)", s.keyPath, s.version, s.vkey)
}

// Sign returns the raw 64-byte Ed25519 signature of msg made by Vault. It
// checks the signature against the pinned public key before returning it.
func (s *transitSigner) Sign(msg []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(s.v.ctx, opTimeout)
	defer cancel()
	var sec *api.Secret
	err := s.v.do(ctx, "sign", s.signPath, func(ctx context.Context) (err error) {
		sec, err = s.v.client.Logical().WriteWithContext(ctx, s.signPath, map[string]any{
			"input":       base64.StdEncoding.EncodeToString(msg),
			"key_version": s.version,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("keys: transit sign: %w", err)
	}
	var text string
	if sec != nil {
		text, _ = sec.Data["signature"].(string)
	}
	b64, found := strings.CutPrefix(text, s.vaultName)
	sig, err := base64.StdEncoding.DecodeString(b64)
	if !found || err != nil || len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("keys: transit sign: vault at %s returned no %q Ed25519 signature from %s", s.v.addr, s.vaultName, s.signPath)
	}
	if !ed25519.Verify(s.pub, msg, sig) {
		return nil, fmt.Errorf("keys: transit sign: the signature from %s does not verify with version %d of %s", s.signPath, s.version, s.keyPath)
	}
	return sig, nil
}

// intValue reads a JSON number as decoded by vault/api (json.Number).
func intValue(v any) (int, bool) {
	switch v := v.(type) {
	case json.Number:
		n, err := v.Int64()
		return int(n), err == nil
	case float64:
		return int(v), v == float64(int(v))
	case int:
		return v, true
	}
	return 0, false
}
