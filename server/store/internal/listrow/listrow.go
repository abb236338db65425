// Package listrow is what the hub's stores (SQLite, PostgreSQL) share about
// keeping a list in a row: the validation of an upload's names and
// metadata, the stored form of the metadata, and the errors every store
// returns alike.
package listrow

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/veilmatch/veilmatch/server/store"
)

// Upload states, kept in lists.state by every store.
const (
	StateOpen       = 0 // upload in progress, invisible to readers
	StateCommitted  = 1 // the list's current version
	StateSuperseded = 2 // once committed, replaced by a later commit; its tokens are erased
)

// Meta is a list's metadata as a store keeps it: its consent roles and
// normalization as canonical JSON text, its expiry in Unix microseconds
// (0: never).
type Meta struct {
	Kind, KeyID, Category, Jurisdiction string
	ExpiresAt                           int64
	ConsentRoles                        string // JSON array
	NGOVisible                          bool
	Normalization                       string // JSON object
}

// Encode validates an upload's metadata and returns it in stored form.
func Encode(u store.Upload) (Meta, error) {
	l := u.Meta
	switch {
	case l.Owner != "" && l.Owner != u.Owner:
		return Meta{}, fmt.Errorf("%w: metadata owner %q differs from upload owner %q", store.ErrInvalid, l.Owner, u.Owner)
	case l.Name != "" && l.Name != u.List:
		return Meta{}, fmt.Errorf("%w: metadata name %q differs from upload list %q", store.ErrInvalid, l.Name, u.List)
	case l.Kind == "":
		return Meta{}, fmt.Errorf("%w: list kind is required", store.ErrInvalid)
	case l.KeyID == "":
		return Meta{}, fmt.Errorf("%w: list key id is required", store.ErrInvalid)
	}
	roles := l.Sharing.VictimConsentRoles
	if roles == nil {
		roles = []string{}
	}
	rj, err := json.Marshal(roles)
	if err != nil {
		return Meta{}, err
	}
	norm := l.Normalization
	if norm == nil {
		norm = map[string]string{}
	}
	nj, err := json.Marshal(norm) // map keys are sorted: the encoding is canonical
	if err != nil {
		return Meta{}, err
	}
	return Meta{
		Kind: l.Kind, KeyID: l.KeyID, Category: l.Category, Jurisdiction: l.Jurisdiction,
		ExpiresAt: Micros(l.ExpiresAt), ConsentRoles: string(rj), NGOVisible: l.Sharing.NGOVisible, Normalization: string(nj),
	}, nil
}

// Apply sets the metadata fields of l from m.
func (m Meta) Apply(l *store.List) error {
	l.Kind, l.KeyID, l.Category, l.Jurisdiction = m.Kind, m.KeyID, m.Category, m.Jurisdiction
	l.ExpiresAt = FromMicros(m.ExpiresAt)
	l.Sharing.NGOVisible = m.NGOVisible
	return DecodeJSON(l, m.ConsentRoles, m.Normalization)
}

// DecodeJSON sets l's consent roles and normalization from their stored
// JSON; empty ones are nil, as the store contract has them.
func DecodeJSON(l *store.List, roles, norm string) error {
	if err := json.Unmarshal([]byte(roles), &l.Sharing.VictimConsentRoles); err != nil {
		return fmt.Errorf("list %d: consent roles: %w", l.ID, err)
	}
	if len(l.Sharing.VictimConsentRoles) == 0 {
		l.Sharing.VictimConsentRoles = nil
	}
	if err := json.Unmarshal([]byte(norm), &l.Normalization); err != nil {
		return fmt.Errorf("list %d: normalization: %w", l.ID, err)
	}
	if len(l.Normalization) == 0 {
		l.Normalization = nil
	}
	return nil
}

// CheckNames rejects an empty owner, list name or upload id.
func CheckNames(owner, list, uploadID string) error {
	if owner == "" || list == "" || uploadID == "" {
		return fmt.Errorf("%w: owner, list name and upload id are required", store.ErrInvalid)
	}
	return nil
}

// ErrSuperseded is the error for any use of an upload that a later commit
// replaced.
func ErrSuperseded(uploadID string) error {
	return fmt.Errorf("%w: upload %q was superseded by a later commit", store.ErrConflict, uploadID)
}

// Micros returns t as Unix microseconds, 0 for the zero time.
func Micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// FromMicros inverts Micros, in UTC.
func FromMicros(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.UnixMicro(n).UTC()
}
