package audit_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/veilmatch/veilmatch/server/audit"
)

const testOrigin = "hub.veilmatch.test/audit"

// Fixed key pair for the fuzz test and its seed corpus only; other tests
// generate their keys.
const (
	fuzzSignerKey   = "PRIVATE+KEY+hub.veilmatch.test/audit+0afe9e4a+AUTmQPomiV2JFJxZCPr51oBBTcQ9KpqSPYCc0lxg/W0N"
	fuzzVerifierKey = "hub.veilmatch.test/audit+0afe9e4a+AYnkU5yDZrhhVztrLHNNxNVlaz/nVr6Spc69K+zTUhRY"
)

type testKey struct {
	signer   note.Signer
	verifier note.Verifier
	vkey     string
}

func newTestKey(t *testing.T, name string) testKey {
	t.Helper()
	skey, vkey, err := audit.GenerateKey(name)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "checkpoint.key")
	if err := audit.WriteSignerKey(path, skey); err != nil {
		t.Fatal(err)
	}
	s, err := audit.LoadSigner(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := audit.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{signer: s, verifier: v, vkey: vkey}
}

func testRoot(b byte) []byte {
	return bytes.Repeat([]byte{b}, audit.HashSize)
}

func TestCheckpointRoundTrip(t *testing.T) {
	key := newTestKey(t, testOrigin)
	for _, cp := range []audit.Checkpoint{
		{Origin: testOrigin, Size: 0, Root: emptyRoot(t)},
		{Origin: testOrigin, Size: 1, Root: testRoot(1)},
		{Origin: testOrigin, Size: math.MaxUint64, Root: testRoot(0xfe)},
	} {
		signed, err := audit.SignCheckpoint(cp, key.signer)
		if err != nil {
			t.Fatal(err)
		}
		got, err := audit.OpenCheckpoint(signed, key.verifier, testOrigin)
		if err != nil {
			t.Fatalf("OpenCheckpoint(%q): %v", signed, err)
		}
		if got.Origin != cp.Origin || got.Size != cp.Size || !bytes.Equal(got.Root, cp.Root) {
			t.Fatalf("OpenCheckpoint = %+v, want %+v", got, cp)
		}

		// The standard signed-note library reads it as is.
		v, err := note.NewVerifier(key.vkey)
		if err != nil {
			t.Fatal(err)
		}
		n, err := note.Open(signed, note.VerifierList(v))
		if err != nil {
			t.Fatalf("note.Open: %v", err)
		}
		wantText := testOrigin + "\n" + strconv.FormatUint(cp.Size, 10) + "\n" + base64.StdEncoding.EncodeToString(cp.Root) + "\n"
		if n.Text != wantText {
			t.Fatalf("note text = %q, want %q", n.Text, wantText)
		}
		if len(n.Sigs) != 1 || n.Sigs[0].Name != testOrigin || n.Sigs[0].Hash != v.KeyHash() {
			t.Fatalf("note signatures = %+v", n.Sigs)
		}
		if !strings.HasPrefix(string(signed[len(wantText):]), "\n— "+testOrigin+" ") {
			t.Fatalf("signature block = %q", signed[len(wantText):])
		}
	}
}

func emptyRoot(t *testing.T) []byte {
	t.Helper()
	tree, err := audit.NewTree(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	root, err := tree.Root()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// TestCheckpointSpecExample signs the body of the example in
// https://c2sp.org/tlog-checkpoint and checks that the text is identical.
func TestCheckpointSpecExample(t *testing.T) {
	const (
		origin = "example.com/behind-the-sofa"
		body   = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
	)
	key := newTestKey(t, origin)
	root, err := base64.StdEncoding.DecodeString("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
	if err != nil {
		t.Fatal(err)
	}
	signed, err := audit.SignCheckpoint(audit.Checkpoint{Origin: origin, Size: 20852163, Root: root}, key.signer)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(signed), body+"\n— ") {
		t.Fatalf("signed checkpoint = %q, want body %q", signed, body)
	}
}

// vaultLikeSigner signs with a raw Ed25519 key known only by its public key
// to the rest of the system, as a HashiCorp Vault Transit key is.
type vaultLikeSigner struct {
	name string
	hash uint32
	priv ed25519.PrivateKey
}

func (s vaultLikeSigner) Name() string                    { return s.name }
func (s vaultLikeSigner) KeyHash() uint32                 { return s.hash }
func (s vaultLikeSigner) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.priv, msg), nil }

