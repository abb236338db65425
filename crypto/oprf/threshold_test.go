package oprf

import (
	"bytes"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"testing"
)

// subsets returns every subset of size t of 1..n.
func subsets(n, t int) [][]int {
	var out [][]int
	var rec func(start int, cur []int)
	rec = func(start int, cur []int) {
		if len(cur) == t {
			out = append(out, append([]int(nil), cur...))
			return
		}
		for i := start; i <= n; i++ {
			rec(i+1, append(cur, i))
		}
	}
	rec(1, nil)
	return out
}

// thresholdTokens evaluates inputs with the shares at indices idx and
// combines their answers.
func thresholdTokens(t *testing.T, tc *ThresholdClient, shares []*PrivateKey, idx []int, inputs [][]byte) ([][32]byte, error) {
	t.Helper()
	b, err := tc.Blind(inputs)
	if err != nil {
		t.Fatal(err)
	}
	var evs []*ShareEvaluation
	for _, i := range idx {
		evaluated, proof, err := NewEvaluator(shares[i-1]).Evaluate(mustDecodeBatch(t, b.Blinded))
		if err != nil {
			t.Fatal(err)
		}
		ev, err := tc.VerifyShare(b, i, evaluated, proof)
		if err != nil {
			return nil, fmt.Errorf("share %d: %w", i, err)
		}
		evs = append(evs, ev)
	}
	toks, err := tc.Combine(b, evs)
	out := make([][32]byte, len(toks))
	for i, tk := range toks {
		out[i] = tk
	}
	return out, err
}

// TestSplitTokensUnchanged checks that every t-subset of a split key's
// shares gives exactly the whole key's tokens.
func TestSplitTokensUnchanged(t *testing.T) {
	inputs := randomInputs(mrand.NewChaCha8([32]byte{4}), 20)
	for _, tn := range [][2]int{{1, 1}, {2, 3}, {3, 5}, {5, 5}} {
		thr, n := tn[0], tn[1]
		t.Run(fmt.Sprintf("%d-of-%d", thr, n), func(t *testing.T) {
			key, err := GenerateKey("whole")
			if err != nil {
				t.Fatal(err)
			}
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
			want, err := c.Finalize(b, evaluated, proof)
			if err != nil {
				t.Fatal(err)
			}

			shares, err := Split(key, n, thr)
			if err != nil {
				t.Fatal(err)
			}
			_, set, ok := shares[0].Share()
			if !ok || set.Threshold != thr || len(set.Shares) != n || set.Generation != 1 {
				t.Fatalf("key set %+v", set)
			}
			if pub := shares[0].Public(); pub.KeyID != "whole" || !bytes.Equal(pub.Bytes, key.Public().Bytes) {
				t.Fatal("a share's public key is not the group key")
			}
			tc, err := NewThresholdClient(set)
			if err != nil {
				t.Fatal(err)
			}
			for _, idx := range subsets(n, thr) {
				got, err := thresholdTokens(t, tc, shares, idx, inputs)
				if err != nil {
					t.Fatalf("shares %v: %v", idx, err)
				}
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("shares %v: token %d differs from the whole key's", idx, i)
					}
				}
			}
			if thr > 1 {
				if _, err := thresholdTokens(t, tc, shares, subsets(n, thr-1)[0], inputs); err == nil {
					t.Fatal("combined fewer than t shares")
				}
			}
		})
	}
}

