package oprf

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/kem"
)

// runReshare reshares the key set of p to p.N new holders, the shares
// dealers dealing, every message and state through JSON between rounds. A
// dealer whose Reveal refuses publishes none.
func runReshare(t *testing.T, p ReshareParams, dealers []*PrivateKey, h hooks) outcome {
	t.Helper()
	var b board
	recvs := make([]*ReshareReceiver, p.N)
	for j := range recvs {
		r, hello, err := NewReshareReceiver(p, j+1)
		if err != nil {
			t.Fatal(err)
		}
		recvs[j] = viaJSON(t, r)
		b.hellos = append(b.hellos, viaJSON(t, hello))
	}
	var ds []*ReshareDealer
	for _, old := range dealers {
		d, deal, err := ReshareDeal(p, old, b.hellos)
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, viaJSON(t, d))
		b.deals = append(b.deals, viaJSON(t, deal))
	}
	if h.deals != nil {
		h.deals(&b)
	}
	for j, r := range recvs {
		c, err := r.Complain(b.deals)
		if err != nil {
			t.Fatal(err)
		}
		recvs[j] = viaJSON(t, r)
		b.complaints = append(b.complaints, viaJSON(t, c))
	}
	for _, d := range ds {
		r, err := d.Reveal(b.complaints)
		if err != nil {
			t.Logf("old holder %d reveals nothing: %v", d.Index(), err)
			continue
		}
		b.reveals = append(b.reveals, viaJSON(t, r))
	}
	if h.reveals != nil {
		h.reveals(&b)
	}
	var out outcome
	for _, r := range recvs {
		share, disq, err := r.Finish(b.deals, b.complaints, b.reveals)
		out.shares, out.disq, out.errs = append(out.shares, share), append(out.disq, disq), append(out.errs, err)
	}
	return out
}

// splitKey returns an endorsed whole key, its tokens for inputs (none if
// inputs is nil) and its shares, n of them, t of which evaluate.
func splitKey(t *testing.T, n, thr int, inputs [][]byte) (*PrivateKey, [][32]byte, []*PrivateKey) {
	t.Helper()
	keys := genKeys(t, "k1", "k2")
	whole := rotate(t, keys)[0]
	shares, err := Split(whole, n, thr)
	if err != nil {
		t.Fatal(err)
	}
	if inputs == nil {
		return whole, nil, shares
	}
	return whole, wholeTokens(t, whole, inputs), shares
}

func keySetOf(t *testing.T, share *PrivateKey) KeySet {
	t.Helper()
	_, set, ok := share.Share()
	if !ok {
		t.Fatal("not a share")
	}
	return set
}

// TestReshare reshares a 2-of-3 key to 3-of-4 holders, two old holders
// dealing, then to 2-of-2 with all four dealing: the group key and the
// tokens stay, the generation counts, the endorsements follow, and the old
// shares no longer verify against the new key set.
func TestReshare(t *testing.T) {
	inputs := randomInputs(mrand.NewChaCha8([32]byte{9}), 10)
	whole, want, old := splitKey(t, 3, 2, inputs)
	oldSet := keySetOf(t, old[0])

	o := runReshare(t, ReshareParams{Old: oldSet, Chain: whole.Endorsements(), N: 4, T: 3}, []*PrivateKey{old[0], old[2]}, hooks{})
	set := o.agree(t, nil)
	if set.KeyID != "k2" || set.Generation != 2 || set.Threshold != 3 || len(set.Shares) != 4 || !slices.Equal(set.GroupKey, oldSet.GroupKey) {
		t.Fatalf("new key set %s generation %d, %d-of-%d", set.KeyID, set.Generation, set.Threshold, len(set.Shares))
	}
	if got := checkTokens(t, o.shares, inputs); !slices.Equal(got, want) {
		t.Fatal("resharing changed the tokens")
	}
	for _, sh := range o.shares {
		if len(sh.Endorsements()) != 1 {
			t.Fatalf("share %v carries %d endorsements, want the group key's 1", sh, len(sh.Endorsements()))
		}
		data, err := MarshalKey(sh)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := ParseKey(data); err != nil || !back.Equal(sh) {
			t.Fatalf("share key file round trip: %v", err)
		}
	}
	tc, err := NewThresholdClient(set)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := thresholdTokens(t, tc, old, []int{1, 2}, inputs); !errors.Is(err, ErrInvalidProof) {
		t.Fatalf("an old share verified against the new key set: %v", err)
	}

	o = runReshare(t, ReshareParams{Old: set, Chain: o.shares[0].Endorsements(), N: 2, T: 2}, o.shares, hooks{})
	again := o.agree(t, nil)
	if again.Generation != 3 || !slices.Equal(again.GroupKey, oldSet.GroupKey) {
		t.Fatalf("second resharing: generation %d", again.Generation)
	}
	if got := checkTokens(t, o.shares, inputs); !slices.Equal(got, want) {
		t.Fatal("the second resharing changed the tokens")
	}
}

