package hub

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/veilmatch/veilmatch/server/audit"
)

// fileSigner is a checkpoint signer whose key lives in a file.
type fileSigner struct {
	note.Signer
	vkey string
}

func (f fileSigner) VerifierKey() string { return f.vkey }

// loadFileSigner loads the signer key file at path, creating it (0600) for
// name on first use.
func loadFileSigner(path, name string) (Signer, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		skey, _, err := audit.GenerateKey(name)
		if err != nil {
			return nil, err
		}
		if err := audit.WriteSignerKey(path, skey); err != nil {
			return nil, err
		}
	}
	s, err := audit.LoadSigner(path)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read signer key: %w", err)
	}
	// PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>
	parts := strings.SplitN(strings.TrimSpace(string(data)), "+", 5)
	if len(parts) != 5 {
		return nil, fmt.Errorf("signer key %s: not a note private key", path)
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize {
		return nil, fmt.Errorf("signer key %s: not an Ed25519 note key", path)
	}
	vkey, err := audit.VerifierKey(s.Name(), ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	return fileSigner{s, vkey}, nil
}
