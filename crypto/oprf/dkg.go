package oprf

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/hpke"
	"github.com/cloudflare/circl/kem"
	"github.com/cloudflare/circl/secretsharing"
	"github.com/cloudflare/circl/zk/dl"
)

// Distributed key generation: a threshold key that no machine ever holds
// whole. n participants run Pedersen's DKG (Joint-Feldman verifiable
// secret sharing with complaints) by exchanging public messages, each
// keeping a secret state between rounds:
//
//  1. Hello: participant i publishes the HPKE public key its shares are
//     encrypted to (NewDKG).
//  2. Deal: dealer i draws a random polynomial f_i of degree t-1 and
//     publishes Feldman commitments to its coefficients, a Schnorr proof of
//     knowledge of f_i(0) bound to the ceremony and its index (so no dealer
//     can publish a commitment whose discrete log it does not know, such
//     as one that cancels the others'), and f_i(j) HPKE-encrypted to every
//     other participant j.
//  3. Complain: participant j names the dealers whose deal is malformed or
//     whose share for j does not decrypt or verify.
//  4. Reveal: a dealer complained against publishes the complainers'
//     shares in clear; the complainers already hold them, and fewer than t
//     points tell nothing of f_i. A dealer with t or more complaints is
//     disqualified and reveals nothing.
//  5. Finish: every participant computes the same qualified set QUAL from
//     the public messages alone, its share x_j = Σ_{i∈QUAL} f_i(j), the
//     group key Y = Σ f_i(0)·G and every share key from the commitments.
//
// Resharing (reshare.go) runs the same rounds with old shares as the
// dealers' constant terms.
//
// The messages are not signed: the ceremony relies on an authenticated
// bulletin board — every participant must receive the same messages, each
// from the participant it names, as when key officers carry their own
// files. Finish needs the hellos and the complaints of all n
// participants; a missing deal disqualifies its dealer and a missing
// reveal reveals nothing. A message of another ceremony (key id,
// generation) or a second message from one participant stops the round
// with an error naming it. Shares travel only HPKE-encrypted (X25519, HKDF-SHA256,
// ChaCha20-Poly1305), bound to the key id, generation, n, t, dealer and
// recipient, and to the deal's commitments. As is known of Pedersen's DKG
// (Gennaro, Jarecki, Krawczyk and Rabin, 1999), participants who deviate
// can bias the distribution of the group key; fewer than t of them learn
// nothing of the key or of shares they were not sent.

// ErrCeremony reports a failed step of a key ceremony (DKG or resharing).
var ErrCeremony = errors.New("oprf: key ceremony failed")

// hpkeSuite encrypts shares to their recipients.
var hpkeSuite = hpke.NewSuite(hpke.KEM_X25519_HKDF_SHA256, hpke.KDF_HKDF_SHA256, hpke.AEAD_ChaCha20Poly1305)

// Domain separation of the ceremony's proofs and encryptions.
var (
	dkgProofUserID = []byte("veilmatch/v1 dkg dealer")
	labelDKGProof  = "veilmatch/v1 dkg proof of knowledge"
	labelSeal      = "veilmatch/v1 key ceremony share"
)

// dkgProofSize is the length of a serialized proof of knowledge: V || R.
const dkgProofSize = 2 * ElementSize

// DKGParams are the public parameters of a DKG: the key id of the group
// key, n participants and threshold t.
type DKGParams struct {
	KeyID string
	N, T  int
}

// DKGHello announces a receiver of a ceremony's shares: a DKG participant
// or a new holder in a resharing. KeyID, Generation (of the key set the
// ceremony makes: 1 for a DKG), N and T name the ceremony. Its JSON form
// is {"key_id", "generation", "n", "t", "index", "hpke_public_key": hex}.
type DKGHello struct {
	KeyID      string
	Generation uint64
	N, T       int
	// Index is the receiver's share index, 1 to N.
	Index int
	// PublicKey is the receiver's HPKE (X25519) public key.
	PublicKey []byte
}

// DKGDeal is one dealer's public deal. Its JSON form is {"key_id",
// "generation", "dealer", "commitments": array of hex, "proof": hex
// (omitted when empty), "shares": [{"to", "ciphertext": hex}]}.
type DKGDeal struct {
	KeyID      string
	Generation uint64
	// Dealer is the dealer's index: its participant index in a DKG, its
	// old share index in a resharing.
	Dealer int
	// Commitments are a_k·G for the coefficients a_0 … a_{t-1} of the
	// dealer's polynomial, serialized elements.
	Commitments [][]byte
	// Proof is, in a DKG, the Schnorr proof of knowledge of a_0 (V || R);
	// empty in a resharing, where a_0·G must be the dealer's old share key.
	Proof []byte
	// Shares are the shares for the receivers, encrypted.
	Shares []SealedShare
}

// SealedShare is a dealer's share for one receiver: the HPKE encapsulated
// key followed by the AEAD ciphertext of the share's scalar.
type SealedShare struct {
	To         int
	Ciphertext []byte
}

// DKGComplaints lists the dealers a receiver complains about; empty if
// every deal was good. Every receiver publishes one. Its JSON form is
// {"key_id", "generation", "index", "against": array of dealer indices}.
type DKGComplaints struct {
	KeyID      string `json:"key_id"`
	Generation uint64 `json:"generation"`
	Index      int    `json:"index"`
	Against    []int  `json:"against"`
}

