package oprf

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"time"

	voprf "github.com/cloudflare/circl/oprf"
	r255 "github.com/gtank/ristretto255"

	"github.com/veilmatch/veilmatch/internal/atomicfile"
)

// keyIDPattern keeps key ids short and printable: they travel in requests,
// list metadata and logs.
var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidKeyID reports whether id is an acceptable key id.
func ValidKeyID(id string) bool { return keyIDPattern.MatchString(id) }

// NewKeyID returns a fresh key id such as "k20261128-3fa9c2e1": the date
// helps operators see epochs, the random part keeps ids unique.
func NewKeyID(now time.Time) string {
	var r [4]byte
	_, _ = rand.Read(r[:]) // crypto/rand.Read never fails.
	return fmt.Sprintf("k%s-%x", now.UTC().Format("20060102"), r)
}

// PrivateKey is an OPRF private key with its key id and the chain of
// endorsements that vouches for it. It is deliberately not comparable with
// ==; use Equal.
type PrivateKey struct {
	_   [0]func()
	id  string
	k   *voprf.PrivateKey
	pub []byte // serialized k·G, computed once: what evaluations are proved against
	// scalar is k for the evaluator's group operations.
	scalar *r255.Scalar
	chain  []Endorsement // links ending at this key (a share: its group key), oldest first; never modified
	// share, for one share of a threshold key, says which; nil for a
	// whole key.
	share *shareOf
}

// shareOf places a share in its threshold key.
type shareOf struct {
	index int
	set   KeySet
}

// withChain returns a copy of k with another endorsement chain.
func (k *PrivateKey) withChain(chain []Endorsement) *PrivateKey {
	return &PrivateKey{id: k.id, k: k.k, pub: k.pub, scalar: k.scalar, chain: chain, share: k.share}
}

// newPrivateKey wraps k. circl derives and caches the public key lazily,
// without synchronization, on the first Public call — also inside every
// Evaluate — so it is derived here, once, before k is shared.
func newPrivateKey(id string, k *voprf.PrivateKey) (*PrivateKey, error) {
	pub, err := k.Public().MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("serialize public key: %w", err)
	}
	sb, err := k.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("serialize private key: %w", err)
	}
	scalar, err := decodeScalar(sb)
	clear(sb)
	if err != nil {
		return nil, fmt.Errorf("%w: private key: %v", ErrInvalidKey, err)
	}
	return &PrivateKey{id: id, k: k, pub: pub, scalar: scalar}, nil
}

// PublicKey is a key server's public key as clients pin it.
type PublicKey struct {
	// KeyID names the key (its epoch).
	KeyID string
	// Bytes is the RFC 9497 SerializeElement encoding.
	Bytes []byte
}

// GenerateKey returns a new random private key with the given id.
func GenerateKey(keyID string) (*PrivateKey, error) {
	if !ValidKeyID(keyID) {
		return nil, fmt.Errorf("%w: key id %q must match %s", ErrInvalidKey, keyID, keyIDPattern)
	}
	k, err := voprf.GenerateKey(suite, rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return newPrivateKey(keyID, k)
}

// NewPrivateKey builds a key from its RFC 9497 scalar serialization.
func NewPrivateKey(keyID string, scalar []byte) (*PrivateKey, error) {
	if !ValidKeyID(keyID) {
		return nil, fmt.Errorf("%w: key id %q must match %s", ErrInvalidKey, keyID, keyIDPattern)
	}
	if len(scalar) != ElementSize {
		return nil, fmt.Errorf("%w: private key has %d bytes, want %d", ErrInvalidKey, len(scalar), ElementSize)
	}
	k := new(voprf.PrivateKey)
	if err := k.UnmarshalBinary(suite, scalar); err != nil {
		return nil, fmt.Errorf("%w: private key is not a canonical non-zero scalar", ErrInvalidKey)
	}
	return newPrivateKey(keyID, k)
}

// KeyID returns the key's id.
func (k *PrivateKey) KeyID() string { return k.id }

// Public returns the public key tokens are made under: k·G, or for a share
// its group key.
func (k *PrivateKey) Public() PublicKey {
	if k.share != nil {
		return k.share.set.Public()
	}
	return PublicKey{KeyID: k.id, Bytes: bytes.Clone(k.pub)}
}

// Share reports, for one share of a threshold key, its index and the key
// set; ok is false for a whole key.
func (k *PrivateKey) Share() (index int, set KeySet, ok bool) {
	if k.share == nil {
		return 0, KeySet{}, false
	}
	return k.share.index, k.share.set.clone(), true
}

// Endorsements returns a copy of the key's endorsement chain: the links
// ending at this key, oldest first (see EndorseKey and VerifyChain).
func (k *PrivateKey) Endorsements() []Endorsement { return cloneChain(k.chain) }

// Equal reports whether two keys are the same, in constant time. It ignores
// their endorsements.
func (k *PrivateKey) Equal(o *PrivateKey) bool {
	a, errA := k.k.MarshalBinary()
	b, errB := o.k.MarshalBinary()
	return errA == nil && errB == nil && k.id == o.id && subtle.ConstantTimeCompare(a, b) == 1
}

// String never reveals key material.
func (k *PrivateKey) String() string { return "oprf.PrivateKey(" + k.id + ")" }

// GoString never reveals key material.
func (k *PrivateKey) GoString() string { return k.String() }

// keyFile is the JSON form of a key: the key file, and the value stored in
// Vault.
type keyFile struct {
	Suite        string            `json:"suite"`
	KeyID        string            `json:"key_id"`
	PrivateKey   string            `json:"private_key"`
	Share        *shareJSON        `json:"share,omitempty"`
	Endorsements []endorsementJSON `json:"endorsements,omitempty"`
}

// endorsementJSON is the JSON form of an Endorsement, byte strings in hex.
type endorsementJSON struct {
	KeyID       string `json:"key_id"`
	PublicKey   string `json:"public_key"`
	ByKeyID     string `json:"by_key_id"`
	ByPublicKey string `json:"by_public_key"`
	Proof       string `json:"proof"`
}

// endorsement decodes j; it does not verify the result.
func (j endorsementJSON) endorsement() (Endorsement, error) {
	e := Endorsement{KeyID: j.KeyID, ByKeyID: j.ByKeyID}
	for _, f := range []struct {
		name, hex string
		dst       *[]byte
	}{
		{"public_key", j.PublicKey, &e.PublicKey},
		{"by_public_key", j.ByPublicKey, &e.ByPublicKey},
		{"proof", j.Proof, &e.Proof},
	} {
		b, err := hex.DecodeString(f.hex)
		if err != nil {
			return Endorsement{}, fmt.Errorf("%w: %s is not hex", ErrBadEndorsement, f.name)
		}
		*f.dst = b
	}
	return e, nil
}

// MarshalKey returns the key file JSON for k, with its endorsements.
func MarshalKey(k *PrivateKey) ([]byte, error) {
	s, err := k.k.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("serialize private key: %w", err)
	}
	f := keyFile{Suite: SuiteID, KeyID: k.id, PrivateKey: hex.EncodeToString(s)}
	clear(s)
	if k.share != nil {
		f.Share = &shareJSON{Index: k.share.index, KeySet: keySetToJSON(k.share.set)}
	}
	f.Endorsements = endorsementsToJSON(k.chain)
	return json.MarshalIndent(f, "", "  ")
}

