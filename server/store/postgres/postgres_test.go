package postgres

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/veilmatch/veilmatch/internal/pgtest"
	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/store"
	"github.com/veilmatch/veilmatch/server/store/internal/matchrow"
	"github.com/veilmatch/veilmatch/server/store/storetest"
)

// serverDSN returns the test server's DSN (see pgtest.Server).
func serverDSN(t testing.TB) string {
	t.Helper()
	return pgtest.Server(t, "each test creates and drops a database of its own")
}

// newDatabase creates an empty database on the test server, dropped when
// the test ends, and returns its DSN.
func newDatabase(t testing.TB) string {
	t.Helper()
	server := serverDSN(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatalf("%s: the PostgreSQL server is unreachable: %v", pgtest.Env, err)
	}
	defer conn.Close(ctx)
	name := "vm_test_" + strings.ToLower(rand.Text()[:16])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, server)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return databaseDSN(t, server, name)
}

// databaseDSN returns server's DSN with the database name replaced.
func databaseDSN(t testing.TB, server, name string) string {
	t.Helper()
	if !strings.HasPrefix(server, "postgres://") && !strings.HasPrefix(server, "postgresql://") {
		return server + " dbname=" + name // keyword/value: the last setting wins
	}
	u, err := url.Parse(server)
	if err != nil {
		t.Fatalf("%s: %v", pgtest.Env, err)
	}
	u.Path = "/" + name
	return u.String()
}

// openDSN opens the store at dsn and closes it when the test ends.
func openDSN(t testing.TB, dsn string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// openTemp opens a store in a new database and returns it with the
// database's DSN.
func openTemp(t testing.TB) (*Store, string) {
	t.Helper()
	dsn := newDatabase(t)
	return openDSN(t, dsn), dsn
}

// raw is a store that shows its tables to the conformance suite.
type raw struct{ *Store }

// QueryRaw implements storetest.Raw.
func (r raw) QueryRaw(ctx context.Context, query string, args []any, row func(scan func(...any) error) error) error {
	return r.view(ctx, "query raw", func(tx pgx.Tx) error { return mtx{tx}.Query(ctx, query, args, row) })
}

func TestConformance(t *testing.T) {
	serverDSN(t) // skip or fail once, not in every subtest
	storetest.Run(t, func(t *testing.T) store.Store {
		s, _ := openTemp(t)
		return raw{s}
	})
}

// token returns a deterministic token for label.
func token(label string) []byte {
	h := sha256.Sum256([]byte("postgres test " + label))
	return h[:]
}

// entries returns n entries with tokens label/0 … label/n-1 and refs 0 … n-1.
func entries(label string, n int) []store.Entry {
	es := make([]store.Entry, n)
	for i := range es {
		es[i] = store.Entry{Token: token(fmt.Sprint(label, "/", i)), Ref: uint64(i)}
	}
	return es
}

// publish uploads es in batches of batch entries as a new version of the
// owner's list and commits it.
func publish(t testing.TB, s *Store, owner, name, kind string, es []store.Entry, batch int) store.List {
	t.Helper()
	return storetest.Publish(t, s, owner, name, store.List{Kind: kind, KeyID: "k1"}, es, batch)
}

// record returns a valid decision record for action.
func record(action string) *audit.Record {
	return &audit.Record{Time: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC), DecisionID: "d-" + action,
		Caller: "spiffe://veilmatch.dev/agency/a", Agency: "a", Action: action, Result: audit.ResultAllowed, PolicyRevision: "rev"}
}

