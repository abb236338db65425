package hub

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/veilmatch/veilmatch/crypto/oprf"
	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/store"
)

// epochs are the OPRF keys the key server evaluates now, as it last
// reported them. A key id it served before and no longer serves is
// retired: its lists no longer match, so a rotation's grace period ends at
// the hub too. A key id it has not reported yet (a rotation the report has
// not caught up with) is not retired. Reports are stored, so a retired key
// id stays retired across restarts; memory mirrors the store for the hot
// path, reloaded before every report and every few seconds (see
// Server.monitor), so that hub replicas sharing a store follow each other.
//
// A report can retire lists only if the hub trusts every key in it: a key
// it knows (with the same public key), one its operator configured, one
// that a trusted key endorsed, or, when it knows no key at all, any (the
// first report is trusted on first use). A stray or rogue key server with
// a key of its own therefore retires nothing.
type epochs struct {
	store      store.KeyEpochs
	configured []oprf.PublicKey
	write      sync.Mutex // serializes set, so memory follows the store's order

	mu      sync.RWMutex
	current []string
	known   map[string][]byte // key id → public key (nil: stored without one)
}

// servedKey is one key of a key server's report.
type servedKey struct {
	pub   oprf.PublicKey
	chain []oprf.Endorsement
}

// errUntrustedKey reports a key server report with a key the hub does not
// trust.
var errUntrustedKey = errors.New("untrusted key")

// load reads the stored reports into memory.
func (e *epochs) load(ctx context.Context) error {
	current, known, err := e.store.KeyEpochs(ctx)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.current, e.known = current, map[string][]byte{}
	for _, k := range known {
		e.known[k.KeyID] = k.PublicKey
	}
	return nil
}

// admit checks that the hub may trust every key of a report, and returns
// an error wrapping errUntrustedKey naming the first it may not. firstUse
// reports a report trusted only because the hub knew and was configured
// with no key at all.
func (e *epochs) admit(served []servedKey) (firstUse bool, err error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	trusted := slices.Clone(e.configured)
	for id, pub := range e.known {
		if pub != nil {
			trusted = append(trusted, oprf.PublicKey{KeyID: id, Bytes: pub})
		}
	}
	var pending []servedKey
	for _, k := range served {
		held, known := e.known[k.pub.KeyID]
		switch {
		case known && held != nil && !bytes.Equal(held, k.pub.Bytes):
			return false, fmt.Errorf("%w: key id %s is reported with another public key than before", errUntrustedKey, k.pub.KeyID)
		case known:
			// A key stored before public keys were kept takes the
			// reported one, as its id is already trusted.
			trusted = append(trusted, k.pub)
		default:
			pending = append(pending, k)
		}
	}
	if len(e.known) == 0 && len(e.configured) == 0 {
		return true, nil
	}
	for _, k := range pending {
		if _, err := oprf.VerifyChain(trusted, k.chain, k.pub); err != nil {
			return false, fmt.Errorf("%w: key id %s is new and no key the hub trusts endorses it (%v)", errUntrustedKey, k.pub.KeyID, err)
		}
	}
	return false, nil
}

// set stores the served keys, with rec in the decision log, and reports
// whether they changed. Memory changes only once the store has. Keys
// trusted on first use say so in rec.
func (e *epochs) set(ctx context.Context, served []servedKey, rec *audit.Record) (bool, error) {
	e.write.Lock()
	defer e.write.Unlock()
	// Another hub replica may have stored a report since.
	if err := e.load(ctx); err != nil {
		return false, err
	}
	firstUse, err := e.admit(served)
	if err != nil {
		return false, err
	}
	report := make([]store.KeyEpoch, len(served))
	ids := make([]string, len(served))
	for i, k := range served {
		report[i] = store.KeyEpoch{KeyID: k.pub.KeyID, PublicKey: k.pub.Bytes}
		ids[i] = k.pub.KeyID
	}
	rec.Details = map[string]string{"key_ids": strings.Join(ids, ","), "current": ids[0]}
	if firstUse {
		rec.Reason = "the hub knew no key server key and was configured with none: these keys are trusted on first use"
	}
	changed, err := e.store.SetKeyEpochs(ctx, report, rec)
	if err != nil || !changed {
		return false, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.known == nil {
		e.known = map[string][]byte{}
	}
	for _, k := range report {
		e.known[k.KeyID] = k.PublicKey
	}
	e.current = ids
	return true, nil
}

// retired reports whether lists made under keyID no longer match.
func (e *epochs) retired(keyID string) bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	_, known := e.known[keyID]
	return known && !slices.Contains(e.current, keyID)
}