// DKGReveal answers the complaints against a dealer with the complainers'
// shares in clear. Every dealer publishes one, empty if no one complained.
// Its JSON form is {"key_id", "generation", "dealer", "shares": [{"to",
// "share": hex}]}.
type DKGReveal struct {
	KeyID      string
	Generation uint64
	Dealer     int
	Shares     []RevealedShare
}

// RevealedShare is a share revealed in answer to receiver To's complaint:
// a serialized scalar.
type RevealedShare struct {
	To    int
	Value []byte
}

// ceremony is what binds a sharing's messages: a DKG, or a resharing of
// old.
type ceremony struct {
	keyID      string
	generation uint64        // of the key set made: 1 for a DKG
	n, t       int           // receivers and threshold of the new sharing
	old        *KeySet       // resharing: the key set reshared; nil for a DKG
	chain      []Endorsement // what the new shares carry
}

func (c ceremony) dkg() bool { return c.old == nil }

// dealers returns the number of dealer indices, which run from 1.
func (c ceremony) dealers() int {
	if c.dkg() {
		return c.n
	}
	return len(c.old.Shares)
}

func (c ceremony) String() string {
	return fmt.Sprintf("key %q generation %d, %d-of-%d", c.keyID, c.generation, c.t, c.n)
}

// ceremony checks p and returns its ceremony.
func (p DKGParams) ceremony() (ceremony, error) {
	if !ValidKeyID(p.KeyID) {
		return ceremony{}, fmt.Errorf("%w: key id %q must match %s", ErrCeremony, p.KeyID, keyIDPattern)
	}
	if p.T < 1 || p.T > p.N || p.N > MaxShares {
		return ceremony{}, fmt.Errorf("%w: %d-of-%d: want 1 ≤ t ≤ n ≤ %d", ErrCeremony, p.T, p.N, MaxShares)
	}
	return ceremony{keyID: p.KeyID, generation: 1, n: p.N, t: p.T}, nil
}

// bind returns the context a proof or encryption is bound to: label, the
// ceremony, the dealer and the recipient (0 for none).
func (c ceremony) bind(label string, dealer, to int) []byte {
	b := appendLen16(nil, []byte(label))
	b = appendLen16(b, []byte(c.keyID))
	b = binary.BigEndian.AppendUint64(b, c.generation)
	for _, v := range []int{c.n, c.t, dealer, to} {
		b = binary.BigEndian.AppendUint16(b, uint16(v))
	}
	return b
}

// errorf returns an error wrapping ErrCeremony.
func errorf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrCeremony, fmt.Sprintf(format, a...))
}

// header checks that a message of kind from index belongs to c, whose
// indices for that kind run from 1 to limit.
func (c ceremony) header(kind string, keyID string, generation uint64, index, limit int) error {
	if keyID != c.keyID || generation != c.generation {
		return errorf("%s %d is for key %q generation %d, not %s", kind, index, keyID, generation, c)
	}
	if index < 1 || index > limit {
		return errorf("%s index %d: indices run from 1 to %d", kind, index, limit)
	}
	return nil
}

// hello returns receiver index's hello, and its new HPKE private key.
func (c ceremony) hello(index int) (*DKGHello, kem.PrivateKey, error) {
	if index < 1 || index > c.n {
		return nil, nil, errorf("participant index %d: indices run from 1 to %d", index, c.n)
	}
	pk, sk, err := hpke.KEM_X25519_HKDF_SHA256.Scheme().GenerateKeyPair()
	if err != nil {
		return nil, nil, fmt.Errorf("generate HPKE key: %w", err)
	}
	pb, err := pk.MarshalBinary()
	if err != nil {
		return nil, nil, fmt.Errorf("serialize HPKE key: %w", err)
	}
	return &DKGHello{KeyID: c.keyID, Generation: c.generation, N: c.n, T: c.t, Index: index, PublicKey: pb}, sk, nil
}

// helloKeys checks that hellos are the n receivers' of c, each index once,
// and returns their HPKE public keys by index-1.
func (c ceremony) helloKeys(hellos []*DKGHello) ([]kem.PublicKey, error) {
	if len(hellos) != c.n {
		return nil, errorf("%d hellos for %d participants", len(hellos), c.n)
	}
	keys := make([]kem.PublicKey, c.n)
	for _, h := range hellos {
		if h == nil {
			return nil, errorf("a missing hello")
		}
		if h.N != c.n || h.T != c.t {
			return nil, errorf("hello %d is for a %d-of-%d key, not %s", h.Index, h.T, h.N, c)
		}
		if err := c.header("hello", h.KeyID, h.Generation, h.Index, c.n); err != nil {
			return nil, err
		}
		if keys[h.Index-1] != nil {
			return nil, errorf("two hellos with index %d", h.Index)
		}
		pk, err := hpke.KEM_X25519_HKDF_SHA256.Scheme().UnmarshalBinaryPublicKey(h.PublicKey)
		if err != nil {
			return nil, errorf("hello %d: invalid HPKE public key", h.Index)
		}
		keys[h.Index-1] = pk
	}
	return keys, nil
}

