package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/veilmatch/veilmatch/server/store"
)

// The helpers below serve the stores' own tests and benchmarks.

// RandomEntries returns n entries with random tokens and refs 0 … n-1.
func RandomEntries(rng *rand.ChaCha8, n int) []store.Entry {
	es := make([]store.Entry, n)
	buf := make([]byte, n*store.TokenSize)
	rng.Read(buf)
	for i := range es {
		es[i] = store.Entry{Token: buf[i*store.TokenSize : (i+1)*store.TokenSize : (i+1)*store.TokenSize], Ref: uint64(i)}
	}
	return es
}

// Stage begins upload uploadID of the owner's list with metadata m and
// puts es in batches of batch entries; it returns the number of batches.
func Stage(tb testing.TB, s store.Store, owner, name, uploadID string, m store.List, es []store.Entry, batch int) uint64 {
	tb.Helper()
	ctx := context.Background()
	if err := s.BeginUpload(ctx, store.Upload{Owner: owner, List: name, ID: uploadID, Meta: m}); err != nil {
		tb.Fatal(err)
	}
	var seq uint64
	for ; len(es) > 0; seq++ {
		n := min(batch, len(es))
		if _, err := s.PutBatch(ctx, owner, name, uploadID, seq, es[:n]); err != nil {
			tb.Fatal(err)
		}
		es = es[n:]
	}
	return seq
}

// uploads numbers the uploads of Publish.
var uploads atomic.Int64

// Publish uploads es in batches of batch entries as a new version of the
// owner's list with metadata m, and commits it.
func Publish(tb testing.TB, s store.Store, owner, name string, m store.List, es []store.Entry, batch int) store.List {
	tb.Helper()
	id := fmt.Sprint("u", uploads.Add(1))
	seq := Stage(tb, s, owner, name, id, m, es, batch)
	l, err := s.CommitUpload(context.Background(), owner, name, id, seq, uint64(len(es)), time.Now(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// BenchCommitMatching times CommitUpload alone: a staged list of 200,000
// random tokens, a tenth of which another owner's list holds, is
// committed, and its standing matches found, in batches of batch entries.
func BenchCommitMatching(b *testing.B, s store.Store, batch int) {
	const (
		n      = 200_000 // tokens per list
		shared = n / 10  // tokens in common with theirs
	)
	meta := store.List{Kind: "phone", KeyID: "k1"}
	rng := rand.NewChaCha8([32]byte{5})
	theirs := RandomEntries(rng, n)
	Publish(b, s, "b", "theirs", meta, theirs, batch)
	ctx := context.Background()
	lists := 0
	for b.Loop() {
		b.StopTimer()
		mine := RandomEntries(rng, n)
		for i := range shared {
			mine[i*(n/shared)].Token = theirs[i].Token
		}
		name := fmt.Sprint("l", lists)
		batches := Stage(b, s, "a", name, "u", meta, mine, batch)
		b.StartTimer()
		if _, err := s.CommitUpload(ctx, "a", name, "u", batches, n, time.Now(), nil); err != nil {
			b.Fatal(err)
		}
		lists++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/token")
}
