package audit

import (
	"bytes"
	"context"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	merkleproof "github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// HashSize is the size in bytes of every leaf, node and root hash (SHA-256).
const HashSize = 32

var rangeFactory = &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}

// LeafHash returns the RFC 6962 leaf hash of data, normally the canonical
// encoding of a [Record].
func LeafHash(data []byte) []byte {
	return rfc6962.DefaultHasher.HashLeaf(data)
}

// Node is a node of the log's Merkle tree, addressed like
// [compact.NodeID]: Level 0 holds the leaves, and Index counts nodes from the
// left within a level.
type Node struct {
	Level uint
	Index uint64
	Hash  []byte
}

// ID returns the node's address.
func (n Node) ID() compact.NodeID {
	return compact.NewNodeID(n.Level, n.Index)
}

// Tree is the append-only Merkle tree of the log, held as the compact range
// [0, Size()). It keeps only O(log n) hashes; the store keeps the nodes that
// Append reports so that proofs can be served later.
//
// A Tree is not safe for concurrent use.
type Tree struct {
	r *compact.Range
}

// NewTree restores a tree of the given size from the hashes returned by
// [Tree.RangeHashes] at that size. NewTree(0, nil) is the empty tree.
func NewTree(size uint64, rangeHashes [][]byte) (*Tree, error) {
	hashes := make([][]byte, len(rangeHashes))
	for i, h := range rangeHashes {
		if len(h) != HashSize {
			return nil, fmt.Errorf("audit: restore tree of size %d: range hash %d has %d bytes, want %d", size, i, len(h), HashSize)
		}
		hashes[i] = bytes.Clone(h)
	}
	r, err := rangeFactory.NewRange(0, size, hashes)
	if err != nil {
		return nil, fmt.Errorf("audit: restore tree of size %d: %w", size, err)
	}
	return &Tree{r: r}, nil
}

// Append adds a leaf hash (see [LeafHash]) at index Size() and returns every
// node the append completed: the leaf itself at level 0, then its new
// ancestors, lowest first. The store must persist them in the same
// transaction as the record and the new range hashes; they are all the nodes
// proofs will ever ask a [NodeReader] for.
func (t *Tree) Append(leafHash []byte) ([]Node, error) {
	if len(leafHash) != HashSize {
		return nil, fmt.Errorf("audit: append leaf %d: hash has %d bytes, want %d", t.r.End(), len(leafHash), HashSize)
	}
	var stored []Node
	visit := func(id compact.NodeID, hash []byte) {
		stored = append(stored, Node{Level: id.Level, Index: id.Index, Hash: bytes.Clone(hash)})
	}
	index := t.r.End()
	if err := t.r.Append(bytes.Clone(leafHash), visit); err != nil {
		return nil, fmt.Errorf("audit: append leaf %d: %w", index, err)
	}
	return stored, nil
}

// Size returns the number of leaves in the tree.
func (t *Tree) Size() uint64 {
	return t.r.End()
}

// Root returns the RFC 6962 root hash of the tree; for the empty tree it is
// the SHA-256 hash of the empty string.
func (t *Tree) Root() ([]byte, error) {
	if t.r.End() == 0 {
		return rfc6962.DefaultHasher.EmptyRoot(), nil
	}
	root, err := t.r.GetRootHash(nil)
	if err != nil {
		return nil, fmt.Errorf("audit: root of tree of size %d: %w", t.r.End(), err)
	}
	return root, nil
}

// RangeHashes returns the roots of the perfect subtrees that cover the tree,
// left to right: the state to persist alongside Size() and pass to [NewTree].
func (t *Tree) RangeHashes() [][]byte {
	hashes := make([][]byte, len(t.r.Hashes()))
	for i, h := range t.r.Hashes() {
		hashes[i] = bytes.Clone(h)
	}
	return hashes
}

// NodeReader reads stored tree nodes, as reported by [Tree.Append].
type NodeReader interface {
	// Nodes returns the hashes of the given nodes, in the same order. It
	// returns an error if any of them is not stored.
	Nodes(ctx context.Context, ids []compact.NodeID) ([][]byte, error)
}

