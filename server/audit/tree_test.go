package audit_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/bits"
	"reflect"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"

	"github.com/veilmatch/veilmatch/server/audit"
)

const maxTestSize = 70

// storeNodes adds the nodes reported by Append to m, checking that none is
// reported twice. Proofs may use only these nodes.
func storeNodes(t *testing.T, m mapReader, nodes []audit.Node) {
	t.Helper()
	for _, n := range nodes {
		if _, dup := m[n.ID()]; dup {
			t.Fatalf("node (%d, %d) reported twice", n.Level, n.Index)
		}
		m[n.ID()] = n.Hash
	}
}

func testLeaf(i uint64) []byte {
	return audit.LeafHash([]byte(fmt.Sprintf("leaf %d", i)))
}

// The reference functions below follow RFC 6962 section 2.1 literally.

func hashChildren(l, r []byte) []byte {
	h := sha256.New()
	h.Write([]byte{1})
	h.Write(l)
	h.Write(r)
	return h.Sum(nil)
}

// split returns the largest power of two smaller than n (n > 1).
func split(n uint64) uint64 {
	return 1 << (bits.Len64(n-1) - 1)
}

// refRoot is MTH(D[n]) over leaf hashes.
func refRoot(leaves [][]byte) []byte {
	switch n := uint64(len(leaves)); n {
	case 0:
		sum := sha256.Sum256(nil)
		return sum[:]
	case 1:
		return leaves[0]
	default:
		k := split(n)
		return hashChildren(refRoot(leaves[:k]), refRoot(leaves[k:]))
	}
}

// refPath is PATH(m, D[n]).
func refPath(m uint64, leaves [][]byte) [][]byte {
	n := uint64(len(leaves))
	if n <= 1 {
		return [][]byte{}
	}
	k := split(n)
	if m < k {
		return append(refPath(m, leaves[:k]), refRoot(leaves[k:]))
	}
	return append(refPath(m-k, leaves[k:]), refRoot(leaves[:k]))
}

// refProof is PROOF(m, D[n]).
func refProof(m uint64, leaves [][]byte) [][]byte {
	if m == 0 || m == uint64(len(leaves)) {
		return [][]byte{}
	}
	return refSubproof(m, leaves, true)
}

func refSubproof(m uint64, leaves [][]byte, b bool) [][]byte {
	n := uint64(len(leaves))
	if m == n {
		if b {
			return [][]byte{}
		}
		return [][]byte{refRoot(leaves)}
	}
	k := split(n)
	if m <= k {
		return append(refSubproof(m, leaves[:k], b), refRoot(leaves[k:]))
	}
	return append(refSubproof(m-k, leaves[k:], false), refRoot(leaves[:k]))
}

func flip(h []byte) []byte {
	c := bytes.Clone(h)
	c[0] ^= 1
	return c
}

