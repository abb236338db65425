package oprf

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/zk/dl"
)

// MaxChain is the most endorsement links a key carries: EndorseKey drops
// the oldest links beyond it and ParseKey refuses longer chains.
const MaxChain = 32

// endorsementProofSize is the length of a serialized endorsement proof:
// the commitment V (an element) followed by the response R (a scalar).
const endorsementProofSize = 2 * ElementSize

// endorsementUserID is the Schnorr proof's userID. It separates endorsement
// proofs from every other use of the key.
var endorsementUserID = []byte("veilmatch/v1 key endorsement")

// Errors about key endorsements. Callers branch on them with errors.Is.
var (
	// ErrBadEndorsement reports a malformed endorsement, one whose proof
	// does not verify, or one that contradicts a trusted key.
	ErrBadEndorsement = errors.New("oprf: bad key endorsement")
	// ErrKeyNotVouched reports a key that no chain of valid endorsements
	// links to a trusted key.
	ErrKeyNotVouched = errors.New("oprf: key not vouched for by a trusted key")
)

// Endorsement states that the key (KeyID, PublicKey) is endorsed by the key
// (ByKeyID, ByPublicKey): a client that trusts the endorsing key may trust
// the endorsed one. Proof is a Schnorr proof of knowledge of the endorsing
// private key, bound to all four fields.
type Endorsement struct {
	// KeyID is the id of the endorsed key.
	KeyID string
	// PublicKey is the endorsed public key, RFC 9497 SerializeElement.
	PublicKey []byte
	// ByKeyID is the id of the endorsing key.
	ByKeyID string
	// ByPublicKey is the endorsing public key, RFC 9497 SerializeElement.
	ByPublicKey []byte
	// Proof is the serialized proof, V (32 bytes) || R (32 bytes).
	Proof []byte
}

// Endorse returns by's endorsement of key. A key cannot endorse itself: key
// must differ from by in both key id and public key.
//
// The proof uses the OPRF private key k as the witness of a Schnorr proof
// of knowledge (github.com/cloudflare/circl/zk/dl). That is acceptable: it
// is a different protocol, domain-separated by its own userID; the OPRF
// gives nothing towards forging it, since its oracle returns k·B for points
// B of the caller's choice, never a Schnorr response r = v - c·k for a
// nonce v the prover fixed before the challenge c; and the proof, being
// zero-knowledge, tells OPRF clients nothing about k.
func Endorse(by *PrivateKey, key PublicKey) (Endorsement, error) {
	if by.share != nil {
		return Endorsement{}, fmt.Errorf("%w: key %q is one share of a threshold key, which no single share can speak for", ErrBadEndorsement, by.id)
	}
	if !ValidKeyID(key.KeyID) {
		return Endorsement{}, fmt.Errorf("%w: endorsed key id is not a valid key id", ErrInvalidKey)
	}
	if _, err := decodeElement(key.Bytes); err != nil {
		return Endorsement{}, fmt.Errorf("%w: endorsed key %q: %w", ErrInvalidKey, key.KeyID, err)
	}
	if key.KeyID == by.id || subtle.ConstantTimeCompare(key.Bytes, by.pub) == 1 {
		return Endorsement{}, fmt.Errorf("%w: key %q cannot endorse itself", ErrBadEndorsement, by.id)
	}
	e := Endorsement{
		KeyID:       key.KeyID,
		PublicKey:   bytes.Clone(key.Bytes),
		ByKeyID:     by.id,
		ByPublicKey: bytes.Clone(by.pub),
	}
	if err := e.prove(by); err != nil {
		return Endorsement{}, err
	}
	return e, nil
}

// prove sets e.Proof to by's proof for e's other fields, which the caller
// has checked, ByKeyID and ByPublicKey being by's.
func (e *Endorsement) prove(by *PrivateKey) error {
	byPub, err := circlElement(by.pub)
	if err != nil {
		return fmt.Errorf("endorse: %w", err)
	}
	g := group.Ristretto255
	sb, err := by.k.MarshalBinary()
	if err != nil {
		return fmt.Errorf("serialize private key: %w", err)
	}
	sk := g.NewScalar()
	err = sk.UnmarshalBinary(sb)
	clear(sb)
	if err != nil {
		return fmt.Errorf("%w: private key is not a canonical scalar", ErrInvalidKey)
	}
	p := dl.Prove(g, g.Generator(), byPub, sk, endorsementUserID, e.transcript(), rand.Reader)
	sk.SetUint64(0)

	v, err := p.V.MarshalBinary()
	if err != nil {
		return fmt.Errorf("serialize endorsement proof: %w", err)
	}
	r, err := p.R.MarshalBinary()
	if err != nil {
		return fmt.Errorf("serialize endorsement proof: %w", err)
	}
	e.Proof = append(v, r...)
	return nil
}