func TestCheckpointExternalSigner(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	vkey, err := audit.VerifierKey(testOrigin, pub)
	if err != nil {
		t.Fatal(err)
	}
	v, err := audit.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	s := vaultLikeSigner{name: testOrigin, hash: v.KeyHash(), priv: priv}
	cp := audit.Checkpoint{Origin: testOrigin, Size: 42, Root: testRoot(7)}
	signed, err := audit.SignCheckpoint(cp, s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := audit.OpenCheckpoint(signed, v, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	if got.Size != 42 || !bytes.Equal(got.Root, cp.Root) {
		t.Fatalf("OpenCheckpoint = %+v, want %+v", got, cp)
	}
}

func TestOpenCheckpointRejects(t *testing.T) {
	key := newTestKey(t, testOrigin)
	sameName := newTestKey(t, testOrigin)
	otherName := newTestKey(t, "other.veilmatch.test/audit")
	root := testRoot(9)
	rootB64 := base64.StdEncoding.EncodeToString(root)
	signed, err := audit.SignCheckpoint(audit.Checkpoint{Origin: testOrigin, Size: 12, Root: root}, key.signer)
	if err != nil {
		t.Fatal(err)
	}
	text := string(signed)

	// signText signs arbitrary note text with the right key.
	signText := func(body string) string {
		t.Helper()
		msg, err := note.Sign(&note.Note{Text: body}, key.signer)
		if err != nil {
			t.Fatal(err)
		}
		return string(msg)
	}
	sigLine := text[strings.Index(text, "\n\n")+2:]
	sig, err := base64.StdEncoding.DecodeString(strings.Fields(sigLine)[2])
	if err != nil {
		t.Fatal(err)
	}
	sig[len(sig)-1] ^= 1
	badSig := text[:strings.Index(text, "\n\n")+2] + "— " + testOrigin + " " + base64.StdEncoding.EncodeToString(sig) + "\n"

	for _, tc := range []struct {
		name     string
		text     string
		verifier note.Verifier
		origin   string
		want     error
	}{
		{"other key, same name", text, sameName.verifier, testOrigin, audit.ErrUnknownKey},
		{"other key, other name", text, otherName.verifier, testOrigin, audit.ErrUnknownKey},
		{"bad signature", badSig, key.verifier, testOrigin, audit.ErrBadSignature},
		{"size line modified", strings.Replace(text, "\n12\n", "\n13\n", 1), key.verifier, testOrigin, audit.ErrBadSignature},
		{"root line modified", strings.Replace(text, rootB64, base64.StdEncoding.EncodeToString(testRoot(8)), 1), key.verifier, testOrigin, audit.ErrBadSignature},
		{"origin line modified", strings.Replace(text, testOrigin+"\n", "hub.veilmatch.test/other\n", 1), key.verifier, testOrigin, audit.ErrBadSignature},
		{"wrong origin", text, key.verifier, "hub.veilmatch.test/other", audit.ErrWrongOrigin},
		{"wrong origin, signed", signText("hub.veilmatch.test/other\n12\n" + rootB64 + "\n"), key.verifier, testOrigin, audit.ErrWrongOrigin},
		{"unsigned", text[:strings.Index(text, "\n\n")+1], key.verifier, testOrigin, audit.ErrMalformedCheckpoint},
		{"garbage", "hello", key.verifier, testOrigin, audit.ErrMalformedCheckpoint},
		{"two lines", signText(testOrigin + "\n12\n"), key.verifier, testOrigin, audit.ErrMalformedCheckpoint},
		{"extension line", signText(testOrigin + "\n12\n" + rootB64 + "\next\n"), key.verifier, testOrigin, audit.ErrMalformedCheckpoint},
		{"empty size", signText(testOrigin + "\n\n" + rootB64 + "\n"), key.verifier, testOrigin, audit.ErrMalformedCheckpoint},
		{"leading zero", signText(testOrigin + "\n012\n" + rootB64 + "\n"), key.verifier, testOrigin, audit.ErrMalformedCheckpoint},
		{"signed size", signText(testOrigin + "\n+12\n" + rootB64 + "\n"), key.verifier, testOrigin, audit.ErrMalformedCheckpoint},
		{"negative size", signText(testOrigin + "\n-1\n" + rootB64 + "\n"), key.verifier, testOrigin, audit.ErrMalformedCheckpoint},
		{"size with space", signText(testOrigin + "\n12 \n" + rootB64 + "\n"), key.verifier, testOrigin, audit.ErrMalformedCheckpoint},
		{"size overflow", signText(testOrigin + "\n18446744073709551616\n" + rootB64 + "\n"), key.verifier, testOrigin, audit.ErrMalformedCheckpoint},
		{"hex size", signText(testOrigin + "\n0x0c\n" + rootB64 + "\n"), key.verifier, testOrigin, audit.ErrMalformedCheckpoint},
		{"root not base64", signText(testOrigin + "\n12\n!!!!\n"), key.verifier, testOrigin, audit.ErrMalformedCheckpoint},
		{"root unpadded", signText(testOrigin + "\n12\n" + strings.TrimRight(rootB64, "=") + "\n"), key.verifier, testOrigin, audit.ErrMalformedCheckpoint},
		{"root URL base64", signText(testOrigin + "\n12\n" + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32)) + "\n"), key.verifier, testOrigin, audit.ErrMalformedCheckpoint},
		{"root non-canonical bits", signText(testOrigin + "\n12\n" + rootB64[:42] + "J=\n"), key.verifier, testOrigin, audit.ErrMalformedCheckpoint},
		{"root short", signText(testOrigin + "\n12\n" + base64.StdEncoding.EncodeToString(root[:31]) + "\n"), key.verifier, testOrigin, audit.ErrMalformedCheckpoint},
		{"empty root", signText(testOrigin + "\n12\n\n"), key.verifier, testOrigin, audit.ErrMalformedCheckpoint},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cp, err := audit.OpenCheckpoint([]byte(tc.text), tc.verifier, tc.origin)
			if !errors.Is(err, tc.want) {
				t.Fatalf("OpenCheckpoint = %+v, %v; want error %v", cp, err, tc.want)
			}
		})
	}

	if _, err := audit.OpenCheckpoint(signed, nil, testOrigin); err == nil {
		t.Error("OpenCheckpoint with a nil verifier succeeded")
	}
	if _, err := audit.OpenCheckpoint(signed, key.verifier, ""); err == nil {
		t.Error("OpenCheckpoint with an empty origin succeeded")
	}
}

