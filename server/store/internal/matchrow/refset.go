package matchrow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// A ref set is the packed form of distinct entry refs, as match_sets.refs
// holds them: the refs in ascending order (as uint64), each a uvarint —
// the first as it is, every other as its distance from the one before,
// less one (refs are distinct, so a distance is at least one). Refs of
// neighbouring entries take a byte each.

// AppendRefSet appends the ref set of refs, which must be ascending and
// distinct, to dst and returns the extended buffer.
func AppendRefSet(dst []byte, refs []uint64) []byte {
	for i, r := range refs {
		if i == 0 {
			dst = binary.AppendUvarint(dst, r)
			continue
		}
		dst = binary.AppendUvarint(dst, r-refs[i-1]-1)
	}
	return dst
}

// errRefSet is the cause of a failed DecodeRefSet, which the caller
// wraps with the list versions of the set.
var errRefSet = errors.New("matchrow: corrupt ref set")

// DecodeRefSet calls fn for each ref of a ref set, in ascending order. An
// error from fn stops it and is returned. A set that does not encode
// ascending distinct uint64s (a truncated or overflowing uvarint, a ref
// beyond 2^64-1) fails with an error wrapping errRefSet once fn had the
// refs before the fault; it never panics.
func DecodeRefSet(set []byte, fn func(ref uint64) error) error {
	var ref uint64
	for i := 0; i < len(set); {
		d, n := uint64(set[i]), 1
		if d >= 0x80 {
			if d, n = binary.Uvarint(set[i:]); n <= 0 {
				return fmt.Errorf("%w: bad uvarint at byte %d of %d", errRefSet, i, len(set))
			}
		}
		switch {
		case i == 0:
			ref = d
		case d >= math.MaxUint64-ref:
			return fmt.Errorf("%w: ref beyond 2^64-1 at byte %d of %d", errRefSet, i, len(set))
		default:
			ref += d + 1
		}
		i += n
		if err := fn(ref); err != nil {
			return err
		}
	}
	return nil
}
