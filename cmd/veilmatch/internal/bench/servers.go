package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/veilmatch/veilmatch/certs"
	"github.com/veilmatch/veilmatch/client/normalize"
	"github.com/veilmatch/veilmatch/crypto/mtls"
	"github.com/veilmatch/veilmatch/crypto/oprf"
	"github.com/veilmatch/veilmatch/internal/devstack"
	"github.com/veilmatch/veilmatch/policy"
	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/hub"
	"github.com/veilmatch/veilmatch/server/quota"
	"github.com/veilmatch/veilmatch/server/store"
	"github.com/veilmatch/veilmatch/server/store/sqlite"
)

// benchQuota is explicit and generous: the benchmark measures throughput,
// not the quota. The daily cap fits a 32-bit int.
var benchQuota = quota.Limits{Rate: 1e9, Burst: 1 << 20, Daily: math.MaxInt32}

// servers is a running key server and hub, and what the benchmark needs to
// reach and observe them.
type servers struct {
	dir             string // the run's directory
	hubDir          string
	backend         backend
	ksAddr, hubAddr string
	store           *captureStore
	bg              background
	policy          *policy.Engine
	tls             map[string]*tls.Config // client configurations by party
	// bgRSS is resident memory before and after the background insert,
	// and bgTime the time it took.
	bgRSS  [2]int64
	bgTime time.Duration

	cancel   context.CancelFunc
	g        *errgroup.Group
	stopOnce sync.Once
	stopErr  error
}

// backend is where the hub keeps its store.
type backend interface {
	// open opens the hub's store; hubDir is the hub's data directory.
	open(ctx context.Context, hubDir string) (store.Store, error)
	// size returns the bytes the store takes at rest, once the hub has
	// closed it, and in how many files (0 where it is not in files).
	size(ctx context.Context, hubDir string) (bytes int64, files int, err error)
}

// sqliteBackend keeps the store in SQLite in the hub's data directory, as
// a hub does by default.
type sqliteBackend struct{}

func (sqliteBackend) open(ctx context.Context, hubDir string) (store.Store, error) {
	return sqlite.Open(ctx, filepath.Join(hubDir, hub.DBFile))
}

// size sums the sizes of the files in the hub's data directory: after the
// hub has closed its database, which checkpoints the write-ahead log into
// it.
func (sqliteBackend) size(_ context.Context, hubDir string) (bytes int64, files int, err error) {
	err = filepath.WalkDir(hubDir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		bytes += fi.Size()
		files++
		return nil
	})
	return bytes, files, err
}

