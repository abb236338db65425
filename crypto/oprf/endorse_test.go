package oprf

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// genKeys returns one new key per id.
func genKeys(t testing.TB, ids ...string) []*PrivateKey {
	t.Helper()
	keys := make([]*PrivateKey, len(ids))
	for i, id := range ids {
		k, err := GenerateKey(id)
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k
	}
	return keys
}

// endorse returns by's endorsement of key.
func endorse(t testing.TB, by *PrivateKey, key PublicKey) Endorsement {
	t.Helper()
	e, err := Endorse(by, key)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// rotate returns keys[1:], each endorsed by its predecessor with EndorseKey.
func rotate(t testing.TB, keys []*PrivateKey) []*PrivateKey {
	t.Helper()
	out := []*PrivateKey{keys[0]}
	for _, next := range keys[1:] {
		k, err := EndorseKey(out[len(out)-1], next)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, k)
	}
	return out[1:]
}

func publicKeys(keys ...*PrivateKey) []PublicKey {
	out := make([]PublicKey, len(keys))
	for i, k := range keys {
		out[i] = k.Public()
	}
	return out
}

// checkNoKeyHex fails if err's message holds the hex of any private or
// public key of keys.
func checkNoKeyHex(t *testing.T, err error, keys ...*PrivateKey) {
	t.Helper()
	if err == nil {
		return
	}
	for _, k := range keys {
		for _, b := range [][]byte{mustScalar(t, k), k.Public().Bytes} {
			if h := hex.EncodeToString(b); strings.Contains(strings.ToLower(err.Error()), h) {
				t.Errorf("error reveals key bytes of %s: %v", k.KeyID(), err)
			}
		}
	}
}

func TestVerifyChain(t *testing.T) {
	keys := genKeys(t, "k1", "k2", "k3", "k4")
	k1, k2, k3, k4 := keys[0], keys[1], keys[2], keys[3]
	e12 := endorse(t, k1, k2.Public())
	e23 := endorse(t, k2, k3.Public())
	e34 := endorse(t, k3, k4.Public())
	tests := []struct {
		name    string
		trusted []*PrivateKey
		chain   []Endorsement
		target  *PrivateKey
		want    []*PrivateKey
	}{
		{"one link", []*PrivateKey{k1}, []Endorsement{e12}, k2, []*PrivateKey{k2}},
		{"three links", []*PrivateKey{k1}, []Endorsement{e12, e23, e34}, k4, []*PrivateKey{k2, k3, k4}},
		{"three links reversed", []*PrivateKey{k1}, []Endorsement{e34, e23, e12}, k4, []*PrivateKey{k2, k3, k4}},
		{"from a middle key", []*PrivateKey{k2}, []Endorsement{e12, e23, e34}, k4, []*PrivateKey{k3, k4}},
		{"already trusted", []*PrivateKey{k1, k2}, []Endorsement{e12}, k2, nil},
		{"already trusted, no chain", []*PrivateKey{k1}, nil, k1, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for i, e := range tc.chain {
				if err := e.Verify(); err != nil {
					t.Fatalf("link %d: %v", i, err)
				}
			}
			trusted := publicKeys(tc.trusted...)
			got, err := VerifyChain(trusted, tc.chain, tc.target.Public())
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == nil && got != nil {
				t.Fatalf("newly trusted = %v, want nil", got)
			}
			if want := publicKeys(tc.want...); tc.want != nil && !reflect.DeepEqual(got, want) {
				t.Fatalf("newly trusted = %v, want %v", got, want)
			}
			if !reflect.DeepEqual(trusted, publicKeys(tc.trusted...)) {
				t.Fatal("VerifyChain modified the trusted keys")
			}
		})
	}
}

