// Package bench is the measurement behind `veilmatch bench`: it runs the real
// key server and hub on loopback with mTLS in-process, publishes synthetic
// agencies' CSV files through the real client, and reports, from one run,
// what the pipeline achieves beside what the cryptography allows on this
// machine.
//
// Every figure is measured in the same run: the bare per-element cost of
// blind, evaluate and finalize (the physical limit of the pipeline), of
// veilmatch's VOPRF and of circl's beside it as the reference, the
// end-to-end publish rate, the key server's evaluations per second over
// gRPC+mTLS, the latency of an overlaps query beside an in-memory hash join
// of the same tokens, the hub's bytes on disk per token, and resident
// memory while the hub grows. Targets are reported, never asserted: a
// benchmark that fails on a slow machine measures the machine.
//
// The hub's store is SQLite. Given a PostgreSQL URL (Options.Store), the
// run measures the phases that depend on the store — the background
// insert, publish, overlaps and the store's size — again with the store on
// PostgreSQL, in a schema of its own that it drops afterwards, and reports
// them beside SQLite's.
//
// The data is synthetic: phone numbers +1415555xxxx and onwards, unique per
// row except for the shared fraction, and, for a large hub, random tokens
// written straight into the store. Nothing here is a real identifier.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/veilmatch/veilmatch/crypto/oprf"
	"github.com/veilmatch/veilmatch/server/keyserver"
)

// Options describe one benchmark run. Start from DefaultOptions or
// LargeOptions and override fields.
type Options struct {
	// Agencies is the number of synthetic agencies publishing concurrently,
	// each one list of Entries phone numbers. They are mapped round-robin
	// onto the development police units (police-us, police-th, police-gb),
	// each with its own list name.
	Agencies int
	// Entries is the number of rows in each agency's list.
	Entries int
	// Query is the number of rows of the query list, published by police-gb
	// in the same publish phase and then joined by Overlaps against the hub.
	Query int
	// Overlap is the fraction of each list (0 to 1) drawn from a pool shared
	// by all lists; the rest of every list is unique.
	Overlap float64
	// Background is the number of random tokens written directly into the
	// hub's store, in several synthetic lists, before the hub starts: a
	// large hub without pushing every token through the OPRF.
	Background int
	// Large labels the run as the large profile in the report.
	Large bool
	// Store is the URL of a PostgreSQL database (postgres://…). If set,
	// the phases that depend on the hub's store (the background insert,
	// publish, overlaps and the store's size) run again with the hub's
	// store on PostgreSQL, in a schema the run creates in that database
	// and drops afterwards, and are reported beside SQLite's. Empty means
	// SQLite only.
	Store string
	// Dir is the working directory (key, quota journal, hub data, agency
	// state). It must be empty or absent, and is kept. Empty means a
	// temporary directory, removed afterwards.
	Dir string
	// Batch is the OPRF and upload batch size.
	Batch int
	// CryptoTime is how long each bare-crypto measurement runs (at least
	// one batch).
	CryptoTime time.Duration
	// KeyServerTime is how long the key-server throughput test runs.
	KeyServerTime time.Duration
	// Images is the number of PDQ hashes the images phase publishes; it
	// checks near copies of up to 10 of them and as many unrelated hashes.
	Images int
	// Repetitions is the number of timed overlaps queries (and in-memory
	// joins); one untimed warm-up precedes each series.
	Repetitions int
	// Logger is the servers' logger. Nil means info-level text formatted
	// and discarded, so logging costs what it costs in production without
	// flooding the terminal.
	Logger *slog.Logger
}

// DefaultOptions is the default profile: it finishes in under two minutes on
// two cores.
func DefaultOptions() Options {
	return Options{
		Agencies: 4, Entries: 20_000, Query: 50_000, Overlap: 0.1, Background: 0,
		Batch: 1024, CryptoTime: time.Second, KeyServerTime: 3 * time.Second, Repetitions: 50, Images: 40,
	}
}

// LargeOptions is the large profile: 1M identifiers through the full
// pipeline (nine agencies of 100k and a 100k query list) against a hub of
// 10M background tokens.
func LargeOptions() Options {
	return Options{
		Agencies: 9, Entries: 100_000, Query: 100_000, Overlap: 0.1, Background: 10_000_000, Large: true,
		Batch: 1024, CryptoTime: 2 * time.Second, KeyServerTime: 5 * time.Second, Repetitions: 50, Images: 200,
	}
}