// transcript returns the proof's otherInfo: ByKeyID, ByPublicKey, KeyID and
// PublicKey, each preceded by its length as a big-endian uint16, so no two
// endorsements share a transcript. Callers first check that the fields are
// valid, hence short.
func (e Endorsement) transcript() []byte {
	var b []byte
	for _, f := range [][]byte{[]byte(e.ByKeyID), e.ByPublicKey, []byte(e.KeyID), e.PublicKey} {
		b = binary.BigEndian.AppendUint16(b, uint16(len(f)))
		b = append(b, f...)
	}
	return b
}

// Verify checks that e is well formed and that its proof verifies. Errors
// wrap ErrBadEndorsement and name the key ids, never key bytes.
func (e Endorsement) Verify() error {
	if !ValidKeyID(e.KeyID) || !ValidKeyID(e.ByKeyID) {
		return fmt.Errorf("%w: key id is not a valid key id", ErrBadEndorsement)
	}
	if e.KeyID == e.ByKeyID || bytes.Equal(e.PublicKey, e.ByPublicKey) {
		return e.failf("a key cannot endorse itself")
	}
	if _, err := decodeElement(e.PublicKey); err != nil {
		return e.failf("endorsed public key: %v", err)
	}
	byPub, err := circlElement(e.ByPublicKey)
	if err != nil {
		return e.failf("endorsing public key: %v", err)
	}
	if len(e.Proof) != endorsementProofSize {
		return e.failf("proof has %d bytes, want %d", len(e.Proof), endorsementProofSize)
	}
	v, err := circlElement(e.Proof[:ElementSize])
	if err != nil {
		return e.failf("proof commitment: %v", err)
	}
	g := group.Ristretto255
	r := g.NewScalar()
	if err := r.UnmarshalBinary(e.Proof[ElementSize:]); err != nil {
		return e.failf("proof response is not a canonical scalar")
	}
	if !dl.Verify(g, g.Generator(), byPub, dl.Proof{V: v, R: r}, endorsementUserID, e.transcript()) {
		return e.failf("proof does not verify")
	}
	return nil
}

// failf returns an error wrapping ErrBadEndorsement that names e's key ids,
// which the caller has checked are valid.
func (e Endorsement) failf(format string, a ...any) error {
	return fmt.Errorf("%w: key %q endorsed by %q: %s", ErrBadEndorsement, e.KeyID, e.ByKeyID, fmt.Sprintf(format, a...))
}

// VerifyChain decides whether target is vouched for. Starting from the
// trusted keys, it accepts every link of chain, in any order, whose
// endorsing key is trusted and whose proof verifies, and trusts the key it
// endorses; a key is trusted when both its id and its public key equal
// those of a trusted key. It returns the keys it came to trust, in the order
// it accepted them, for the caller to pin; nil if target was trusted
// already.
//
// Links that fail verification are skipped. A link from a trusted key that
// endorses a trusted key id with another public key fails the whole chain,
// with an error wrapping ErrBadEndorsement: a key id names one key forever.
// If target does not become trusted, the error wraps ErrKeyNotVouched and
// names the first link that failed, if any.
func VerifyChain(trusted []PublicKey, chain []Endorsement, target PublicKey) ([]PublicKey, error) {
	known := trusted[:len(trusted):len(trusted)] // appends must not write into trusted
	if isTrusted(known, target.KeyID, target.Bytes) {
		return nil, nil
	}
	var added []PublicKey
	var failed error
	done := make([]bool, len(chain))
	for progress := true; progress; {
		progress = false
		for i, e := range chain {
			if done[i] || !isTrusted(known, e.ByKeyID, e.ByPublicKey) {
				continue
			}
			done[i] = true
			if err := e.Verify(); err != nil {
				if failed == nil {
					failed = fmt.Errorf("link %d: %w", i, err)
				}
				continue
			}
			if isTrusted(known, e.KeyID, e.PublicKey) {
				continue
			}
			if idTrusted(known, e.KeyID) {
				return nil, fmt.Errorf("%w: key %q: link %d: %w", ErrKeyNotVouched, target.KeyID, i,
					e.failf("key id %q is already trusted with another public key", e.KeyID))
			}
			k := PublicKey{KeyID: e.KeyID, Bytes: bytes.Clone(e.PublicKey)}
			known = append(known, k)
			added = append(added, k)
			progress = true
		}
	}
	if isTrusted(known, target.KeyID, target.Bytes) {
		return added, nil
	}
	if failed != nil {
		return nil, fmt.Errorf("%w: key %q: %w", ErrKeyNotVouched, target.KeyID, failed)
	}
	return nil, fmt.Errorf("%w: key %q", ErrKeyNotVouched, target.KeyID)
}

