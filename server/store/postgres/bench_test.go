package postgres

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/veilmatch/veilmatch/server/store/storetest"
)

// bytesPerToken returns the size on disk of the tokens table with its
// indexes (all forks) per stored token, and logs each relation's share.
func bytesPerToken(tb testing.TB, s *Store) float64 {
	tb.Helper()
	n := query(tb, s, `SELECT count(*) FROM tokens`)
	for _, rel := range []string{"tokens", "tokens_list", "tokens_prefix"} {
		size := query(tb, s, `SELECT pg_relation_size($1::regclass)`, rel)
		tb.Logf("%-13s %6.1f bytes per token", rel, float64(size)/float64(n))
	}
	return float64(query(tb, s, `SELECT pg_total_relation_size('tokens')`)) / float64(n)
}

// batchEntries is the batch size of the benchmarks, as a client would send.
const batchEntries = 1000

// TestBytesPerToken measures the size on disk of 1M tokens in two lists and
// fails if the layout grows beyond what it was measured at. The target of
// 100 bytes per token is out of reach with one row per token: see the
// package documentation.
func TestBytesPerToken(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 1M tokens")
	}
	const (
		n      = 500_000
		budget = 115 // bytes on disk per token: the layout's measure, with some room
	)
	s, _ := openTemp(t)
	rng := rand.NewChaCha8([32]byte{1})
	publish(t, s, "a", "l", "phone", storetest.RandomEntries(rng, n), batchEntries)
	publish(t, s, "b", "l", "phone", storetest.RandomEntries(rng, n), batchEntries)
	got := bytesPerToken(t, s)
	t.Logf("%.1f bytes per token on disk at %d tokens (table and indexes)", got, 2*n)
	if got > budget {
		t.Errorf("%.1f bytes per token, want at most %d", got, budget)
	}
}

func BenchmarkCommit(b *testing.B) {
	const n = 200_000 // tokens per list
	s, _ := openTemp(b)
	rng := rand.NewChaCha8([32]byte{2})
	lists := 0
	for b.Loop() {
		b.StopTimer()
		es := storetest.RandomEntries(rng, n)
		b.StartTimer()
		publish(b, s, "a", fmt.Sprint("l", lists), "phone", es, batchEntries)
		lists++
	}
	b.ReportMetric(float64(n*lists)/b.Elapsed().Seconds(), "tokens/s")
	b.ReportMetric(bytesPerToken(b, s), "B/token")
}

func BenchmarkOverlaps(b *testing.B) {
	const (
		n      = 200_000 // tokens per list
		shared = n / 10  // tokens the two lists have in common
	)
	s, _ := openTemp(b)
	rng := rand.NewChaCha8([32]byte{3})
	mine, theirs := storetest.RandomEntries(rng, n), storetest.RandomEntries(rng, n)
	for i := range shared {
		theirs[i].Token = mine[i*(n/shared)].Token
	}
	l := publish(b, s, "a", "mine", "phone", mine, batchEntries)
	publish(b, s, "b", "theirs", "phone", theirs, batchEntries)
	size := bytesPerToken(b, s)
	ctx := context.Background()
	for b.Loop() {
		pairs := 0
		if err := s.Overlaps(ctx, l.ID, func(uint64, int64) error {
			pairs++
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		if pairs != shared {
			b.Fatalf("%d pairs, want %d", pairs, shared)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/token")
	b.ReportMetric(size, "B/token")
}

// BenchmarkCommitMatching times CommitUpload alone, finding the standing
// matches of a new list (see storetest.BenchCommitMatching).
func BenchmarkCommitMatching(b *testing.B) {
	s, _ := openTemp(b)
	storetest.BenchCommitMatching(b, s, batchEntries)
}
