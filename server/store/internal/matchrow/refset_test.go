package matchrow

import (
	"errors"
	"math"
	"slices"
	"testing"
)

// decodeAll returns the refs of a ref set.
func decodeAll(set []byte) ([]uint64, error) {
	var refs []uint64
	err := DecodeRefSet(set, func(ref uint64) error {
		refs = append(refs, ref)
		return nil
	})
	return refs, err
}

// TestRefSet: ascending distinct refs, the extremes of uint64 included,
// come back as they went in; refs of neighbouring entries take a byte
// each.
func TestRefSet(t *testing.T) {
	tests := []struct {
		name string
		refs []uint64
		size int // bytes, unless 0
	}{
		{"empty", nil, 0},
		{"zero", []uint64{0}, 1},
		{"neighbours", []uint64{0, 1, 2, 3, 4}, 5},
		{"spaced", []uint64{100, 229, 230, 100_000}, 1 + 2 + 1 + 3},
		{"extremes", []uint64{0, math.MaxInt64, 1 << 63, math.MaxUint64 - 1, math.MaxUint64}, 0},
		{"max alone", []uint64{math.MaxUint64}, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := AppendRefSet([]byte("prefix"), tt.refs)[len("prefix"):]
			if tt.size != 0 && len(set) != tt.size || tt.refs == nil && len(set) != 0 {
				t.Errorf("set of %v is %d bytes, want %d", tt.refs, len(set), tt.size)
			}
			got, err := decodeAll(set)
			if err != nil || !slices.Equal(got, tt.refs) {
				t.Errorf("DecodeRefSet(%x) = %v, %v; want %v", set, got, err, tt.refs)
			}
		})
	}
}

// TestDecodeRefSetCorrupt: a truncated or overflowing uvarint and a ref
// beyond 2^64-1 fail with errRefSet, after the refs before the fault.
func TestDecodeRefSetCorrupt(t *testing.T) {
	maxSet := AppendRefSet(nil, []uint64{math.MaxUint64})
	tests := []struct {
		name   string
		set    []byte
		before []uint64
	}{
		{"truncated", []byte{0x05, 0x80}, []uint64{5}},
		{"truncated alone", []byte{0xff, 0xff}, nil},
		{"overflowing uvarint", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, nil},
		{"past the maximum", append(slices.Clone(maxSet), 0x00), []uint64{math.MaxUint64}},
		{"wraps", append(AppendRefSet(nil, []uint64{math.MaxUint64 - 2}), 0x02), []uint64{math.MaxUint64 - 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeAll(tt.set)
			if !errors.Is(err, errRefSet) || !slices.Equal(got, tt.before) {
				t.Errorf("DecodeRefSet(%x) = %v, %v; want %v, then %v", tt.set, got, err, tt.before, errRefSet)
			}
		})
	}
}

// TestDecodeRefSetStops: an error from fn stops the decoding and is
// returned as it is.
func TestDecodeRefSetStops(t *testing.T) {
	stop := errors.New("stop")
	calls := 0
	err := DecodeRefSet(AppendRefSet(nil, []uint64{1, 2, 3}), func(uint64) error {
		calls++
		return stop
	})
	if err != stop || calls != 1 {
		t.Errorf("DecodeRefSet = %v after %d calls, want %v after 1", err, calls, stop)
	}
}

// FuzzDecodeRefSet: no input panics; what decodes is ascending and
// distinct, and its encoding decodes to the same refs in no more bytes.
func FuzzDecodeRefSet(f *testing.F) {
	f.Add([]byte{})
	f.Add(AppendRefSet(nil, []uint64{0, 1, 2, 300, 1 << 40}))
	f.Add(AppendRefSet(nil, []uint64{math.MaxUint64 - 1, math.MaxUint64}))
	f.Add([]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})
	f.Fuzz(func(t *testing.T, set []byte) {
		refs, err := decodeAll(set)
		if err != nil {
			if !errors.Is(err, errRefSet) {
				t.Fatalf("DecodeRefSet(%x): %v, not a corrupt set", set, err)
			}
			return
		}
		for i := 1; i < len(refs); i++ {
			if refs[i] <= refs[i-1] {
				t.Fatalf("DecodeRefSet(%x): ref %d after %d", set, refs[i], refs[i-1])
			}
		}
		again := AppendRefSet(nil, refs)
		if len(again) > len(set) {
			t.Fatalf("%v encodes to %d bytes, decoded from %d", refs, len(again), len(set))
		}
		if got, err := decodeAll(again); err != nil || !slices.Equal(got, refs) {
			t.Fatalf("DecodeRefSet(AppendRefSet(%v)) = %v, %v", refs, got, err)
		}
	})
}
