package oprf

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/math/polynomial"
)

// Resharing moves a threshold key to new holders — another n, another t —
// keeping its group key, so no token changes; the new key set is the next
// generation. It runs the DKG's rounds (dkg.go) with old holders as dealers
// and new holders as receivers:
//
//  1. Hello: new holder j publishes its HPKE public key
//     (NewReshareReceiver).
//  2. Deal: old holder i, one of at least the old threshold, draws a
//     polynomial g_i of degree t-1 whose constant term is its share k_i and
//     publishes the commitments — the first must be its share key K_i in
//     the old key set, which replaces the DKG's proof of knowledge — and
//     g_i(j) encrypted to every new holder j (ReshareDeal).
//  3. Complain, 4. Reveal: as in a DKG, new holders complaining and old
//     holders revealing.
//  5. Finish: new holder j qualifies the old holders as in a DKG, takes
//     the old threshold's number of smallest qualified indices S, the same
//     for everyone, and computes x'_j = Σ_{i∈S} λ_i·g_i(j) with S's
//     Lagrange coefficients at zero, since Σ λ_i·k_i = k. The share keys
//     follow from the commitments alike, and the group key Σ λ_i·K_i must
//     be the old one.
//
// Someone who is both an old and a new holder runs a ReshareDealer and a
// ReshareReceiver. The old shares must be destroyed once the new ones are
// in place: t of them still evaluate the key.

// ReshareParams are the public parameters of a resharing.
type ReshareParams struct {
	// Old is the key set reshared, as the participants pin it.
	Old KeySet
	// Chain is the group key's endorsement chain (see EndorseKey), which
	// the new shares carry; it may be empty.
	Chain []Endorsement
	// N and T are the new number of holders and the new threshold.
	N, T int
}

// reshareParamsJSON is the JSON form of ReshareParams.
type reshareParamsJSON struct {
	Old          *keySetJSON       `json:"old_key_set"`
	Endorsements []endorsementJSON `json:"endorsements,omitempty"`
	N            int               `json:"n"`
	T            int               `json:"t"`
}

// MarshalJSON encodes the parameters as {"old_key_set", "endorsements",
// "n", "t"}, the key set and endorsements as in key files.
func (p ReshareParams) MarshalJSON() ([]byte, error) {
	return json.Marshal(reshareParamsJSON{Old: keySetToJSON(p.Old), Endorsements: endorsementsToJSON(p.Chain), N: p.N, T: p.T})
}

// UnmarshalJSON decodes and checks the parameters.
func (p *ReshareParams) UnmarshalJSON(data []byte) error {
	var j reshareParamsJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return fmt.Errorf("%w: resharing parameters: %w", ErrCeremony, err)
	}
	old, err := j.Old.keySet()
	if err != nil {
		return fmt.Errorf("%w: old key set: %w", ErrCeremony, err)
	}
	chain, err := endorsementsFromJSON(j.Endorsements)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCeremony, err)
	}
	q := ReshareParams{Old: old, Chain: chain, N: j.N, T: j.T}
	if _, err := q.ceremony(); err != nil {
		return err
	}
	*p = q
	return nil
}

// ceremony checks p and returns its ceremony.
func (p ReshareParams) ceremony() (ceremony, error) {
	if err := p.Old.Check(); err != nil {
		return ceremony{}, fmt.Errorf("%w: old key set: %w", ErrCeremony, err)
	}
	if p.Old.Generation == math.MaxUint64 {
		return ceremony{}, errorf("old key set: generation %d is the last", p.Old.Generation)
	}
	if p.T < 1 || p.T > p.N || p.N > MaxShares {
		return ceremony{}, errorf("%d-of-%d: want 1 ≤ t ≤ n ≤ %d", p.T, p.N, MaxShares)
	}
	if err := checkChain(p.Chain, p.Old.Public()); err != nil {
		return ceremony{}, fmt.Errorf("%w: endorsements: %w", ErrCeremony, err)
	}
	old := p.Old.clone()
	return ceremony{keyID: old.KeyID, generation: old.Generation + 1, n: p.N, t: p.T, old: &old, chain: cloneChain(p.Chain)}, nil
}

// ReshareDealer is an old holder's secret state in a resharing: the shares
// it dealt, kept to answer complaints. It survives between rounds as JSON
// (MarshalJSON); keep that as a key file is kept, and never log it.
type ReshareDealer struct {
	p party
}