// isTrusted reports whether keys holds the key with this id and public key.
func isTrusted(keys []PublicKey, id string, pub []byte) bool {
	for _, k := range keys {
		if k.KeyID == id && subtle.ConstantTimeCompare(k.Bytes, pub) == 1 {
			return true
		}
	}
	return false
}

// idTrusted reports whether keys holds a key with this id.
func idTrusted(keys []PublicKey, id string) bool {
	for _, k := range keys {
		if k.KeyID == id {
			return true
		}
	}
	return false
}

// EndorseKey returns next carrying prev's endorsement chain, without its
// oldest links beyond MaxChain-1, followed by a new link in which prev
// endorses next. next itself is unchanged; the result is Equal to it.
func EndorseKey(prev, next *PrivateKey) (*PrivateKey, error) {
	link, err := Endorse(prev, next.Public())
	if err != nil {
		return nil, err
	}
	chain := cloneChain(prev.chain[max(0, len(prev.chain)-(MaxChain-1)):])
	chain = append(chain, link)
	if err := checkChain(chain, next.Public()); err != nil {
		return nil, err
	}
	return next.withChain(chain), nil
}

// checkChain checks that chain is at most MaxChain valid links, each
// endorsing the next link's endorser, with no key id twice, and that the
// last link endorses key. An empty chain is fine.
func checkChain(chain []Endorsement, key PublicKey) error {
	if len(chain) == 0 {
		return nil
	}
	if len(chain) > MaxChain {
		return fmt.Errorf("%w: %d endorsements, at most %d", ErrBadEndorsement, len(chain), MaxChain)
	}
	seen := map[string]bool{chain[0].ByKeyID: true}
	for i, e := range chain {
		if err := e.Verify(); err != nil {
			return fmt.Errorf("endorsement %d: %w", i, err)
		}
		if i > 0 && (e.ByKeyID != chain[i-1].KeyID || !bytes.Equal(e.ByPublicKey, chain[i-1].PublicKey)) {
			return fmt.Errorf("endorsement %d: %w", i, e.failf("endorser is not the key endorsed by endorsement %d", i-1))
		}
		if seen[e.KeyID] {
			return fmt.Errorf("endorsement %d: %w", i, e.failf("key id %q occurs twice in the chain", e.KeyID))
		}
		seen[e.KeyID] = true
	}
	if last := chain[len(chain)-1]; last.KeyID != key.KeyID || !bytes.Equal(last.PublicKey, key.Bytes) {
		return fmt.Errorf("%w: the last endorsement is not for key %q (id and public key)", ErrBadEndorsement, key.KeyID)
	}
	return nil
}

// cloneChain returns a deep copy of chain, nil if it is empty.
func cloneChain(chain []Endorsement) []Endorsement {
	if len(chain) == 0 {
		return nil
	}
	out := make([]Endorsement, len(chain))
	for i, e := range chain {
		out[i] = Endorsement{
			KeyID:       e.KeyID,
			PublicKey:   bytes.Clone(e.PublicKey),
			ByKeyID:     e.ByKeyID,
			ByPublicKey: bytes.Clone(e.ByPublicKey),
			Proof:       bytes.Clone(e.Proof),
		}
	}
	return out
}
