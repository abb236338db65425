package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/veilmatch/veilmatch/crypto/oprf"
	"github.com/veilmatch/veilmatch/server/store"
	"github.com/veilmatch/veilmatch/server/store/postgres"
)

// checkStoreURL accepts an empty store or a PostgreSQL URL. The URL may
// hold a password: it is never part of the message.
func checkStoreURL(dsn string) error {
	if dsn == "" {
		return nil
	}
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return errors.New("bench: the store must be a PostgreSQL URL (postgres://…)")
	}
	if _, err := pgconn.ParseConfig(dsn); err != nil {
		return fmt.Errorf("bench: the store URL: %w", err) // pgconn leaves the password out
	}
	return nil
}

// checkStore connects to the database of the store URL and checks that
// the user may create a schema in it, so that a run that could not use it
// fails before it measures anything.
func checkStore(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT has_database_privilege(current_database(), 'CREATE')`).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("user %s may not create a schema in database %s", conn.Config().User, conn.Config().Database)
	}
	return nil
}

// schemaPrefix begins the name of every schema a run creates.
const schemaPrefix = "vm_bench_"

// benchSchema is the schema a run creates in the database of the store
// URL, so that it never touches what the database already holds.
type benchSchema struct {
	name  string
	admin string // the store URL as given
	dsn   string // the store URL with the schema as the search_path
}

// createSchema creates a new schema, named schemaPrefix and random
// letters, in the database of the store URL dsn, and returns it with the
// server's settings that bear on the figures.
func createSchema(ctx context.Context, dsn string) (benchSchema, PostgresServer, error) {
	var srv PostgresServer
	u, err := url.Parse(dsn)
	if err != nil {
		return benchSchema{}, srv, errors.New("the store URL does not parse") // the error would quote it
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return benchSchema{}, srv, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	err = conn.QueryRow(ctx, `SELECT current_setting('server_version'), current_setting('fsync'),
		current_setting('synchronous_commit'), current_setting('shared_buffers')`).Scan(&srv.Version, &srv.Fsync, &srv.SynchronousCommit, &srv.SharedBuffers)
	if err != nil {
		return benchSchema{}, srv, fmt.Errorf("read the server's settings: %w", err)
	}
	name := schemaPrefix + strings.ToLower(rand.Text()[:16])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		return benchSchema{}, srv, fmt.Errorf("create schema %s: %w", name, err)
	}
	// The schema alone is the search_path: the store creates its tables
	// there and finds nothing else.
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return benchSchema{name: name, admin: dsn, dsn: u.String()}, srv, nil
}

// drop drops the schema with everything in it. It runs even when ctx is
// done (the run was interrupted), for at most a minute.
func (s benchSchema) drop(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.admin)
	if err != nil {
		return fmt.Errorf("drop schema %s: %w", s.name, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+s.name+" CASCADE"); err != nil {
		return fmt.Errorf("drop schema %s: %w", s.name, err)
	}
	return nil
}

// vacuum runs VACUUM (ANALYZE) on every table of the schema, as autovacuum
// would in time: it summarizes the block ranges of the tokens' BRIN index
// written since, and gathers the planner's statistics. It returns the
// time the VACUUM took.
func (s benchSchema) vacuum(ctx context.Context) (time.Duration, error) {
	conn, err := pgx.Connect(ctx, s.admin)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = $1`, s.name)
	if err != nil {
		return 0, err
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, err
	}
	if len(tables) == 0 {
		return 0, fmt.Errorf("schema %s holds no tables", s.name)
	}
	start := time.Now()
	if _, err := conn.Exec(ctx, "VACUUM (ANALYZE) "+strings.Join(tables, ", ")); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// postgresBackend keeps the hub's store in PostgreSQL at dsn.
type postgresBackend struct{ dsn string }

func (b postgresBackend) open(ctx context.Context, _ string) (store.Store, error) {
	st, err := postgres.Open(ctx, b.dsn)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// size opens the store again, the hub having closed it, and returns the
// size of its tables.
func (b postgresBackend) size(ctx context.Context, _ string) (int64, int, error) {
	st, err := postgres.Open(ctx, b.dsn)
	if err != nil {
		return 0, 0, err
	}
	defer st.Close()
	n, err := st.Size(ctx)
	return n, 0, err
}

// runPostgres runs the phases that depend on the hub's store again — the
// background insert, publish, overlaps with the in-memory reference, and
// the store's size at rest — with a development stack of its own in
// dir/postgres whose hub keeps its store in a new schema of the store
// URL's database. The schema is dropped afterwards, whatever happens.
func runPostgres(ctx context.Context, dir string, key *oprf.PrivateKey, o Options, p *progressWriter) (_ *Postgres, err error) {
	p = p.sub("postgres")
	pl := newPlan(o)
	sc, srv, err := createSchema(ctx, o.Store)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, sc.drop(ctx)) }()
	pg := &Postgres{Schema: sc.name, Server: srv}
	p.printf("the phases that depend on the store again, the hub's store in schema %s (PostgreSQL %s)", sc.name, srv.Version)

	e, err := startServers(ctx, filepath.Join(dir, "postgres"), postgresBackend{dsn: sc.dsn}, key, o, p)
	if err != nil {
		return nil, fmt.Errorf("start servers: %w", err)
	}
	defer e.stop()
	if o.Background > 0 {
		pg.Background = &BackgroundInsert{Tokens: int64(o.Background), Seconds: e.bgTime.Seconds()}
	}
	if pg.Publish.Publish, err = runPublish(ctx, e, pl, o, p); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	if pg.Overlaps.Overlaps, err = measureOverlaps(ctx, e, pl, o, p); err != nil {
		return nil, fmt.Errorf("overlaps: %w", err)
	}
	if err := measureVacuumed(ctx, e, sc, o, p, &pg.Overlaps); err != nil {
		return nil, fmt.Errorf("overlaps after VACUUM: %w", err)
	}
	if err := memoryJoin(ctx, e, pl, o, p, &pg.Overlaps.Overlaps); err != nil {
		return nil, fmt.Errorf("in-memory join: %w", err)
	}
	if err := e.stop(); err != nil {
		return nil, fmt.Errorf("stop servers: %w", err)
	}
	if pg.Storage.Storage, err = measureDisk(ctx, e, o); err != nil {
		return nil, fmt.Errorf("store size: %w", err)
	}
	p.printf("%.1f MiB in the schema's tables, %.1f B/token; dropping the schema", mib(pg.Storage.Bytes), pg.Storage.BytesPerToken)
	return pg, nil
}

// measureVacuumed vacuums the schema's tables, then times the store's join
// alone again.
func measureVacuumed(ctx context.Context, e *servers, sc benchSchema, o Options, p *progressWriter, ov *PostgresOverlaps) error {
	p.printf("overlaps: VACUUM (ANALYZE) of the schema's tables, as autovacuum would run in time, then the store's join alone again")
	d, err := sc.vacuum(ctx)
	if err != nil {
		return err
	}
	ov.VacuumSeconds = d.Seconds()
	var pairs int64
	if ov.VacuumedStoreP50Millis, ov.VacuumedStoreP95Millis, pairs, err = timeStoreJoin(ctx, e, o); err != nil {
		return err
	}
	if pairs != ov.Pairs {
		return fmt.Errorf("the store's join found %d pairs after VACUUM, %d before", pairs, ov.Pairs)
	}
	p.printf("overlaps: VACUUM took %.1fs; the store's join alone p50 %s ms after it, %s ms before", ov.VacuumSeconds, ms(ov.VacuumedStoreP50Millis), ms(ov.StoreP50Millis))
	return nil
}