func TestEndorsementTampered(t *testing.T) {
	keys := genKeys(t, "k1", "k2", "k3")
	k1, k2, k3 := keys[0], keys[1], keys[2]
	good := endorse(t, k1, k2.Public())
	byOther := endorse(t, k3, k2.Public()) // a proof made by another key

	nonCanonical, _ := hex.DecodeString("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f") // p: encodes 0 mod p
	tests := []struct {
		name   string
		tamper func(e *Endorsement)
	}{
		{"proof by another key", func(e *Endorsement) { e.Proof = byOther.Proof }},
		{"key id", func(e *Endorsement) { e.KeyID = "k2x" }},
		{"public key", func(e *Endorsement) { e.PublicKey = k3.Public().Bytes }},
		{"by key id", func(e *Endorsement) { e.ByKeyID = "k1x" }},
		{"by public key", func(e *Endorsement) { e.ByPublicKey = k3.Public().Bytes }},
		{"first proof byte", func(e *Endorsement) { e.Proof[0] ^= 1 }},
		{"last proof byte", func(e *Endorsement) { e.Proof[63] ^= 1 }},
		{"short proof", func(e *Endorsement) { e.Proof = e.Proof[:63] }},
		{"identity commitment", func(e *Endorsement) { copy(e.Proof, make([]byte, 32)) }},
		{"non-canonical commitment", func(e *Endorsement) { copy(e.Proof, nonCanonical) }},
		{"non-canonical response", func(e *Endorsement) { copy(e.Proof[32:], bytes.Repeat([]byte{0xff}, 32)) }},
		{"identity public key", func(e *Endorsement) { e.PublicKey = make([]byte, 32) }},
		{"non-canonical public key", func(e *Endorsement) { e.PublicKey = nonCanonical }},
		{"short public key", func(e *Endorsement) { e.PublicKey = e.PublicKey[:31] }},
		{"long proof", func(e *Endorsement) { e.Proof = append(e.Proof, 0) }},
		{"invalid key id", func(e *Endorsement) { e.KeyID = "bad id"; reprove(t, e, k1) }},
		{"invalid by key id", func(e *Endorsement) { e.ByKeyID = "-k1"; reprove(t, e, k1) }},
		{"self endorsement", func(e *Endorsement) { e.KeyID = e.ByKeyID; reprove(t, e, k1) }},
		{"self endorsement, other id", func(e *Endorsement) { e.PublicKey = e.ByPublicKey; reprove(t, e, k1) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := cloneChain([]Endorsement{good})[0]
			tc.tamper(&e)
			err := e.Verify()
			if !errors.Is(err, ErrBadEndorsement) {
				t.Fatalf("Verify err = %v, want ErrBadEndorsement", err)
			}
			checkNoKeyHex(t, err, keys...)
			_, err = VerifyChain(publicKeys(k1), []Endorsement{e}, PublicKey{KeyID: e.KeyID, Bytes: e.PublicKey})
			if !errors.Is(err, ErrKeyNotVouched) {
				t.Fatalf("VerifyChain err = %v, want ErrKeyNotVouched", err)
			}
			checkNoKeyHex(t, err, keys...)
		})
	}
	if err := good.Verify(); err != nil {
		t.Fatalf("tampering changed the original: %v", err)
	}
}

