package oprf

import (
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
