package oprf

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/math/polynomial"
	r255 "github.com/gtank/ristretto255"

	"github.com/veilmatch/veilmatch/crypto/token"
)

// Threshold keys. The OPRF key k is Shamir-shared among n key servers, any
// t of which suffice: server i holds k_i = f(i) for a polynomial f of
// degree t-1 with f(0) = k, and evaluates Z_i = k_i·B with an RFC 9497
// proof against its share key K_i = k_i·G. The client verifies each answer
// against the pinned K_i and combines t of them with Lagrange coefficients
// at zero, Σ λ_i·Z_i = k·B, then finalizes as RFC 9497 does: the tokens
// are exactly those of the whole key k, so splitting a key, or resharing
// it, changes no token.
//
// A client that pins the group key Y = k·G needs nothing else to be safe:
// if every answer it combines verifies against its K_i, and the K_i lie on
// one polynomial through Y (KeySet.Check), the combination is k·B. A set of
// share keys that does not interpolate to Y is refused.

// MaxShares is the most key servers a key set may have.
const MaxShares = 64

// ErrInvalidKeySet reports a malformed or inconsistent key set.
var ErrInvalidKeySet = errors.New("oprf: invalid key set")

// KeySet is the public description of a threshold key.
type KeySet struct {
	// KeyID names the group key (its epoch), as for a whole key.
	KeyID string
	// GroupKey is the serialized group public key k·G: the key tokens are
	// made under.
	GroupKey []byte
	// Threshold is t, the number of shares that evaluate.
	Threshold int
	// Generation counts the sharings of the group key: 1 for the first,
	// one more after each resharing. Clients refuse a generation older
	// than one they have seen.
	Generation uint64
	// Shares are the n share keys, by index 1 to n.
	Shares []ShareKey
}

// ShareKey is the public key of one share.
type ShareKey struct {
	// Index is the share's x-coordinate, 1 to n.
	Index int
	// PublicKey is the serialized K_i = k_i·G.
	PublicKey []byte
}

// Public returns the group public key as a PublicKey.
func (s KeySet) Public() PublicKey {
	return PublicKey{KeyID: s.KeyID, Bytes: bytes.Clone(s.GroupKey)}
}

// Share returns the share key with index i.
func (s KeySet) Share(i int) (ShareKey, bool) {
	if i >= 1 && i <= len(s.Shares) && s.Shares[i-1].Index == i {
		return s.Shares[i-1], true
	}
	return ShareKey{}, false
}

// Equal reports whether two key sets are the same.
func (s KeySet) Equal(o KeySet) bool {
	if s.KeyID != o.KeyID || !bytes.Equal(s.GroupKey, o.GroupKey) || s.Threshold != o.Threshold ||
		s.Generation != o.Generation || len(s.Shares) != len(o.Shares) {
		return false
	}
	for i := range s.Shares {
		if s.Shares[i].Index != o.Shares[i].Index || !bytes.Equal(s.Shares[i].PublicKey, o.Shares[i].PublicKey) {
			return false
		}
	}
	return true
}

func (s KeySet) clone() KeySet {
	c := s
	c.GroupKey = bytes.Clone(s.GroupKey)
	c.Shares = make([]ShareKey, len(s.Shares))
	for i, sh := range s.Shares {
		c.Shares[i] = ShareKey{Index: sh.Index, PublicKey: bytes.Clone(sh.PublicKey)}
	}
	return c
}

// Check verifies that s is well formed — a valid key id, 1 ≤ t ≤ n ≤
// MaxShares, shares numbered 1 to n, every key a valid element — and
// consistent: all share keys lie on one polynomial of degree t-1 in the
// exponent whose value at zero is the group key.
func (s KeySet) Check() error {
	n := len(s.Shares)
	switch {
	case !ValidKeyID(s.KeyID):
		return fmt.Errorf("%w: key id %q", ErrInvalidKeySet, s.KeyID)
	case s.Threshold < 1 || s.Threshold > n || n > MaxShares:
		return fmt.Errorf("%w: %d-of-%d: want 1 ≤ t ≤ n ≤ %d", ErrInvalidKeySet, s.Threshold, n, MaxShares)
	case s.Generation == 0:
		return fmt.Errorf("%w: generation 0", ErrInvalidKeySet)
	}
	g := group.Ristretto255
	y, err := circlElement(s.GroupKey)
	if err != nil {
		return fmt.Errorf("%w: group key: %v", ErrInvalidKeySet, err)
	}
	keys := make([]group.Element, n)
	for i, sh := range s.Shares {
		if sh.Index != i+1 {
			return fmt.Errorf("%w: share %d has index %d; shares are numbered 1 to n in order", ErrInvalidKeySet, i+1, sh.Index)
		}
		if keys[i], err = circlElement(sh.PublicKey); err != nil {
			return fmt.Errorf("%w: share %d: %v", ErrInvalidKeySet, sh.Index, err)
		}
	}
	// The first t share keys fix the polynomial; zero and every other
	// index must interpolate to the group key and that share's key.
	xs := make([]group.Scalar, s.Threshold)
	for i := range xs {
		xs[i] = g.NewScalar().SetUint64(uint64(i + 1))
	}
	at := func(x uint64) group.Element {
		sum := g.Identity()
		for i := range xs {
			l := polynomial.LagrangeBase(uint(i), xs, g.NewScalar().SetUint64(x))
			sum.Add(sum, g.NewElement().Mul(keys[i], l))
		}
		return sum
	}
	if !at(0).IsEqual(y) {
		return fmt.Errorf("%w: the share keys do not interpolate to the group key", ErrInvalidKeySet)
	}
	for j := s.Threshold; j < n; j++ {
		if !at(uint64(j + 1)).IsEqual(keys[j]) {
			return fmt.Errorf("%w: share %d's key is not on the polynomial of shares 1 to %d", ErrInvalidKeySet, j+1, s.Threshold)
		}
	}
	return nil
}