// deal shares secret with a fresh random polynomial of degree t-1: it
// returns dealer's deal, encrypted to keys (in a DKG, not to the dealer
// itself), and the shares for receivers 1 to n.
func (c ceremony) deal(dealer int, secret group.Scalar, keys []kem.PublicKey) (*DKGDeal, []group.Scalar, error) {
	ss := secretsharing.New(rand.Reader, uint(c.t-1), secret)
	comms := ss.CommitSecret()
	d := &DKGDeal{KeyID: c.keyID, Generation: c.generation, Dealer: dealer}
	for k, cm := range comms {
		b, err := cm.MarshalBinaryCompress()
		if err != nil {
			return nil, nil, fmt.Errorf("serialize commitment %d: %w", k, err)
		}
		d.Commitments = append(d.Commitments, b)
	}
	if c.dkg() {
		var err error
		if d.Proof, err = c.prove(dealer, secret, comms[0]); err != nil {
			return nil, nil, err
		}
	}
	aad := bytes.Join(d.Commitments, nil)
	shares := make([]group.Scalar, c.n)
	for j, sh := range ss.Share(uint(c.n)) {
		shares[j] = sh.Value
		if c.dkg() && j+1 == dealer {
			continue
		}
		ct, err := c.seal(keys[j], dealer, j+1, sh.Value, aad)
		if err != nil {
			return nil, nil, err
		}
		d.Shares = append(d.Shares, SealedShare{To: j + 1, Ciphertext: ct})
	}
	return d, shares, nil
}

// prove returns the proof of knowledge of secret, a DKG dealer's a_0, for
// its commitment c0.
func (c ceremony) prove(dealer int, secret group.Scalar, c0 group.Element) ([]byte, error) {
	g := group.Ristretto255
	p := dl.Prove(g, g.Generator(), c0, secret, dkgProofUserID, c.bind(labelDKGProof, dealer, 0), rand.Reader)
	v, err := p.V.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("serialize proof: %w", err)
	}
	r, err := p.R.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("serialize proof: %w", err)
	}
	return append(v, r...), nil
}

// verifyProof checks a DKG dealer's proof of knowledge for c0.
func (c ceremony) verifyProof(dealer int, proof []byte, c0 group.Element) bool {
	if len(proof) != dkgProofSize {
		return false
	}
	v, err := circlElement(proof[:ElementSize])
	if err != nil {
		return false
	}
	r, err := circlScalar(proof[ElementSize:])
	if err != nil {
		return false
	}
	g := group.Ristretto255
	return dl.Verify(g, g.Generator(), c0, dl.Proof{V: v, R: r}, dkgProofUserID, c.bind(labelDKGProof, dealer, 0))
}

// seal encrypts share v from dealer to receiver to.
func (c ceremony) seal(pk kem.PublicKey, dealer, to int, v group.Scalar, aad []byte) ([]byte, error) {
	s, err := hpkeSuite.NewSender(pk, c.bind(labelSeal, dealer, to))
	if err != nil {
		return nil, fmt.Errorf("encrypt share for %d: %w", to, err)
	}
	enc, sealer, err := s.Setup(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("encrypt share for %d: %w", to, err)
	}
	pt, err := v.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("serialize share for %d: %w", to, err)
	}
	ct, err := sealer.Seal(pt, aad)
	clear(pt)
	if err != nil {
		return nil, fmt.Errorf("encrypt share for %d: %w", to, err)
	}
	return append(enc, ct...), nil
}

// open decrypts the share sealed from dealer to receiver to.
func (c ceremony) open(sk kem.PrivateKey, dealer, to int, sealed, aad []byte) (group.Scalar, error) {
	encSize := hpke.KEM_X25519_HKDF_SHA256.Scheme().CiphertextSize()
	if len(sealed) < encSize {
		return nil, errors.New("the encrypted share is too short")
	}
	r, err := hpkeSuite.NewReceiver(sk, c.bind(labelSeal, dealer, to))
	if err != nil {
		return nil, err
	}
	opener, err := r.Setup(sealed[:encSize])
	if err != nil {
		return nil, errors.New("the encrypted share does not decrypt")
	}
	pt, err := opener.Open(sealed[encSize:], aad)
	if err != nil {
		return nil, errors.New("the encrypted share does not decrypt")
	}
	defer clear(pt)
	s, err := circlScalar(pt)
	if err != nil {
		return nil, errors.New("the decrypted share is not a canonical scalar")
	}
	return s, nil
}

// circlScalar decodes a canonical 32-byte scalar into circl's group.
func circlScalar(b []byte) (group.Scalar, error) {
	s := group.Ristretto255.NewScalar()
	if err := s.UnmarshalBinary(b); err != nil {
		return nil, errors.New("not a canonical scalar")
	}
	return s, nil
}

// verifies reports whether v is the share for receiver to of the
// polynomial committed to by comms.
func (c ceremony) verifies(to int, v group.Scalar, comms []group.Element) bool {
	id := group.Ristretto255.NewScalar().SetUint64(uint64(to))
	return secretsharing.Verify(uint(c.t-1), secretsharing.Share{ID: id, Value: v}, comms)
}

