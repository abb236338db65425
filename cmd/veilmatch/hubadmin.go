package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/veilmatch/veilmatch/internal/dirlock"
	"github.com/veilmatch/veilmatch/server/hub"
	"github.com/veilmatch/veilmatch/server/store/postgres"
	"github.com/veilmatch/veilmatch/server/store/sqlite"
)

// The hub's administration commands: backup and restore of the embedded
// SQLite store, and its migration to PostgreSQL.

func cmdHubBackup(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "hub backup", "hub backup --data DIR --out FILE",
		"veilmatch hub backup --data /var/lib/veilmatch --out /backup/hub-2026-11-30.db")
	data := fs.String("data", "", "the hub's data `DIR`")
	out := fs.String("out", "", "backup `FILE` to create (never replaced)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *data == "" || *out == "" {
		return usagef("", "--data and --out are required")
	}
	path := filepath.Join(*data, hub.DBFile)
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("hub database: %w", err)
	}
	// The hub may be running: SQLite lets a second process read a
	// consistent snapshot while it writes.
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Backup(ctx, *out); err != nil {
		return err
	}
	size, root, err := st.LogHead(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "backed up %s to %s (decision log: %d records, root %x)\n", path, *out, size, root)
	fmt.Fprintln(e.stdout, "the hub's keys are files beside the database: back up match-ref.key and checkpoint.key with it (or keep them in Vault)")
	return nil
}

func cmdHubRestore(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "hub restore", "hub restore --from FILE --data DIR",
		"veilmatch hub restore --from /backup/hub-2026-11-30.db --data /var/lib/veilmatch")
	from := fs.String("from", "", "backup `FILE` made by 'veilmatch hub backup'")
	data := fs.String("data", "", "the hub's data `DIR` (the hub must be stopped)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *from == "" || *data == "" {
		return usagef("", "--from and --data are required")
	}
	if err := os.MkdirAll(*data, 0o700); err != nil {
		return err
	}
	lock, err := dirlock.Acquire(*data)
	if err != nil {
		return withHint(fmt.Errorf("restore: %w", err), "stop the hub first: a restore replaces its database")
	}
	defer lock.Release()
	b, err := sqlite.Open(ctx, *from)
	if err != nil {
		return err
	}
	err = b.IntegrityCheck(ctx)
	size, root, headErr := b.LogHead(ctx)
	b.Close()
	if err = errors.Join(err, headErr); err != nil {
		return fmt.Errorf("restore: the backup %s: %w", *from, err)
	}
	dst := filepath.Join(*data, hub.DBFile)
	tmp := dst + ".restore"
	if err := copyFile(*from, tmp); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	for _, stale := range []string{dst + "-wal", dst + "-shm"} {
		if err := os.Remove(stale); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("restore: %w", err)
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	fmt.Fprintf(e.stdout, "restored %s from %s (decision log: %d records, root %x)\n", dst, *from, size, root)
	fmt.Fprintln(e.stdout, "auditors whose last verified checkpoint is newer than the backup will see the log shrink: tell them, and why")
	return nil
}

// copyFile copies src to a new file dst (mode 0600) and syncs it.
func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func cmdHubMigrate(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "hub migrate", "hub migrate --from DIR --to DSN",
		"veilmatch hub migrate --from /var/lib/veilmatch --to postgres://veilmatch@db.example/veilmatch")
	from := fs.String("from", "", "the SQLite hub's data `DIR` (the hub stopped)")
	to := fs.String("to", "", "the PostgreSQL `DSN` (postgres://…) of a new, empty database")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *from == "" || *to == "" {
		return usagef("", "--from and --to are required")
	}
	lock, err := dirlock.Acquire(*from)
	if err != nil {
		return withHint(fmt.Errorf("migrate: %w", err), "stop the hub first: its database must not change while it is copied")
	}
	defer lock.Release()
	st, err := openStore(ctx, *to)
	if err != nil {
		return err
	}
	pg := st.(*postgres.Store)
	defer pg.Close()
	rep, err := pg.ImportSQLite(ctx, filepath.Join(*from, hub.DBFile))
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "copied %d list versions, %d tokens, %d decision records, %d disclosure requests and %d notices\n",
		rep.Lists, rep.Tokens, rep.Records, rep.Requests, rep.Notices)
	fmt.Fprintf(e.stdout, "standing matches: %d pairs, %d match sets, %d match events, %d alerted pairs, %d retractions\n",
		rep.Pairs, rep.Sets, rep.Events, rep.Alerted, rep.Retractions)
	fmt.Fprintf(e.stdout, "decision log: %d records, root %x (the same as before: auditors' saved state verifies)\n", rep.LogSize, rep.LogRoot)
	fmt.Fprintf(e.stdout, "start the hub with: veilmatch hub --data %s --store %s … (its keys stay in --data)\n", *from, redactDSN(*to))
	return nil
}

// redactDSN hides the password of a PostgreSQL URL.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "postgres://…"
	}
	return u.Redacted()
}
