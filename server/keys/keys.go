// Package keys gives the key server its OPRF keys and the hub its checkpoint
// signer through one small interface with two backends: local files (the
// default) and HashiCorp Vault. Configuration chooses the backend; nothing
// else in the code knows which is in use.
//
//   - OPRF keys ([KeySource], which the key server's KeySource matches):
//     [FileOPRF] reads a key file; [Vault.OPRFSource] reads a KV v2 secret
//     whose versions are key epochs.
//   - Checkpoint signers ([Signer]): [FileSigner] loads (or creates) a note
//     signing key file; [Vault.TransitSigner] signs with a Transit ed25519
//     key that never leaves Vault.
//
// [DialVault] logs in to Vault (token or AppRole), refuses to start when
// Vault is unreachable, and keeps the token alive in the background.
package keys

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/veilmatch/veilmatch/crypto/oprf"
)

// KeySource supplies OPRF keys: the current key first, then older epochs
// still in their grace period. It has the method set of the key server's
// KeySource, so both backends plug into it directly.
type KeySource interface {
	Keys(ctx context.Context) ([]*oprf.PrivateKey, error)
}

// Signer signs audit checkpoints: a note signer that also knows the
// verifier key auditors pin ("name+hash+base64 key", see
// audit.NewVerifier).
type Signer interface {
	note.Signer
	// VerifierKey returns the note verifier key of the signing key.
	VerifierKey() string
}

var (
	// ErrPermissionDenied means Vault refused the token access to a path:
	// its policy must grant the capability named in the error.
	ErrPermissionDenied = errors.New("keys: permission denied")
	// ErrNotFound means a Vault secret or Transit key does not exist.
	ErrNotFound = errors.New("keys: not found")
	// ErrConflict means a KV write lost a check-and-set race: another
	// writer created a version first.
	ErrConflict = errors.New("keys: check-and-set conflict")
)

// SplitMountPath splits a Vault path such as "secret/veilmatch/oprf" into
// its mount ("secret") and the path inside it ("veilmatch/oprf"), or
// "transit/veilmatch-checkpoints" into "transit" and
// "veilmatch-checkpoints". The mount is the first path element.
func SplitMountPath(p string) (mount, path string, err error) {
	mount, path, _ = strings.Cut(strings.Trim(p, "/"), "/")
	if mount == "" || path == "" || strings.Contains("/"+path+"/", "//") {
		return "", "", fmt.Errorf("keys: vault path %q: want MOUNT/PATH, such as secret/veilmatch/oprf", p)
	}
	return mount, path, nil
}