func TestTreeRootsAndStoredNodes(t *testing.T) {
	tree, err := audit.NewTree(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	root, err := tree.Root()
	if err != nil {
		t.Fatal(err)
	}
	if want := rfc6962.DefaultHasher.EmptyRoot(); !bytes.Equal(root, want) || !bytes.Equal(root, refRoot(nil)) {
		t.Fatalf("empty root = %x, want %x", root, want)
	}

	ref := testonly.New(rfc6962.DefaultHasher)
	var leaves [][]byte
	for i := uint64(0); i < maxTestSize; i++ {
		leaf := testLeaf(i)
		leaves = append(leaves, leaf)
		ref.Append(leaf)
		stored, err := tree.Append(leaf)
		if err != nil {
			t.Fatal(err)
		}
		// The leaf, then one ancestor per completed perfect subtree.
		if want := 1 + bits.TrailingZeros64(^i); len(stored) != want {
			t.Fatalf("append %d stored %d nodes, want %d", i, len(stored), want)
		}
		for level, n := range stored {
			id := compact.NewNodeID(uint(level), i>>level)
			if n.ID() != id {
				t.Fatalf("append %d: node %d is %v, want %v", i, level, n.ID(), id)
			}
			begin, end := id.Coverage()
			if want := refRoot(leaves[begin:end]); !bytes.Equal(n.Hash, want) {
				t.Fatalf("append %d: node %v = %x, want %x", i, id, n.Hash, want)
			}
		}
		if tree.Size() != i+1 {
			t.Fatalf("Size = %d, want %d", tree.Size(), i+1)
		}
		root, err := tree.Root()
		if err != nil {
			t.Fatal(err)
		}
		if want := refRoot(leaves); !bytes.Equal(root, want) {
			t.Fatalf("root at size %d = %x, want %x", i+1, root, want)
		}
		if want := ref.Hash(); !bytes.Equal(root, want) {
			t.Fatalf("root at size %d = %x, testonly says %x", i+1, root, want)
		}
	}
}

func TestTreeProofs(t *testing.T) {
	ctx := context.Background()
	tree, err := audit.NewTree(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	reader := mapReader{}
	var leaves, roots [][]byte
	roots = append(roots, rfc6962.DefaultHasher.EmptyRoot())
	for size := uint64(1); size <= maxTestSize; size++ {
		leaves = append(leaves, testLeaf(size-1))
		stored, err := tree.Append(leaves[size-1])
		if err != nil {
			t.Fatal(err)
		}
		// Proofs at this size may only use nodes stored so far.
		storeNodes(t, reader, stored)
		root, err := tree.Root()
		if err != nil {
			t.Fatal(err)
		}
		roots = append(roots, root)

		for index := uint64(0); index < size; index++ {
			p, err := audit.InclusionProof(ctx, reader, index, size)
			if err != nil {
				t.Fatalf("InclusionProof(%d, %d): %v", index, size, err)
			}
			if want := refPath(index, leaves); !reflect.DeepEqual(p, want) {
				t.Fatalf("InclusionProof(%d, %d) differs from RFC 6962 PATH", index, size)
			}
			checkInclusion(t, leaves, index, size, p, root)
		}

		for old := uint64(0); old <= size; old++ {
			p, err := audit.ConsistencyProof(ctx, reader, old, size)
			if err != nil {
				t.Fatalf("ConsistencyProof(%d, %d): %v", old, size, err)
			}
			if want := refProof(old, leaves); !reflect.DeepEqual(p, want) {
				t.Fatalf("ConsistencyProof(%d, %d) differs from RFC 6962 PROOF", old, size)
			}
			checkConsistency(t, old, size, roots[old], root, p)
		}
	}
}

func checkInclusion(t *testing.T, leaves [][]byte, index, size uint64, p [][]byte, root []byte) {
	t.Helper()
	leaf := leaves[index]
	if err := audit.VerifyInclusion(leaf, index, size, p, root); err != nil {
		t.Fatalf("VerifyInclusion(%d, %d): %v", index, size, err)
	}
	bad := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, audit.ErrInvalidProof) {
			t.Fatalf("VerifyInclusion(%d, %d) with %s: error %v, want ErrInvalidProof", index, size, what, err)
		}
	}
	bad("wrong leaf", audit.VerifyInclusion(flip(leaf), index, size, p, root))
	bad("wrong root", audit.VerifyInclusion(leaf, index, size, p, flip(root)))
	// No "wrong size" case: a proof for (index, size) can also verify for a
	// larger size against the same root, e.g. (0, 3) and (0, 4). The size is
	// bound by the signed checkpoint, not by the proof.
	if size > 1 {
		other := (index + 1) % size
		if !bytes.Equal(leaves[other], leaf) {
			bad("wrong index", audit.VerifyInclusion(leaf, other, size, p, root))
		}
	}
	for i := range p {
		tampered := append([][]byte(nil), p...)
		tampered[i] = flip(p[i])
		bad(fmt.Sprintf("proof[%d] tampered", i), audit.VerifyInclusion(leaf, index, size, tampered, root))
	}
	bad("extra hash", audit.VerifyInclusion(leaf, index, size, append(append([][]byte(nil), p...), root), root))
	if len(p) > 0 {
		bad("truncated", audit.VerifyInclusion(leaf, index, size, p[:len(p)-1], root))
	}
}

func checkConsistency(t *testing.T, old, size uint64, oldRoot, root []byte, p [][]byte) {
	t.Helper()
	if err := audit.VerifyConsistency(old, size, oldRoot, root, p); err != nil {
		t.Fatalf("VerifyConsistency(%d, %d): %v", old, size, err)
	}
	bad := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, audit.ErrInvalidProof) {
			t.Fatalf("VerifyConsistency(%d, %d) with %s: error %v, want ErrInvalidProof", old, size, what, err)
		}
	}
	bad("wrong old root", audit.VerifyConsistency(old, size, flip(oldRoot), root, p))
	if old > 0 {
		// From size 0 there is nothing to prove about the new tree.
		bad("wrong new root", audit.VerifyConsistency(old, size, oldRoot, flip(root), p))
	}
	// As for inclusion, the new size is bound by the checkpoint, not the proof.
	if old > 0 && old < size {
		bad("wrong old size", audit.VerifyConsistency(old+1, size, oldRoot, root, p))
		bad("swapped sizes", audit.VerifyConsistency(size, old, root, oldRoot, p))
	}
	for i := range p {
		tampered := append([][]byte(nil), p...)
		tampered[i] = flip(p[i])
		bad(fmt.Sprintf("proof[%d] tampered", i), audit.VerifyConsistency(old, size, oldRoot, root, tampered))
	}
	bad("extra hash", audit.VerifyConsistency(old, size, oldRoot, root, append(append([][]byte(nil), p...), root)))
	if len(p) > 0 {
		bad("truncated", audit.VerifyConsistency(old, size, oldRoot, root, p[:len(p)-1]))
	}
}

