package hub

import (
	"context"
	"slices"
	"sync"

	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/store"
)

// epochs are the OPRF key ids the key server evaluates now, as it last
// reported them. A key id it served before and no longer serves is retired:
// its lists no longer match, so a rotation's grace period ends at the hub
// too. A key id it has not reported yet (a rotation the report has not
// caught up with) is not retired. Reports are stored, so a retired key id
// stays retired across restarts; memory mirrors the store for the hot path.
type epochs struct {
	store store.KeyEpochs
	write sync.Mutex // serializes set, so memory follows the store's order

	mu      sync.RWMutex
	current []string
	seen    map[string]bool
}

// load reads the stored reports into memory.
func (e *epochs) load(ctx context.Context) error {
	current, seen, err := e.store.KeyEpochs(ctx)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.current, e.seen = current, map[string]bool{}
	for _, id := range seen {
		e.seen[id] = true
	}
	return nil
}

// set stores the served key ids, with rec in the decision log, and reports
// whether they changed. Memory changes only once the store has.
func (e *epochs) set(ctx context.Context, ids []string, rec *audit.Record) (bool, error) {
	e.write.Lock()
	defer e.write.Unlock()
	changed, err := e.store.SetKeyEpochs(ctx, ids, rec)
	if err != nil || !changed {
		return false, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.seen == nil {
		e.seen = map[string]bool{}
	}
	for _, id := range ids {
		e.seen[id] = true
	}
	e.current = slices.Clone(ids)
	return true, nil
}

// retired reports whether lists made under keyID no longer match.
func (e *epochs) retired(keyID string) bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.seen[keyID] && !slices.Contains(e.current, keyID)
}