// lagrangeAtZero returns the Lagrange coefficients at zero of the share
// indices idx, as scalars of the evaluation group. They are public.
func lagrangeAtZero(idx []int) ([]*r255.Scalar, error) {
	w := lagrangeWeights(idx)
	out := make([]*r255.Scalar, len(idx))
	for i := range w {
		b, err := w[i].MarshalBinary()
		if err != nil {
			return nil, err
		}
		if out[i], err = decodeScalar(b); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ThresholdClient blinds inputs, verifies each share server's answer
// against its pinned share key, and combines t verified answers into the
// tokens of the group key. It is safe for concurrent use.
type ThresholdClient struct {
	set  KeySet
	keys []*r255.Element // share keys, by index-1
}

// NewThresholdClient pins set, which must pass Check.
func NewThresholdClient(set KeySet) (*ThresholdClient, error) {
	if err := set.Check(); err != nil {
		return nil, err
	}
	c := &ThresholdClient{set: set.clone(), keys: make([]*r255.Element, len(set.Shares))}
	for i, sh := range set.Shares {
		var err error
		if c.keys[i], err = decodeElement(sh.PublicKey); err != nil {
			return nil, fmt.Errorf("%w: share %d: %v", ErrInvalidKeySet, sh.Index, err)
		}
	}
	return c, nil
}

// KeyID returns the id of the group key.
func (c *ThresholdClient) KeyID() string { return c.set.KeyID }

// KeySet returns the pinned key set.
func (c *ThresholdClient) KeySet() KeySet { return c.set.clone() }

// Blind blinds a batch of encoded inputs with fresh random blinds; every
// share server evaluates the same blinded batch.
func (c *ThresholdClient) Blind(inputs [][]byte) (*Batch, error) { return blind(inputs) }

// ShareEvaluation is one share server's verified answer for a batch.
type ShareEvaluation struct {
	index int
	elems []*r255.Element
}

// Index returns the share's index.
func (e *ShareEvaluation) Index() int { return e.index }

// VerifyShare checks the answer of the server holding share index for
// batch b: well-formed elements and a proof against that share's key.
func (c *ThresholdClient) VerifyShare(b *Batch, index int, evaluated [][]byte, proof []byte) (*ShareEvaluation, error) {
	sh, ok := c.set.Share(index)
	if !ok {
		return nil, fmt.Errorf("%w: share %d is not in the %d-of-%d key set", ErrInvalidKeySet, index, c.set.Threshold, len(c.set.Shares))
	}
	elems, err := checkAnswer(b, evaluated, proof, c.keys[index-1], sh.PublicKey)
	if err != nil {
		return nil, err
	}
	return &ShareEvaluation{index: index, elems: elems}, nil
}

// Combine combines the verified answers of t distinct shares for batch b
// into one token per input (extra answers are ignored).
func (c *ThresholdClient) Combine(b *Batch, evs []*ShareEvaluation) ([]token.Token, error) {
	var use []*ShareEvaluation
	seen := map[int]bool{}
	for _, e := range evs {
		if !seen[e.index] && len(e.elems) == b.Len() && len(use) < c.set.Threshold {
			seen[e.index] = true
			use = append(use, e)
		}
	}
	if len(use) < c.set.Threshold {
		return nil, fmt.Errorf("oprf: %d verified shares for a %d-of-%d key", len(use), c.set.Threshold, len(c.set.Shares))
	}
	idx := make([]int, len(use))
	for i, e := range use {
		idx[i] = e.index
	}
	lambda, err := lagrangeAtZero(idx)
	if err != nil {
		return nil, err
	}
	scalars := make([]*r255.Scalar, len(use))
	points := make([]*r255.Element, len(use))
	for i := range scalars {
		scalars[i] = r255.NewScalar()
	}
	return tokens(outputs(b, func(j int, inv *r255.Scalar) *r255.Element {
		// Unblinding folded into the combination: N_j = Σ (λ_i·blind_j⁻¹)·Z_ij,
		// in constant time since the blind is secret.
		for i, e := range use {
			scalars[i].Multiply(lambda[i], inv)
			points[i] = e.elems[j]
		}
		return r255.NewElement().MultiScalarMult(scalars, points)
	}))
}
