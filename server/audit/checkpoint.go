package audit

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
)

// Checkpoint is a signed statement of the log's size and root hash, in the
// C2SP tlog-checkpoint format (https://c2sp.org/tlog-checkpoint).
type Checkpoint struct {
	// Origin names the log; by convention it is also the signing key's name.
	Origin string
	// Size is the number of leaves.
	Size uint64
	// Root is the RFC 6962 root hash at Size.
	Root []byte
}

// body returns the note text of the checkpoint:
// "<origin>\n<size>\n<base64 root>\n", without extension lines.
func (c Checkpoint) body() (string, error) {
	if err := checkOrigin(c.Origin); err != nil {
		return "", err
	}
	if len(c.Root) != HashSize {
		return "", fmt.Errorf("audit: checkpoint root has %d bytes, want %d", len(c.Root), HashSize)
	}
	return c.Origin + "\n" + strconv.FormatUint(c.Size, 10) + "\n" + base64.StdEncoding.EncodeToString(c.Root) + "\n", nil
}

// checkOrigin requires a non-empty line of valid UTF-8 with no control
// characters, as a signed note allows.
func checkOrigin(origin string) error {
	if origin == "" {
		return errors.New("audit: empty checkpoint origin")
	}
	if !utf8.ValidString(origin) || strings.ContainsFunc(origin, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return errors.New("audit: checkpoint origin must be UTF-8 without control characters")
	}
	return nil
}

// SignCheckpoint returns cp as a signed note. The signer's key name should be
// cp.Origin, as tlog-checkpoint recommends.
//
// Any [note.Signer] will do: the file-backed one from [LoadSigner], or one
// backed by a HashiCorp Vault Transit ed25519 key, whose Name is the key name,
// KeyHash is the hash in the verifier key built by [VerifierKey] from the
// Transit public key, and Sign returns the Transit signature of the message.
func SignCheckpoint(cp Checkpoint, s note.Signer) ([]byte, error) {
	if s == nil {
		return nil, errors.New("audit: sign checkpoint: nil signer")
	}
	text, err := cp.body()
	if err != nil {
		return nil, err
	}
	signed, err := note.Sign(&note.Note{Text: text}, s)
	if err != nil {
		return nil, fmt.Errorf("audit: sign checkpoint of size %d: %w", cp.Size, err)
	}
	return signed, nil
}

// OpenCheckpoint verifies that text is a checkpoint signed by v for the log
// named origin and returns it. Signatures by other keys, such as witness
// cosignatures, are ignored. Parsing is strict: exactly the three lines that
// [SignCheckpoint] writes, a decimal size without leading zeros, and a
// canonical standard base64 root of 32 bytes; extension lines are refused.
func OpenCheckpoint(text []byte, v note.Verifier, origin string) (Checkpoint, error) {
	if v == nil {
		return Checkpoint{}, errors.New("audit: open checkpoint: nil verifier")
	}
	if err := checkOrigin(origin); err != nil {
		return Checkpoint{}, err
	}
	n, err := note.Open(text, note.VerifierList(v))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		switch {
		case errors.As(err, &unverified):
			return Checkpoint{}, fmt.Errorf("%w (key %s+%08x)", ErrUnknownKey, v.Name(), v.KeyHash())
		case errors.As(err, &invalid):
			return Checkpoint{}, fmt.Errorf("%w (key %s+%08x)", ErrBadSignature, v.Name(), v.KeyHash())
		default:
			return Checkpoint{}, fmt.Errorf("%w: %w", ErrMalformedCheckpoint, err)
		}
	}
	// A note's text always ends in a newline.
	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	if len(lines) < 3 {
		return Checkpoint{}, fmt.Errorf("%w: %d lines, want 3", ErrMalformedCheckpoint, len(lines))
	}
	if lines[0] != origin {
		return Checkpoint{}, fmt.Errorf("%w: want %q", ErrWrongOrigin, origin)
	}
	size, err := parseSize(lines[1])
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: size: %w", ErrMalformedCheckpoint, err)
	}
	root, err := parseRoot(lines[2])
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: root hash: %w", ErrMalformedCheckpoint, err)
	}
	if len(lines) > 3 {
		return Checkpoint{}, fmt.Errorf("%w: unexpected extension lines", ErrMalformedCheckpoint)
	}
	return Checkpoint{Origin: origin, Size: size, Root: root}, nil
}

// parseSize parses an ASCII decimal tree size without sign or leading zeros.
func parseSize(s string) (uint64, error) {
	if s == "" {
		return 0, errors.New("empty")
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, errors.New("leading zero")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("not a decimal number")
		}
	}
	size, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, errors.New("out of range")
	}
	return size, nil
}

// parseRoot decodes a canonical standard base64 encoding of a 32-byte hash.
func parseRoot(s string) ([]byte, error) {
	root, err := base64.StdEncoding.DecodeString(s)
	if err != nil || base64.StdEncoding.EncodeToString(root) != s {
		return nil, errors.New("not canonical base64")
	}
	if len(root) != HashSize {
		return nil, fmt.Errorf("%d bytes, want %d", len(root), HashSize)
	}
	return root, nil
}