// checkDeal checks what anyone can check of d: t valid commitments, one
// encrypted share for each receiver (in a DKG, each other participant),
// and, in a DKG, the proof of knowledge; in a resharing, that a_0·G is the
// dealer's old share key. It returns the commitments.
func (c ceremony) checkDeal(d *DKGDeal) ([]group.Element, error) {
	if len(d.Commitments) != c.t {
		return nil, fmt.Errorf("%d commitments, want %d", len(d.Commitments), c.t)
	}
	comms := make([]group.Element, c.t)
	for k, b := range d.Commitments {
		var err error
		if comms[k], err = circlElement(b); err != nil {
			return nil, fmt.Errorf("commitment %d: %v", k, err)
		}
	}
	seen := make([]bool, c.n+1)
	for _, s := range d.Shares {
		if s.To < 1 || s.To > c.n || seen[s.To] || (c.dkg() && s.To == d.Dealer) {
			return nil, fmt.Errorf("an unexpected encrypted share for receiver %d", s.To)
		}
		seen[s.To] = true
	}
	want := c.n
	if c.dkg() {
		want-- // none for the dealer itself
	}
	if len(d.Shares) != want {
		return nil, fmt.Errorf("%d encrypted shares, want %d", len(d.Shares), want)
	}
	if c.dkg() && !c.verifyProof(d.Dealer, d.Proof, comms[0]) {
		return nil, errors.New("the proof of knowledge does not verify")
	}
	if !c.dkg() && (len(d.Proof) != 0 || !bytes.Equal(d.Commitments[0], c.old.Shares[d.Dealer-1].PublicKey)) {
		return nil, fmt.Errorf("commitment 0 is not old share %d's key", d.Dealer)
	}
	return comms, nil
}

// indexDeals checks that deals belong to c, at most one per dealer, and
// returns them by dealer. Dealers may be missing.
func (c ceremony) indexDeals(deals []*DKGDeal) (map[int]*DKGDeal, error) {
	out := map[int]*DKGDeal{}
	for _, d := range deals {
		if d == nil {
			return nil, errorf("a missing deal")
		}
		if err := c.header("deal from dealer", d.KeyID, d.Generation, d.Dealer, c.dealers()); err != nil {
			return nil, err
		}
		if out[d.Dealer] != nil {
			return nil, errorf("two deals from dealer %d", d.Dealer)
		}
		out[d.Dealer] = d
	}
	return out, nil
}

// indexComplaints checks that complaints are one from each receiver of c
// and returns, for each dealer complained against, the complainers in
// ascending order.
func (c ceremony) indexComplaints(complaints []*DKGComplaints) (map[int][]int, error) {
	byIndex := make([]*DKGComplaints, c.n+1)
	for _, m := range complaints {
		if m == nil {
			return nil, errorf("a missing complaints message")
		}
		if err := c.header("complaints from participant", m.KeyID, m.Generation, m.Index, c.n); err != nil {
			return nil, err
		}
		if byIndex[m.Index] != nil {
			return nil, errorf("two complaints messages from participant %d", m.Index)
		}
		byIndex[m.Index] = m
	}
	against := map[int][]int{}
	for j := 1; j <= c.n; j++ {
		if byIndex[j] == nil {
			return nil, errorf("no complaints message from participant %d; every participant publishes one", j)
		}
		for _, i := range byIndex[j].Against {
			if i < 1 || i > c.dealers() || slices.Contains(against[i], j) {
				return nil, errorf("participant %d complains about dealer %d twice or about no dealer", j, i)
			}
			against[i] = append(against[i], j)
		}
	}
	return against, nil
}

// indexReveals checks that reveals belong to c, at most one per dealer, and
// returns them by dealer.
func (c ceremony) indexReveals(reveals []*DKGReveal) (map[int]*DKGReveal, error) {
	out := map[int]*DKGReveal{}
	for _, r := range reveals {
		if r == nil {
			return nil, errorf("a missing reveal")
		}
		if err := c.header("reveal from dealer", r.KeyID, r.Generation, r.Dealer, c.dealers()); err != nil {
			return nil, err
		}
		if out[r.Dealer] != nil {
			return nil, errorf("two reveals from dealer %d", r.Dealer)
		}
		out[r.Dealer] = r
	}
	return out, nil
}

// reveal returns dealer p's answer to complaints: the complainers' shares.
// A dealer with t or more complaints is disqualified whatever it reveals,
// and revealing t shares would give away its secret: it refuses.
func (p *party) reveal(complaints []*DKGComplaints) (*DKGReveal, error) {
	if p.dealt == nil {
		return nil, errorf("dealer %d has not dealt", p.index)
	}
	against, err := p.c.indexComplaints(complaints)
	if err != nil {
		return nil, err
	}
	by := against[p.index]
	if len(by) >= p.c.t {
		return nil, errorf("dealer %d: %d complaints, at least the threshold %d: it is disqualified and reveals nothing", p.index, len(by), p.c.t)
	}
	r := &DKGReveal{KeyID: p.c.keyID, Generation: p.c.generation, Dealer: p.index, Shares: []RevealedShare{}}
	for _, j := range by {
		b, err := p.dealt[j-1].MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("serialize share: %w", err)
		}
		r.Shares = append(r.Shares, RevealedShare{To: j, Value: b})
	}
	return r, nil
}

