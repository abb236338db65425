package oprf

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	mrand "math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/hpke"
	"github.com/cloudflare/circl/secretsharing"
	r255 "github.com/gtank/ristretto255"
)

// viaJSON returns v after a trip through JSON, as a ceremony's messages and
// states travel between rounds in files.
func viaJSON[T any](t *testing.T, v T) T {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %T: %v", v, err)
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("unmarshal %T: %v", v, err)
	}
	return out
}

// board holds what a ceremony's participants publish, and, for tests that
// play a cheating dealer, the shares each dealer dealt.
type board struct {
	hellos     []*DKGHello
	deals      []*DKGDeal
	complaints []*DKGComplaints
	reveals    []*DKGReveal
	dealt      [][]group.Scalar
}

// hooks let a test play a cheating participant or a faulty board: deals
// runs after the deal round, reveals after the reveal round.
type hooks struct {
	deals, reveals func(b *board)
}

// outcome is what each receiver's Finish returned, by index-1.
type outcome struct {
	shares []*PrivateKey
	disq   [][]int
	errs   []error
}

// runDKG runs a DKG among n participants, every message and state through
// JSON between rounds. A dealer whose Reveal refuses publishes none.
func runDKG(t *testing.T, n, thr int, h hooks) outcome {
	t.Helper()
	var b board
	parts := make([]*DKGParticipant, n)
	for i := range parts {
		p, hello, err := NewDKG(DKGParams{KeyID: "dkg", N: n, T: thr}, i+1)
		if err != nil {
			t.Fatal(err)
		}
		parts[i] = viaJSON(t, p)
		b.hellos = append(b.hellos, viaJSON(t, hello))
	}
	for i, p := range parts {
		d, err := p.Deal(b.hellos)
		if err != nil {
			t.Fatal(err)
		}
		parts[i] = viaJSON(t, p)
		b.deals = append(b.deals, viaJSON(t, d))
		b.dealt = append(b.dealt, parts[i].p.dealt)
	}
	if h.deals != nil {
		h.deals(&b)
	}
	for i, p := range parts {
		c, err := p.Complain(b.deals)
		if err != nil {
			t.Fatal(err)
		}
		parts[i] = viaJSON(t, p)
		b.complaints = append(b.complaints, viaJSON(t, c))
	}
	for _, p := range parts {
		r, err := p.Reveal(b.complaints)
		if err != nil {
			t.Logf("participant %d reveals nothing: %v", p.Index(), err)
			continue
		}
		b.reveals = append(b.reveals, viaJSON(t, r))
	}
	if h.reveals != nil {
		h.reveals(&b)
	}
	var out outcome
	for _, p := range parts {
		share, disq, err := p.Finish(b.deals, b.complaints, b.reveals)
		out.shares, out.disq, out.errs = append(out.shares, share), append(out.disq, disq), append(out.errs, err)
	}
	return out
}

// agree checks that every receiver finished, with the same key set and the
// disqualified dealers want, and returns the key set.
func (o outcome) agree(t *testing.T, want []int) KeySet {
	t.Helper()
	var set KeySet
	for i, share := range o.shares {
		if o.errs[i] != nil {
			t.Fatalf("receiver %d: %v", i+1, o.errs[i])
		}
		if !slices.Equal(o.disq[i], want) {
			t.Fatalf("receiver %d disqualified %v, want %v", i+1, o.disq[i], want)
		}
		idx, s, ok := share.Share()
		if !ok || idx != i+1 {
			t.Fatalf("receiver %d got share %d (ok=%v)", i+1, idx, ok)
		}
		if err := s.Check(); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			set = s
		} else if !s.Equal(set) {
			t.Fatalf("receivers 1 and %d computed different key sets", i+1)
		}
	}
	return set
}

