package matchrow

import (
	"cmp"
	"context"
	"fmt"
	"slices"
)

// The match sets (table match_sets) summarize the pairs for Overlaps: for
// each two list versions with pairs, list_id and cp_list_id, the distinct
// refs of list_id's entries that match an entry of cp_list_id, as a ref
// set (see AppendRefSet). They always equal the pairs grouped — SELECT
// DISTINCT list_id, cp_list_id, ref FROM matches — and are rewritten in
// the transactions that change the pairs of a version: its commit or the
// undoing of a retraction (Announce), a retraction (Retract) and its
// erasure (ErasePairs). As the pairs are, sets come in mirror images: a
// version has a set with a counterparty exactly when the counterparty has
// one with it, so the sets whose counterparty is a version are found by
// the primary key too.

// eraseSetsSQL deletes the match sets of list version $1 and their
// mirror images.
var eraseSetsSQL = []string{
	`DELETE FROM match_sets WHERE (list_id, cp_list_id) IN (SELECT cp_list_id, list_id FROM match_sets WHERE list_id = $1)`,
	`DELETE FROM match_sets WHERE list_id = $1`,
}

// pairsOfListSQL selects the pairs of list version $1, found by their
// primary key.
const pairsOfListSQL = `SELECT ref, cp_list_id, cp_ref FROM matches WHERE list_id = $1`

// matchSet is a row of match_sets, its refs not packed yet.
type matchSet struct {
	list, cp int64
	refs     []uint64
}

// setsOf returns the match sets of list version id computed from its
// pairs, and, if mirrors, their mirror images, computed from the same
// rows.
func setsOf(ctx context.Context, tx Tx, id int64, mirrors bool) ([]matchSet, error) {
	own, mirror := map[int64][]uint64{}, map[int64][]uint64{}
	err := tx.Query(ctx, pairsOfListSQL, []any{id}, func(scan func(...any) error) error {
		var ref, cp, cpRef int64
		if err := scan(&ref, &cp, &cpRef); err != nil {
			return err
		}
		// Read from the primary key, rows come by ref: a ref's repeats
		// with one counterparty follow each other, and are kept once
		// (writeSets drops any other repeat).
		if refs := own[cp]; len(refs) == 0 || refs[len(refs)-1] != uint64(ref) {
			own[cp] = append(refs, uint64(ref))
		}
		if mirrors {
			mirror[cp] = append(mirror[cp], uint64(cpRef))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the pairs of list version %d: %w", id, err)
	}
	sets := make([]matchSet, 0, 2*len(own))
	for cp, refs := range own {
		sets = append(sets, matchSet{id, cp, refs})
		if mirrors {
			sets = append(sets, matchSet{cp, id, mirror[cp]})
		}
	}
	return sets, nil
}

// setRows is how many match sets one INSERT statement writes.
const setRows = 100

// writeSets packs the refs of the match sets of list version id (and
// their mirror images), sorting them and dropping repeats, and inserts the
// sets in the order of their primary key.
func writeSets(ctx context.Context, tx Tx, id int64, sets []matchSet) error {
	slices.SortFunc(sets, func(a, b matchSet) int { return cmp.Or(cmp.Compare(a.list, b.list), cmp.Compare(a.cp, b.cp)) })
	err := insertRows(ctx, tx, `INSERT INTO match_sets (list_id, cp_list_id, refs) VALUES `, "", setRows, sets, func(s matchSet) []any {
		slices.Sort(s.refs)
		return []any{s.list, s.cp, AppendRefSet(nil, slices.Compact(s.refs))}
	})
	if err != nil {
		return fmt.Errorf("store the match sets of list version %d: %w", id, err)
	}
	return nil
}

// rebuildSets rewrites the match sets of list version id, and their mirror
// images, from its pairs, after they changed.
func rebuildSets(ctx context.Context, tx Tx, id int64) error {
	for _, q := range eraseSetsSQL {
		if _, err := tx.Exec(ctx, q, id); err != nil {
			return fmt.Errorf("erase the match sets of list version %d: %w", id, err)
		}
	}
	sets, err := setsOf(ctx, tx, id, true)
	if err != nil {
		return err
	}
	return writeSets(ctx, tx, id, sets)
}

// FillSets computes the match sets of every list version from the pairs
// stored, into an empty match_sets: the migration that adds the table
// calls it, in its transaction.
func FillSets(ctx context.Context, tx Tx) error {
	var ids []int64
	if err := tx.Query(ctx, `SELECT DISTINCT list_id FROM matches ORDER BY list_id`, nil, func(scan func(...any) error) error {
		var id int64
		err := scan(&id)
		ids = append(ids, id)
		return err
	}); err != nil {
		return fmt.Errorf("fill the match sets: %w", err)
	}
	for _, id := range ids {
		sets, err := setsOf(ctx, tx, id, false)
		if err != nil {
			return err
		}
		if err := writeSets(ctx, tx, id, sets); err != nil {
			return err
		}
	}
	return nil
}