// revealed returns the share r reveals for receiver to, if r reveals
// exactly one and it verifies against comms.
func (c ceremony) revealed(r *DKGReveal, to int, comms []group.Element) (group.Scalar, bool) {
	if r == nil {
		return nil, false
	}
	var found [][]byte
	for _, s := range r.Shares {
		if s.To == to {
			found = append(found, s.Value)
		}
	}
	if len(found) != 1 {
		return nil, false
	}
	v, err := circlScalar(found[0])
	if err != nil || !c.verifies(to, v, comms) {
		return nil, false
	}
	return v, true
}

// qualify decides from the public messages alone, as every receiver does,
// which dealers qualify: those with a well-formed deal and fewer than t
// complaints, each answered by a revealed share that verifies. It returns
// the qualified dealers' commitments and the disqualified dealers,
// ascending; in a DKG a participant without a deal is disqualified.
func (c ceremony) qualify(deals map[int]*DKGDeal, against map[int][]int, reveals map[int]*DKGReveal) (map[int][]group.Element, []int) {
	qual := map[int][]group.Element{}
	var disq []int
	for i := 1; i <= c.dealers(); i++ {
		d, ok := deals[i]
		if !ok {
			if c.dkg() {
				disq = append(disq, i)
			}
			continue
		}
		comms, err := c.checkDeal(d)
		if err != nil || !c.answered(against[i], reveals[i], comms) {
			disq = append(disq, i)
			continue
		}
		qual[i] = comms
	}
	return qual, disq
}

// answered reports whether the complaints of receivers by against a dealer
// with commitments comms are fewer than t, each answered in r by a share
// that verifies.
func (c ceremony) answered(by []int, r *DKGReveal, comms []group.Element) bool {
	if len(by) >= c.t {
		return false
	}
	for _, j := range by {
		if _, ok := c.revealed(r, j, comms); !ok {
			return false
		}
	}
	return true
}

// pick chooses which qualified dealers (ascending) make the new sharing,
// and their weights: in a DKG all of them, at least t, weight 1; in a
// resharing the old threshold's number of smallest indices, weighted by
// their Lagrange coefficients at zero.
func (c ceremony) pick(qual []int) ([]int, []group.Scalar, error) {
	if c.dkg() {
		if len(qual) < c.t {
			return nil, nil, errorf("%d qualified dealers %v, fewer than the threshold %d", len(qual), qual, c.t)
		}
		w := make([]group.Scalar, len(qual))
		for i := range w {
			w[i] = group.Ristretto255.NewScalar().SetUint64(1)
		}
		return qual, w, nil
	}
	if len(qual) < c.old.Threshold {
		return nil, nil, errorf("%d qualified old shares %v, fewer than the old threshold %d", len(qual), qual, c.old.Threshold)
	}
	use := qual[:c.old.Threshold]
	return use, lagrangeWeights(use), nil
}

// keySet returns c's key set for the combined commitments a: group key
// a_0, share key m Σ_k m^k·a_k.
func (c ceremony) keySet(a []group.Element) (KeySet, error) {
	set := KeySet{KeyID: c.keyID, Threshold: c.t, Generation: c.generation}
	var err error
	if set.GroupKey, err = a[0].MarshalBinaryCompress(); err != nil {
		return KeySet{}, fmt.Errorf("serialize group key: %w", err)
	}
	g := group.Ristretto255
	for m := 1; m <= c.n; m++ {
		x := g.NewScalar().SetUint64(uint64(m))
		k := g.NewElement().Set(a[len(a)-1])
		for i := len(a) - 2; i >= 0; i-- {
			k.Mul(k, x)
			k.Add(k, a[i])
		}
		pub, err := k.MarshalBinaryCompress()
		if err != nil {
			return KeySet{}, fmt.Errorf("serialize share key %d: %w", m, err)
		}
		set.Shares = append(set.Shares, ShareKey{Index: m, PublicKey: pub})
	}
	if err := set.Check(); err != nil {
		return KeySet{}, fmt.Errorf("%w: %w", ErrCeremony, err)
	}
	if !c.dkg() && !bytes.Equal(set.GroupKey, c.old.GroupKey) {
		return KeySet{}, errorf("the dealers' old shares do not combine to the group key")
	}
	return set, nil
}

// party is one participant's secret state in a ceremony: its index (as a
// receiver, or as a dealer in a resharing), its HPKE private key if it
// receives, and the shares it dealt, once it has dealt.
type party struct {
	c     ceremony
	index int
	sk    kem.PrivateKey
	dealt []group.Scalar // by receiver index-1
}

// share returns p's share from deal d, whose commitments comms checkDeal
// returned: decrypted (in a DKG, its own if it dealt d) and verified.
func (p *party) share(d *DKGDeal, comms []group.Element) (group.Scalar, error) {
	var s group.Scalar
	if p.c.dkg() && d.Dealer == p.index {
		s = p.dealt[p.index-1].Copy()
	} else {
		i := slices.IndexFunc(d.Shares, func(s SealedShare) bool { return s.To == p.index })
		var err error
		if s, err = p.c.open(p.sk, d.Dealer, p.index, d.Shares[i].Ciphertext, bytes.Join(d.Commitments, nil)); err != nil {
			return nil, err
		}
	}
	if !p.c.verifies(p.index, s, comms) {
		return nil, errors.New("the share does not verify against the commitments")
	}
	return s, nil
}

