package auditsvc

import (
	"bytes"
	"context"
	"testing"

	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/store"
)

// recordsLog serves records from memory and notes the limit of each
// LogRecords call.
type recordsLog struct {
	store.DecisionLog // only LogHead and LogRecords are called
	recs              [][]byte
	calls             []recordsCall
}

type recordsCall struct {
	start uint64
	limit int
}

func (l *recordsLog) LogHead(context.Context) (uint64, []byte, error) {
	return uint64(len(l.recs)), make([]byte, 32), nil
}

func (l *recordsLog) LogRecords(_ context.Context, start uint64, limit int) ([][]byte, error) {
	l.calls = append(l.calls, recordsCall{start, limit})
	return l.recs[start:min(start+uint64(limit), uint64(len(l.recs)))], nil
}

// TestReadRecordsLarge: readRecords asks the store for few records at a
// time once it has seen a large one, stops soon after readBytes, and
// reading on from where it stopped returns every record once.
func TestReadRecordsLarge(t *testing.T) {
	const big = 1 << 20
	l := &recordsLog{}
	for i := range 300 {
		n := 100
		if i >= 100 && i < 160 {
			n = big
		}
		l.recs = append(l.recs, bytes.Repeat([]byte{byte(i)}, n))
	}
	s := New(l, nil, "", "", nil)
	var got [][]byte
	for calls := 0; ; calls++ {
		if calls > 100 {
			t.Fatal("readRecords does not reach the end")
		}
		start := uint64(len(got))
		l.calls = nil
		recs, end, size, err := s.readRecords(t.Context(), start, audit.MaxPageSize)
		if err != nil || size != uint64(len(l.recs)) || len(recs) == 0 {
			t.Fatalf("readRecords(%d) = %d records, size %d, %v", start, len(recs), size, err)
		}
		read, sawBig := 0, false
		for _, c := range l.calls {
			if sawBig && c.limit > readBytes/big {
				t.Errorf("readRecords(%d) asked for %d records at %d after reading a record of %d bytes", start, c.limit, c.start, big)
			}
			for _, r := range l.recs[c.start : c.start+uint64(c.limit)] {
				sawBig = sawBig || len(r) == big
			}
		}
		for _, r := range recs {
			read += len(r)
		}
		// At worst, the last group is all large records.
		if read > readBytes+readGroup*big {
			t.Errorf("readRecords(%d) read %d records of %d bytes", start, len(recs), read)
		}
		got = append(got, recs...)
		if end != (len(got) == len(l.recs)) {
			t.Fatalf("readRecords(%d) returned %d records with end %v; the log has %d", start, len(recs), end, len(l.recs))
		}
		if end {
			break
		}
	}
	for i := range got {
		if !bytes.Equal(got[i], l.recs[i]) {
			t.Fatalf("record %d differs", i)
		}
	}
}