// checkTokens checks that every t-subset of shares makes the same tokens
// for inputs, that the group key is Σ λ_i·K_i over each subset, and that
// fewer than t shares do not combine. It returns the tokens.
func checkTokens(t *testing.T, shares []*PrivateKey, inputs [][]byte) [][32]byte {
	t.Helper()
	_, set, _ := shares[0].Share()
	tc, err := NewThresholdClient(set)
	if err != nil {
		t.Fatal(err)
	}
	var want [][32]byte
	for _, idx := range subsets(len(shares), set.Threshold) {
		got, err := thresholdTokens(t, tc, shares, idx, inputs)
		if err != nil {
			t.Fatalf("shares %v: %v", idx, err)
		}
		if want == nil {
			want = got
		} else if !slices.Equal(got, want) {
			t.Fatalf("shares %v make other tokens than shares %v", idx, subsets(len(shares), set.Threshold)[0])
		}
		lambda, err := lagrangeAtZero(idx)
		if err != nil {
			t.Fatal(err)
		}
		keys := make([]*r255.Element, len(idx))
		for k, i := range idx {
			keys[k], _ = decodeElement(set.Shares[i-1].PublicKey)
		}
		if y := r255.NewElement().VarTimeMultiScalarMult(lambda, keys).Encode(nil); !bytes.Equal(y, set.GroupKey) {
			t.Fatalf("Σ λ_i·K_i over shares %v is not the group key", idx)
		}
	}
	if set.Threshold > 1 {
		if _, err := thresholdTokens(t, tc, shares, subsets(len(shares), set.Threshold-1)[0], inputs); err == nil {
			t.Fatal("combined fewer than t shares")
		}
	}
	return want
}

// wholeTokens returns key's tokens for inputs, evaluated whole.
func wholeTokens(t *testing.T, key *PrivateKey, inputs [][]byte) [][32]byte {
	t.Helper()
	c, err := NewClient(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Blind(inputs)
	if err != nil {
		t.Fatal(err)
	}
	evaluated, proof, err := NewEvaluator(key).Evaluate(mustDecodeBatch(t, b.Blinded))
	if err != nil {
		t.Fatal(err)
	}
	toks, err := c.Finalize(b, evaluated, proof)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][32]byte, len(toks))
	for i, tk := range toks {
		out[i] = tk
	}
	return out
}