// maxNumbers is how many distinct synthetic phone numbers exist: see number.
const maxNumbers = 10_000_000 - firstNumber

// Validate names the first bad option.
func (o Options) Validate() error {
	switch {
	case o.Agencies < 1:
		return fmt.Errorf("bench: agencies must be at least 1, got %d", o.Agencies)
	case o.Entries < 1:
		return fmt.Errorf("bench: entries must be at least 1, got %d", o.Entries)
	case o.Query < 1:
		return fmt.Errorf("bench: query must be at least 1, got %d", o.Query)
	case !(o.Overlap >= 0 && o.Overlap <= 1):
		return fmt.Errorf("bench: overlap must be a fraction between 0 and 1, got %v", o.Overlap)
	case o.Background < 0:
		return fmt.Errorf("bench: background must not be negative, got %d", o.Background)
	case o.Batch < 1 || o.Batch > keyserver.DefaultMaxBatch:
		return fmt.Errorf("bench: batch must be between 1 and %d, got %d", keyserver.DefaultMaxBatch, o.Batch)
	case o.CryptoTime < 0 || o.KeyServerTime < 0:
		return errors.New("bench: measurement times must not be negative")
	case o.Images < 1:
		return fmt.Errorf("bench: images must be at least 1, got %d", o.Images)
	case o.Repetitions < 1:
		return fmt.Errorf("bench: repetitions must be at least 1, got %d", o.Repetitions)
	}
	if err := checkStoreURL(o.Store); err != nil {
		return err
	}
	if n := newPlan(o).distinct(); n > maxNumbers {
		return fmt.Errorf("bench: %d distinct phone numbers needed, the synthetic range holds %d; lower --agencies, --entries or --query", n, maxNumbers)
	}
	return nil
}