// query returns the single int64 that a query on the store's database
// selects.
func query(t testing.TB, s *Store, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := s.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// checkLog checks that every replica sees the same log of n records, that
// the records are numbered 0…n-1, that the root recomputed from them is the
// log's, and that the stored nodes prove inclusion and consistency. It
// returns the records' decision ids in log order.
func checkLog(t *testing.T, replicas []*Store, n uint64) []string {
	t.Helper()
	ctx := t.Context()
	size, root, err := replicas[0].LogHead(ctx)
	if err != nil || size != n {
		t.Fatalf("LogHead = %d, %v; want %d records", size, err, n)
	}
	for i, s := range replicas[1:] {
		if sz, rt, err := s.LogHead(ctx); err != nil || sz != size || !bytes.Equal(rt, root) {
			t.Fatalf("replica %d: LogHead = %d %x, %v; want %d %x", i+1, sz, rt, err, size, root)
		}
	}
	recs, err := replicas[0].LogRecords(ctx, 0, int(n)+1)
	if err != nil || uint64(len(recs)) != n {
		t.Fatalf("LogRecords = %d records, %v; want %d", len(recs), err, n)
	}
	tree, err := audit.NewTree(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	half := n / 2
	var halfRoot []byte
	ids := make([]string, n)
	for i, data := range recs {
		r, err := audit.ParseRecord(data)
		if err != nil || r.Index != uint64(i) {
			t.Fatalf("record %d: index %d, %v", i, r.Index, err)
		}
		ids[i] = r.DecisionID
		if _, err := tree.Append(audit.LeafHash(data)); err != nil {
			t.Fatal(err)
		}
		if tree.Size() == half {
			if halfRoot, err = tree.Root(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got, err := tree.Root(); err != nil || !bytes.Equal(got, root) {
		t.Fatalf("root recomputed from the records %x, %v; LogHead says %x", got, err, root)
	}
	for i := uint64(0); i < n; i += 1 + n/16 {
		p, err := audit.InclusionProof(ctx, replicas[len(replicas)-1], i, n)
		if err != nil {
			t.Fatal(err)
		}
		if err := audit.VerifyInclusion(audit.LeafHash(recs[i]), i, n, p, root); err != nil {
			t.Fatal(err)
		}
	}
	if half > 0 {
		p, err := audit.ConsistencyProof(ctx, replicas[0], half, n)
		if err != nil {
			t.Fatal(err)
		}
		if err := audit.VerifyConsistency(half, n, halfRoot, root, p); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

// TestReplicasAppendDecisions: two stores on one database (two replicas),
// each appending from several goroutines at once, make one log holding
// every record exactly once, numbered without gaps, whose stored Merkle
// tree matches its records.
func TestReplicasAppendDecisions(t *testing.T) {
	ctx := t.Context()
	dsn := newDatabase(t)
	replicas := []*Store{openDSN(t, dsn), openDSN(t, dsn)}
	const (
		workers = 4  // goroutines per replica
		each    = 50 // appends per goroutine
	)
	var wg sync.WaitGroup
	errs := make(chan error, len(replicas)*workers)
	for r, s := range replicas {
		for w := range workers {
			wg.Go(func() {
				for i := range each {
					rec := record(audit.ActionOverlaps)
					rec.DecisionID = fmt.Sprintf("r%d-w%d-%d", r, w, i)
					// Some appends carry a notice, some a batch of one.
					var err error
					switch i % 3 {
					case 0:
						_, err = s.AppendDecision(ctx, rec, []store.Notice{{Owner: "o", List: "l", Action: "overlaps", DecisionID: rec.DecisionID}})
					case 1:
						_, err = s.AppendDecision(ctx, rec, nil)
					default:
						err = s.AppendDecisions(ctx, []*audit.Record{rec})
					}
					if err != nil {
						errs <- err
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	const total = 2 * workers * each
	ids := checkLog(t, replicas, total)
	slices.Sort(ids)
	if len(slices.Compact(ids)) != total {
		t.Errorf("the log holds %d distinct decisions, want %d", len(ids), total)
	}
	if ns, err := replicas[1].Notices(ctx, "o"); err != nil || len(ns) != (each+2)/3*workers*2 {
		t.Errorf("Notices = %d, %v; want %d", len(ns), err, (each+2)/3*workers*2)
	}
}

// sendUpload begins u on s, puts es in batches of per entries and commits, as
// a client retrying against another replica would. It adds to dups the
// batches the store already held.
func sendUpload(ctx context.Context, s *Store, u store.Upload, es []store.Entry, per int, dups *atomic.Int64) (store.List, error) {
	if err := s.BeginUpload(ctx, u); err != nil {
		return store.List{}, err
	}
	seq := uint64(0)
	for rest := es; len(rest) > 0; seq++ {
		n := min(per, len(rest))
		dup, err := s.PutBatch(ctx, u.Owner, u.List, u.ID, seq, rest[:n])
		if err != nil {
			return store.List{}, err
		}
		if dup {
			dups.Add(1)
		}
		rest = rest[n:]
	}
	return s.CommitUpload(ctx, u.Owner, u.List, u.ID, seq, uint64(len(es)), time.Now(), record(audit.ActionPublish))
}

// TestReplicasSameUpload: the same upload sent through two replicas at once
// is stored once: each batch is written by one replica and a duplicate for
// the other, and both commits return the one version.
func TestReplicasSameUpload(t *testing.T) {
	ctx := t.Context()
	dsn := newDatabase(t)
	replicas := []*Store{openDSN(t, dsn), openDSN(t, dsn)}
	const batches, per = 20, 50
	for round := range 3 {
		u := store.Upload{Owner: "a", List: "l", ID: fmt.Sprint("upload-", round), Meta: store.List{Kind: "phone", KeyID: "k1"}}
		es := entries(u.ID, batches*per)
		var dups atomic.Int64
		lists := make([]store.List, len(replicas))
		errs := make([]error, len(replicas))
		var wg sync.WaitGroup
		for r, s := range replicas {
			wg.Go(func() { lists[r], errs[r] = sendUpload(ctx, s, u, es, per, &dups) })
		}
		wg.Wait()
		for r, err := range errs {
			if err != nil {
				t.Fatalf("round %d, replica %d: %v", round, r, err)
			}
		}
		if lists[0].ID != lists[1].ID || lists[0].Entries != batches*per {
			t.Fatalf("round %d: the replicas committed %+v and %+v; want one version of %d entries", round, lists[0], lists[1], batches*per)
		}
		if dups.Load() != batches {
			t.Errorf("round %d: %d duplicate batches, want %d (each batch written once)", round, dups.Load(), batches)
		}
		id := lists[0].ID
		if n := query(t, replicas[0], `SELECT count(*) FROM tokens WHERE list_id = $1`, id); n != batches*per {
			t.Errorf("round %d: %d token rows, want %d", round, n, batches*per)
		}
		if n := query(t, replicas[0], `SELECT count(*) FROM lists WHERE owner = 'a' AND name = 'l' AND state = $1`, stateCommitted); n != 1 {
			t.Errorf("round %d: %d committed versions, want 1", round, n)
		}
		if seqs, committed, err := replicas[1].UploadStatus(ctx, u.Owner, u.List, u.ID); err != nil || !committed || len(seqs) != batches {
			t.Errorf("round %d: UploadStatus = %v, %v, %v", round, seqs, committed, err)
		}
	}
	// Two commits per round, each with its record: the second commit of the
	// committed version appends one too.
	checkLog(t, replicas, 2*3)
}

// TestReplicasCommitSameList: two uploads of one list committed through two
// replicas at once both succeed, one after the other: the later is the
// current version and the earlier is superseded, without tokens.
func TestReplicasCommitSameList(t *testing.T) {
	ctx := t.Context()
	dsn := newDatabase(t)
	replicas := []*Store{openDSN(t, dsn), openDSN(t, dsn)}
	for round := range 5 {
		ids := []string{fmt.Sprint("r", round, "-a"), fmt.Sprint("r", round, "-b")}
		for _, id := range ids {
			u := store.Upload{Owner: "a", List: "l", ID: id, Meta: store.List{Kind: "phone", KeyID: "k1"}}
			if err := replicas[0].BeginUpload(ctx, u); err != nil {
				t.Fatal(err)
			}
			if _, err := replicas[0].PutBatch(ctx, "a", "l", id, 0, entries(id, 100)); err != nil {
				t.Fatal(err)
			}
		}
		lists := make([]store.List, 2)
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for r, s := range replicas {
			wg.Go(func() { lists[r], errs[r] = s.CommitUpload(ctx, "a", "l", ids[r], 1, 100, time.Now(), nil) })
		}
		wg.Wait()
		for r, err := range errs {
			if err != nil {
				t.Fatalf("round %d: commit through replica %d: %v", round, r, err)
			}
		}
		cur, err := replicas[0].GetList(ctx, "a", "l")
		if err != nil {
			t.Fatal(err)
		}
		old := lists[0]
		if cur.ID == old.ID {
			old = lists[1]
		}
		if cur.ID != lists[0].ID && cur.ID != lists[1].ID || cur.ID == old.ID {
			t.Fatalf("round %d: current version %d, committed %d and %d", round, cur.ID, lists[0].ID, lists[1].ID)
		}
		if n := query(t, replicas[0], `SELECT count(*) FROM tokens WHERE list_id = $1`, old.ID); n != 0 {
			t.Errorf("round %d: the superseded version keeps %d tokens", round, n)
		}
		if n := query(t, replicas[0], `SELECT count(*) FROM tokens`); n != 100 {
			t.Errorf("round %d: %d tokens stored, want the current version's 100", round, n)
		}
		if _, _, err := replicas[1].UploadStatus(ctx, "a", "l", old.UploadID); !errors.Is(err, store.ErrConflict) {
			t.Errorf("round %d: UploadStatus of the superseded upload: %v, want ErrConflict", round, err)
		}
	}
}

// TestReplicasMaintenance: purges and erasures of expired lists run by two
// replicas at once drop each upload and erase each list once, with one
// record per erasure.
func TestReplicasMaintenance(t *testing.T) {
	ctx := t.Context()
	dsn := newDatabase(t)
	replicas := []*Store{openDSN(t, dsn), openDSN(t, dsn)}
	const open, expired = 12, 8
	for i := range open {
		owner, id := fmt.Sprint("o", i%3), fmt.Sprint("open-", i)
		if err := replicas[0].BeginUpload(ctx, store.Upload{Owner: owner, List: id, ID: id, Meta: store.List{Kind: "phone", KeyID: "k1"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := replicas[1].PutBatch(ctx, owner, id, id, 0, entries(id, 30)); err != nil {
			t.Fatal(err)
		}
	}
	m := store.List{Kind: "phone", KeyID: "k1", ExpiresAt: time.Now().Add(-time.Hour)}
	for i := range expired {
		storetest.Publish(t, replicas[i%2], fmt.Sprint("o", i%3), fmt.Sprint("old-", i), m, entries(fmt.Sprint("old-", i), 20), 7)
	}
	keep := publish(t, replicas[0], "k", "keep", "phone", entries("keep", 10), 10)

	purged := make([]int, 2)
	erased := make([]int, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for r, s := range replicas {
		wg.Go(func() {
			if purged[r], errs[r] = s.PurgeUploads(ctx, time.Now().Add(time.Minute)); errs[r] == nil {
				erased[r], errs[r] = eraseExpired(ctx, s)
			}
		})
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", r, err)
		}
	}
	if purged[0]+purged[1] != open {
		t.Errorf("the replicas purged %d and %d uploads, want %d in all", purged[0], purged[1], open)
	}
	if erased[0]+erased[1] != expired {
		t.Errorf("the replicas erased %d and %d lists, want %d in all", erased[0], erased[1], expired)
	}
	if n := query(t, replicas[0], `SELECT count(*) FROM tokens`); n != int64(keep.Entries) {
		t.Errorf("%d tokens left, want the kept list's %d", n, keep.Entries)
	}
	if n := query(t, replicas[0], `SELECT count(*) FROM lists`); n != 1 {
		t.Errorf("%d lists rows left, want 1", n)
	}
	checkLog(t, replicas, expired)
}

// eraseExpired erases the expired lists as the hub does, except that a
// list another replica erased first is skipped. It returns how many it
// erased.
func eraseExpired(ctx context.Context, s *Store) (int, error) {
	ls, err := s.ExpiredLists(ctx, time.Now())
	if err != nil {
		return 0, err
	}
	n := 0
	for _, l := range ls {
		rec := record(audit.ActionExpire)
		rec.DecisionID = fmt.Sprint("expire-", l.ID)
		deleted, err := s.DeleteList(ctx, l.Owner, l.Name, rec)
		switch {
		case errors.Is(err, store.ErrNotFound):
			continue
		case err != nil:
			return n, err
		case deleted != l.Entries:
			return n, fmt.Errorf("list %d: erased %d entries, want %d", l.ID, deleted, l.Entries)
		}
		n++
	}
	return n, nil
}

// versions returns the schema versions recorded in the store's database.
func versions(t *testing.T, s *Store) []int {
	t.Helper()
	rows, err := s.pool.Query(t.Context(), `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	v, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// upTo returns 1…n.
func upTo(n int) []int {
	var v []int
	for i := range n {
		v = append(v, i+1)
	}
	return v
}

// TestMigrationsRace: stores opened on a new database at once all succeed,
// and the migrations are applied once.
func TestMigrationsRace(t *testing.T) {
	dsn := newDatabase(t)
	const opens = 8
	stores := make([]*Store, opens)
	errs := make([]error, opens)
	var wg sync.WaitGroup
	for i := range opens {
		wg.Go(func() { stores[i], errs[i] = Open(t.Context(), dsn) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open #%d: %v", i, err)
		}
		defer stores[i].Close()
	}
	if got := versions(t, stores[0]); !slices.Equal(got, upTo(len(migrations))) {
		t.Errorf("schema versions %v, want %v", got, upTo(len(migrations)))
	}
}

// TestMigrationsAppend: a migration appended to the program is applied to
// a database of the previous version, which keeps its data; a program
// older than the database refuses to open it.
func TestMigrationsAppend(t *testing.T) {
	ctx := t.Context()
	s, dsn := openTemp(t)
	l := publish(t, s, "a", "l", "phone", entries("x", 3), 2)
	s.Close()

	shipped := migrations
	t.Cleanup(func() { migrations = shipped })
	migrations = append(slices.Clip(shipped), `CREATE TABLE migration_test (x integer)`)
	s = openDSN(t, dsn)
	if got := versions(t, s); !slices.Equal(got, upTo(len(shipped)+1)) {
		t.Errorf("schema versions %v, want %v", got, upTo(len(shipped)+1))
	}
	if n := query(t, s, `SELECT count(*) FROM migration_test`); n != 0 {
		t.Errorf("the new table holds %d rows", n)
	}
	if got, err := s.GetList(ctx, "a", "l"); err != nil || got.ID != l.ID || got.Entries != 3 {
		t.Errorf("GetList after the migration = %+v, %v; want list %d", got, err, l.ID)
	}
	s.Close()

	migrations = shipped
	if s, err := Open(ctx, dsn); err == nil {
		s.Close()
		t.Fatal("Open of a database from a newer version succeeded")
	} else if !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open: %v, want an error about a newer schema", err)
	}
}

// TestUpgradeMatchSets: a database of the schema before match sets, with
// standing matches, is upgraded in place: it has the sets of its pairs,
// which later changes keep.
func TestUpgradeMatchSets(t *testing.T) {
	s, dsn := openTemp(t)
	ids := storetest.UpgradeFixture(t, s)
	if _, err := s.pool.Exec(t.Context(), `DROP TABLE match_sets; DELETE FROM schema_migrations WHERE version = 4`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openDSN(t, dsn)
	if got := versions(t, s); !slices.Equal(got, upTo(len(migrations))) {
		t.Errorf("schema versions %v, want %v", got, upTo(len(migrations)))
	}
	storetest.CheckUpgraded(t, raw{s}, ids)
}

// TestReopen: a store opened again finds its lists and uploads, and new
// versions get new ids; Close may be called twice.
func TestReopen(t *testing.T) {
	ctx := t.Context()
	s, dsn := openTemp(t)
	l := publish(t, s, "a", "l", "phone", entries("x", 10), 3)
	if err := s.BeginUpload(ctx, store.Upload{Owner: "a", List: "open", ID: "u", Meta: store.List{Kind: "phone", KeyID: "k1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutBatch(ctx, "a", "open", "u", 1, entries("y", 2)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	s = openDSN(t, dsn)
	got, err := s.GetList(ctx, "a", "l")
	if err != nil || got.ID != l.ID || got.Entries != 10 || !got.CommittedAt.Equal(l.CommittedAt) {
		t.Errorf("GetList after reopening = %+v, %v; want %+v", got, err, l)
	}
	if dup, err := s.PutBatch(ctx, "a", "open", "u", 1, entries("y", 2)); err != nil || !dup {
		t.Errorf("PutBatch of a held batch after reopening = %v, %v; want duplicate", dup, err)
	}
	if l2 := publish(t, s, "a", "l", "phone", entries("z", 1), 1); l2.ID <= l.ID {
		t.Errorf("new version id %d, want above %d", l2.ID, l.ID)
	}
}

// TestOpenErrors: Open names the operation and never shows the password.
func TestOpenErrors(t *testing.T) {
	const secret = "s3cret-pw"
	for _, dsn := range []string{
		"postgres://u:" + secret + "@127.0.0.1:1/db?sslmode=disable&connect_timeout=5",
		"host=127.0.0.1 port=1 user=u password=" + secret + " dbname=db sslmode=disable connect_timeout=5",
		"postgres://u:" + secret + "@127.0.0.1:1/db?sslmode=bogus",
	} {
		s, err := Open(t.Context(), dsn)
		if err == nil {
			s.Close()
			t.Fatal("Open succeeded")
		}
		if !strings.HasPrefix(err.Error(), "open store: ") || strings.Contains(err.Error(), secret) {
			t.Errorf("Open error %q does not name the operation or shows the password", err)
		}
	}
}

// TestReplicasDeleteWhileUploading: a list deleted through one replica
// while batches arrive through another leaves no token behind: each batch
// lands either before the deletion, and is erased and counted by it, or
// after it, and is refused.
func TestReplicasDeleteWhileUploading(t *testing.T) {
	ctx := t.Context()
	dsn := newDatabase(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	for round := range 5 {
		id := fmt.Sprint("upload-", round)
		if err := a.BeginUpload(ctx, store.Upload{Owner: "a", List: "l", ID: id, Meta: store.List{Kind: "phone", KeyID: "k1"}}); err != nil {
			t.Fatal(err)
		}
		var written atomic.Int64
		started := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			defer close(started)
			for seq := range uint64(200) {
				if seq == 5 {
					started <- struct{}{}
				}
				if _, err := a.PutBatch(ctx, "a", "l", id, seq, entries(fmt.Sprint(id, "/", seq), 10)); err != nil {
					if !errors.Is(err, store.ErrNotFound) {
						t.Errorf("PutBatch: %v", err)
					}
					return
				}
				written.Add(10)
			}
		})
		<-started
		deleted, err := b.DeleteList(ctx, "a", "l", nil)
		wg.Wait()
		if err != nil {
			t.Fatal(err)
		}
		if deleted != uint64(written.Load()) {
			t.Errorf("round %d: DeleteList erased %d entries; %d were written", round, deleted, written.Load())
		}
		if n := query(t, a, `SELECT count(*) FROM tokens`); n != 0 {
			t.Fatalf("round %d: %d tokens left behind", round, n)
		}
	}
}

// literals matches the bytea and bigint constants of a query plan.
var literals = regexp.MustCompile(`'[^']*'::(bytea|bigint)`)

// TestQueryPlans: the joins probe the indexes and never scan the tokens
// table, and Overlaps reads the match sets from their primary key.
func TestQueryPlans(t *testing.T) {
	ctx := t.Context()
	s, _ := openTemp(t)
	mine := publish(t, s, "a", "mine", "phone", entries("mine", 100), 100)
	for i := range 4 { // the same tokens: 60k pairs
		publish(t, s, fmt.Sprint("o", i), "l", "phone", entries("o", 5000), 1000)
	}
	// Enough retractions that probing them is worth an index.
	if _, err := s.pool.Exec(ctx, `INSERT INTO retractions (list_id, ref, reason) SELECT 1000000 + g, g, '' FROM generate_series(1, 20000) AS g`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `ANALYZE tokens, lists, retractions, matches`); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, setup, query string
		args               []any
		want               []string
	}{
		{"match", matchPlan, matchrow.PairsSQL("phone", "$1::bigint, a.ref, l.id, b.ref", matchFrom), []any{mine.ID, "a", "phone", "k1", matchrow.AllRefsFrom, matchrow.AllRefsTo},
			[]string{"tokens_list", "tokens_prefix", "retractions_list_id_ref_key", "Index Cond: ((list_id = b.list_id) AND (ref = b.ref))"}},
		{"match pdq", matchPlan, matchrow.PairsSQL("pdq", "$1::bigint, a.ref, l.id, b.ref", matchFrom), []any{mine.ID, "a", "pdq", "k1", matchrow.AllRefsFrom, matchrow.AllRefsTo},
			[]string{"tokens_list", "tokens_prefix", "retractions_list_id_ref_key", "Index Cond: ((list_id = b.list_id) AND (ref = b.ref))"}},
		{"overlaps", "", matchrow.OverlapsSQL, []any{mine.ID}, []string{"match_sets_pkey"}},
		{"check", "", checkSQL, []any{token("x"), "phone", "k1"},
			[]string{"tokens_prefix", "retractions_list_id_ref_key", "Index Cond: ((list_id = t.list_id) AND (ref = t.ref))"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var plan []string
			err := s.view(ctx, "explain", func(tx pgx.Tx) error {
				if tt.setup != "" {
					if _, err := tx.Exec(ctx, tt.setup); err != nil {
						return err
					}
				}
				rows, err := tx.Query(ctx, "EXPLAIN (COSTS OFF) "+tt.query, tt.args...)
				if err != nil {
					return err
				}
				plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			// The plan shows the parameters: not the token, nor its prefix.
			joined := literals.ReplaceAllString(strings.Join(plan, "\n"), "'…'::$1")
			for _, w := range tt.want {
				if !strings.Contains(joined, w) {
					t.Errorf("plan does not use %s:\n%s", w, joined)
				}
			}
			if strings.Contains(joined, "Seq Scan on tokens") {
				t.Errorf("plan scans the tokens table:\n%s", joined)
			}
		})
	}
}

// TestErasureVacuums: a deletion, a commit that supersedes a version and a
// purge each vacuum the tokens table after erasing tokens.
func TestErasureVacuums(t *testing.T) {
	ctx := t.Context()
	s, _ := openTemp(t)
	// An autovacuum of the table would make the store's VACUUM skip it.
	if _, err := s.pool.Exec(ctx, `ALTER TABLE tokens SET (autovacuum_enabled = off)`); err != nil {
		t.Fatal(err)
	}
	vacuums := func() int64 {
		return query(t, s, `SELECT vacuum_count FROM pg_stat_user_tables WHERE relid = 'tokens'::regclass`)
	}
	publish(t, s, "b", "keep", "phone", entries("keep", 300), 100)
	publish(t, s, "a", "gone", "phone", entries("gone", 300), 100)
	steps := []struct {
		name  string
		erase func() error
		left  int64
	}{
		{"DeleteList", func() error {
			_, err := s.DeleteList(ctx, "a", "gone", nil)
			return err
		}, 300},
		{"CommitUpload superseding", func() error {
			publish(t, s, "b", "keep", "phone", entries("new", 200), 100)
			return nil
		}, 200},
		{"PurgeUploads", func() error {
			if err := s.BeginUpload(ctx, store.Upload{Owner: "c", List: "l", ID: "u", Meta: store.List{Kind: "phone", KeyID: "k1"}}); err != nil {
				return err
			}
			if _, err := s.PutBatch(ctx, "c", "l", "u", 0, entries("staged", 50)); err != nil {
				return err
			}
			_, err := s.PurgeUploads(ctx, time.Now().Add(time.Minute))
			return err
		}, 200},
	}
	for _, st := range steps {
		before := vacuums()
		if err := st.erase(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if vacuums() == before {
			t.Errorf("%s did not vacuum the tokens table", st.name)
		}
		if n := query(t, s, `SELECT count(*) FROM tokens`); n != st.left {
			t.Errorf("after %s: %d tokens, want %d", st.name, n, st.left)
		}
	}
}

// writeStats are the cumulative statistics that any write to the store's
// tables, or any temporary file, would change.
type writeStats struct {
	inserted, updated, deleted, tempFiles int64
}

// settledStats waits for the database's other sessions to end and for
// their statistics to be flushed, then returns the write statistics.
func settledStats(t *testing.T, dsn string) writeStats {
	t.Helper()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	read := func() writeStats {
		var w writeStats
		if err := conn.QueryRow(ctx, `SELECT
			(SELECT coalesce(sum(n_tup_ins), 0)::bigint FROM pg_stat_user_tables),
			(SELECT coalesce(sum(n_tup_upd), 0)::bigint FROM pg_stat_user_tables),
			(SELECT coalesce(sum(n_tup_del), 0)::bigint FROM pg_stat_user_tables),
			(SELECT temp_files FROM pg_stat_database WHERE datname = current_database())`).
			Scan(&w.inserted, &w.updated, &w.deleted, &w.tempFiles); err != nil {
			t.Fatal(err)
		}
		return w
	}
	deadline := time.Now().Add(10 * time.Second)
	for prev := read(); ; {
		var others int64
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&others); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		cur := read()
		if others == 0 && cur == prev {
			return cur
		}
		if time.Now().After(deadline) {
			t.Fatal("the database's statistics did not settle")
		}
		prev = cur
	}
}

// TestCheckWritesNothing: Check writes no row and no temporary file, even
// with many tokens.
func TestCheckWritesNothing(t *testing.T) {
	ctx := t.Context()
	dsn := newDatabase(t)
	s := openDSN(t, dsn)
	es := entries("x", 500)
	l := publish(t, s, "a", "l", "phone", es, 100)
	if err := s.BeginUpload(ctx, store.Upload{Owner: "b", List: "m", ID: "u", Meta: store.List{Kind: "phone", KeyID: "k1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutBatch(ctx, "b", "m", "u", 0, es[:10]); err != nil {
		t.Fatal(err)
	}
	s.Close()
	before := settledStats(t, dsn)

	s = openDSN(t, dsn)
	tokens := [][]byte{es[3].Token, token("unknown"), es[499].Token}
	for i := range 2000 {
		tokens = append(tokens, token(fmt.Sprint("probe ", i)))
	}
	var got []int
	for range 3 {
		got = got[:0]
		if err := s.Check(ctx, "phone", "k1", tokens, func(i int, cp int64) error {
			if cp != l.ID {
				t.Errorf("match in list %d, want %d", cp, l.ID)
			}
			got = append(got, i)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(got, []int{0, 2}) {
		t.Errorf("Check matched indexes %v, want [0 2]", got)
	}
	s.Close()
	if after := settledStats(t, dsn); after != before {
		t.Errorf("Check changed the write statistics from %+v to %+v", before, after)
	}
}

// concurrently runs fn(0) … fn(n-1) at once, alternating between the
// replicas, and returns their errors.
func concurrently(replicas []*Store, n int, fn func(s *Store, i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = fn(replicas[i%len(replicas)], i) })
	}
	wg.Wait()
	return errs
}

// count returns how many errs are nil and how many match target; it fails
// on any other error.
func count(t *testing.T, errs []error, target error) (ok, matched int) {
	t.Helper()
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, target):
			matched++
		default:
			t.Fatal(err)
		}
	}
	return ok, matched
}

// TestReplicasRacingWrites: writes that must happen once happen once when
// two replicas race: a check budget is never exceeded, a key epoch report
// is stored and logged once, the same disclosure request is created once,
// and a request is answered once.
func TestReplicasRacingWrites(t *testing.T) {
	ctx := t.Context()
	dsn := newDatabase(t)
	replicas := []*Store{openDSN(t, dsn), openDSN(t, dsn)}
	logged := uint64(0)

	const limit, charges = 10, 24
	ok, exhausted := count(t, concurrently(replicas, charges, func(s *Store, i int) error {
		return s.AppendCheckDecision(ctx, record(audit.ActionCheck), nil, "a", "2026-11-28", 1, limit)
	}), store.ErrExhausted)
	if ok != limit || exhausted != charges-limit {
		t.Errorf("%d charges succeeded and %d were refused; want %d and %d", ok, exhausted, limit, charges-limit)
	}
	if n, err := replicas[0].CheckUse(ctx, "a", "2026-11-28"); err != nil || n != limit {
		t.Errorf("CheckUse = %d, %v; want %d", n, err, limit)
	}
	logged += limit

	report := []store.KeyEpoch{{KeyID: "k2", PublicKey: token("k2")}, {KeyID: "k1", PublicKey: token("k1")}}
	var changed atomic.Int64
	ok, _ = count(t, concurrently(replicas, 6, func(s *Store, i int) error {
		c, err := s.SetKeyEpochs(ctx, report, record(audit.ActionKeyEpochs))
		if c {
			changed.Add(1)
		}
		return err
	}), store.ErrConflict)
	if ok != 6 || changed.Load() != 1 {
		t.Errorf("%d reports stored, %d of them changed the epochs; want 6 and 1", ok, changed.Load())
	}
	logged++

	req := store.DisclosureRequest{ID: "r", GroupID: "g", Requester: "req", RequesterList: "s", RequesterListID: 7, Owner: "o", List: "v", ListID: 9,
		Entries: 1, Requested: 1, Reason: "why", Purpose: "investigation", CaseRef: "C1", CreatedAt: time.Now()}
	ok, conflicts := count(t, concurrently(replicas, 6, func(s *Store, i int) error {
		r := req
		r.ID, r.GroupID = fmt.Sprint("r", i), fmt.Sprint("g", i)
		return s.CreateDisclosureRequests(ctx, []store.DisclosureRequest{r}, record(audit.ActionRequestDisclosure))
	}), store.ErrConflict)
	if ok != 1 || conflicts != 5 {
		t.Errorf("%d requests created and %d refused; want 1 and 5", ok, conflicts)
	}
	logged++

	pending, err := replicas[1].DisclosureRequests(ctx, "o", "", false)
	if err != nil || len(pending) != 1 {
		t.Fatalf("pending requests = %+v, %v; want one", pending, err)
	}
	ok, conflicts = count(t, concurrently(replicas, 6, func(s *Store, i int) error {
		_, err := s.AnswerDisclosureRequest(ctx, pending[0].ID, "o", i%2 == 0, "", time.Now(), record(audit.ActionApproveDisclosure))
		return err
	}), store.ErrConflict)
	if ok != 1 || conflicts != 5 {
		t.Errorf("%d answers stored and %d refused; want 1 and 5", ok, conflicts)
	}
	logged++
	checkLog(t, replicas, logged)
}

// TestTextPostgresCannotStore: a text value PostgreSQL cannot store, which
// the sqlite store would keep, is refused with ErrInvalid.
func TestTextPostgresCannotStore(t *testing.T) {
	s, _ := openTemp(t)
	for name, u := range map[string]store.Upload{
		"NUL in a name":          {Owner: "a", List: "l\x00", ID: "u", Meta: store.List{Kind: "phone", KeyID: "k1"}},
		"invalid UTF-8":          {Owner: "a", List: "l\xff", ID: "u", Meta: store.List{Kind: "phone", KeyID: "k1"}},
		"NUL in a JSON document": {Owner: "a", List: "l", ID: "u", Meta: store.List{Kind: "phone", KeyID: "k1", Normalization: map[string]string{"k": "\x00"}}},
	} {
		if err := s.BeginUpload(t.Context(), u); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: BeginUpload: %v, want ErrInvalid", name, err)
		}
	}
}

// TestRunExclusive: while one replica runs a background job, another that
// tries the same job does not run it, and runs it once the first is done;
// another job is not held up.
func TestRunExclusive(t *testing.T) {
	ctx := context.Background()
	a, dsn := openTemp(t)
	b := openDSN(t, dsn)
	started, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		ran, err := a.RunExclusive(ctx, "retention", func(context.Context) error {
			close(started)
			<-release
			return nil
		})
		if err == nil && !ran {
			err = errors.New("the first replica did not run the job")
		}
		done <- err
	}()
	<-started
	ranB, err := b.RunExclusive(ctx, "retention", func(context.Context) error { return nil })
	if err != nil || ranB {
		t.Fatalf("second replica: ran %v (%v), want skipped while the first runs", ranB, err)
	}
	if ran, err := b.RunExclusive(ctx, "other", func(context.Context) error { return nil }); err != nil || !ran {
		t.Fatalf("another job: ran %v (%v)", ran, err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := errors.New("job failed")
	ranB, err = b.RunExclusive(ctx, "retention", func(context.Context) error { return want })
	if !ranB || !errors.Is(err, want) {
		t.Fatalf("after the first finished: ran %v, err %v", ranB, err)
	}
}

// TestReplicasMatchConcurrently: lists that match each other, committed
// (and then superseded) through two replicas at once, get every pair
// exactly once in each direction, and none with a version no longer
// committed; a reader that follows each owner's events by cursor while the
// commits run misses none of them. (Without the lockMatches locks pairs
// are lost; without taking cursors under the log's lock, events.)
func TestReplicasMatchConcurrently(t *testing.T) {
	ctx := t.Context()
	dsn := newDatabase(t)
	replicas := []*Store{openDSN(t, dsn), openDSN(t, dsn)}
	const owners = 8
	kinds := []string{"phone", "email"}
	done := make(chan struct{})
	followed := make([][]store.MatchEvent, owners)
	var readers sync.WaitGroup
	for i := range owners {
		readers.Go(func() { followed[i] = follow(t, replicas[i%2], fmt.Sprint("o", i), done) })
	}
	stop := sync.OnceFunc(func() {
		close(done)
		readers.Wait()
	})
	defer stop() // also when a check below fails
	for round := range 3 {
		// Every list holds S (ref 0), and its own token (ref 1) that the
		// next owner's list holds too (ref 2). Each owner has such a list
		// of phones and one of emails, whose commits take different locks.
		errs := concurrently(replicas, 2*owners, func(s *Store, i int) error {
			kind := kinds[i/owners]
			i %= owners
			es := []store.Entry{{Token: token("S"), Ref: 0}, {Token: token(fmt.Sprint(round, "/", i)), Ref: 1},
				{Token: token(fmt.Sprint(round, "/", (i+owners-1)%owners)), Ref: 2}}
			u := store.Upload{Owner: fmt.Sprint("o", i), List: kind, ID: fmt.Sprint("r", round), Meta: store.List{Kind: kind, KeyID: "k1"}}
			_, err := sendOne(ctx, s, u, es)
			return err
		})
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d, owner %d: %v", round, i, err)
			}
		}
		if n, want := query(t, replicas[0], `SELECT count(*) FROM matches`), int64(len(kinds)*(owners*(owners-1)+2*owners)); n != want {
			t.Fatalf("round %d: %d pairs, want %d", round, n, want)
		}
		if n := query(t, replicas[0], `SELECT count(*) FROM matches m JOIN lists l ON l.id IN (m.list_id, m.cp_list_id) WHERE l.state <> $1`, stateCommitted); n != 0 {
			t.Fatalf("round %d: %d pairs with a version no longer committed", round, n)
		}
	}
	stop()
	for i := range owners {
		owner := fmt.Sprint("o", i)
		all, err := replicas[0].MatchEvents(ctx, owner, "", 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		// The owner's current version matches the 7 other lists on S, the
		// next owner's on its own token and the previous owner's on
		// that owner's token; the later commit of each pair announced it.
		if len(all) != len(kinds)*(owners+1) {
			t.Errorf("%s has %d events of current versions, want %d", owner, len(all), len(kinds)*(owners+1))
		}
		seen := map[uint64]bool{}
		for _, ev := range followed[i] {
			seen[ev.Cursor] = true
		}
		for _, ev := range all {
			if !seen[ev.Cursor] {
				t.Errorf("the reader of %s missed event %+v", owner, ev)
			}
		}
	}
}

// follow reads owner's events from s by cursor, as a watcher does, until
// done is closed, and returns them with one last read.
func follow(t *testing.T, s *Store, owner string, done <-chan struct{}) []store.MatchEvent {
	var got []store.MatchEvent
	after := uint64(0)
	for last := false; ; {
		select {
		case <-done:
			last = true
		default:
		}
		evs, err := s.MatchEvents(context.Background(), owner, "", after, 1000)
		if err != nil {
			t.Error(err)
			return got
		}
		if len(evs) > 0 {
			got, after = append(got, evs...), evs[len(evs)-1].Cursor
		}
		if last {
			return got
		}
	}
}

// sendOne begins u on s, puts es as one batch and commits without a
// record, so that only the events' own lock orders their cursors.
func sendOne(ctx context.Context, s *Store, u store.Upload, es []store.Entry) (store.List, error) {
	if err := s.BeginUpload(ctx, u); err != nil {
		return store.List{}, err
	}
	if _, err := s.PutBatch(ctx, u.Owner, u.List, u.ID, 0, es); err != nil {
		return store.List{}, err
	}
	return s.CommitUpload(ctx, u.Owner, u.List, u.ID, 1, uint64(len(es)), time.Now(), nil)
}

// TestReplicasRetractWhileCommitting: an entry retracted through one
// replica while lists holding its token are committed through another is
// left without pairs, and once the retraction is undone while more are
// committed, it has the pairs of all of them. (Without the lockMatches
// lock in Retract and Unretract, pairs are left over or lost.)
func TestReplicasRetractWhileCommitting(t *testing.T) {
	ctx := t.Context()
	dsn := newDatabase(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	w := publish(t, a, "w", "W", "phone", []store.Entry{{Token: token("T"), Ref: 5}}, 1)
	pairsOf := func() int64 {
		return query(t, a, `SELECT count(*) FROM matches WHERE list_id = $1 AND ref = 5 OR cp_list_id = $1 AND cp_ref = 5`, w.ID)
	}
	const lists = 8
	for round := range 10 {
		// The lists are staged first, so that their commits run at once.
		for i := range lists {
			owner, name := fmt.Sprint("o", i), fmt.Sprint("r", round)
			if err := b.BeginUpload(ctx, store.Upload{Owner: owner, List: name, ID: "u", Meta: store.List{Kind: "phone", KeyID: "k1"}}); err != nil {
				t.Fatal(err)
			}
			if _, err := b.PutBatch(ctx, owner, name, "u", 0, []store.Entry{{Token: token("T"), Ref: 1}}); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		for i := range lists {
			wg.Go(func() {
				if _, err := b.CommitUpload(ctx, fmt.Sprint("o", i), fmt.Sprint("r", round), "u", 1, 1, time.Now(), nil); err != nil {
					t.Error(err)
				}
			})
		}
		var err error
		if round%2 == 0 {
			_, err = a.Retract(ctx, "w", "W", 5, "", time.Now(), nil)
		} else {
			err = a.Unretract(ctx, "w", "W", 5, time.Now(), nil)
		}
		wg.Wait()
		if err != nil {
			t.Fatal(err)
		}
		want := int64(0)
		if round%2 == 1 {
			want = 2 * lists * int64(round+1) // both directions, with every list committed so far
		}
		if n := pairsOf(); n != want {
			t.Fatalf("round %d: the entry has %d pairs, want %d", round, n, want)
		}
	}
}
