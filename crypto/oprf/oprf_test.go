package oprf

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	voprf "github.com/cloudflare/circl/oprf"
)

// rfcVectors is RFC 9497 appendix A.1.2: ristretto255-SHA512, VOPRF mode.
type rfcVectors struct {
	Identifier string `json:"identifier"`
	Mode       int    `json:"mode"`
	SkSm       string `json:"skSm"`
	PkSm       string `json:"pkSm"`
	Vectors    []struct {
		Batch             int    `json:"Batch"`
		Blind             string `json:"Blind"`
		BlindedElement    string `json:"BlindedElement"`
		EvaluationElement string `json:"EvaluationElement"`
		Input             string `json:"Input"`
		Output            string `json:"Output"`
		Proof             struct {
			Proof string `json:"proof"`
		} `json:"Proof"`
	} `json:"vectors"`
}

func loadVectors(t testing.TB) rfcVectors {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "rfc9497-ristretto255-sha512-voprf.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v rfcVectors
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	if v.Identifier != SuiteID || v.Mode != int(voprf.VerifiableMode) || len(v.Vectors) != 3 {
		t.Fatalf("unexpected vector file: %s mode %d, %d vectors", v.Identifier, v.Mode, len(v.Vectors))
	}
	return v
}

func unhexList(t testing.TB, s string) [][]byte {
	t.Helper()
	var out [][]byte
	for _, p := range strings.Split(s, ",") {
		b, err := hex.DecodeString(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	return unhexList(t, s)[0]
}

// TestRFC9497Vectors runs every ristretto255-SHA512 VOPRF vector through the
// project's own key loading, client and evaluator.
func TestRFC9497Vectors(t *testing.T) {
	v := loadVectors(t)
	key, err := NewPrivateKey("rfc9497", unhex(t, v.SkSm))
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public()
	if !bytes.Equal(pub.Bytes, unhex(t, v.PkSm)) {
		t.Fatalf("public key = %x, want %s", pub.Bytes, v.PkSm)
	}
	client, err := NewClient(pub)
	if err != nil {
		t.Fatal(err)
	}
	eval := NewEvaluator(key)
	g := suite.Group()

	for i, vec := range v.Vectors {
		t.Run(string(rune('A'+i)), func(t *testing.T) {
			inputs := unhexList(t, vec.Input)
			var blinds []voprf.Blind
			for _, b := range unhexList(t, vec.Blind) {
				s := g.NewScalar()
				if err := s.UnmarshalBinary(b); err != nil {
					t.Fatal(err)
				}
				blinds = append(blinds, s)
			}
			batch, err := client.blind(inputs, blinds)
			if err != nil {
				t.Fatal(err)
			}
			wantBlinded := unhexList(t, vec.BlindedElement)
			for j := range wantBlinded {
				if !bytes.Equal(batch.Blinded[j], wantBlinded[j]) {
					t.Errorf("blinded[%d] = %x, want %x", j, batch.Blinded[j], wantBlinded[j])
				}
			}

			evaluated, proof, err := evaluate(t, eval, batch.Blinded)
			if err != nil {
				t.Fatal(err)
			}
			wantEval := unhexList(t, vec.EvaluationElement)
			for j := range wantEval {
				if !bytes.Equal(evaluated[j], wantEval[j]) {
					t.Errorf("evaluated[%d] = %x, want %x", j, evaluated[j], wantEval[j])
				}
			}

			wantOut := unhexList(t, vec.Output)
			// The evaluator's proof is randomized; it must verify. The
			// RFC's own proof bytes must verify through the same path.
			for name, p := range map[string][]byte{"evaluator proof": proof, "RFC proof": unhex(t, vec.Proof.Proof)} {
				outs, err := client.finalize(batch, evaluated, p)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				for j := range wantOut {
					if !bytes.Equal(outs[j], wantOut[j]) {
						t.Errorf("%s: output[%d] = %x, want %x", name, j, outs[j], wantOut[j])
					}
				}
				toks, err := client.Finalize(batch, evaluated, p)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				for j := range wantOut {
					if !bytes.Equal(toks[j][:], wantOut[j][:32]) {
						t.Errorf("%s: token[%d] is not the first 32 bytes of the output", name, j)
					}
				}
			}
		})
	}
}

func TestInputEncoding(t *testing.T) {
	a, _ := Input("phone", "+447700900123")
	want := append([]byte("veilmatch/v1\x00\x05phone\x00\x0d"), "+447700900123"...)
	if !bytes.Equal(a, want) {
		t.Fatalf("Input = %q, want %q", a, want)
	}
	// Kind separation and unambiguous lengths.
	pairs := [][2]string{{"phone", "x"}, {"email", "x"}, {"ph", "onex"}, {"phonex", ""}}
	seen := map[string]bool{}
	for _, p := range pairs {
		b, err := Input(p[0], p[1])
		if err != nil {
			t.Fatal(err)
		}
		if seen[string(b)] {
			t.Errorf("Input(%q, %q) collides", p[0], p[1])
		}
		seen[string(b)] = true
	}
	if _, err := Input("", "x"); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("empty kind: err = %v", err)
	}
	if _, err := Input("phone", strings.Repeat("1", 70000)); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("oversize value: err = %v", err)
	}
}