// review checks every deal for receiver p: it returns the shares of the
// deals it accepts, by dealer, and the dealers it complains about,
// ascending.
func (p *party) review(deals map[int]*DKGDeal) (map[int]group.Scalar, []int) {
	shares := map[int]group.Scalar{}
	against := []int{}
	for i := 1; i <= p.c.dealers(); i++ {
		d, ok := deals[i]
		if !ok {
			continue
		}
		comms, err := p.c.checkDeal(d)
		if err == nil {
			var s group.Scalar
			if s, err = p.share(d, comms); err == nil {
				shares[i] = s
				continue
			}
		}
		against = append(against, i)
	}
	return shares, against
}

// complain returns receiver p's complaints about deals.
func (p *party) complain(deals []*DKGDeal) (*DKGComplaints, error) {
	byDealer, err := p.c.indexDeals(deals)
	if err != nil {
		return nil, err
	}
	_, against := p.review(byDealer)
	return &DKGComplaints{KeyID: p.c.keyID, Generation: p.c.generation, Index: p.index, Against: against}, nil
}

// finish runs receiver p's last round: it returns p's share of the new key
// set and the disqualified dealers.
func (p *party) finish(deals []*DKGDeal, complaints []*DKGComplaints, reveals []*DKGReveal) (*PrivateKey, []int, error) {
	byDealer, err := p.c.indexDeals(deals)
	if err != nil {
		return nil, nil, err
	}
	against, err := p.c.indexComplaints(complaints)
	if err != nil {
		return nil, nil, err
	}
	byReveal, err := p.c.indexReveals(reveals)
	if err != nil {
		return nil, nil, err
	}
	shares, mine := p.review(byDealer)
	for i := 1; i <= p.c.dealers(); i++ {
		if slices.Contains(against[i], p.index) != slices.Contains(mine, i) {
			return nil, nil, errorf("participant %d: the deals differ from those it complained about (dealer %d)", p.index, i)
		}
	}
	qual, disq := p.c.qualify(byDealer, against, byReveal)
	use, w, err := p.c.pick(slices.Sorted(maps.Keys(qual)))
	if err != nil {
		return nil, nil, err
	}
	g := group.Ristretto255
	x := g.NewScalar()
	defer x.SetUint64(0)
	a := make([]group.Element, p.c.t)
	for k := range a {
		a[k] = g.Identity()
	}
	for n, i := range use {
		s, ok := shares[i]
		if !ok { // p complained, and i answered: qualify checked the share
			s, _ = p.c.revealed(byReveal[i], p.index, qual[i])
		}
		x.Add(x, g.NewScalar().Mul(w[n], s))
		for k, cm := range qual[i] {
			a[k].Add(a[k], g.NewElement().Mul(cm, w[n]))
		}
	}
	for _, s := range shares {
		s.SetUint64(0)
	}
	share, err := p.result(x, a)
	return share, disq, err
}

// result returns receiver p's share x of the key set whose combined
// commitments are a.
func (p *party) result(x group.Scalar, a []group.Element) (*PrivateKey, error) {
	set, err := p.c.keySet(a)
	if err != nil {
		return nil, err
	}
	xb, err := x.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("serialize share: %w", err)
	}
	defer clear(xb)
	share, err := NewShare(xb, p.index, set)
	if err != nil {
		return nil, fmt.Errorf("%w: participant %d: %w", ErrCeremony, p.index, err)
	}
	return share.withChain(cloneChain(p.c.chain)), nil
}

// DKGParticipant is one participant's secret state in a DKG: its HPKE
// private key and, once it has dealt, the shares it dealt. It survives
// between rounds as JSON (MarshalJSON); keep that as a key file is kept,
// and never log it. A participant runs NewDKG, Deal, Complain, Reveal and
// Finish, in that order, each with all the messages of the round before.
type DKGParticipant struct {
	p party
}

// NewDKG returns participant index (1 to p.N) of a DKG and its hello.
func NewDKG(p DKGParams, index int) (*DKGParticipant, *DKGHello, error) {
	c, err := p.ceremony()
	if err != nil {
		return nil, nil, err
	}
	h, sk, err := c.hello(index)
	if err != nil {
		return nil, nil, err
	}
	return &DKGParticipant{party{c: c, index: index, sk: sk}}, h, nil
}

// Index returns the participant's index.
func (p *DKGParticipant) Index() int { return p.p.index }

// Deal checks the hellos of all n participants, its own among them, and
// returns the participant's deal. It deals once.
func (p *DKGParticipant) Deal(hellos []*DKGHello) (*DKGDeal, error) {
	if p.p.dealt != nil {
		return nil, errorf("participant %d has dealt already; a second deal would contradict the first", p.p.index)
	}
	keys, err := p.p.c.helloKeys(hellos)
	if err != nil {
		return nil, err
	}
	if !keys[p.p.index-1].Equal(p.p.sk.Public()) {
		return nil, errorf("hello %d is not participant %d's own", p.p.index, p.p.index)
	}
	secret := group.Ristretto255.RandomNonZeroScalar(rand.Reader)
	defer secret.SetUint64(0)
	d, dealt, err := p.p.c.deal(p.p.index, secret, keys)
	if err != nil {
		return nil, err
	}
	p.p.dealt = dealt
	return d, nil
}

// Complain checks the deals (one per participant; a missing one will be
// disqualified) and returns the participant's complaints.
func (p *DKGParticipant) Complain(deals []*DKGDeal) (*DKGComplaints, error) {
	if p.p.dealt == nil {
		return nil, errorf("participant %d has not dealt", p.p.index)
	}
	return p.p.complain(deals)
}