// TestDKGThenReshare reshares a key that never existed whole.
func TestDKGThenReshare(t *testing.T) {
	inputs := [][]byte{[]byte("a"), []byte("b")}
	d := runDKG(t, 3, 2, hooks{})
	set := d.agree(t, nil)
	want := checkTokens(t, d.shares, inputs)
	o := runReshare(t, ReshareParams{Old: set, N: 5, T: 3}, d.shares[1:], hooks{})
	if got := o.agree(t, nil); got.Generation != 2 || len(got.Shares) != 5 {
		t.Fatalf("generation %d, %d shares", got.Generation, len(got.Shares))
	}
	if !slices.Equal(checkTokens(t, o.shares, inputs), want) {
		t.Fatal("resharing changed the DKG key's tokens")
	}
}

// reshareCeremony returns p's ceremony and the new holders' HPKE keys.
func reshareCeremony(t *testing.T, p ReshareParams, b *board) (ceremony, []kem.PublicKey) {
	t.Helper()
	c, err := p.ceremony()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := c.helloKeys(b.hellos)
	if err != nil {
		t.Fatal(err)
	}
	return c, keys
}

// TestReshareWrongConstant replaces old holder 2's deal with a well-formed
// deal of another secret: its first commitment is not its old share key,
// and everyone disqualifies it.
func TestReshareWrongConstant(t *testing.T) {
	inputs := [][]byte{[]byte("x")}
	_, want, old := splitKey(t, 3, 2, inputs)
	p := ReshareParams{Old: keySetOf(t, old[0]), N: 4, T: 3}
	o := runReshare(t, p, old, hooks{deals: func(b *board) {
		c, keys := reshareCeremony(t, p, b)
		d, _, err := c.deal(2, group.Ristretto255.RandomNonZeroScalar(rand.Reader), keys)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.checkDeal(d); err == nil || err.Error() != "commitment 0 is not old share 2's key" {
			t.Fatalf("checkDeal: %v", err)
		}
		b.deals[1] = d
	}})
	o.agree(t, []int{2})
	if !slices.Equal(checkTokens(t, o.shares, inputs), want) {
		t.Fatal("tokens changed")
	}
}

// TestReshareTooFewDealers checks that no new holder finishes with fewer
// qualified old holders than the old threshold.
func TestReshareTooFewDealers(t *testing.T) {
	_, _, old := splitKey(t, 3, 2, nil)
	p := ReshareParams{Old: keySetOf(t, old[0]), N: 3, T: 2}
	for name, tc := range map[string]struct {
		dealers []*PrivateKey
		h       hooks
	}{
		"one dealer": {old[:1], hooks{}},
		"one qualified": {old[:2], hooks{deals: func(b *board) {
			b.deals[1].Commitments[0] = b.deals[0].Commitments[0]
		}}},
	} {
		o := runReshare(t, p, tc.dealers, tc.h)
		for j, err := range o.errs {
			if !errors.Is(err, ErrCeremony) || !strings.Contains(err.Error(), "1 qualified old shares [1], fewer than the old threshold 2") {
				t.Errorf("%s: new holder %d: %v", name, j+1, err)
			}
		}
	}
}

// TestReshareCheatingDealer has old holder 3 send new holder 2 a wrong
// share: answered with the right one, it stays; with a wrong one, it is
// disqualified and the other two old holders suffice.
func TestReshareCheatingDealer(t *testing.T) {
	inputs := [][]byte{[]byte("x")}
	_, want, old := splitKey(t, 3, 2, inputs)
	p := ReshareParams{Old: keySetOf(t, old[0]), N: 4, T: 2}
	cheat := func(b *board) {
		c, _ := reshareCeremony(t, p, b)
		resealWrong(t, c, b, b.deals[2], 2)
	}
	for name, tc := range map[string]struct {
		reveals func(b *board)
		disq    []int
	}{
		"honest reveal": {func(*board) {}, nil},
		"wrong reveal":  {func(b *board) { b.reveals[2].Shares[0].Value = b.reveals[2].Shares[0].Value[1:] }, []int{3}},
	} {
		t.Run(name, func(t *testing.T) {
			o := runReshare(t, p, old, hooks{deals: cheat, reveals: func(b *board) {
				if !slices.Equal(b.complaints[1].Against, []int{3}) || len(b.reveals[2].Shares) != 1 {
					t.Fatalf("new holder 2 complains about %v; old holder 3 reveals %d shares", b.complaints[1].Against, len(b.reveals[2].Shares))
				}
				tc.reveals(b)
			}})
			o.agree(t, tc.disq)
			if !slices.Equal(checkTokens(t, o.shares, inputs), want) {
				t.Fatal("tokens changed")
			}
		})
	}
}