func TestTreeRestore(t *testing.T) {
	for restoreAt := uint64(0); restoreAt <= maxTestSize; restoreAt++ {
		orig, err := audit.NewTree(0, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := uint64(0); i < restoreAt; i++ {
			if _, err := orig.Append(testLeaf(i)); err != nil {
				t.Fatal(err)
			}
		}
		state := orig.RangeHashes()
		restored, err := audit.NewTree(orig.Size(), state)
		if err != nil {
			t.Fatalf("NewTree(%d): %v", restoreAt, err)
		}
		// The restored tree must not share the caller's slices.
		for _, h := range state {
			h[0] ^= 0xff
		}
		for i := restoreAt; i < maxTestSize; i++ {
			a, err := orig.Append(testLeaf(i))
			if err != nil {
				t.Fatal(err)
			}
			b, err := restored.Append(testLeaf(i))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("restored at %d: append %d stored %v, want %v", restoreAt, i, b, a)
			}
		}
		ra, errA := orig.Root()
		rb, errB := restored.Root()
		if errA != nil || errB != nil || !bytes.Equal(ra, rb) || restored.Size() != orig.Size() {
			t.Fatalf("restored at %d: root %x (%v), want %x (%v)", restoreAt, rb, errB, ra, errA)
		}
	}
}

func TestTreeErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := audit.NewTree(3, [][]byte{testLeaf(0)}); err == nil {
		t.Error("NewTree with too few range hashes succeeded")
	}
	if _, err := audit.NewTree(1, [][]byte{{1, 2, 3}}); err == nil {
		t.Error("NewTree with a short hash succeeded")
	}
	if _, err := audit.NewTree(0, [][]byte{testLeaf(0)}); err == nil {
		t.Error("NewTree with too many range hashes succeeded")
	}

	tree, err := audit.NewTree(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.Append([]byte("short")); err == nil {
		t.Error("Append of a short hash succeeded")
	}
	if tree.Size() != 0 {
		t.Errorf("failed Append changed the size to %d", tree.Size())
	}

	reader := mapReader{}
	for i := uint64(0); i < 5; i++ {
		stored, err := tree.Append(testLeaf(i))
		if err != nil {
			t.Fatal(err)
		}
		storeNodes(t, reader, stored)
	}
	if _, err := audit.InclusionProof(ctx, reader, 5, 5); err == nil {
		t.Error("InclusionProof for index == size succeeded")
	}
	if _, err := audit.ConsistencyProof(ctx, reader, 4, 3); err == nil {
		t.Error("ConsistencyProof with old > new succeeded")
	}
	if _, err := audit.InclusionProof(ctx, reader, 0, 8); err == nil {
		t.Error("InclusionProof beyond the stored tree succeeded")
	}
	short := readerFunc(func(ids []compact.NodeID) ([][]byte, error) { return make([][]byte, len(ids)-1), nil })
	if _, err := audit.InclusionProof(ctx, short, 0, 5); err == nil {
		t.Error("InclusionProof with a reader returning too few hashes succeeded")
	}
	truncated := readerFunc(func(ids []compact.NodeID) ([][]byte, error) { return make([][]byte, len(ids)), nil })
	if _, err := audit.ConsistencyProof(ctx, truncated, 3, 5); err == nil {
		t.Error("ConsistencyProof with a reader returning empty hashes succeeded")
	}

	root, err := tree.Root()
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.VerifyConsistency(0, 5, root, root, nil); !errors.Is(err, audit.ErrInvalidProof) {
		t.Errorf("VerifyConsistency from size 0 with a non-empty old root: %v, want ErrInvalidProof", err)
	}
	if err := audit.VerifyInclusion(testLeaf(0), 5, 5, nil, root); !errors.Is(err, audit.ErrInvalidProof) {
		t.Errorf("VerifyInclusion for index == size: %v, want ErrInvalidProof", err)
	}
}

type readerFunc func(ids []compact.NodeID) ([][]byte, error)

func (f readerFunc) Nodes(_ context.Context, ids []compact.NodeID) ([][]byte, error) {
	return f(ids)
}
