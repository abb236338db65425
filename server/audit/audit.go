// Package audit holds the storage-independent logic of the hub's
// tamper-evident decision log: canonical decision records, an append-only
// RFC 6962 Merkle tree kept as a compact range, inclusion and consistency
// proofs, and checkpoints in the C2SP tlog-checkpoint signed-note format.
//
// The package does no I/O besides reading and writing key files: the store
// persists the nodes that [Tree.Append] reports in the same transaction as the
// action being recorded, and serves them back through a [NodeReader].
package audit

import "errors"

var (
	// ErrNotCanonical is returned by [ParseRecord] for input that is not the
	// exact output of [Record.Marshal].
	ErrNotCanonical = errors.New("audit: record is not canonical")

	// ErrInvalidProof is returned when an inclusion or consistency proof does
	// not verify.
	ErrInvalidProof = errors.New("audit: invalid proof")

	// ErrUnknownKey is returned when a checkpoint carries no signature from
	// the expected key.
	ErrUnknownKey = errors.New("audit: checkpoint not signed by the expected key")

	// ErrBadSignature is returned when a checkpoint's signature from the
	// expected key does not verify.
	ErrBadSignature = errors.New("audit: bad checkpoint signature")

	// ErrWrongOrigin is returned when a checkpoint names another log.
	ErrWrongOrigin = errors.New("audit: wrong checkpoint origin")

	// ErrMalformedCheckpoint is returned for a checkpoint that is not in the
	// tlog-checkpoint format.
	ErrMalformedCheckpoint = errors.New("audit: malformed checkpoint")
)
