// Package token defines the pseudonymous tokens that leave an agency: the
// first 32 bytes of the RFC 9497 Finalize output for one canonical
// identifier, tagged with the OPRF key id (epoch) they were made under.
//
// A token is a pseudonym for a watchlist entry, so its String and GoString
// methods never print its bytes.
package token

import (
	"errors"
	"fmt"
)

// Size is the length of a token in bytes (128-bit collision resistance).
const Size = 32

// ErrSize reports a token or OPRF output of the wrong length.
var ErrSize = errors.New("token: wrong length")

// Token is one pseudonym. Compare tokens with ==; they are not secret keys,
// but they must never be logged.
type Token [Size]byte

// FromOutput truncates a 64-byte RFC 9497 Finalize output to a token.
func FromOutput(out []byte) (Token, error) {
	var t Token
	if len(out) != 64 {
		return t, fmt.Errorf("%w: OPRF output has %d bytes, want 64", ErrSize, len(out))
	}
	copy(t[:], out[:Size])
	return t, nil
}

// Parse decodes a token received on the wire.
func Parse(b []byte) (Token, error) {
	var t Token
	if len(b) != Size {
		return t, fmt.Errorf("%w: %d bytes, want %d", ErrSize, len(b), Size)
	}
	copy(t[:], b)
	return t, nil
}

// Bytes returns a copy of the token's bytes for the wire or the store.
func (t Token) Bytes() []byte { return append([]byte(nil), t[:]...) }

// String redacts the token so it cannot reach a log by accident.
func (t Token) String() string { return "token(redacted)" }

// GoString redacts the token in %#v output.
func (t Token) GoString() string { return "token.Token(redacted)" }

// Keyed is a token together with the key id (epoch) it was made under.
// Tokens of different key ids never match.
type Keyed struct {
	KeyID string
	Token Token
}