func TestEvaluateRejects(t *testing.T) {
	key, err := GenerateKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	client, err := NewClient(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	in, _ := Input("phone", "+15555550100")
	batch, err := client.Blind([][]byte{in, in})
	if err != nil {
		t.Fatal(err)
	}
	good := batch.Blinded[0]
	nonCanonical := bytes.Repeat([]byte{0xff}, 32)
	tests := []struct {
		name  string
		batch [][]byte
		index int
	}{
		{"identity", [][]byte{good, make([]byte, 32)}, 1},
		{"non-canonical", [][]byte{nonCanonical}, 0},
		{"short", [][]byte{good, good, good[:31]}, 2},
		{"long", [][]byte{append(append([]byte{}, good...), 0)}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeBatch(tc.batch)
			var ee *ElementError
			if !errors.As(err, &ee) || ee.Index != tc.index || !errors.Is(err, ErrInvalidElement) {
				t.Fatalf("err = %v, want ElementError at index %d", err, tc.index)
			}
		})
	}
	if _, err := DecodeBatch(nil); !errors.Is(err, ErrEmptyBatch) {
		t.Errorf("empty batch: err = %v", err)
	}
}

// TestWrongKeyDetected is the tagging attack: a key server that answers one
// agency under a different key must be caught by the proof check.
func TestWrongKeyDetected(t *testing.T) {
	pinned, _ := GenerateKey("k1")
	other, _ := GenerateKey("k1")
	client, _ := NewClient(pinned.Public())
	in, _ := Input("email", "a@example.org")
	batch, err := client.Blind([][]byte{in})
	if err != nil {
		t.Fatal(err)
	}
	evaluated, proof, err := evaluate(t, NewEvaluator(other), batch.Blinded)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Finalize(batch, evaluated, proof); !errors.Is(err, ErrInvalidProof) {
		t.Fatalf("err = %v, want ErrInvalidProof", err)
	}
	// Right key, but a proof from another batch.
	evaluated2, proof2, _ := evaluate(t, NewEvaluator(pinned), batch.Blinded)
	batch2, _ := client.Blind([][]byte{in})
	if _, err := client.Finalize(batch2, evaluated2, proof2); err == nil {
		t.Fatal("proof for another batch accepted")
	}
	if _, err := client.Finalize(batch, evaluated2, proof2[:10]); !errors.Is(err, ErrInvalidProof) {
		t.Fatalf("short proof: err = %v", err)
	}
}

func TestTokensDeterministicAcrossBlinds(t *testing.T) {
	key, _ := GenerateKey("k1")
	client, _ := NewClient(key.Public())
	eval := NewEvaluator(key)
	in, _ := Input("phone", "+447700900123")
	other, _ := Input("email", "+447700900123")
	var toks [][32]byte
	for range 2 {
		b, err := client.Blind([][]byte{in, other})
		if err != nil {
			t.Fatal(err)
		}
		ev, p, err := evaluate(t, eval, b.Blinded)
		if err != nil {
			t.Fatal(err)
		}
		out, err := client.Finalize(b, ev, p)
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, out[0], out[1])
	}
	if toks[0] != toks[2] {
		t.Error("same input gave different tokens under fresh blinds")
	}
	if toks[0] == toks[1] {
		t.Error("phone and e-mail with the same characters share a token")
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "oprf.key")
	key, err := GenerateKey(NewKeyID(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyFile(path, key); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %04o, want 0600", st.Mode().Perm())
	}
	if err := WriteKeyFile(path, key); err == nil {
		t.Fatal("WriteKeyFile overwrote an existing key")
	}
	loaded, err := LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Equal(key) {
		t.Fatal("loaded key differs")
	}
	os.Chmod(path, 0o644)
	if _, err := LoadKeyFile(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key accepted: %v", err)
	}
	for _, bad := range []string{
		`{}`,
		`{"suite":"P256-SHA256","key_id":"k","private_key":"00"}`,
		`{"suite":"ristretto255-SHA512","key_id":"k","private_key":"zz"}`,
		`{"suite":"ristretto255-SHA512","key_id":"k","private_key":"` + strings.Repeat("00", 32) + `"}`,
		`{"suite":"ristretto255-SHA512","key_id":"bad id","private_key":"` + strings.Repeat("01", 32) + `"}`,
	} {
		if _, err := ParseKey([]byte(bad)); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("ParseKey(%s) err = %v, want ErrInvalidKey", bad, err)
		}
	}
	if s := key.String(); strings.Contains(s, hex.EncodeToString(mustScalar(t, key))) {
		t.Fatal("String reveals the key")
	}
}