// TestReshareRefuses checks what a resharing refuses: a dealer's key that
// is not a share of the old key set, endorsements of another key, bad
// parameters, hellos of another ceremony, and state files of another role.
func TestReshareRefuses(t *testing.T) {
	whole, _, old := splitKey(t, 3, 2, nil)
	set := keySetOf(t, old[0])
	_, _, other := splitKey(t, 3, 2, nil)
	p := ReshareParams{Old: set, Chain: whole.Endorsements(), N: 3, T: 2}
	r, hello, err := NewReshareReceiver(p, 1)
	if err != nil {
		t.Fatal(err)
	}
	hellos := []*DKGHello{hello}
	for j := 2; j <= 3; j++ {
		_, h, _ := NewReshareReceiver(p, j)
		hellos = append(hellos, h)
	}
	for name, err := range map[string]error{
		"another key's share": second(ReshareDeal(p, other[0], hellos)),
		"a whole key":         second(ReshareDeal(p, whole, hellos)),
		"another chain":       second(NewReshareReceiver(ReshareParams{Old: set, Chain: other[0].Endorsements()[:1], N: 3, T: 2}, 1)),
		"t above n":           second(NewReshareReceiver(ReshareParams{Old: set, N: 2, T: 3}, 1)),
		"index 4":             second(NewReshareReceiver(p, 4)),
		"an unchecked set":    second(NewReshareReceiver(ReshareParams{Old: KeySet{KeyID: "k2"}, N: 3, T: 2}, 1)),
		"DKG hellos": second(ReshareDeal(p, old[0], func() []*DKGHello {
			var hs []*DKGHello
			for j := 1; j <= 3; j++ {
				_, h, _ := NewDKG(DKGParams{KeyID: "k2", N: 3, T: 2}, j)
				hs = append(hs, h)
			}
			return hs
		}())),
	} {
		if !errors.Is(err, ErrCeremony) {
			t.Errorf("%s: %v", name, err)
		}
	}
	d, _, err := ReshareDeal(p, old[1], hellos)
	if err != nil {
		t.Fatal(err)
	}
	dealerState, _ := d.MarshalJSON()
	receiverState, _ := r.MarshalJSON()
	if err := new(ReshareReceiver).UnmarshalJSON(dealerState); !errors.Is(err, ErrCeremony) {
		t.Errorf("a dealer's state read as a new holder's: %v", err)
	}
	if err := new(ReshareDealer).UnmarshalJSON(receiverState); !errors.Is(err, ErrCeremony) {
		t.Errorf("a new holder's state read as a dealer's: %v", err)
	}
	if back := viaJSON(t, r); back.Index() != 1 || !slices.Equal(back.p.c.chain[0].Proof, whole.Endorsements()[0].Proof) {
		t.Error("the new holder's state lost its index or endorsements")
	}
	if s := d.String() + r.String(); strings.Contains(s, "{") {
		t.Errorf("String shows fields: %s", s)
	}
}

// second returns the error of a three-valued call.
func second[A, B any](_ A, _ B, err error) error { return err }

// TestReshareParamsJSON round-trips the public parameters of a resharing
// and refuses an old key set that does not check.
func TestReshareParamsJSON(t *testing.T) {
	key, _ := GenerateKey("k")
	shares, err := Split(key, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	_, set, _ := shares[0].Share()
	p := ReshareParams{Old: set, N: 4, T: 3}
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var back ReshareParams
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !back.Old.Equal(set) || back.N != 4 || back.T != 3 {
		t.Fatalf("round trip: %+v", back)
	}
	bad := bytes.Replace(data, []byte(`"threshold":2`), []byte(`"threshold":1`), 1)
	if bytes.Equal(bad, data) {
		t.Fatal("test did not alter the threshold")
	}
	if err := json.Unmarshal(bad, &back); !errors.Is(err, ErrCeremony) {
		t.Fatalf("an inconsistent old key set: %v", err)
	}
}