// Reveal answers the complaints of all n participants against this one. The
// reveal is empty if there are none.
func (p *DKGParticipant) Reveal(complaints []*DKGComplaints) (*DKGReveal, error) {
	return p.p.reveal(complaints)
}

// Finish takes the deals, the complaints of all n participants and the
// reveals (a missing one reveals nothing), and returns the participant's
// share of the new key (generation 1) and the disqualified dealers. Every
// participant given the same messages computes the same key set.
func (p *DKGParticipant) Finish(deals []*DKGDeal, complaints []*DKGComplaints, reveals []*DKGReveal) (share *PrivateKey, disqualified []int, err error) {
	if p.p.dealt == nil {
		return nil, nil, errorf("participant %d has not dealt", p.p.index)
	}
	return p.p.finish(deals, complaints, reveals)
}

// String never reveals the state's secrets.
func (p *DKGParticipant) String() string {
	return fmt.Sprintf("oprf.DKGParticipant(%s, participant %d)", p.p.c, p.p.index)
}

// GoString never reveals the state's secrets.
func (p *DKGParticipant) GoString() string { return p.String() }

// MarshalJSON returns the participant's state file. It holds secrets.
func (p *DKGParticipant) MarshalJSON() ([]byte, error) { return p.p.marshal(roleDKG) }

// UnmarshalJSON parses and checks a state file of MarshalJSON.
func (p *DKGParticipant) UnmarshalJSON(data []byte) error { return p.p.unmarshal(data, roleDKG) }

// Roles in a state file.
const (
	roleDKG             = "dkg"
	roleReshareDealer   = "reshare-dealer"
	roleReshareReceiver = "reshare-receiver"
)

// stateJSON is a ceremony participant's state file, byte strings in hex.
type stateJSON struct {
	Role         string            `json:"role"`
	KeyID        string            `json:"key_id"`
	N            int               `json:"n"`
	T            int               `json:"t"`
	OldKeySet    *keySetJSON       `json:"old_key_set,omitempty"`
	Endorsements []endorsementJSON `json:"endorsements,omitempty"`
	Index        int               `json:"index"`
	HPKEKey      string            `json:"hpke_private_key,omitempty"`
	Dealt        []string          `json:"dealt_shares,omitempty"`
}

// marshal returns p's state file for its role.
func (p *party) marshal(role string) ([]byte, error) {
	j := stateJSON{Role: role, KeyID: p.c.keyID, N: p.c.n, T: p.c.t, Index: p.index}
	if !p.c.dkg() {
		j.OldKeySet = keySetToJSON(*p.c.old)
		j.Endorsements = endorsementsToJSON(p.c.chain)
	}
	if p.sk != nil {
		b, err := p.sk.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("serialize HPKE key: %w", err)
		}
		j.HPKEKey = hex.EncodeToString(b)
		clear(b)
	}
	for _, s := range p.dealt {
		b, err := s.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("serialize share: %w", err)
		}
		j.Dealt = append(j.Dealt, hex.EncodeToString(b))
		clear(b)
	}
	return json.Marshal(j)
}

// unmarshal sets p from a state file for role, checked. Errors never
// include the file's secrets.
func (p *party) unmarshal(data []byte, role string) error {
	var j stateJSON
	if err := json.Unmarshal(data, &j); err != nil || j.Role != role {
		return errorf("not a %s state file", role)
	}
	c, err := j.ceremony()
	if err != nil {
		return err
	}
	q := party{c: c, index: j.Index}
	if limit := q.indices(role); j.Index < 1 || j.Index > limit {
		return errorf("state file index %d: indices run from 1 to %d", j.Index, limit)
	}
	if (j.HPKEKey != "") != (role != roleReshareDealer) {
		return errorf("%s state file with a wrong HPKE key", role)
	}
	if j.HPKEKey != "" {
		b, err := hex.DecodeString(j.HPKEKey)
		if err == nil {
			q.sk, err = hpke.KEM_X25519_HKDF_SHA256.Scheme().UnmarshalBinaryPrivateKey(b)
		}
		clear(b)
		if err != nil {
			return errorf("state file: invalid hpke_private_key")
		}
	}
	if len(j.Dealt) != 0 && len(j.Dealt) != c.n {
		return errorf("state file: %d dealt shares, want %d", len(j.Dealt), c.n)
	}
	for k, h := range j.Dealt {
		b, err := hex.DecodeString(h)
		var s group.Scalar
		if err == nil {
			s, err = circlScalar(b)
		}
		clear(b)
		if err != nil {
			return errorf("state file: dealt share %d is not a hex canonical scalar", k+1)
		}
		q.dealt = append(q.dealt, s)
	}
	*p = q
	return nil
}

// indices returns how many indices a party in role may have.
func (p *party) indices(role string) int {
	if role == roleReshareDealer {
		return p.c.dealers()
	}
	return p.c.n
}

