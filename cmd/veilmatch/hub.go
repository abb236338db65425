package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/veilmatch/veilmatch/crypto/oprf"
	"github.com/veilmatch/veilmatch/policy"
	"github.com/veilmatch/veilmatch/server/hub"
	"github.com/veilmatch/veilmatch/server/keys"
	"github.com/veilmatch/veilmatch/server/metrics"
	"github.com/veilmatch/veilmatch/server/store"
	"github.com/veilmatch/veilmatch/server/store/postgres"
)

func cmdHub(ctx context.Context, e env, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "backup":
			return cmdHubBackup(ctx, e, args[1:])
		case "restore":
			return cmdHubRestore(ctx, e, args[1:])
		case "migrate":
			return cmdHubMigrate(ctx, e, args[1:])
		}
	}
	fs := newFlagSet(e, "hub", "hub --data DIR (--dev-certs DIR | --cert F --key F --client-ca F) [flags]",
		"veilmatch hub --listen 127.0.0.1:7444 --data /var/lib/veilmatch --dev-certs certs/dev")
	var (
		tlsf       serverTLSFlags
		listen     = fs.String("listen", defaultHubAddr, "`ADDR` to listen on")
		data       = fs.String("data", "", "data `DIR` for the embedded SQLite store and the hub's keys (match references, checkpoint signing)")
		storeURL   = fs.String("store", "", "keep lists and the decision log in PostgreSQL at this `DSN` (postgres://…) instead of SQLite in --data; hub replicas share one")
		policyDir  = fs.String("policy-dir", "", "policy bundle `DIR` overriding the built-in policy (reloaded on change or SIGHUP)")
		reflection = fs.Bool("reflection", true, "enable gRPC server reflection")
		transit    = fs.String("vault-transit", "", "sign audit checkpoints with this Vault Transit ed25519 key `PATH` (mount/key) instead of a key file in --data")
		origin     = fs.String("log-origin", hub.DefaultLogOrigin, "the decision log's name in checkpoints")
		budget     = fs.Uint64("check-budget", hub.DefaultCheckBudget, "entries each agency may check per UTC day")
		refTTL     = fs.Duration("match-ref-ttl", hub.DefaultMatchRefTTL, "how long a match reference may be turned into a disclosure request")
		watchPoll  = fs.Duration("watch-poll", hub.DefaultWatchPoll, "how often watches look for alerts committed through other replicas (this hub's own wake them at once)")
		trust      trustedKeys
	)
	fs.Var(&trust, "trust-key", "trust the key server's OPRF key `ID=HEX` (its public key) without an endorsement; repeatable")
	var (
		vf vaultFlags
		mf metricsFlags
	)
	tlsf.register(fs)
	vf.register(fs)
	mf.register(fs, "")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *data == "" {
		return usagef("", "--data is required")
	}
	tlsCfg, err := tlsf.load("hub", e.stderr)
	if err != nil {
		return err
	}
	pol, err := loadPolicy(ctx, *policyDir)
	if err != nil {
		return err
	}
	m, waitMetrics, err := mf.start(ctx)
	if err != nil {
		return err
	}
	tlsf.watch(ctx, "hub", m)
	var signer hub.Signer
	if *transit != "" {
		mount, name, err := keys.SplitMountPath(*transit)
		if err != nil {
			return usagef("", "--vault-transit: %v", err)
		}
		v, err := vf.dial(ctx)
		if err != nil {
			return err
		}
		defer v.Close()
		if signer, err = v.TransitSigner(ctx, mount, name, *origin); err != nil {
			return err
		}
	}
	st, err := openStore(ctx, *storeURL)
	if err != nil {
		return err
	}
	srv, err := hub.New(ctx, hub.Config{Listen: *listen, TLS: tlsCfg, DataDir: *data, Store: st, Policy: pol, Reflection: *reflection, Metrics: m,
		Signer: signer, LogOrigin: *origin, CheckBudget: *budget, MatchRefTTL: *refTTL, WatchPoll: *watchPoll, TrustedKeys: trust})
	if err != nil {
		if st != nil {
			st.Close()
		}
		return err
	}
	where := "SQLite in " + *data
	if st != nil {
		where = "PostgreSQL, keys in " + *data
	}
	fmt.Fprintf(e.stderr, "veilmatch: hub listening on %s (%s)\n", srv.Addr(), where)
	return errors.Join(srv.Serve(ctx), waitMetrics())
}

