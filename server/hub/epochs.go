package hub

import (
	"slices"
	"sync"
)

// epochs are the OPRF key ids the key server evaluates now, as it last
// reported them. A key id it served before and no longer serves is retired:
// its lists no longer match, so a rotation's grace period ends at the hub
// too. A key id it has not reported yet (a rotation the report has not
// caught up with) is not retired, and until the first report (for example
// right after a restart) nothing is.
type epochs struct {
	mu      sync.RWMutex
	current []string
	seen    map[string]bool
}

// set records the served key ids and reports whether they changed.
func (e *epochs) set(ids []string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if slices.Equal(e.current, ids) {
		return false
	}
	if e.seen == nil {
		e.seen = map[string]bool{}
	}
	for _, id := range ids {
		e.seen[id] = true
	}
	e.current = slices.Clone(ids)
	return true
}

// retired reports whether lists made under keyID no longer match.
func (e *epochs) retired(keyID string) bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.seen[keyID] && !slices.Contains(e.current, keyID)
}
