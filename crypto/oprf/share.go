package oprf

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/secretsharing"
)

// shareJSON is the "share" object of a share's key file: its index and key
// set.
type shareJSON struct {
	Index  int         `json:"index"`
	KeySet *keySetJSON `json:"key_set"`
}

// keySetJSON is the JSON form of a KeySet, keys in hex.
type keySetJSON struct {
	KeyID      string         `json:"key_id"`
	GroupKey   string         `json:"group_public_key"`
	Threshold  int            `json:"threshold"`
	Generation uint64         `json:"generation"`
	Shares     []shareKeyJSON `json:"shares"`
}

type shareKeyJSON struct {
	Index     int    `json:"index"`
	PublicKey string `json:"public_key"`
}

func keySetToJSON(s KeySet) *keySetJSON {
	j := &keySetJSON{KeyID: s.KeyID, GroupKey: hex.EncodeToString(s.GroupKey), Threshold: s.Threshold, Generation: s.Generation}
	for _, sh := range s.Shares {
		j.Shares = append(j.Shares, shareKeyJSON{Index: sh.Index, PublicKey: hex.EncodeToString(sh.PublicKey)})
	}
	return j
}

// keySet decodes j and checks the result.
func (j *keySetJSON) keySet() (KeySet, error) {
	if j == nil {
		return KeySet{}, fmt.Errorf("%w: no key set", ErrInvalidKeySet)
	}
	s := KeySet{KeyID: j.KeyID, Threshold: j.Threshold, Generation: j.Generation}
	var err error
	if s.GroupKey, err = hex.DecodeString(j.GroupKey); err != nil {
		return KeySet{}, fmt.Errorf("%w: group_public_key is not hex", ErrInvalidKeySet)
	}
	for _, sh := range j.Shares {
		pk, err := hex.DecodeString(sh.PublicKey)
		if err != nil {
			return KeySet{}, fmt.Errorf("%w: share %d: public_key is not hex", ErrInvalidKeySet, sh.Index)
		}
		s.Shares = append(s.Shares, ShareKey{Index: sh.Index, PublicKey: pk})
	}
	return s, s.Check()
}

// place makes k, parsed from a share's key file, that share.
func (j *shareJSON) place(k *PrivateKey) (*PrivateKey, error) {
	set, err := j.KeySet.keySet()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	return newShare(k, j.Index, set)
}

// newShare makes k share index of set, checking that k's public key is
// that share's key and k's id the set's.
func newShare(k *PrivateKey, index int, set KeySet) (*PrivateKey, error) {
	sh, ok := set.Share(index)
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: share %d is not in the %d-of-%d key set", ErrInvalidKey, index, set.Threshold, len(set.Shares))
	case k.id != set.KeyID:
		return nil, fmt.Errorf("%w: share of key %q filed under key id %q", ErrInvalidKey, set.KeyID, k.id)
	case !bytes.Equal(sh.PublicKey, k.pub):
		return nil, fmt.Errorf("%w: the private share does not match share %d's public key in the key set", ErrInvalidKey, index)
	}
	out := k.withChain(k.chain)
	out.share = &shareOf{index: index, set: set.clone()}
	return out, nil
}

// NewShare returns share index of set from the share's RFC 9497 scalar
// serialization (see PrivateKey.Share).
func NewShare(scalar []byte, index int, set KeySet) (*PrivateKey, error) {
	if err := set.Check(); err != nil {
		return nil, err
	}
	k, err := NewPrivateKey(set.KeyID, scalar)
	if err != nil {
		return nil, err
	}
	return newShare(k, index, set)
}

// Split is the dealer split of a whole key into n shares, any t of which
// evaluate to the same tokens; the key set is generation 1 and each share
// keeps key's endorsement chain, since the group key is key's own public
// key. Whoever runs Split holds the whole key, as the key server did:
// destroy the original key file once the shares are in place. A key made
// by DKG never exists whole.
func Split(key *PrivateKey, n, t int) ([]*PrivateKey, error) {
	if key.share != nil {
		return nil, fmt.Errorf("%w: key %q is already a share; reshare it instead", ErrInvalidKey, key.id)
	}
	if t < 1 || t > n || n > MaxShares {
		return nil, fmt.Errorf("%w: %d-of-%d: want 1 ≤ t ≤ n ≤ %d", ErrInvalidKeySet, t, n, MaxShares)
	}
	g := group.Ristretto255
	sb, err := key.k.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("serialize private key: %w", err)
	}
	secret := g.NewScalar()
	err = secret.UnmarshalBinary(sb)
	clear(sb)
	if err != nil {
		return nil, fmt.Errorf("%w: private key is not a canonical scalar", ErrInvalidKey)
	}
	parts := secretsharing.New(rand.Reader, uint(t-1), secret).Share(uint(n))
	secret.SetUint64(0)
	return sharesOf(key.id, key.pub, 1, t, parts, key.chain)
}

// sharesOf builds the key set of the scalar shares parts (indices 1 to n,
// in order) of the group key groupKey, and the share keys.
func sharesOf(keyID string, groupKey []byte, generation uint64, t int, parts []secretsharing.Share, chain []Endorsement) ([]*PrivateKey, error) {
	set := KeySet{KeyID: keyID, GroupKey: bytes.Clone(groupKey), Threshold: t, Generation: generation}
	scalars := make([][]byte, len(parts))
	defer func() {
		for _, s := range scalars {
			clear(s)
		}
	}()
	for i, p := range parts {
		var err error
		if scalars[i], err = p.Value.MarshalBinary(); err != nil {
			return nil, fmt.Errorf("serialize share %d: %w", i+1, err)
		}
		pub, err := group.Ristretto255.NewElement().MulGen(p.Value).MarshalBinaryCompress()
		if err != nil {
			return nil, fmt.Errorf("serialize share %d's key: %w", i+1, err)
		}
		set.Shares = append(set.Shares, ShareKey{Index: i + 1, PublicKey: pub})
	}
	out := make([]*PrivateKey, len(parts))
	for i := range parts {
		sh, err := NewShare(scalars[i], i+1, set)
		if err != nil {
			return nil, err
		}
		out[i] = sh.withChain(cloneChain(chain))
	}
	return out, nil
}
