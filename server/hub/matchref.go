package hub

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// matchRef is what a match reference stands for: matches of the
// requester's list version with counterparty list versions, for one entry
// (a flag) or for a whole class (a count). It is sealed with AES-GCM under a
// hub-local key, so the requester learns nothing from it (not even how many
// lists stand behind it) and cannot forge one.
type matchRef struct {
	Owner        string  `json:"o"`
	ListID       int64   `json:"l"`
	Entry        *uint64 `json:"e,omitempty"`
	Class        string  `json:"k,omitempty"`
	Counterparts []int64 `json:"c"`
	Level        string  `json:"v"`
}

// refSealer seals and opens match references.
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
func loadOrCreateKey(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if err == nil {
		if len(key) != 32 {
			return nil, fmt.Errorf("key file %s has %d bytes, want 32", path, len(key))
		}
		return key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	key = make([]byte, 32)
	_, _ = rand.Read(key)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create key file: %w", err)
	}
	if _, err := f.Write(key); err != nil {
		f.Close()
		return nil, fmt.Errorf("write key file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write key file %s: %w", path, err)
	}
	return key, nil
}

var refAAD = []byte("veilmatch match reference v1")

func (s *refSealer) seal(r matchRef) string {
	plain, err := json.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("hub: encode match reference: %v", err)) // plain struct: cannot fail
	}
	nonce := make([]byte, s.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return "mr1." + base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plain, refAAD))
}

var errBadRef = errors.New("not a match reference issued by this hub")

func (s *refSealer) open(ref string) (matchRef, error) {
	var r matchRef
	const prefix = "mr1."
	if len(ref) <= len(prefix) || ref[:len(prefix)] != prefix {
		return r, errBadRef
	}
	b, err := base64.RawURLEncoding.DecodeString(ref[len(prefix):])
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
