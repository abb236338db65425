package matchrow

import (
	"fmt"

	"github.com/veilmatch/veilmatch/crypto/token"
	"github.com/veilmatch/veilmatch/server/store"
)

// Checker turns the hits of a store's Check, one per (token, stored entry)
// holding it, into Check's calls: one per distinct (entry, counterparty
// list). An entry is one token, except for kind token.PDQKind, whose
// entries are token.PDQTokens consecutive tokens each, matching a stored
// entry when the tokens they share pass token.PDQNear.
type Checker struct {
	per     int
	fn      func(index int, counterpartyListID int64) error
	entry   int
	shared  map[stored]int
	emitted map[int64]bool
}

// stored is an entry of a committed list version.
type stored struct {
	list int64
	ref  uint64
}

// NewChecker returns the Checker of a check of n tokens of kind, or
// store.ErrInvalid if they are not a whole number of entries.
func NewChecker(kind string, n int, fn func(index int, counterpartyListID int64) error) (*Checker, error) {
	c := &Checker{per: 1, fn: fn, entry: -1, shared: map[stored]int{}, emitted: map[int64]bool{}}
	if kind == token.PDQKind {
		c.per = token.PDQTokens
	}
	if n%c.per != 0 {
		return nil, fmt.Errorf("%w: %d tokens of kind %s are not a whole number of entries of %d tokens", store.ErrInvalid, n, kind, c.per)
	}
	return c, nil
}

// Hit records that token index, in ascending order of index, is held by
// entry ref of committed list version list.
func (c *Checker) Hit(index int, list int64, ref uint64) error {
	if e := index / c.per; e != c.entry {
		if err := c.flush(); err != nil {
			return err
		}
		c.entry = e
	}
	if c.per == 1 {
		if !c.emitted[list] {
			c.emitted[list] = true
			return c.fn(c.entry, list)
		}
		return nil
	}
	c.shared[stored{list, ref}]++
	return nil
}

// Done reports the last entry's matches.
func (c *Checker) Done() error { return c.flush() }

// flush reports the matches of the current entry and forgets it.
func (c *Checker) flush() error {
	for s, n := range c.shared {
		if !c.emitted[s.list] && token.PDQNear(n) {
			c.emitted[s.list] = true
			if err := c.fn(c.entry, s.list); err != nil {
				return err
			}
		}
	}
	clear(c.shared)
	clear(c.emitted)
	return nil
}

// PairsSQL returns the statement that selects the pairs of a store's join
// of a new version's tokens (alias a) against the stored tokens (alias
// b) of committed lists (alias l), written as from (FROM … WHERE …), for
// list kind kind; cols is the select list. For token.PDQKind a pair of
// entries is kept when the tokens they share pass token.PDQNear; for
// other kinds the pairs are selected DISTINCT.
func PairsSQL(kind, cols, from string) string {
	if kind == token.PDQKind {
		return "SELECT " + cols + from + " GROUP BY a.ref, l.id, b.ref HAVING " + token.PDQNearSQL("count(*)")
	}
	return "SELECT DISTINCT " + cols + from
}