// reprove gives e a genuine proof by k, bypassing Endorse's checks.
func reprove(t *testing.T, e *Endorsement, by *PrivateKey) {
	t.Helper()
	if err := e.prove(by); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyChainRejects(t *testing.T) {
	keys := genKeys(t, "k0", "k1", "k2", "k3")
	k0, k1, k2, k3 := keys[0], keys[1], keys[2], keys[3]
	// k2b claims k2's id with a key of its own.
	k2b := PublicKey{KeyID: "k2", Bytes: k3.Public().Bytes}
	e12 := endorse(t, k1, k2.Public())
	e23 := endorse(t, k2, k3.Public())
	e12b := endorse(t, k1, k2b)
	bad12 := cloneChain([]Endorsement{e12})[0]
	bad12.Proof[5] ^= 1
	tests := []struct {
		name    string
		trusted []*PrivateKey
		chain   []Endorsement
		target  PublicKey
		is      error  // also wrapped, besides ErrKeyNotVouched
		mention string // in the error message
	}{
		{"untrusted start", []*PrivateKey{k0}, []Endorsement{e12, e23}, k3.Public(), nil, `"k3"`},
		{"empty chain", []*PrivateKey{k1}, nil, k2.Public(), nil, `"k2"`},
		{"target not endorsed", []*PrivateKey{k1}, []Endorsement{e12}, k3.Public(), nil, `"k3"`},
		{"target id with other bytes", []*PrivateKey{k1}, []Endorsement{e12}, k2b, nil, `"k2"`},
		{"broken link", []*PrivateKey{k1}, []Endorsement{bad12, e23}, k3.Public(), ErrBadEndorsement, "link 0"},
		{"re-endorse trusted id", []*PrivateKey{k1, k2}, []Endorsement{e12b}, k2b, ErrBadEndorsement, "already trusted with another public key"},
		{"conflict on the way", []*PrivateKey{k1}, []Endorsement{e12, e23, e12b}, k3.Public(), ErrBadEndorsement, "already trusted with another public key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := VerifyChain(publicKeys(tc.trusted...), tc.chain, tc.target)
			if !errors.Is(err, ErrKeyNotVouched) || got != nil {
				t.Fatalf("VerifyChain = %v, %v; want ErrKeyNotVouched", got, err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("err = %v, want it to wrap %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("err = %v, want it to mention %s", err, tc.mention)
			}
			checkNoKeyHex(t, err, keys...)
		})
	}
}

func TestEndorseRefusesSelf(t *testing.T) {
	keys := genKeys(t, "k1", "k2")
	k1, k2 := keys[0], keys[1]
	for _, tc := range []struct {
		name string
		key  PublicKey
	}{
		{"same key", k1.Public()},
		{"same key id", PublicKey{KeyID: "k1", Bytes: k2.Public().Bytes}},
		{"same public key", PublicKey{KeyID: "k2", Bytes: k1.Public().Bytes}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Endorse(k1, tc.key)
			if !errors.Is(err, ErrBadEndorsement) {
				t.Fatalf("err = %v, want ErrBadEndorsement", err)
			}
			checkNoKeyHex(t, err, keys...)
		})
	}
	if _, err := EndorseKey(k1, k1); !errors.Is(err, ErrBadEndorsement) {
		t.Fatalf("EndorseKey(k1, k1) err = %v", err)
	}
}

func TestEndorseKey(t *testing.T) {
	keys := genKeys(t, "k1", "k2", "k3")
	chain := rotate(t, keys)
	k2, k3 := chain[0], chain[1]
	if !k3.Equal(keys[2]) || len(keys[2].Endorsements()) != 0 {
		t.Fatal("EndorseKey changed the key or modified next")
	}
	got := k3.Endorsements()
	if len(got) != 2 || got[0].KeyID != "k2" || got[1].ByKeyID != "k2" || got[1].KeyID != "k3" {
		t.Fatalf("chain = %+v, want k1→k2, k2→k3", got)
	}
	got[0].Proof[0] ^= 1
	if err := k3.Endorsements()[0].Verify(); err != nil {
		t.Fatalf("Endorsements returned the key's own chain: %v", err)
	}
	if _, err := VerifyChain(publicKeys(keys[0]), k3.Endorsements(), k3.Public()); err != nil {
		t.Fatal(err)
	}
	// A key id may not come back along the chain.
	again, _ := GenerateKey("k2")
	if _, err := EndorseKey(k3, again); !errors.Is(err, ErrBadEndorsement) {
		t.Fatalf("re-used key id: err = %v", err)
	}
	if s := fmt.Sprint(k2, k3); strings.Contains(s, hex.EncodeToString(mustScalar(t, k3))) {
		t.Fatal("String reveals the key")
	}
}

func TestEndorseKeyMaxChain(t *testing.T) {
	ids := make([]string, MaxChain+5)
	for i := range ids {
		ids[i] = fmt.Sprintf("k%d", i)
	}
	keys := genKeys(t, ids...)
	last := rotate(t, keys)[len(keys)-2]
	chain := last.Endorsements()
	if len(chain) != MaxChain {
		t.Fatalf("chain has %d links, want %d", len(chain), MaxChain)
	}
	// The oldest links are gone: the chain starts MaxChain keys back.
	oldest := keys[len(keys)-1-MaxChain]
	if chain[0].ByKeyID != oldest.KeyID() {
		t.Fatalf("chain starts at %s, want %s", chain[0].ByKeyID, oldest.KeyID())
	}
	got, err := VerifyChain(publicKeys(oldest), chain, last.Public())
	if err != nil || len(got) != MaxChain {
		t.Fatalf("VerifyChain = %d keys, %v", len(got), err)
	}
	if _, err := VerifyChain(publicKeys(keys[0]), chain, last.Public()); !errors.Is(err, ErrKeyNotVouched) {
		t.Fatalf("dropped link still vouches: %v", err)
	}
	data, err := MarshalKey(last)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseKey(data); err != nil {
		t.Fatal(err)
	}
}

func TestKeyFileEndorsements(t *testing.T) {
	keys := genKeys(t, "k1", "k2", "k3")
	k3 := rotate(t, keys)[1]
	path := filepath.Join(t.TempDir(), "oprf.key")
	if err := WriteKeyFile(path, k3); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Equal(k3) || !reflect.DeepEqual(loaded.Endorsements(), k3.Endorsements()) {
		t.Fatal("loaded key or chain differs")
	}
	if _, err := VerifyChain(publicKeys(keys[0]), loaded.Endorsements(), loaded.Public()); err != nil {
		t.Fatal(err)
	}
	plain, _ := MarshalKey(keys[0])
	if bytes.Contains(plain, []byte("endorsements")) {
		t.Fatalf("key without endorsements: %s", plain)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(`"by_public_key": "`+hex.EncodeToString(keys[0].Public().Bytes)+`"`)) {
		t.Fatalf("key file does not hold the chain in hex:\n%s", data)
	}

	// edit returns the key file of k3 changed by f.
	edit := func(f func(kf *keyFile)) []byte {
		var kf keyFile
		if err := json.Unmarshal(data, &kf); err != nil {
			t.Fatal(err)
		}
		f(&kf)
		b, err := json.Marshal(kf)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	k2scalar := hex.EncodeToString(mustScalar(t, keys[1]))
	k3b := genKeys(t, "k3")[0]
	k3bScalar := hex.EncodeToString(mustScalar(t, k3b))
	tests := []struct {
		name string
		data []byte
	}{
		{"chain of another key", edit(func(kf *keyFile) { kf.KeyID, kf.PrivateKey = "k2", k2scalar })},
		{"chain of another key with the same id", edit(func(kf *keyFile) { kf.PrivateKey = k3bScalar })},
		{"chain of the same key under another id", edit(func(kf *keyFile) { kf.KeyID = "k3x" })},
		{"last link dropped", edit(func(kf *keyFile) { kf.Endorsements = kf.Endorsements[:1] })},
		{"last link repeated", edit(func(kf *keyFile) { kf.Endorsements = append(kf.Endorsements, kf.Endorsements[1]) })},
		{"links swapped", edit(func(kf *keyFile) {
			kf.Endorsements[0], kf.Endorsements[1] = kf.Endorsements[1], kf.Endorsements[0]
		})},
		{"tampered proof", edit(func(kf *keyFile) {
			p, _ := hex.DecodeString(kf.Endorsements[0].Proof)
			p[10] ^= 1
			kf.Endorsements[0].Proof = hex.EncodeToString(p)
		})},
		{"tampered key id", edit(func(kf *keyFile) { kf.Endorsements[0].KeyID = "k9" })},
		{"not hex", edit(func(kf *keyFile) { kf.Endorsements[1].PublicKey = "zz" })},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseKey(tc.data)
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("ParseKey err = %v, want ErrInvalidKey", err)
			}
			checkNoKeyHex(t, err, append(keys, k3b)...)
		})
	}
}