// Run runs the benchmark and returns its report. Progress lines for long
// phases go to progress (nil discards them).
func Run(ctx context.Context, o Options, progress io.Writer) (Report, error) {
	if err := o.Validate(); err != nil {
		return Report{}, err
	}
	if progress == nil {
		progress = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	began := time.Now()
	if o.Store != "" {
		if err := checkStore(ctx, o.Store); err != nil {
			return Report{}, fmt.Errorf("bench: postgres: %w", err)
		}
	}
	dir, cleanup, err := workDir(o.Dir)
	if err != nil {
		return Report{}, err
	}
	defer cleanup()

	r := Report{Profile: newProfile(o)}
	p := &progressWriter{w: progress, start: began}

	key, err := oprf.GenerateKey(oprf.NewKeyID(time.Now()))
	if err != nil {
		return r, err
	}

	p.printf("bare crypto: blind, evaluate and finalize, batch %d, on 1 core and on %d", o.Batch, r.Profile.Cores)
	if r.Crypto, err = measureCrypto(ctx, key, o); err != nil {
		return r, fmt.Errorf("bench: bare crypto: %w", err)
	}
	if r.Crypto.NormalizeMicros, err = measureNormalize(o); err != nil {
		return r, fmt.Errorf("bench: normalize: %w", err)
	}

	bgTime, err := runSQLite(ctx, dir, key, o, p, &r)
	if err != nil {
		return r, err
	}
	if o.Store != "" {
		if r.Postgres, err = runPostgres(ctx, dir, key, o, p); err != nil {
			return r, fmt.Errorf("bench: postgres: %w", err)
		}
		if b := r.Postgres.Background; b != nil {
			b.SQLiteSeconds = bgTime.Seconds()
		}
	}
	r.Seconds = time.Since(began).Seconds()
	r.evaluate()
	return r, nil
}

// runSQLite runs the phases that need the servers, with the hub's store in
// SQLite, and fills in their figures. It returns the time the background
// insert took.
func runSQLite(ctx context.Context, dir string, key *oprf.PrivateKey, o Options, p *progressWriter, r *Report) (time.Duration, error) {
	plan := newPlan(o)
	e, err := startServers(ctx, dir, sqliteBackend{}, key, o, p)
	if err != nil {
		return 0, fmt.Errorf("bench: start servers: %w", err)
	}
	defer e.stop()
	sampler := startSampler(e.hubTokens)
	defer sampler.stop()

	p.printf("key server: %d concurrent callers, batch %d, for %s", callers(), o.Batch, o.KeyServerTime)
	if r.KeyServer, err = measureKeyServer(ctx, e, key, o); err != nil {
		return 0, fmt.Errorf("bench: key server throughput: %w", err)
	}

	sampler.setPhase(phasePublish)
	if r.Publish, err = runPublish(ctx, e, plan, o, p); err != nil {
		return 0, fmt.Errorf("bench: publish: %w", err)
	}
	sampler.setPhase(phaseIdle)

	p.printf("threshold: publish agency lists through one key server, then 2-of-3 and 3-of-5 share servers")
	if r.Threshold, err = measureThreshold(ctx, e, key, plan, o, p); err != nil {
		return 0, fmt.Errorf("bench: threshold: %w", err)
	}

	sampler.setPhase(phaseOverlaps)
	if r.Overlaps, err = measureOverlaps(ctx, e, plan, o, p); err != nil {
		return 0, fmt.Errorf("bench: overlaps: %w", err)
	}
	sampler.setPhase(phaseIdle)
	r.Memory = sampler.report()
	// The peak is read before the in-memory reference join builds its map,
	// which would otherwise dominate it.
	r.Memory.PeakRSSMiB = mib(procStatus("VmHWM"))
	if b := e.bgRSS; b[0] > 0 && b[1] > 0 {
		r.Memory.Background = PhaseRSS{Samples: 2, StartMiB: mib(b[0]), MaxMiB: mib(max(b[0], b[1])), EndMiB: mib(b[1]), HubTokensEnd: int64(o.Background)}
	}

	if err := memoryJoin(ctx, e, plan, o, p, &r.Overlaps); err != nil {
		return 0, fmt.Errorf("bench: in-memory join: %w", err)
	}
	if r.Images, err = measureImages(ctx, e, o, p); err != nil {
		return 0, fmt.Errorf("bench: images: %w", err)
	}

	if err := e.stop(); err != nil {
		return 0, fmt.Errorf("bench: stop servers: %w", err)
	}
	if r.Storage, err = measureDisk(ctx, e, o); err != nil {
		return 0, fmt.Errorf("bench: hub size on disk: %w", err)
	}
	r.Images.HubBytesPerImage = r.Storage.BytesPerToken * float64(r.Images.TokensPerImage)
	return e.bgTime, nil
}

// workDir returns the run's directory and what removes it afterwards.
func workDir(dir string) (string, func(), error) {
	if dir == "" {
		tmp, err := os.MkdirTemp("", "veilmatch-bench-")
		if err != nil {
			return "", nil, fmt.Errorf("bench: %w", err)
		}
		return tmp, func() { os.RemoveAll(tmp) }, nil
	}
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", nil, fmt.Errorf("bench: %w", err)
		}
	case err != nil:
		return "", nil, fmt.Errorf("bench: %w", err)
	case len(ents) > 0:
		return "", nil, fmt.Errorf("bench: directory %s is not empty; give a new or empty directory", dir)
	}
	return dir, func() {}, nil
}

// progressWriter prefixes progress lines with the time since the start,
// and with prefix. It is safe for concurrent use: phases report from
// background tickers.
type progressWriter struct {
	mu     sync.Mutex
	w      io.Writer
	start  time.Time
	prefix string
}

// sub returns a writer to the same output whose lines begin with prefix
// and ": ". Lines of the two writers may interleave.
func (p *progressWriter) sub(prefix string) *progressWriter {
	return &progressWriter{w: p.w, start: p.start, prefix: p.prefix + prefix + ": "}
}

func (p *progressWriter) printf(format string, args ...any) {
	line := fmt.Sprintf("bench %5.1fs: %s%s\n", time.Since(p.start).Seconds(), p.prefix, fmt.Sprintf(format, args...))
	p.mu.Lock()
	defer p.mu.Unlock()
	io.WriteString(p.w, line)
}

// cores is the parallelism the run measures with.
func cores() int { return runtime.GOMAXPROCS(0) }
