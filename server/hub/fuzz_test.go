package hub

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/veilmatch/veilmatch/crypto/token"
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
	sealed := matchRef{Owner: "police-gb", ListID: 9, Entry: &e, Level: "flag", Purpose: "investigation", CaseRef: "C-1", Issued: 1}
	ref, err := s.seal(sealed)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ref)
	f.Add("mr2.")
	f.Add("mr2.AAAA")
	f.Add("")
	f.Fuzz(func(t *testing.T, ref string) {
		// Seals are randomized, so only the seeded reference (sealed with
		// the same key, maybe in another process) may open, to its content.
		r, err := s.open(ref)
		if err == nil && (r.Owner != sealed.Owner || r.ListID != sealed.ListID || r.Entry == nil || *r.Entry != e || r.CaseRef != sealed.CaseRef) {
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
	pol, err := policy.New(f.Context(), policy.Options{})
	if err != nil {
		f.Fatal(err)
	}
	v := pol.Vocabulary()
	s, err := NewService(nil, pol, bytes.Repeat([]byte{7}, 32), ServiceOptions{Now: func() time.Time { return time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC) }})
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
		if !listNameRE.MatchString(l.Name) || !slices.Contains(v.Kinds, l.Kind) || !slices.Contains(v.Categories, l.Category) || l.Owner != "police-gb" {
			t.Fatalf("accepted malformed metadata: %+v", l)
		}
	})
}

func timestampFromUnix(sec int64) *timestamppb.Timestamp {
	return &timestamppb.Timestamp{Seconds: sec}
}

// FuzzPublishBatch: a publish message from a client is untrusted wire
// bytes; a batch is accepted only whole and well formed, and anything else
// is INVALID_ARGUMENT naming the batch, without a panic.
func FuzzPublishBatch(f *testing.F) {
	tok := bytes.Repeat([]byte{0xab}, token.Size)
	for _, b := range []*veilmatchv1.PublishBatch{
		{Sequence: 0, Entries: []*veilmatchv1.Entry{{Token: tok, EntryRef: 1}}},
		{Sequence: 7, Entries: []*veilmatchv1.Entry{{Token: tok}, {Token: tok[:31], EntryRef: 2}}},
		{Sequence: 3},
	} {
		data, err := proto.Marshal(&veilmatchv1.PublishRequest{Msg: &veilmatchv1.PublishRequest_Batch{Batch: b}})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte{0x12, 0x05, 0x08, 0x01, 0x12, 0x01, 0x0a})
	f.Fuzz(func(t *testing.T, data []byte) {
		var req veilmatchv1.PublishRequest
		if proto.Unmarshal(data, &req) != nil || req.GetBatch() == nil {
			return
		}
		b := req.GetBatch()
		entries, err := batchEntries("phone", b)
		if err != nil {
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), fmt.Sprintf("batch %d", b.GetSequence())) {
				t.Fatalf("error %v is not INVALID_ARGUMENT naming batch %d", err, b.GetSequence())
			}
			return
		}
		if len(entries) != len(b.GetEntries()) || len(entries) == 0 || len(entries) > MaxBatchEntries {
			t.Fatalf("accepted %d entries of %d", len(entries), len(b.GetEntries()))
		}
		for i, e := range entries {
			if len(e.Token) != token.Size || e.Ref != b.GetEntries()[i].GetEntryRef() {
				t.Fatalf("entry %d accepted as %d-byte token, ref %d", i, len(e.Token), e.Ref)
			}
		}
	})
}