// TestParseKeyChainShape: every link verifies, yet the chain is not a path
// of distinct keys ending at the key.
func TestParseKeyChainShape(t *testing.T) {
	keys := genKeys(t, "k1", "k2", "k3", "k4", "k1")
	k1, k2, k3, k4, k1b := keys[0], keys[1], keys[2], keys[3], keys[4]
	e12 := endorse(t, k1, k2.Public())
	// long is MaxChain+1 links x0→x1→…→k4.
	var long []Endorsement
	prev := genKeys(t, "x0")[0]
	for i := 1; i <= MaxChain+1; i++ {
		next := k4
		if i <= MaxChain {
			next = genKeys(t, fmt.Sprintf("x%d", i))[0]
		}
		long = append(long, endorse(t, prev, next.Public()))
		prev = next
	}
	tests := []struct {
		name  string
		chain []Endorsement
	}{
		{"gap", []Endorsement{e12, endorse(t, k3, k4.Public())}},
		{"key id twice", []Endorsement{e12, endorse(t, k2, k1b.Public()), endorse(t, k1b, k4.Public())}},
		{"too long", long},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, err := MarshalKey(&PrivateKey{id: k4.id, k: k4.k, pub: k4.pub, chain: tc.chain})
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseKey(data)
			if !errors.Is(err, ErrInvalidKey) || !errors.Is(err, ErrBadEndorsement) {
				t.Fatalf("ParseKey err = %v, want ErrInvalidKey and ErrBadEndorsement", err)
			}
			checkNoKeyHex(t, err, keys...)
		})
	}
	data, err := MarshalKey(&PrivateKey{id: k4.id, k: k4.k, pub: k4.pub, chain: long[1:]})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseKey(data); err != nil {
		t.Fatalf("MaxChain links: %v", err)
	}
}

// FuzzParseEndorsedKey: a key file with an endorsement chain either fails to
// parse or round-trips, and its chain then vouches for it.
func FuzzParseEndorsedKey(f *testing.F) {
	keys := genKeys(f, "k1", "k2", "k3")
	data, err := MarshalKey(rotate(f, keys)[1])
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte(`{"suite":"ristretto255-SHA512","key_id":"k","private_key":"` + strings.Repeat("01", 32) + `","endorsements":[{}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseKey(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("error does not wrap ErrInvalidKey: %v", err)
			}
			return
		}
		chain := k.Endorsements()
		if len(chain) > 0 {
			root := PublicKey{KeyID: chain[0].ByKeyID, Bytes: chain[0].ByPublicKey}
			if _, err := VerifyChain([]PublicKey{root}, chain, k.Public()); err != nil {
				t.Fatalf("parsed chain does not vouch for its key: %v", err)
			}
		}
		out, err := MarshalKey(k)
		if err != nil {
			t.Fatal(err)
		}
		k2, err := ParseKey(out)
		if err != nil || !k2.Equal(k) || !reflect.DeepEqual(k2.Endorsements(), chain) {
			t.Fatalf("round trip failed: %v", err)
		}
	})
}