// interpolate is the test's oracle: the whole key that shares idx
// interpolate to, which the ceremony itself never computes.
func interpolate(t *testing.T, shares []*PrivateKey, idx []int) *PrivateKey {
	t.Helper()
	g := group.Ristretto255
	var parts []secretsharing.Share
	for _, i := range idx {
		v := g.NewScalar()
		if err := v.UnmarshalBinary(mustScalar(t, shares[i-1])); err != nil {
			t.Fatal(err)
		}
		parts = append(parts, secretsharing.Share{ID: g.NewScalar().SetUint64(uint64(i)), Value: v})
	}
	k, err := secretsharing.Recover(uint(len(idx)-1), parts)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := k.MarshalBinary()
	key, err := NewPrivateKey(shares[0].KeyID(), kb)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// TestDKG runs whole ceremonies: every participant computes the same key
// set, any t shares make the same tokens — those of the key the shares
// interpolate to, whose public key is the group key.
func TestDKG(t *testing.T) {
	inputs := randomInputs(mrand.NewChaCha8([32]byte{7}), 8)
	for _, tn := range [][2]int{{1, 1}, {2, 3}, {3, 5}} {
		thr, n := tn[0], tn[1]
		t.Run(fmt.Sprintf("%d-of-%d", thr, n), func(t *testing.T) {
			o := runDKG(t, n, thr, hooks{})
			set := o.agree(t, nil)
			if set.KeyID != "dkg" || set.Threshold != thr || len(set.Shares) != n || set.Generation != 1 {
				t.Fatalf("key set %s %d-of-%d generation %d", set.KeyID, set.Threshold, len(set.Shares), set.Generation)
			}
			got := checkTokens(t, o.shares, inputs)
			whole := interpolate(t, o.shares, subsets(n, thr)[0])
			if !bytes.Equal(whole.Public().Bytes, set.GroupKey) {
				t.Fatal("the shares interpolate to a key other than the group key")
			}
			if !slices.Equal(got, wholeTokens(t, whole, inputs)) {
				t.Fatal("the shares' tokens are not the interpolated key's")
			}
			data, err := MarshalKey(o.shares[n-1])
			if err != nil {
				t.Fatal(err)
			}
			if back, err := ParseKey(data); err != nil || !back.Equal(o.shares[n-1]) {
				t.Fatalf("share key file round trip: %v", err)
			}
		})
	}
}

// TestDKGTwoRunsDiffer checks that two ceremonies with the same parameters
// make different keys.
func TestDKGTwoRunsDiffer(t *testing.T) {
	a := runDKG(t, 3, 2, hooks{}).agree(t, nil)
	b := runDKG(t, 3, 2, hooks{}).agree(t, nil)
	if bytes.Equal(a.GroupKey, b.GroupKey) {
		t.Fatal("two DKGs made the same group key")
	}
}

// resealWrong replaces deal d's encrypted share for receiver to with a
// well-encrypted share that is not on d's polynomial.
func resealWrong(t *testing.T, c ceremony, b *board, d *DKGDeal, to int) {
	t.Helper()
	pk, err := hpke.KEM_X25519_HKDF_SHA256.Scheme().UnmarshalBinaryPublicKey(b.hellos[to-1].PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	wrong := group.Ristretto255.RandomScalar(rand.Reader)
	ct, err := c.seal(pk, d.Dealer, to, wrong, bytes.Join(d.Commitments, nil))
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(d.Shares, func(s SealedShare) bool { return s.To == to })
	d.Shares[i].Ciphertext = ct
}

func dkgCeremony(t *testing.T, n, thr int) ceremony {
	c, err := DKGParams{KeyID: "dkg", N: n, T: thr}.ceremony()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestDKGCheatingDealer has dealer 2 send participant 3 a wrong share.
// Participant 3 complains; if dealer 2 then reveals the right share,
// everyone keeps it and participant 3 uses the revealed share; if it
// reveals a wrong one or none, everyone disqualifies it and the key works
// without it.
func TestDKGCheatingDealer(t *testing.T) {
	inputs := [][]byte{[]byte("a"), []byte("b")}
	cheat := func(b *board) { resealWrong(t, dkgCeremony(t, 3, 2), b, b.deals[1], 3) }
	for name, tc := range map[string]struct {
		reveals func(b *board)
		disq    []int
	}{
		"honest reveal": {nil, nil},
		"wrong reveal": {func(b *board) {
			b.reveals[1].Shares[0].Value, _ = group.Ristretto255.RandomScalar(rand.Reader).MarshalBinary()
		}, []int{2}},
		"two reveals for one complainer": {func(b *board) {
			b.reveals[1].Shares = append(b.reveals[1].Shares, b.reveals[1].Shares[0])
		}, []int{2}},
		"no reveal": {func(b *board) { b.reveals = slices.Delete(b.reveals, 1, 2) }, []int{2}},
	} {
		t.Run(name, func(t *testing.T) {
			o := runDKG(t, 3, 2, hooks{deals: cheat, reveals: func(b *board) {
				if !slices.Equal(b.complaints[2].Against, []int{2}) || len(b.complaints[0].Against)+len(b.complaints[1].Against) != 0 {
					t.Fatalf("complaints %v %v %v, want only 3 against 2", b.complaints[0].Against, b.complaints[1].Against, b.complaints[2].Against)
				}
				if r := b.reveals[1]; r.Dealer != 2 || len(r.Shares) != 1 || r.Shares[0].To != 3 {
					t.Fatalf("dealer 2 revealed %+v", r.Shares)
				}
				if tc.reveals != nil {
					tc.reveals(b)
				}
			}})
			o.agree(t, tc.disq)
			checkTokens(t, o.shares, inputs)
		})
	}
}

// TestDKGMalformedDeals checks that a deal anyone can see is bad — a proof
// that does not verify, one bound to another dealer, a commitment too few,
// a missing encrypted share, no deal at all — disqualifies its dealer for
// everyone, and that the key works without it.
func TestDKGMalformedDeals(t *testing.T) {
	inputs := [][]byte{[]byte("x")}
	for name, tc := range map[string]struct {
		tamper func(d, other *DKGDeal)
		reason string
	}{
		"bad proof":           {func(d, _ *DKGDeal) { d.Proof[ElementSize] ^= 1 }, "the proof of knowledge does not verify"},
		"proof of dealer 1":   {func(d, o *DKGDeal) { d.Commitments, d.Proof = o.Commitments, o.Proof }, "the proof of knowledge does not verify"},
		"missing commitment":  {func(d, _ *DKGDeal) { d.Commitments = d.Commitments[:2] }, "2 commitments, want 3"},
		"extra commitment":    {func(d, o *DKGDeal) { d.Commitments = append(d.Commitments, o.Commitments[2]) }, "4 commitments, want 3"},
		"identity commitment": {func(d, _ *DKGDeal) { d.Commitments[2] = make([]byte, ElementSize) }, "commitment 2: oprf: invalid element: identity element"},
		"missing share":       {func(d, _ *DKGDeal) { d.Shares = d.Shares[1:] }, "3 encrypted shares, want 4"},
		"share to itself":     {func(d, _ *DKGDeal) { d.Shares[1].To = 2 }, "an unexpected encrypted share for receiver 2"},
		"no deal":             {nil, ""},
	} {
		t.Run(name, func(t *testing.T) {
			o := runDKG(t, 5, 3, hooks{deals: func(b *board) {
				if tc.tamper == nil {
					b.deals = slices.Delete(b.deals, 1, 2)
					return
				}
				tc.tamper(b.deals[1], b.deals[0])
				if _, err := dkgCeremony(t, 5, 3).checkDeal(b.deals[1]); err == nil || err.Error() != tc.reason {
					t.Fatalf("checkDeal: %v, want %q", err, tc.reason)
				}
			}})
			o.agree(t, []int{2})
			checkTokens(t, o.shares, inputs)
		})
	}
}

// TestDKGTooFewQualified checks that no one finishes when fewer than t
// dealers qualify.
func TestDKGTooFewQualified(t *testing.T) {
	o := runDKG(t, 3, 2, hooks{deals: func(b *board) {
		b.deals[0].Proof[0] ^= 1
		b.deals[2].Commitments = b.deals[2].Commitments[:1]
	}})
	for i, err := range o.errs {
		if !errors.Is(err, ErrCeremony) || !strings.Contains(err.Error(), "1 qualified dealers [2], fewer than the threshold 2") {
			t.Fatalf("participant %d: %v", i+1, err)
		}
	}
}

// TestDKGThresholdOfComplaints checks that a dealer facing t complaints
// refuses to reveal, and that one that reveals anyway — right shares — is
// disqualified all the same.
func TestDKGThresholdOfComplaints(t *testing.T) {
	o := runDKG(t, 5, 2, hooks{deals: func(b *board) {
		resealWrong(t, dkgCeremony(t, 5, 2), b, b.deals[0], 2)
		resealWrong(t, dkgCeremony(t, 5, 2), b, b.deals[0], 3)
	}, reveals: func(b *board) {
		if len(b.reveals) != 4 || b.reveals[0].Dealer != 2 {
			t.Fatalf("dealer 1 revealed with 2 complaints: %d reveals", len(b.reveals))
		}
		r := &DKGReveal{KeyID: "dkg", Generation: 1, Dealer: 1}
		for _, j := range []int{2, 3} {
			v, _ := b.dealt[0][j-1].MarshalBinary()
			r.Shares = append(r.Shares, RevealedShare{To: j, Value: v})
		}
		b.reveals = append(b.reveals, r)
	}})
	o.agree(t, []int{1})
	checkTokens(t, o.shares, [][]byte{[]byte("x")})
}

// TestDKGHellos refuses hellos that do not describe one ceremony, naming
// the hello at fault, and parameters that make no ceremony.
func TestDKGHellos(t *testing.T) {
	params := DKGParams{KeyID: "dkg", N: 3, T: 2}
	var parts []*DKGParticipant
	var hellos []*DKGHello
	for i := 1; i <= 3; i++ {
		p, h, err := NewDKG(params, i)
		if err != nil {
			t.Fatal(err)
		}
		parts, hellos = append(parts, p), append(hellos, h)
	}
	other := func(f func(h *DKGHello)) []*DKGHello {
		out := make([]*DKGHello, len(hellos))
		for i, h := range hellos {
			c := *h
			out[i] = &c
		}
		f(out[2])
		return out
	}
	for name, tc := range map[string]struct {
		hellos []*DKGHello
		want   string
	}{
		"threshold":    {other(func(h *DKGHello) { h.T = 3 }), "hello 3 is for a 3-of-3 key"},
		"n":            {other(func(h *DKGHello) { h.N = 4 }), "hello 3 is for a 2-of-4 key"},
		"key id":       {other(func(h *DKGHello) { h.KeyID = "other" }), `hello 3 is for key "other"`},
		"generation":   {other(func(h *DKGHello) { h.Generation = 2 }), "hello 3 is for key \"dkg\" generation 2"},
		"index twice":  {other(func(h *DKGHello) { h.Index = 2 }), "two hellos with index 2"},
		"index 4":      {other(func(h *DKGHello) { h.Index = 4 }), "hello index 4: indices run from 1 to 3"},
		"missing":      {hellos[:2], "2 hellos for 3 participants"},
		"bad HPKE key": {other(func(h *DKGHello) { h.PublicKey = h.PublicKey[1:] }), "hello 3: invalid HPKE public key"},
	} {
		_, err := parts[0].Deal(tc.hellos)
		if !errors.Is(err, ErrCeremony) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	swapped := slices.Clone(hellos)
	swapped[0], swapped[1] = &DKGHello{}, &DKGHello{}
	*swapped[0], *swapped[1] = *hellos[1], *hellos[0]
	swapped[0].Index, swapped[1].Index = 1, 2
	if _, err := parts[0].Deal(swapped); err == nil || !strings.Contains(err.Error(), "hello 1 is not participant 1's own") {
		t.Errorf("another key under participant 1's index: %v", err)
	}
	for _, bad := range []struct {
		p     DKGParams
		index int
	}{{DKGParams{"dkg", 3, 4}, 1}, {DKGParams{"dkg", 3, 0}, 1}, {DKGParams{"dkg", MaxShares + 1, 2}, 1},
		{DKGParams{"no spaces", 3, 2}, 1}, {params, 0}, {params, 4}} {
		if _, _, err := NewDKG(bad.p, bad.index); !errors.Is(err, ErrCeremony) {
			t.Errorf("NewDKG(%+v, %d) = %v", bad.p, bad.index, err)
		}
	}
}

// TestDKGState checks the state file: it round-trips, a participant deals
// once and only after dealing complains, a state of another role or with
// bad fields is refused, and printing the state shows no secret.
func TestDKGState(t *testing.T) {
	p, h, err := NewDKG(DKGParams{KeyID: "dkg", N: 1, T: 1}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Complain(nil); !errors.Is(err, ErrCeremony) {
		t.Fatalf("complained before dealing: %v", err)
	}
	d, err := p.Deal([]*DKGHello{h})
	if err != nil {
		t.Fatal(err)
	}
	p = viaJSON(t, p)
	if _, err := p.Deal([]*DKGHello{h}); err == nil || !strings.Contains(err.Error(), "dealt already") {
		t.Fatalf("dealt twice: %v", err)
	}
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var st stateJSON
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprint(p), fmt.Sprintf("%+v %#v", p, p)} {
		if strings.Contains(s, st.HPKEKey) || strings.Contains(s, st.Dealt[0]) {
			t.Fatalf("printing the state shows a secret: %s", s)
		}
	}
	if err := json.Unmarshal(data, new(ReshareReceiver)); !errors.Is(err, ErrCeremony) {
		t.Fatalf("a DKG state parsed as a resharing's: %v", err)
	}
	for name, f := range map[string]func(s *stateJSON){
		"index":      func(s *stateJSON) { s.Index = 2 },
		"threshold":  func(s *stateJSON) { s.T = 2 },
		"HPKE key":   func(s *stateJSON) { s.HPKEKey = "zz" },
		"no HPKE":    func(s *stateJSON) { s.HPKEKey = "" },
		"dealt":      func(s *stateJSON) { s.Dealt = append(s.Dealt, s.Dealt[0]) },
		"dealt hex":  func(s *stateJSON) { s.Dealt[0] = strings.Repeat("ff", 32) },
		"key id":     func(s *stateJSON) { s.KeyID = "" },
		"other role": func(s *stateJSON) { s.Role = roleReshareReceiver },
	} {
		s := st
		s.Dealt = slices.Clone(st.Dealt)
		f(&s)
		bad, _ := json.Marshal(s)
		err := json.Unmarshal(bad, new(DKGParticipant))
		if !errors.Is(err, ErrCeremony) || strings.Contains(err.Error(), st.HPKEKey) {
			t.Errorf("%s: %v", name, err)
		}
	}
	c, err := p.Complain([]*DKGDeal{d})
	if err != nil || len(c.Against) != 0 {
		t.Fatalf("complaints %v, %v", c, err)
	}
	if b, _ := json.Marshal(c); !strings.Contains(string(b), `"against":[]`) {
		t.Fatalf("no complaints marshal as %s", b)
	}
}

// TestDKGBoardDisagrees checks that a participant given other deals at
// Finish than it complained about stops rather than compute a share the
// others would not agree with.
func TestDKGBoardDisagrees(t *testing.T) {
	o := runDKG(t, 3, 2, hooks{reveals: func(b *board) {
		resealWrong(t, dkgCeremony(t, 3, 2), b, b.deals[1], 1)
	}})
	if err := o.errs[0]; err == nil || !strings.Contains(err.Error(), "participant 1: the deals differ from those it complained about (dealer 2)") {
		t.Fatalf("participant 1 finished on other deals: %v", err)
	}
	if o.errs[1] != nil || o.errs[2] != nil {
		t.Fatalf("the other participants: %v %v", o.errs[1], o.errs[2])
	}
}

// TestDKGMessagesJSON checks the messages' JSON shape: byte strings in hex
// under stable names.
func TestDKGMessagesJSON(t *testing.T) {
	var b board
	runDKG(t, 2, 2, hooks{reveals: func(bb *board) { b = *bb }})
	for _, m := range []struct {
		v    any
		want []string
	}{
		{b.hellos[0], []string{`"key_id":"dkg"`, `"generation":1`, `"n":2`, `"t":2`, `"index":1`, `"hpke_public_key":"` + hex.EncodeToString(b.hellos[0].PublicKey) + `"`}},
		{b.deals[1], []string{`"dealer":2`, `"commitments":["` + hex.EncodeToString(b.deals[1].Commitments[0]), `"proof":"`, `"shares":[{"to":1,"ciphertext":"`}},
		{b.complaints[0], []string{`"index":1`, `"against":[]`}},
		{b.reveals[0], []string{`"dealer":1`, `"shares":[]`}},
	} {
		data, err := json.Marshal(m.v)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range m.want {
			if !strings.Contains(string(data), w) {
				t.Errorf("%T JSON %s lacks %s", m.v, data, w)
			}
		}
	}
	bad := []byte(`{"key_id":"dkg","generation":1,"dealer":1,"commitments":["zz"],"shares":[]}`)
	if err := json.Unmarshal(bad, new(DKGDeal)); !errors.Is(err, ErrCeremony) || !strings.Contains(err.Error(), "message from 1: commitment 0 is not hex") {
		t.Fatalf("a deal with a bad commitment: %v", err)
	}
}

// TestCeremonyNeverDeals checks, on the package's source, that no function
// the DKG or resharing entry points can reach — by name, over-approximated:
// every identifier a reached body mentions counts — is the dealer path,
// which holds the whole key: Split, sharesOf, GenerateKey or
// secretsharing.Recover. It also checks the walk reaches NewShare, so it
// cannot pass by missing the ceremony's code.
func TestCeremonyNeverDeals(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	bodies := map[string][]*ast.BlockStmt{} // function or method name → bodies
	imports := map[*ast.BlockStmt]map[string]bool{}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		imp := map[string]bool{}
		for _, s := range f.Imports {
			path := strings.Trim(s.Path.Value, `"`)
			if s.Name != nil {
				imp[s.Name.Name] = true
			} else {
				imp[path[strings.LastIndex(path, "/")+1:]] = true
			}
		}
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Body != nil {
				bodies[fd.Name.Name] = append(bodies[fd.Name.Name], fd.Body)
				imports[fd.Body] = imp
			}
		}
	}
	roots := []string{"NewDKG", "Deal", "Complain", "Reveal", "Finish", "ReshareDeal", "NewReshareReceiver", "MarshalJSON", "UnmarshalJSON"}
	seen := map[string]bool{}
	queue := slices.Clone(roots)
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		if seen[name] {
			continue
		}
		seen[name] = true
		for _, body := range bodies[name] {
			ast.Inspect(body, func(n ast.Node) bool {
				if sel, ok := n.(*ast.SelectorExpr); ok {
					if x, ok := sel.X.(*ast.Ident); ok && imports[body][x.Name] {
						seen[x.Name+"."+sel.Sel.Name] = true
						return false
					}
				}
				if id, ok := n.(*ast.Ident); ok && !seen[id.Name] && bodies[id.Name] != nil {
					queue = append(queue, id.Name)
				}
				return true
			})
		}
	}
	for _, r := range roots {
		if bodies[r] == nil {
			t.Errorf("entry point %s not found", r)
		}
	}
	if !seen["NewShare"] || !seen["secretsharing.New"] {
		t.Fatal("the walk does not reach NewShare and secretsharing.New: it is not walking the ceremony")
	}
	for _, bad := range []string{"Split", "sharesOf", "GenerateKey", "secretsharing.Recover"} {
		if seen[bad] {
			t.Errorf("the key ceremony can reach %s, the dealer path", bad)
		}
	}
}
