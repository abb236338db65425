package keys

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veilmatch/veilmatch/crypto/oprf"
	"github.com/veilmatch/veilmatch/server/audit"
)

// TestFileOPRF: the file is read on every call, so replacing it rotates.
func TestFileOPRF(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "oprf.key")
	src := FileOPRF(path)
	_, err := src.Keys(ctx)
	wantErr(t, err, "no such file")

	k1 := newKey(t, "file-1")
	if err := oprf.WriteKeyFile(path, k1); err != nil {
		t.Fatal(err)
	}
	keys, err := src.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantKeys(t, keys, k1)

	k2 := newKey(t, "file-2")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := oprf.WriteKeyFile(path, k2); err != nil {
		t.Fatal(err)
	}
	keys, err = src.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantKeys(t, keys, k2)

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = src.Keys(ctx)
	wantErr(t, err, "chmod 600")
}

func TestFileSigner(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checkpoint.key")
	s, err := FileSigner(path, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("created key file has mode %04o, want 0600", st.Mode().Perm())
	}
	if s.Name() != testOrigin {
		t.Errorf("Name() = %q", s.Name())
	}

	// Loading again gives the same key; checkpoints verify with the
	// verifier key.
	again, err := FileSigner(path, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	if again.VerifierKey() != s.VerifierKey() || again.KeyHash() != s.KeyHash() {
		t.Fatalf("reloaded signer has verifier key %s, want %s", again.VerifierKey(), s.VerifierKey())
	}
	verifier, err := audit.NewVerifier(s.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	cp := audit.Checkpoint{Origin: testOrigin, Size: 9, Root: root("file")}
	signed, err := audit.SignCheckpoint(cp, again)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.OpenCheckpoint(signed, verifier, testOrigin); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	seed := strings.SplitN(strings.TrimSpace(string(data)), "+", 5)[4]
	for _, str := range []string{s.VerifierKey(), fileSignerString(s)} {
		if strings.Contains(str, seed) {
			t.Errorf("%q reveals the private key", str)
		}
	}

	_, err = FileSigner(path, "other.example/audit")
	wantErr(t, err, `named "veilmatch.example/audit", want "other.example/audit"`)

	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	_, err = FileSigner(path, testOrigin)
	wantErr(t, err, "want 0600")
}

func fileSignerString(s Signer) string {
	if str, ok := s.(interface{ String() string }); ok {
		return str.String()
	}
	return ""
}
