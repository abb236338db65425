package hub

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/veilmatch/veilmatch/internal/atomicfile"
)

// matchRef is what a match reference stands for: one entry of the
// requester's list version disclosed at level flag, or the entries of a
// whole counterparty class disclosed at level count, in an answer given for
// a purpose and case at a time. It names no counterparty list: a disclosure
// request finds them again by the join and the policy, so the reference
// carries nothing whose size depends on how many lists stand behind it.
type matchRef struct {
	Owner   string  `json:"o"`
	ListID  int64   `json:"l"`
	Entry   *uint64 `json:"e,omitempty"`
	Class   string  `json:"k,omitempty"`
	Level   string  `json:"v"`
	Purpose string  `json:"p"`
	CaseRef string  `json:"c"`
	// Issued is when the answer was given, in Unix nanoseconds.
	Issued int64 `json:"t"`
}

// refPlainSize is the length every reference's plaintext is padded to, so
// that all references have the same length. Its fields are bounded (agency
// ids 63 bytes, classes 129, purposes 64, case references 128), so the
// padding always fits.
const refPlainSize = 512

// refSealer seals and opens match references with AES-GCM under a
// hub-local key: the requester learns nothing from one and cannot forge
// one.
type refSealer struct{ aead cipher.AEAD }

// newRefSealer uses a 32-byte key.
func newRefSealer(key []byte) (*refSealer, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("match reference key has %d bytes, want 32", len(key))
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		return nil, err
	}
	return &refSealer{g}, nil
}

// loadOrCreateKey reads a 32-byte key file, creating it (0600) if missing.
// Like the other key files, it refuses a file that other users may read.
func loadOrCreateKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return createKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("key file %s has mode %04o, which lets other users read it; chmod 600 it", path, perm)
	}
	key := make([]byte, 33)
	n, err := io.ReadFull(f, key)
	if err != io.ErrUnexpectedEOF || n != 32 {
		return nil, fmt.Errorf("key file %s is not a 32-byte key", path)
	}
	return key[:32], nil
}

// createKey writes a new random key to a new file at path (0600); it never
// overwrites a file (see atomicfile.Create).
func createKey(path string) ([]byte, error) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	if err := atomicfile.Create(path, key, 0o600); err != nil {
		return nil, fmt.Errorf("create key file: %w", err)
	}
	return key, nil
}

var refAAD = []byte("veilmatch match reference v2")

const refPrefix = "mr2."

func (s *refSealer) seal(r matchRef) (string, error) {
	plain, err := json.Marshal(r)
	if err != nil {
		return "", fmt.Errorf("encode match reference: %w", err)
	}
	if len(plain) > refPlainSize {
		return "", fmt.Errorf("match reference of %d bytes exceeds %d", len(plain), refPlainSize)
	}
	padded := make([]byte, refPlainSize)
	copy(padded, plain)
	for i := len(plain); i < refPlainSize; i++ {
		padded[i] = ' ' // JSON white space: the padding decodes away
	}
	nonce := make([]byte, s.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return refPrefix + base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, padded, refAAD)), nil
}

var errBadRef = errors.New("not a match reference issued by this hub")

func (s *refSealer) open(ref string) (matchRef, error) {
	var r matchRef
	if len(ref) <= len(refPrefix) || ref[:len(refPrefix)] != refPrefix {
		return r, errBadRef
	}
	b, err := base64.RawURLEncoding.DecodeString(ref[len(refPrefix):])
	if err != nil || len(b) < s.aead.NonceSize() {
		return r, errBadRef
	}
	plain, err := s.aead.Open(nil, b[:s.aead.NonceSize()], b[s.aead.NonceSize():], refAAD)
	if err != nil {
		return r, errBadRef
	}
	if err := json.Unmarshal(plain, &r); err != nil {
		return r, errBadRef
	}
	return r, nil
}

// issued returns when the reference's answer was given.
func (r matchRef) issued() time.Time { return time.Unix(0, r.Issued).UTC() }