func TestOpenCheckpointCosigned(t *testing.T) {
	key := newTestKey(t, testOrigin)
	witness := newTestKey(t, "witness.example/w1")
	cp := audit.Checkpoint{Origin: testOrigin, Size: 3, Root: testRoot(3)}
	signed, err := audit.SignCheckpoint(cp, key.signer)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(signed, note.VerifierList(key.verifier))
	if err != nil {
		t.Fatal(err)
	}
	cosigned, err := note.Sign(n, witness.signer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.OpenCheckpoint(cosigned, key.verifier, testOrigin); err != nil {
		t.Fatalf("OpenCheckpoint with a witness cosignature: %v", err)
	}
	if _, err := audit.OpenCheckpoint(cosigned, witness.verifier, testOrigin); err != nil {
		t.Fatalf("OpenCheckpoint by the witness key: %v", err)
	}
}

func TestSignCheckpointRejects(t *testing.T) {
	key := newTestKey(t, testOrigin)
	for name, cp := range map[string]audit.Checkpoint{
		"empty origin":   {Origin: "", Size: 1, Root: testRoot(1)},
		"newline origin": {Origin: "a\n2", Size: 1, Root: testRoot(1)},
		"control origin": {Origin: "a\tb", Size: 1, Root: testRoot(1)},
		"invalid UTF-8":  {Origin: "a\xffb", Size: 1, Root: testRoot(1)},
		"short root":     {Origin: testOrigin, Size: 1, Root: testRoot(1)[:31]},
		"missing root":   {Origin: testOrigin, Size: 1},
		"oversized root": {Origin: testOrigin, Size: 1, Root: append(testRoot(1), 0)},
	} {
		t.Run(name, func(t *testing.T) {
			if signed, err := audit.SignCheckpoint(cp, key.signer); err == nil {
				t.Fatalf("SignCheckpoint = %q, want error", signed)
			}
		})
	}
	cp := audit.Checkpoint{Origin: testOrigin, Size: 1, Root: testRoot(1)}
	if _, err := audit.SignCheckpoint(cp, nil); err == nil {
		t.Error("SignCheckpoint with a nil signer succeeded")
	}
	badName := vaultLikeSigner{name: "bad name", priv: ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))}
	if _, err := audit.SignCheckpoint(cp, badName); err == nil {
		t.Error("SignCheckpoint with an invalid signer name succeeded")
	}
}

func FuzzOpenCheckpoint(f *testing.F) {
	signer, err := note.NewSigner(fuzzSignerKey)
	if err != nil {
		f.Fatal(err)
	}
	verifier, err := note.NewVerifier(fuzzVerifierKey)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// As received: almost always a bad signature, sometimes a seed.
		if cp, err := audit.OpenCheckpoint(data, verifier, testOrigin); err == nil {
			checkCanonical(t, cp, signer, data)
		}
		// As a note text signed by the right key, to reach the body parser.
		body := string(data)
		if !strings.HasSuffix(body, "\n") {
			body += "\n"
		}
		msg, err := note.Sign(&note.Note{Text: body}, signer)
		if err != nil {
			return
		}
		if cp, err := audit.OpenCheckpoint(msg, verifier, testOrigin); err == nil {
			checkCanonical(t, cp, signer, msg)
		}
	})
}

// checkCanonical requires the text of an accepted checkpoint to be exactly
// what SignCheckpoint writes for it.
func checkCanonical(t *testing.T, cp audit.Checkpoint, s note.Signer, accepted []byte) {
	t.Helper()
	again, err := audit.SignCheckpoint(cp, s)
	if err != nil {
		t.Fatalf("accepted checkpoint %+v does not sign: %v", cp, err)
	}
	text := func(msg []byte) []byte { return msg[:bytes.LastIndex(msg, []byte("\n\n"))+1] }
	if !bytes.Equal(text(again), text(accepted)) {
		t.Fatalf("accepted checkpoint text differs from its encoding:\n got %q\nwant %q", text(accepted), text(again))
	}
}