// TestForeignShareCaught checks that a server holding a share of another
// key is caught by its proof, and named by index.
func TestForeignShareCaught(t *testing.T) {
	key, _ := GenerateKey("k")
	other, _ := GenerateKey("k")
	shares, err := Split(key, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := Split(other, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	_, set, _ := shares[0].Share()
	tc, err := NewThresholdClient(set)
	if err != nil {
		t.Fatal(err)
	}
	mixed := []*PrivateKey{shares[0], foreign[1], shares[2]}
	_, err = thresholdTokens(t, tc, mixed, []int{1, 2}, [][]byte{[]byte("x")})
	if !errors.Is(err, ErrInvalidProof) || err.Error() != "share 2: "+ErrInvalidProof.Error() {
		t.Fatalf("foreign share: %v, want share 2 named with ErrInvalidProof", err)
	}
	if _, err := thresholdTokens(t, tc, mixed, []int{1, 3}, [][]byte{[]byte("x")}); err != nil {
		t.Fatalf("the honest shares: %v", err)
	}
}

// TestKeySetCheck refuses key sets whose share keys do not lie on one
// polynomial through the group key, and malformed ones.
func TestKeySetCheck(t *testing.T) {
	key, _ := GenerateKey("k")
	shares, err := Split(key, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	_, set, _ := shares[0].Share()
	if err := set.Check(); err != nil {
		t.Fatal(err)
	}
	other, _ := GenerateKey("k")
	otherShares, _ := Split(other, 5, 3)
	_, otherSet, _ := otherShares[0].Share()
	mutate := map[string]func(s *KeySet){
		"another group key":          func(s *KeySet) { s.GroupKey = other.Public().Bytes },
		"a share key from elsewhere": func(s *KeySet) { s.Shares[4].PublicKey = otherSet.Shares[4].PublicKey },
		"an early share swapped":     func(s *KeySet) { s.Shares[0].PublicKey = otherSet.Shares[0].PublicKey },
		"shares out of order":        func(s *KeySet) { s.Shares[1], s.Shares[2] = s.Shares[2], s.Shares[1] },
		"threshold above n":          func(s *KeySet) { s.Threshold = 6 },
		"threshold zero":             func(s *KeySet) { s.Threshold = 0 },
		"lower threshold":            func(s *KeySet) { s.Threshold = 2 },
		"generation zero":            func(s *KeySet) { s.Generation = 0 },
		"bad key id":                 func(s *KeySet) { s.KeyID = "no spaces" },
		"identity share key":         func(s *KeySet) { s.Shares[3].PublicKey = make([]byte, ElementSize) },
	}
	for name, m := range mutate {
		s := set.clone()
		m(&s)
		if err := s.Check(); !errors.Is(err, ErrInvalidKeySet) {
			t.Errorf("%s: Check = %v, want ErrInvalidKeySet", name, err)
		}
		if _, err := NewThresholdClient(s); err == nil {
			t.Errorf("%s: NewThresholdClient accepted it", name)
		}
	}
}

// TestShareKeyFile round-trips a share through its key file, and refuses a
// file whose private share does not match its index.
func TestShareKeyFile(t *testing.T) {
	key, _ := GenerateKey("k")
	rotated, _ := GenerateKey("k2")
	rotated, err := EndorseKey(key, rotated)
	if err != nil {
		t.Fatal(err)
	}
	shares, err := Split(rotated, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	data, err := MarshalKey(shares[1])
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseKey(data)
	if err != nil {
		t.Fatal(err)
	}
	idx, set, ok := back.Share()
	if !ok || idx != 2 || !back.Equal(shares[1]) || len(back.Endorsements()) != 1 {
		t.Fatalf("round trip: share %d ok=%v, %d endorsements", idx, ok, len(back.Endorsements()))
	}
	_, want, _ := shares[1].Share()
	if !set.Equal(want) {
		t.Fatal("the key set changed in the round trip")
	}
	if _, err := Endorse(back, key.Public()); !errors.Is(err, ErrBadEndorsement) {
		t.Fatalf("a share endorsed a key: %v", err)
	}
	if _, err := Split(back, 3, 2); err == nil {
		t.Fatal("split a share")
	}
	wrong := bytes.Replace(data, []byte(`"index": 2`), []byte(`"index": 3`), 1)
	if _, err := ParseKey(wrong); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("share 2 filed as share 3: %v", err)
	}
}