// openStore opens the PostgreSQL store at dsn, or returns nil (SQLite)
// when dsn is empty.
func openStore(ctx context.Context, dsn string) (store.Store, error) {
	if dsn == "" {
		return nil, nil
	}
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return nil, usagef("for example --store postgres://veilmatch@db.example:5432/veilmatch", "--store takes a PostgreSQL URL (postgres://…)")
	}
	st, err := postgres.Open(ctx, dsn)
	if err != nil {
		return nil, withHint(err, "is the PostgreSQL server up, and may this user create tables in the database?")
	}
	return st, nil
}

// trustedKeys is the repeatable --trust-key flag: key server public keys
// the hub's operator trusts, as ID=HEX.
type trustedKeys []oprf.PublicKey

func (t *trustedKeys) String() string {
	ids := make([]string, len(*t))
	for i, k := range *t {
		ids[i] = k.KeyID
	}
	return strings.Join(ids, ",")
}

func (t *trustedKeys) Set(v string) error {
	id, h, ok := strings.Cut(v, "=")
	b, err := hex.DecodeString(h)
	if !ok || err != nil || len(b) != oprf.ElementSize || !oprf.ValidKeyID(id) {
		return fmt.Errorf("want KEY_ID=HEX, the key id and its %d-byte public key in hex (as 'veilmatch keyserver public-key' prints)", oprf.ElementSize)
	}
	*t = append(*t, oprf.PublicKey{KeyID: id, Bytes: b})
	return nil
}

// loadPolicy loads the policy engine (built in, or from dir) and, for a
// directory, reloads it on file changes and on SIGHUP until ctx is done.
// A bundle that fails validation is refused and the previous one kept.
func loadPolicy(ctx context.Context, dir string) (*policy.Engine, error) {
	pol, err := policy.New(ctx, policy.Options{Dir: dir, Logger: slog.Default()})
	if err != nil {
		return nil, fmt.Errorf("load policy: %w", err)
	}
	if dir == "" {
		return pol, nil
	}
	go pol.Watch(ctx)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := pol.Reload(ctx); err != nil {
					slog.Error("policy reload refused; the previous policy stays in force", "error", err)
				} else {
					slog.Info("policy reloaded", "policy_revision", pol.Revision())
				}
			}
		}
	}()
	return pol, nil
}

// defaultMetricsAddr is where `veilmatch dev` serves Prometheus metrics.
const defaultMetricsAddr = "127.0.0.1:7445"

// metricsFlags are the Prometheus flags of the servers.
type metricsFlags struct {
	addr      string
	perAgency bool
}

func (f *metricsFlags) register(fs *flag.FlagSet, def string) {
	fs.StringVar(&f.addr, "metrics-addr", def, "Prometheus metrics listen `ADDR`, unauthenticated and for the operator only (\":PORT\" binds to loopback; empty: off)")
	fs.BoolVar(&f.perAgency, "metrics-per-agency", false, "label evaluation, refusal and publish counters with the agency (off: totals only)")
}

// start serves the metrics until ctx is done; with no address it returns
// nil metrics (recording nothing).
func (f *metricsFlags) start(ctx context.Context) (*metrics.Metrics, func() error, error) {
	if f.addr == "" {
		return nil, func() error { return nil }, nil
	}
	m := metrics.New(metrics.Options{PerAgency: f.perAgency, Version: strings.Fields(version())[0]})
	_, wait, err := m.Serve(ctx, f.addr, slog.Default())
	if err != nil {
		return nil, nil, err
	}
	return m, wait, nil
}
