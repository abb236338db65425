package keys

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/veilmatch/veilmatch/crypto/oprf"
	"github.com/veilmatch/veilmatch/server/audit"
)

// fileOPRF is the file backend of KeySource.
type fileOPRF struct{ path string }

// FileOPRF returns a KeySource that reads the OPRF key file at path (see
// oprf.LoadKeyFile) on every call, so replacing the file rotates the key.
// A file holds one key, so there is no grace period for the previous one:
// use Vault for rotations that keep old lists matching.
func FileOPRF(path string) KeySource { return fileOPRF{path: path} }

// Keys returns the key in the file.
func (f fileOPRF) Keys(ctx context.Context) ([]*oprf.PrivateKey, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	k, err := oprf.LoadKeyFile(f.path)
	if err != nil {
		return nil, err
	}
	return []*oprf.PrivateKey{k}, nil
}

// fileSigner is a checkpoint signer loaded from a note private key file.
type fileSigner struct {
	signer note.Signer
	vkey   string
}

func (s *fileSigner) Name() string                    { return s.signer.Name() }
func (s *fileSigner) KeyHash() uint32                 { return s.signer.KeyHash() }
func (s *fileSigner) Sign(msg []byte) ([]byte, error) { return s.signer.Sign(msg) }
func (s *fileSigner) VerifierKey() string             { return s.vkey }
func (s *fileSigner) String() string                  { return "keys.FileSigner(" + s.vkey + ")" }
func (s *fileSigner) GoString() string                { return s.String() }

// FileSigner loads the checkpoint signing key at path (see
// audit.LoadSigner). If there is no file, it generates a key named name and
// writes it there with mode 0600 first. The key must be named name: the
// log's origin.
func FileSigner(path, name string) (Signer, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		skey, _, err := audit.GenerateKey(name)
		if err != nil {
			return nil, err
		}
		// WriteSignerKey refuses to overwrite, so a concurrent creator wins
		// and its key is the one loaded below.
		if err := audit.WriteSignerKey(path, skey); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
	}
	s, err := audit.LoadSigner(path)
	if err != nil {
		return nil, err
	}
	if s.Name() != name {
		return nil, fmt.Errorf("keys: signer key %s is named %q, want %q", path, s.Name(), name)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keys: read signer key: %w", err)
	}
	pub, err := notePublicKey(strings.TrimSpace(string(data)))
	clear(data)
	if err != nil {
		return nil, fmt.Errorf("keys: signer key %s: %w", path, err)
	}
	vkey, err := audit.VerifierKey(name, pub)
	if err != nil {
		return nil, err
	}
	v, err := audit.NewVerifier(vkey)
	if err != nil {
		return nil, err
	}
	if v.KeyHash() != s.KeyHash() {
		return nil, fmt.Errorf("keys: signer key %s: key hash does not match its public key", path)
	}
	return &fileSigner{signer: s, vkey: vkey}, nil
}

// notePublicKey returns the Ed25519 public key of a note private key,
// "PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>". Errors never include
// key material.
func notePublicKey(skey string) (ed25519.PublicKey, error) {
	// Names never contain "+"; the base64 key may.
	rest, found := strings.CutPrefix(skey, "PRIVATE+KEY+")
	parts := strings.SplitN(rest, "+", 3)
	if !found || len(parts) != 3 {
		return nil, errors.New("not a note private key")
	}
	b, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(b) != 1+ed25519.SeedSize || b[0] != 1 {
		clear(b)
		return nil, errors.New("not an Ed25519 note private key")
	}
	priv := ed25519.NewKeyFromSeed(b[1:])
	clear(b)
	pub := priv.Public().(ed25519.PublicKey)
	clear(priv)
	return pub, nil
}
