package oprf

import (
	"fmt"

	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
)

// EndorsementsProto returns chain in its wire form.
func EndorsementsProto(chain []Endorsement) []*veilmatchv1.KeyEndorsement {
	out := make([]*veilmatchv1.KeyEndorsement, len(chain))
	for i, e := range chain {
		out[i] = &veilmatchv1.KeyEndorsement{KeyId: e.KeyID, PublicKey: e.PublicKey, ByKeyId: e.ByKeyID, ByPublicKey: e.ByPublicKey, Proof: e.Proof}
	}
	return out
}

// EndorsementsFromProto returns a chain from its wire form, unverified:
// VerifyChain verifies what it uses.
func EndorsementsFromProto(pb []*veilmatchv1.KeyEndorsement) []Endorsement {
	out := make([]Endorsement, len(pb))
	for i, e := range pb {
		out[i] = Endorsement{KeyID: e.GetKeyId(), PublicKey: e.GetPublicKey(), ByKeyID: e.GetByKeyId(), ByPublicKey: e.GetByPublicKey(), Proof: e.GetProof()}
	}
	return out
}

// KeySetProto returns s in its wire form.
func KeySetProto(s KeySet) *veilmatchv1.KeySet {
	pb := &veilmatchv1.KeySet{KeyId: s.KeyID, GroupPublicKey: s.GroupKey, Threshold: uint32(s.Threshold), Generation: s.Generation}
	for _, sh := range s.Shares {
		pb.Shares = append(pb.Shares, &veilmatchv1.ShareKey{Index: uint32(sh.Index), PublicKey: sh.PublicKey})
	}
	return pb
}

// KeySetFromProto returns a key set from its wire form, checked (see
// KeySet.Check).
func KeySetFromProto(pb *veilmatchv1.KeySet) (KeySet, error) {
	if len(pb.GetShares()) > MaxShares {
		return KeySet{}, fmt.Errorf("%w: %d shares, at most %d", ErrInvalidKeySet, len(pb.GetShares()), MaxShares)
	}
	s := KeySet{KeyID: pb.GetKeyId(), GroupKey: pb.GetGroupPublicKey(), Threshold: int(pb.GetThreshold()), Generation: pb.GetGeneration()}
	for _, sh := range pb.GetShares() {
		s.Shares = append(s.Shares, ShareKey{Index: int(sh.GetIndex()), PublicKey: sh.GetPublicKey()})
	}
	return s, s.Check()
}