// InclusionProof returns the RFC 6962 proof that the leaf at index is
// included in the tree of the given size, reading nodes from r. It requires
// index < size, and size no larger than the stored tree.
func InclusionProof(ctx context.Context, r NodeReader, index, size uint64) ([][]byte, error) {
	nodes, err := merkleproof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("audit: inclusion proof for leaf %d in tree of size %d: %w", index, size, err)
	}
	proof, err := fetchProof(ctx, r, nodes)
	if err != nil {
		return nil, fmt.Errorf("audit: inclusion proof for leaf %d in tree of size %d: %w", index, size, err)
	}
	return proof, nil
}

// ConsistencyProof returns the RFC 6962 proof that the tree of oldSize is a
// prefix of the tree of newSize, reading nodes from r. It requires
// oldSize <= newSize, and newSize no larger than the stored tree.
func ConsistencyProof(ctx context.Context, r NodeReader, oldSize, newSize uint64) ([][]byte, error) {
	nodes, err := merkleproof.Consistency(oldSize, newSize)
	if err != nil {
		return nil, fmt.Errorf("audit: consistency proof from size %d to %d: %w", oldSize, newSize, err)
	}
	proof, err := fetchProof(ctx, r, nodes)
	if err != nil {
		return nil, fmt.Errorf("audit: consistency proof from size %d to %d: %w", oldSize, newSize, err)
	}
	return proof, nil
}

// fetchProof reads the nodes of a proof and folds the ones that make up the
// ephemeral node, if any, into its hash. The nodes' IDs name only perfect
// subtrees, which Append has reported; ephemeral nodes are never read.
func fetchProof(ctx context.Context, r NodeReader, nodes merkleproof.Nodes) ([][]byte, error) {
	if len(nodes.IDs) == 0 {
		return [][]byte{}, nil
	}
	hashes, err := r.Nodes(ctx, nodes.IDs)
	if err != nil {
		return nil, fmt.Errorf("read nodes: %w", err)
	}
	if len(hashes) != len(nodes.IDs) {
		return nil, fmt.Errorf("read nodes: got %d hashes for %d nodes", len(hashes), len(nodes.IDs))
	}
	// Rehash rewrites the slice in place: work on a copy the reader does not own.
	work := make([][]byte, len(hashes))
	for i, h := range hashes {
		if len(h) != HashSize {
			id := nodes.IDs[i]
			return nil, fmt.Errorf("read nodes: node (%d, %d) has %d bytes, want %d", id.Level, id.Index, len(h), HashSize)
		}
		work[i] = h
	}
	proof, err := nodes.Rehash(work, rfc6962.DefaultHasher.HashChildren)
	if err != nil {
		return nil, fmt.Errorf("rehash: %w", err)
	}
	return proof, nil
}

// VerifyInclusion checks that proof shows the leaf with the given hash at
// index in the tree of the given size and root hash.
func VerifyInclusion(leafHash []byte, index, size uint64, proof [][]byte, root []byte) error {
	if err := merkleproof.VerifyInclusion(rfc6962.DefaultHasher, index, size, leafHash, proof, root); err != nil {
		return fmt.Errorf("%w: inclusion of leaf %d in tree of size %d: %w", ErrInvalidProof, index, size, err)
	}
	return nil
}

// VerifyConsistency checks that proof shows the tree of oldSize and oldRoot
// to be a prefix of the tree of newSize and newRoot. Unlike RFC 6962, which
// has nothing to prove from an empty tree, it also requires the root of a
// tree of size 0 to be the empty-tree root.
func VerifyConsistency(oldSize, newSize uint64, oldRoot, newRoot []byte, proof [][]byte) error {
	if oldSize == 0 && !bytes.Equal(oldRoot, rfc6962.DefaultHasher.EmptyRoot()) {
		return fmt.Errorf("%w: consistency from size 0 to %d: old root is not the empty-tree root", ErrInvalidProof, newSize)
	}
	if err := merkleproof.VerifyConsistency(rfc6962.DefaultHasher, oldSize, newSize, proof, oldRoot, newRoot); err != nil {
		return fmt.Errorf("%w: consistency from size %d to %d: %w", ErrInvalidProof, oldSize, newSize, err)
	}
	return nil
}