func mustScalar(t *testing.T, k *PrivateKey) []byte {
	b, err := k.k.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func FuzzEvaluate(f *testing.F) {
	key, _ := GenerateKey("fuzz")
	client, _ := NewClient(key.Public())
	in, _ := Input("phone", "+15555550100")
	b, _ := client.Blind([][]byte{in})
	f.Add(b.Blinded[0])
	f.Add(make([]byte, 32))
	f.Add(bytes.Repeat([]byte{0xff}, 32))
	eval := NewEvaluator(key)
	f.Fuzz(func(t *testing.T, elem []byte) {
		b, err := DecodeBatch([][]byte{elem})
		if err != nil {
			var ee *ElementError
			if !errors.As(err, &ee) || ee.Index != 0 {
				t.Fatalf("error without index: %v", err)
			}
			return
		}
		ev, proof, err := eval.Evaluate(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(ev) != 1 || len(ev[0]) != ElementSize || len(proof) != ProofSize {
			t.Fatalf("bad evaluation shape")
		}
	})
}

func evaluate(t testing.TB, e *Evaluator, blinded [][]byte) ([][]byte, []byte, error) {
	t.Helper()
	b, err := DecodeBatch(blinded)
	if err != nil {
		return nil, nil, err
	}
	return e.Evaluate(b)
}

// FuzzFinalize feeds a key server's answer for a real batch with fuzzed
// evaluated elements and proof: it must be rejected with an error, never a
// panic, unless it is the genuine answer.
func FuzzFinalize(f *testing.F) {
	key, _ := GenerateKey("fuzz")
	client, _ := NewClient(key.Public())
	in, _ := Input("phone", "+15555550100")
	batch, _ := client.Blind([][]byte{in})
	ev, proof, _ := evaluate(f, NewEvaluator(key), batch.Blinded)
	f.Add(ev[0], proof)
	f.Add(make([]byte, 32), make([]byte, 64))
	f.Add([]byte{}, []byte{1})
	f.Fuzz(func(t *testing.T, elem, proof []byte) {
		toks, err := client.Finalize(batch, [][]byte{elem}, proof)
		if err == nil && (len(toks) != 1 || !bytes.Equal(elem, ev[0])) {
			t.Fatalf("accepted a forged evaluation")
		}
	})
}

// FuzzDecodeBatch splits fuzzed bytes into elements of varying sizes: every
// rejection names an index inside the batch.
func FuzzDecodeBatch(f *testing.F) {
	f.Add([]byte{}, uint8(32))
	f.Add(bytes.Repeat([]byte{0xff}, 64), uint8(32))
	f.Add(make([]byte, 96), uint8(31))
	f.Fuzz(func(t *testing.T, data []byte, size uint8) {
		n := int(size%40) + 1
		var batch [][]byte
		for len(data) > 0 {
			k := min(n, len(data))
			batch = append(batch, data[:k])
			data = data[k:]
		}
		_, err := DecodeBatch(batch)
		var ee *ElementError
		switch {
		case err == nil:
		case len(batch) == 0:
			if !errors.Is(err, ErrEmptyBatch) {
				t.Fatalf("empty batch: %v", err)
			}
		case !errors.As(err, &ee) || ee.Index < 0 || ee.Index >= len(batch):
			t.Fatalf("error without a valid index: %v", err)
		}
	})
}

func TestLoadOrCreateKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "oprf.key")
	k1, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateKeyFile(path)
	if err != nil || !k1.Equal(k2) {
		t.Fatalf("second load gave another key (%v)", err)
	}
}

// TestConcurrentUse: a key server evaluates and serves its public key from
// many goroutines at once; under -race this catches shared lazy state.
func TestConcurrentUse(t *testing.T) {
	scalar := bytes.Repeat([]byte{1}, 32)
	pinned, _ := NewPrivateKey("k1", scalar)
	client, _ := NewClient(pinned.Public())
	in, _ := Input("phone", "+15555550100")
	batch, _ := client.Blind([][]byte{in})
	key, err := NewPrivateKey("k1", scalar) // fresh: nothing derived from it yet
	if err != nil {
		t.Fatal(err)
	}
	eval := NewEvaluator(key)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, _, err := evaluate(t, eval, batch.Blinded); err != nil {
				t.Error(err)
			}
			if len(eval.PublicKey().Bytes) != ElementSize {
				t.Error("bad public key")
			}
		})
	}
	wg.Wait()
}
