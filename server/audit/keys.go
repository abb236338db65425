package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"

	"github.com/veilmatch/veilmatch/internal/atomicfile"
)

// maxKeyFileSize bounds how much of a signer key file is read; a note
// private key is about 100 bytes.
const maxKeyFileSize = 4096

// GenerateKey returns a new Ed25519 checkpoint signing key named name, as a
// note private key (skey, for [WriteSignerKey]) and the matching verifier key
// (vkey, for [NewVerifier], to give to auditors). The name should be the
// log's origin.
func GenerateKey(name string) (skey, vkey string, err error) {
	if err := checkKeyName(name); err != nil {
		return "", "", err
	}
	skey, vkey, err = note.GenerateKey(rand.Reader, name)
	if err != nil {
		return "", "", fmt.Errorf("audit: generate key: %w", err)
	}
	return skey, vkey, nil
}

// checkKeyName applies the note rules for key names: non-empty UTF-8 with no
// spaces and no plus sign.
func checkKeyName(name string) error {
	if name == "" || !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsSpace) || strings.Contains(name, "+") {
		return errors.New("audit: key name must be non-empty UTF-8 without spaces or '+'")
	}
	return nil
}

// LoadSigner reads a note private key (as written by [WriteSignerKey]) from
// the file at path. The file must grant no permissions beyond 0600.
func LoadSigner(path string) (note.Signer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audit: load signer: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("audit: load signer: %w", err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("audit: load signer %s: not a regular file", path)
	}
	if perm := info.Mode().Perm(); perm&^0o600 != 0 {
		return nil, fmt.Errorf("audit: load signer %s: mode %04o, want 0600 or stricter", path, perm)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("audit: load signer: %w", err)
	}
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("audit: load signer %s: file larger than %d bytes", path, maxKeyFileSize)
	}
	s, err := note.NewSigner(string(bytes.TrimSpace(data)))
	if err != nil {
		return nil, fmt.Errorf("audit: load signer %s: %w", path, err)
	}
	return s, nil
}

// WriteSignerKey writes the note private key skey to a new file at path with
// mode 0600. It never overwrites an existing file.
func WriteSignerKey(path, skey string) error {
	if _, err := note.NewSigner(skey); err != nil {
		return fmt.Errorf("audit: write signer key %s: %w", path, err)
	}
	if err := atomicfile.Create(path, []byte(skey+"\n"), 0o600); err != nil {
		return fmt.Errorf("audit: write signer key: %w", err)
	}
	return nil
}

// NewVerifier parses a note verifier key ("name+hash+key"), such as the vkey
// from [GenerateKey] or the result of [VerifierKey].
func NewVerifier(vkey string) (note.Verifier, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("audit: parse verifier key: %w", err)
	}
	return v, nil
}

// VerifierKey returns the note verifier key for a raw Ed25519 public key,
// such as that of a HashiCorp Vault Transit key, so that auditors can pin it.
// The format is name+hash+base64(0x01||pub), where hash is the first four
// bytes of SHA-256(name || "\n" || 0x01 || pub) in hexadecimal.
func VerifierKey(name string, pub ed25519.PublicKey) (string, error) {
	if err := checkKeyName(name); err != nil {
		return "", err
	}
	vkey, err := note.NewEd25519VerifierKey(name, pub)
	if err != nil {
		return "", fmt.Errorf("audit: verifier key: %w", err)
	}
	return vkey, nil
}
