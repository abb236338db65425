package hub

import (
	"slices"
	"sync"
)

// epochs are the OPRF key ids the key server evaluates now, as it last
// reported them. Lists made under any other key id are retired: they no
// longer match, so a rotation's grace period ends at the hub too. Until the
// first report (for example right after a restart) nothing is retired.
type epochs struct {
	mu  sync.RWMutex
	ids []string
}

// set records the served key ids and reports whether they changed.
func (e *epochs) set(ids []string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if slices.Equal(e.ids, ids) {
		return false
	}
	e.ids = slices.Clone(ids)
	return true
}

// retired reports whether lists made under keyID no longer match.
func (e *epochs) retired(keyID string) bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return len(e.ids) > 0 && !slices.Contains(e.ids, keyID)
}