// ParseKey parses key file JSON. Its endorsements, if any, must be at most
// MaxChain valid links, each endorsing the next link's endorser, the last
// endorsing this key. Errors never include key material.
func ParseKey(data []byte) (*PrivateKey, error) {
	var f keyFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%w: not a key file (JSON with suite, key_id, private_key)", ErrInvalidKey)
	}
	if f.Suite != SuiteID {
		return nil, fmt.Errorf("%w: suite %q, want %q", ErrInvalidKey, f.Suite, SuiteID)
	}
	s, err := hex.DecodeString(f.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("%w: private_key is not hex", ErrInvalidKey)
	}
	k, err := NewPrivateKey(f.KeyID, s)
	clear(s)
	if err != nil {
		return nil, err
	}
	if f.Share != nil {
		if k, err = f.Share.place(k); err != nil {
			return nil, err
		}
	}
	chain, err := endorsementsFromJSON(f.Endorsements)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	if err := checkChain(chain, k.Public()); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	k.chain = chain
	return k, nil
}

// LoadKeyFile reads a key file. It refuses files that other users may read.
func LoadKeyFile(path string) (*PrivateKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load key file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("load key file %s: mode %04o lets other users read the OPRF key; chmod 600 it", path, st.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load key file: %w", err)
	}
	k, err := ParseKey(data)
	if err != nil {
		return nil, fmt.Errorf("load key file %s: %w", path, err)
	}
	return k, nil
}

// LoadOrCreateKeyFile loads the key file at path, first creating it with a
// new key (and a fresh key id) if it does not exist: the development setup's
// key survives restarts.
func LoadOrCreateKeyFile(path string) (*PrivateKey, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		k, err := GenerateKey(NewKeyID(time.Now()))
		if err != nil {
			return nil, err
		}
		if err := WriteKeyFile(path, k); err != nil {
			return nil, err
		}
	}
	return LoadKeyFile(path)
}

// WriteKeyFile writes k to a new file with mode 0600. It never overwrites an
// existing file: replacing a key silently would orphan every token made
// under it.
func WriteKeyFile(path string, k *PrivateKey) error {
	data, err := MarshalKey(k)
	if err != nil {
		return err
	}
	err = atomicfile.Create(path, append(data, '\n'), 0o600)
	clear(data)
	if err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	return nil
}

// endorsementsToJSON returns chain's JSON form.
func endorsementsToJSON(chain []Endorsement) []endorsementJSON {
	var out []endorsementJSON
	for _, e := range chain {
		out = append(out, endorsementJSON{
			KeyID:       e.KeyID,
			PublicKey:   hex.EncodeToString(e.PublicKey),
			ByKeyID:     e.ByKeyID,
			ByPublicKey: hex.EncodeToString(e.ByPublicKey),
			Proof:       hex.EncodeToString(e.Proof),
		})
	}
	return out
}

// endorsementsFromJSON decodes a chain; it does not verify it.
func endorsementsFromJSON(js []endorsementJSON) ([]Endorsement, error) {
	var out []Endorsement
	for i, j := range js {
		e, err := j.endorsement()
		if err != nil {
			return nil, fmt.Errorf("endorsement %d: %w", i, err)
		}
		out = append(out, e)
	}
	return out, nil
}
