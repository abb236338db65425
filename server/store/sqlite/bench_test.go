package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/veilmatch/veilmatch/server/store/storetest"
)

// bytesPerToken checkpoints the log into the database file and returns the
// size of the database and its log per stored token.
func bytesPerToken(tb testing.TB, s *Store, path string, tokens int) float64 {
	tb.Helper()
	if _, err := s.w.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		tb.Fatal(err)
	}
	var size int64
	for _, p := range []string{path, path + "-wal"} {
		fi, err := os.Stat(p)
		if err != nil {
			tb.Fatal(err)
		}
		size += fi.Size()
	}
	return float64(size) / float64(tokens)
}

// batchEntries is the batch size of the benchmarks, as a client would send.
const batchEntries = 1000

func TestBytesPerToken(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 100k tokens")
	}
	const (
		n      = 50_000
		budget = 100 // bytes on disk per token, the target at 10M tokens
	)
	s, path := openTemp(t)
	closeOnCleanup(t, s)
	rng := rand.NewChaCha8([32]byte{1})
	publish(t, s, "a", "l", "phone", storetest.RandomEntries(rng, n), batchEntries)
	publish(t, s, "b", "l", "phone", storetest.RandomEntries(rng, n), batchEntries)
	got := bytesPerToken(t, s, path, 2*n)
	t.Logf("%.1f bytes per token on disk at %d tokens", got, 2*n)
	if got > budget {
		t.Errorf("%.1f bytes per token, want at most %d", got, budget)
	}
}

func BenchmarkCommit(b *testing.B) {
	const n = 200_000 // tokens per list
	s, path := openTemp(b)
	closeOnCleanup(b, s)
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
	b.ReportMetric(bytesPerToken(b, s, path, n*lists), "B/token")
}

func BenchmarkOverlaps(b *testing.B) {
	const (
		n      = 200_000 // tokens per list
		shared = n / 10  // tokens the two lists have in common
	)
	s, path := openTemp(b)
	closeOnCleanup(b, s)
	rng := rand.NewChaCha8([32]byte{3})
	mine, theirs := storetest.RandomEntries(rng, n), storetest.RandomEntries(rng, n)
	for i := range shared {
		theirs[i].Token = mine[i*(n/shared)].Token
	}
	l := publish(b, s, "a", "mine", "phone", mine, batchEntries)
	publish(b, s, "b", "theirs", "phone", theirs, batchEntries)
	size := bytesPerToken(b, s, path, 2*n)
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
	closeOnCleanup(b, s)
	storetest.BenchCommitMatching(b, s, batchEntries)
}
