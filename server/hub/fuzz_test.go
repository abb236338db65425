package hub

import (
	"bytes"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/veilmatch/veilmatch/policy"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
)

// FuzzOpenMatchRef: a match reference from a client is untrusted; only
// references this hub sealed open, and nothing panics.
func FuzzOpenMatchRef(f *testing.F) {
	s, err := newRefSealer(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		f.Fatal(err)
	}
	e := uint64(3)
	sealed := matchRef{Owner: "police-gb", ListID: 9, Entry: &e, Counterparts: []int64{1, 2}, Level: "flag"}
	f.Add(s.seal(sealed))
	f.Add("mr1.")
	f.Add("mr1.AAAA")
	f.Add("")
	f.Fuzz(func(t *testing.T, ref string) {
		// Seals are randomized, so only the seeded reference (sealed with
		// the same key, maybe in another process) may open, to its content.
		r, err := s.open(ref)
		if err == nil && (r.Owner != sealed.Owner || r.ListID != sealed.ListID || r.Entry == nil || *r.Entry != e) {
			t.Fatalf("opened a reference this hub did not seal: %+v", r)
		}
	})
}

// FuzzListMeta: list metadata from a PublishBegin is validated field by
// field; whatever is accepted is well formed.
func FuzzListMeta(f *testing.F) {
	f.Add("suspects", "phone", "suspect", "k1", "law_enforcement", int64(0))
	f.Add("", "fax", "Bad Category", "bad key", "", int64(-5))
	f.Add("a/b", "email", "victim", "k20261128-ab", "ngo", int64(1<<40))
	s, err := NewService(nil, nil, bytes.Repeat([]byte{7}, 32), func() time.Time { return time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC) })
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, name, kind, category, keyID, role string, expires int64) {
		info := &veilmatchv1.ListInfo{Name: name, Kind: kind, Category: category, KeyId: keyID,
			Sharing: &veilmatchv1.Sharing{VictimConsentRoles: []string{role}}}
		if expires != 0 {
			info.ExpiresAt = timestampFromUnix(expires)
		}
		l, err := s.listMeta("police-gb", policy.Agency{ID: "police-gb", Jurisdiction: "GB"}, info)
		if err != nil {
			return
		}
		if !listNameRE.MatchString(l.Name) || !kinds[l.Kind] || !categoryRE.MatchString(l.Category) || l.Owner != "police-gb" {
			t.Fatalf("accepted malformed metadata: %+v", l)
		}
	})
}

func timestampFromUnix(sec int64) *timestamppb.Timestamp {
	return &timestamppb.Timestamp{Seconds: sec}
}
