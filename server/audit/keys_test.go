package audit_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veilmatch/veilmatch/server/audit"
)

func TestGenerateKey(t *testing.T) {
	skey, vkey, err := audit.GenerateKey(testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(skey, "PRIVATE+KEY+"+testOrigin+"+") || !strings.HasPrefix(vkey, testOrigin+"+") {
		t.Fatal("GenerateKey returned keys in an unexpected format")
	}
	v, err := audit.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	if v.Name() != testOrigin {
		t.Fatalf("verifier name = %q, want %q", v.Name(), testOrigin)
	}

	// The verifier key derived from the raw public key is the same.
	// PRIVATE+KEY+<name>+<hash>+<base64 key>; the key may itself hold '+'.
	parts := strings.SplitN(skey, "+", 5)
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		t.Fatalf("unexpected private key encoding (%v)", err)
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	if got, err := audit.VerifierKey(testOrigin, pub); err != nil || got != vkey {
		t.Fatalf("VerifierKey = %q, %v; want %q", got, err, vkey)
	}

	for _, name := range []string{"", "a b", "a+b", "a\tb", "a\xffb"} {
		if _, _, err := audit.GenerateKey(name); err == nil {
			t.Errorf("GenerateKey(%q) succeeded", name)
		}
	}
}

func TestVerifierKey(t *testing.T) {
	pub := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	got, err := audit.VerifierKey(testOrigin, pub)
	if err != nil {
		t.Fatal(err)
	}
	// name+hash+base64(0x01||pub), hash = SHA-256(name || "\n" || 0x01 || pub)[:4].
	key := append([]byte{0x01}, pub...)
	sum := sha256.Sum256(append([]byte(testOrigin+"\n"), key...))
	want := fmt.Sprintf("%s+%08x+%s", testOrigin, binary.BigEndian.Uint32(sum[:4]), base64.StdEncoding.EncodeToString(key))
	if got != want {
		t.Fatalf("VerifierKey = %q, want %q", got, want)
	}
	if _, err := audit.NewVerifier(got); err != nil {
		t.Fatalf("NewVerifier(VerifierKey): %v", err)
	}

	if _, err := audit.VerifierKey("bad name", pub); err == nil {
		t.Error("VerifierKey with an invalid name succeeded")
	}
	if _, err := audit.VerifierKey(testOrigin, pub[:31]); err == nil {
		t.Error("VerifierKey with a short public key succeeded")
	}
	for _, vkey := range []string{"", "name", want + "x", strings.Replace(want, "+", "+0", 1)} {
		if _, err := audit.NewVerifier(vkey); err == nil {
			t.Errorf("NewVerifier(%q) succeeded", vkey)
		}
	}
}

func TestSignerKeyFile(t *testing.T) {
	skey, _, err := audit.GenerateKey(testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "signer.key")
	if err := audit.WriteSignerKey(path, skey); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Fatalf("key file mode = %04o, want 0600", perm)
	}
	s, err := audit.LoadSigner(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.Name() != testOrigin {
		t.Fatalf("signer name = %q, want %q", s.Name(), testOrigin)
	}

	// Never overwrite.
	other, _, err := audit.GenerateKey(testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.WriteSignerKey(path, other); err == nil {
		t.Fatal("WriteSignerKey overwrote an existing file")
	}
	if data, err := os.ReadFile(path); err != nil || strings.TrimSpace(string(data)) != skey {
		t.Fatal("WriteSignerKey changed an existing file")
	}

	// Refuse to write what is not a signer key.
	bad := filepath.Join(dir, "bad.key")
	if err := audit.WriteSignerKey(bad, "not a key"); err == nil {
		t.Fatal("WriteSignerKey accepted an invalid key")
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Fatalf("WriteSignerKey left a file behind: %v", err)
	}

	// Permissions.
	for _, tc := range []struct {
		perm os.FileMode
		ok   bool
	}{{0o400, true}, {0o600, true}, {0o640, false}, {0o604, false}, {0o644, false}, {0o700, false}} {
		if err := os.Chmod(path, tc.perm); err != nil {
			t.Fatal(err)
		}
		_, err := audit.LoadSigner(path)
		if tc.ok && err != nil {
			t.Errorf("LoadSigner with mode %04o: %v", tc.perm, err)
		}
		if !tc.ok {
			if err == nil {
				t.Errorf("LoadSigner with mode %04o succeeded", tc.perm)
			} else if strings.Contains(err.Error(), skey) {
				t.Errorf("LoadSigner error reveals the key")
			}
		}
	}
}

func TestLoadSignerRejects(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	_, vkey, err := audit.GenerateKey(testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{
		"missing":      filepath.Join(dir, "missing.key"),
		"directory":    dir,
		"garbage":      write("garbage.key", "hello\n"),
		"verifier key": write("vkey.key", vkey+"\n"),
		"empty":        write("empty.key", ""),
		"oversized":    write("big.key", strings.Repeat("A", 5000)),
	} {
		if _, err := audit.LoadSigner(path); err == nil {
			t.Errorf("LoadSigner(%s) succeeded", name)
		}
	}
}
