package audit_test

import (
	"context"
	"fmt"
	"time"

	"github.com/transparency-dev/merkle/compact"

	"github.com/veilmatch/veilmatch/server/audit"
)

// mapReader serves nodes from a map, as a store serves them from a table.
type mapReader map[compact.NodeID][]byte

func (m mapReader) Nodes(_ context.Context, ids []compact.NodeID) ([][]byte, error) {
	hashes := make([][]byte, len(ids))
	for i, id := range ids {
		h, ok := m[id]
		if !ok {
			return nil, fmt.Errorf("node (%d, %d) not stored", id.Level, id.Index)
		}
		hashes[i] = h
	}
	return hashes, nil
}

// Example appends decision records, then proves and verifies that one of
// them is in the log and that the log only grew.
func Example() {
	ctx := context.Background()
	tree, err := audit.NewTree(0, nil)
	if err != nil {
		panic(err)
	}
	nodes := mapReader{}
	var leaves [][]byte
	var oldRoot []byte
	for i, action := range []string{"publish", "overlaps", "check"} {
		rec := audit.Record{
			Index:  tree.Size(),
			Time:   time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
			Caller: "spiffe://veilmatch.test/agency/met",
			Action: action,
			Result: audit.ResultAllowed,
		}
		data, err := rec.Marshal()
		if err != nil {
			panic(err)
		}
		leaf := audit.LeafHash(data)
		leaves = append(leaves, leaf)
		stored, err := tree.Append(leaf) // persist in the same transaction
		if err != nil {
			panic(err)
		}
		for _, n := range stored {
			nodes[n.ID()] = n.Hash
		}
		if i == 1 {
			if oldRoot, err = tree.Root(); err != nil {
				panic(err)
			}
		}
	}
	root, err := tree.Root()
	if err != nil {
		panic(err)
	}

	incl, err := audit.InclusionProof(ctx, nodes, 1, tree.Size())
	if err != nil {
		panic(err)
	}
	fmt.Println("inclusion:", audit.VerifyInclusion(leaves[1], 1, tree.Size(), incl, root))

	cons, err := audit.ConsistencyProof(ctx, nodes, 2, tree.Size())
	if err != nil {
		panic(err)
	}
	fmt.Println("consistency:", audit.VerifyConsistency(2, tree.Size(), oldRoot, root, cons))
	// Output:
	// inclusion: <nil>
	// consistency: <nil>
}