// ReshareDeal checks the hellos of all p.N new holders and returns the deal
// of old, a share of p.Old, and the dealer's state.
func ReshareDeal(p ReshareParams, old *PrivateKey, hellos []*DKGHello) (*ReshareDealer, *DKGDeal, error) {
	c, err := p.ceremony()
	if err != nil {
		return nil, nil, err
	}
	index, set, ok := old.Share()
	if !ok || !set.Equal(p.Old) {
		return nil, nil, errorf("key %q is not a share of the reshared key set (key %q generation %d)", old.id, p.Old.KeyID, p.Old.Generation)
	}
	keys, err := c.helloKeys(hellos)
	if err != nil {
		return nil, nil, err
	}
	sb, err := old.k.MarshalBinary()
	if err != nil {
		return nil, nil, fmt.Errorf("serialize share: %w", err)
	}
	secret, err := circlScalar(sb)
	clear(sb)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: old share %d: %v", ErrInvalidKey, index, err)
	}
	defer secret.SetUint64(0)
	d, dealt, err := c.deal(index, secret, keys)
	if err != nil {
		return nil, nil, err
	}
	return &ReshareDealer{party{c: c, index: index, dealt: dealt}}, d, nil
}

// Index returns the dealer's index in the old key set.
func (d *ReshareDealer) Index() int { return d.p.index }

// Reveal answers the complaints of all new holders against this dealer.
// The reveal is empty if there are none.
func (d *ReshareDealer) Reveal(complaints []*DKGComplaints) (*DKGReveal, error) {
	return d.p.reveal(complaints)
}

// String never reveals the state's secrets.
func (d *ReshareDealer) String() string {
	return fmt.Sprintf("oprf.ReshareDealer(%s, old share %d)", d.p.c, d.p.index)
}

// GoString never reveals the state's secrets.
func (d *ReshareDealer) GoString() string { return d.String() }

// MarshalJSON returns the dealer's state file. It holds secrets.
func (d *ReshareDealer) MarshalJSON() ([]byte, error) { return d.p.marshal(roleReshareDealer) }

// UnmarshalJSON parses and checks a state file of MarshalJSON.
func (d *ReshareDealer) UnmarshalJSON(data []byte) error {
	if err := d.p.unmarshal(data, roleReshareDealer); err != nil {
		return err
	}
	if d.p.dealt == nil {
		return errorf("a %s state file without the dealt shares", roleReshareDealer)
	}
	return nil
}

// ReshareReceiver is a new holder's secret state in a resharing: its HPKE
// private key. It survives between rounds as JSON (MarshalJSON); keep that
// as a key file is kept, and never log it.
type ReshareReceiver struct {
	p party
}

// NewReshareReceiver returns new holder index (1 to p.N) and its hello.
func NewReshareReceiver(p ReshareParams, index int) (*ReshareReceiver, *DKGHello, error) {
	c, err := p.ceremony()
	if err != nil {
		return nil, nil, err
	}
	h, sk, err := c.hello(index)
	if err != nil {
		return nil, nil, err
	}
	return &ReshareReceiver{party{c: c, index: index, sk: sk}}, h, nil
}

// Index returns the new holder's index.
func (r *ReshareReceiver) Index() int { return r.p.index }

// Complain checks the old holders' deals and returns the new holder's
// complaints.
func (r *ReshareReceiver) Complain(deals []*DKGDeal) (*DKGComplaints, error) {
	return r.p.complain(deals)
}

// Finish takes the deals, the complaints of all new holders and the
// reveals (a missing one reveals nothing), and returns the new holder's
// share of the next generation, carrying the group key's endorsements, and
// the disqualified old holders. Every new holder given the same messages
// computes the same key set.
func (r *ReshareReceiver) Finish(deals []*DKGDeal, complaints []*DKGComplaints, reveals []*DKGReveal) (share *PrivateKey, disqualified []int, err error) {
	return r.p.finish(deals, complaints, reveals)
}

// String never reveals the state's secrets.
func (r *ReshareReceiver) String() string {
	return fmt.Sprintf("oprf.ReshareReceiver(%s, new share %d)", r.p.c, r.p.index)
}

// GoString never reveals the state's secrets.
func (r *ReshareReceiver) GoString() string { return r.String() }

// MarshalJSON returns the new holder's state file. It holds secrets.
func (r *ReshareReceiver) MarshalJSON() ([]byte, error) { return r.p.marshal(roleReshareReceiver) }

// UnmarshalJSON parses and checks a state file of MarshalJSON.
func (r *ReshareReceiver) UnmarshalJSON(data []byte) error {
	return r.p.unmarshal(data, roleReshareReceiver)
}

// lagrangeWeights returns the Lagrange coefficients at zero of the share
// indices idx, in circl's group.
func lagrangeWeights(idx []int) []group.Scalar {
	g := group.Ristretto255
	xs := make([]group.Scalar, len(idx))
	for i, x := range idx {
		xs[i] = g.NewScalar().SetUint64(uint64(x))
	}
	w := make([]group.Scalar, len(idx))
	for i := range idx {
		w[i] = polynomial.LagrangeBase(uint(i), xs, g.NewScalar())
	}
	return w
}