// startServers writes the background tokens into the hub's store, opened
// from b, and starts the development stack in dir on 127.0.0.1:0 with it.
func startServers(ctx context.Context, dir string, b backend, key *oprf.PrivateKey, o Options, p *progressWriter) (*servers, error) {
	e := &servers{dir: dir, hubDir: filepath.Join(dir, "hub"), backend: b, bg: newBackground(o.Background), tls: map[string]*tls.Config{}}
	for _, d := range []string{e.hubDir, filepath.Join(dir, "capture")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	var err error
	for _, u := range units {
		if e.tls[u], err = mtls.ClientConfigFS(certs.DevFS, mtls.DevFiles(".", u), "localhost"); err != nil {
			return nil, err
		}
	}
	if e.policy, err = policy.New(ctx, policy.Options{Logger: o.Logger}); err != nil {
		return nil, err
	}
	for _, u := range units {
		if _, ok := e.policy.Agency(u); !ok {
			return nil, fmt.Errorf("%s is not in the policy's agency registry", u)
		}
	}

	st, err := b.open(ctx, e.hubDir)
	if err != nil {
		return nil, err
	}
	if err := e.insertBackground(ctx, st, key.KeyID(), p); err != nil {
		st.Close()
		return nil, err
	}
	e.store = &captureStore{Store: st, dir: filepath.Join(dir, "capture"), files: map[string]*captureFile{}}

	stack, err := devstack.New(ctx, devstack.Config{Dir: dir, Key: key, Store: e.store, Policy: e.policy, Quota: benchQuota, Logger: o.Logger})
	if err != nil {
		st.Close()
		return nil, err
	}
	e.ksAddr, e.hubAddr = stack.KeyServer.Addr().String(), stack.Hub.Addr().String()
	sctx, cancel := context.WithCancel(ctx)
	e.cancel = cancel
	e.g = &errgroup.Group{}
	e.g.Go(func() error { return stack.Serve(sctx) })
	return e, nil
}

// stop shuts both servers down (the hub closes its store) and closes the
// capture files. It is safe to call more than once.
func (e *servers) stop() error {
	e.stopOnce.Do(func() {
		e.cancel()
		e.stopErr = errors.Join(e.g.Wait(), e.store.closeFiles())
	})
	return e.stopErr
}

// hubTokens is the number of tokens written to the hub's store so far.
func (e *servers) hubTokens() int64 {
	n := int64(0)
	for _, s := range e.bg.sizes {
		n += int64(s)
	}
	return n + e.store.tokens.Load()
}

// backgroundBatch is the batch size of the direct background inserts.
const backgroundBatch = 8192

// insertBackground writes the background lists into st as committed
// uploads, as the hub would after a publish, without an audit record.
func (e *servers) insertBackground(ctx context.Context, st store.Store, keyID string, p *progressWriter) error {
	total := 0
	for _, s := range e.bg.sizes {
		total += s
	}
	if total == 0 {
		return nil
	}
	p.printf("background: inserting %s random tokens in %d lists directly into the store", count(total), len(e.bg.sizes))
	e.bgRSS[0] = procStatus("VmRSS")
	start := time.Now()
	defer func() { e.bgRSS[1], e.bgTime = procStatus("VmRSS"), time.Since(start) }()
	done, last := 0, start
	for i, size := range e.bg.sizes {
		owner, name := e.bg.owner(i), e.bg.name(i)
		a, _ := e.policy.Agency(owner)
		up := store.Upload{Owner: owner, List: name, ID: "bench-background", Meta: store.List{
			Kind: string(normalize.Phone), KeyID: keyID, Category: "suspect", Jurisdiction: a.Jurisdiction,
		}}
		if err := st.BeginUpload(ctx, up); err != nil {
			return err
		}
		seq := uint64(0)
		err := e.bg.tokens(i, backgroundBatch, func(es []store.Entry) error {
			if _, err := st.PutBatch(ctx, owner, name, up.ID, seq, es); err != nil {
				return err
			}
			seq++
			done += len(es)
			if time.Since(last) >= 2*time.Second {
				last = time.Now()
				p.printf("background: %d/%d tokens", done, total)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if _, err := st.CommitUpload(ctx, owner, name, up.ID, seq, uint64(size), time.Now(), nil); err != nil {
			return err
		}
	}
	p.printf("background: %d/%d tokens committed in %.1fs", done, total, time.Since(start).Seconds())
	return nil
}

// captureStore is the hub's real store, SQLite or PostgreSQL, with a tap:
// it counts the tokens written, times the writes, and keeps a copy of
// every list's tokens in a file so that the in-memory reference join can be
// built from exactly the tokens the hub holds. The tap writes sequentially
// to buffered files and keeps nothing in memory.
type captureStore struct {
	store.Store
	dir    string
	tokens atomic.Int64

	// busy is the wall time during which at least one PutBatch or
	// CommitUpload was in flight (SQLite serializes them on one
	// connection, PostgreSQL runs them on several); active counts the
	// calls in flight since since.
	busyMu sync.Mutex
	busy   time.Duration
	active int
	since  time.Time
	// commits is the time spent in CommitUpload, which finds the new
	// version's standing matches.
	commits time.Duration

	mu    sync.Mutex
	files map[string]*captureFile
}

type captureFile struct {
	f *os.File
	w *bufio.Writer
}

func captureName(owner, list string) string { return owner + "." + list + ".tokens" }

// PutBatch implements store.Store.
func (c *captureStore) PutBatch(ctx context.Context, owner, list, uploadID string, seq uint64, entries []store.Entry) (bool, error) {
	c.begin()
	dup, err := c.Store.PutBatch(ctx, owner, list, uploadID, seq, entries)
	c.end()
	if err != nil || dup {
		return dup, err
	}
	c.tokens.Add(int64(len(entries)))
	if err := c.capture(owner, list, entries); err != nil {
		return false, fmt.Errorf("bench capture: %w", err)
	}
	return false, nil
}

// CommitUpload implements store.Store.
func (c *captureStore) CommitUpload(ctx context.Context, owner, list, uploadID string, totalBatches, totalEntries uint64, at time.Time, rec *audit.Record) (store.List, error) {
	c.begin()
	start := time.Now()
	l, err := c.Store.CommitUpload(ctx, owner, list, uploadID, totalBatches, totalEntries, at, rec)
	took := time.Since(start)
	c.end()
	c.busyMu.Lock()
	c.commits += took
	c.busyMu.Unlock()
	return l, err
}

// commitTime returns the time spent in CommitUpload so far.
func (c *captureStore) commitTime() time.Duration {
	c.busyMu.Lock()
	defer c.busyMu.Unlock()
	return c.commits
}

func (c *captureStore) begin() {
	c.busyMu.Lock()
	defer c.busyMu.Unlock()
	if c.active == 0 {
		c.since = time.Now()
	}
	c.active++
}

func (c *captureStore) end() {
	c.busyMu.Lock()
	defer c.busyMu.Unlock()
	c.active--
	if c.active == 0 {
		c.busy += time.Since(c.since)
	}
}

// busyTime returns the wall time the store has had writes in flight.
func (c *captureStore) busyTime() time.Duration {
	c.busyMu.Lock()
	defer c.busyMu.Unlock()
	if c.active > 0 {
		return c.busy + time.Since(c.since)
	}
	return c.busy
}

func (c *captureStore) capture(owner, list string, entries []store.Entry) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	name := captureName(owner, list)
	cf := c.files[name]
	if cf == nil {
		f, err := os.OpenFile(filepath.Join(c.dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		cf = &captureFile{f: f, w: bufio.NewWriterSize(f, 1<<16)}
		c.files[name] = cf
	}
	for _, e := range entries {
		if _, err := cf.w.Write(e.Token); err != nil {
			return err
		}
	}
	return nil
}

// flush writes the buffered captured tokens to their files.
func (c *captureStore) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, cf := range c.files {
		errs = append(errs, cf.w.Flush())
	}
	return errors.Join(errs...)
}

func (c *captureStore) closeFiles() error {
	err := c.flush()
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, cf := range c.files {
		err = errors.Join(err, cf.f.Close())
		delete(c.files, name)
	}
	return err
}

// capturedTokens calls fn with chunks of the tokens captured for a list,
// concatenated (store.TokenSize bytes each).
func (c *captureStore) capturedTokens(owner, list string, fn func([]byte) error) error {
	f, err := os.Open(filepath.Join(c.dir, captureName(owner, list)))
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 4096*store.TokenSize)
	r := bufio.NewReaderSize(f, len(buf))
	for {
		n, err := io.ReadFull(r, buf)
		if n%store.TokenSize != 0 {
			return fmt.Errorf("captured tokens of %s/%s: torn file", owner, list)
		}
		if n > 0 {
			if err := fn(buf[:n]); err != nil {
				return err
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return nil
		default:
			return err
		}
	}
}