// ceremony returns the ceremony j belongs to, checked.
func (j *stateJSON) ceremony() (ceremony, error) {
	if j.Role == roleDKG {
		return DKGParams{KeyID: j.KeyID, N: j.N, T: j.T}.ceremony()
	}
	old, err := j.OldKeySet.keySet()
	if err != nil {
		return ceremony{}, fmt.Errorf("%w: state file: %w", ErrCeremony, err)
	}
	chain, err := endorsementsFromJSON(j.Endorsements)
	if err != nil {
		return ceremony{}, fmt.Errorf("%w: state file: %w", ErrCeremony, err)
	}
	c, err := ReshareParams{Old: old, Chain: chain, N: j.N, T: j.T}.ceremony()
	if err == nil && c.keyID != j.KeyID {
		return ceremony{}, errorf("state file: key id %q, but the old key set's is %q", j.KeyID, c.keyID)
	}
	return c, err
}

// Messages' JSON forms, byte strings in hex.
type (
	helloJSON struct {
		KeyID      string `json:"key_id"`
		Generation uint64 `json:"generation"`
		N          int    `json:"n"`
		T          int    `json:"t"`
		Index      int    `json:"index"`
		PublicKey  string `json:"hpke_public_key"`
	}
	dealJSON struct {
		KeyID       string       `json:"key_id"`
		Generation  uint64       `json:"generation"`
		Dealer      int          `json:"dealer"`
		Commitments []string     `json:"commitments"`
		Proof       string       `json:"proof,omitempty"`
		Shares      []sealedJSON `json:"shares"`
	}
	sealedJSON struct {
		To         int    `json:"to"`
		Ciphertext string `json:"ciphertext"`
	}
	revealJSON struct {
		KeyID      string         `json:"key_id"`
		Generation uint64         `json:"generation"`
		Dealer     int            `json:"dealer"`
		Shares     []revealedJSON `json:"shares"`
	}
	revealedJSON struct {
		To    int    `json:"to"`
		Value string `json:"share"`
	}
)

// fromHex decodes the hex string s, the field name of a message from index.
func fromHex(s, name string, index int) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, errorf("message from %d: %s is not hex", index, name)
	}
	return b, nil
}

// MarshalJSON returns h as JSON, the public key in hex.
func (h DKGHello) MarshalJSON() ([]byte, error) {
	return json.Marshal(helloJSON{h.KeyID, h.Generation, h.N, h.T, h.Index, hex.EncodeToString(h.PublicKey)})
}

// UnmarshalJSON parses the JSON of MarshalJSON.
func (h *DKGHello) UnmarshalJSON(data []byte) error {
	var j helloJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	pk, err := fromHex(j.PublicKey, "hpke_public_key", j.Index)
	if err != nil {
		return err
	}
	*h = DKGHello{KeyID: j.KeyID, Generation: j.Generation, N: j.N, T: j.T, Index: j.Index, PublicKey: pk}
	return nil
}

// MarshalJSON returns d as JSON, byte strings in hex.
func (d DKGDeal) MarshalJSON() ([]byte, error) {
	j := dealJSON{KeyID: d.KeyID, Generation: d.Generation, Dealer: d.Dealer, Proof: hex.EncodeToString(d.Proof),
		Commitments: []string{}, Shares: []sealedJSON{}}
	for _, c := range d.Commitments {
		j.Commitments = append(j.Commitments, hex.EncodeToString(c))
	}
	for _, s := range d.Shares {
		j.Shares = append(j.Shares, sealedJSON{s.To, hex.EncodeToString(s.Ciphertext)})
	}
	return json.Marshal(j)
}

// UnmarshalJSON parses the JSON of MarshalJSON.
func (d *DKGDeal) UnmarshalJSON(data []byte) error {
	var j dealJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	out := DKGDeal{KeyID: j.KeyID, Generation: j.Generation, Dealer: j.Dealer}
	var err error
	if out.Proof, err = fromHex(j.Proof, "proof", j.Dealer); err != nil {
		return err
	}
	for k, c := range j.Commitments {
		b, err := fromHex(c, fmt.Sprintf("commitment %d", k), j.Dealer)
		if err != nil {
			return err
		}
		out.Commitments = append(out.Commitments, b)
	}
	for _, s := range j.Shares {
		b, err := fromHex(s.Ciphertext, fmt.Sprintf("ciphertext for %d", s.To), j.Dealer)
		if err != nil {
			return err
		}
		out.Shares = append(out.Shares, SealedShare{To: s.To, Ciphertext: b})
	}
	*d = out
	return nil
}

// MarshalJSON returns r as JSON, the shares in hex.
func (r DKGReveal) MarshalJSON() ([]byte, error) {
	j := revealJSON{KeyID: r.KeyID, Generation: r.Generation, Dealer: r.Dealer, Shares: []revealedJSON{}}
	for _, s := range r.Shares {
		j.Shares = append(j.Shares, revealedJSON{s.To, hex.EncodeToString(s.Value)})
	}
	return json.Marshal(j)
}

// UnmarshalJSON parses the JSON of MarshalJSON.
func (r *DKGReveal) UnmarshalJSON(data []byte) error {
	var j revealJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	out := DKGReveal{KeyID: j.KeyID, Generation: j.Generation, Dealer: j.Dealer}
	for _, s := range j.Shares {
		b, err := fromHex(s.Value, fmt.Sprintf("share for %d", s.To), j.Dealer)
		if err != nil {
			return err
		}
		out.Shares = append(out.Shares, RevealedShare{To: s.To, Value: b})
	}
	*r = out
	return nil
}
