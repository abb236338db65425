package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/veilmatch/veilmatch/policy"
	"github.com/veilmatch/veilmatch/server/hub"
	"github.com/veilmatch/veilmatch/server/keys"
	"github.com/veilmatch/veilmatch/server/metrics"
)

func cmdHub(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "hub", "hub --data DIR (--dev-certs DIR | --cert F --key F --client-ca F) [flags]",
		"veilmatch hub --listen 127.0.0.1:7444 --data /var/lib/veilmatch --dev-certs certs/dev")
	var (
		tlsf       serverTLSFlags
		listen     = fs.String("listen", defaultHubAddr, "`ADDR` to listen on")
		data       = fs.String("data", "", "data `DIR` for the embedded SQLite store")
		policyDir  = fs.String("policy-dir", "", "policy bundle `DIR` overriding the built-in policy (reloaded on change or SIGHUP)")
		reflection = fs.Bool("reflection", true, "enable gRPC server reflection")
		metricsAdr = fs.String("metrics-addr", "", "Prometheus metrics listen `ADDR` (empty: off)")
		transit    = fs.String("vault-transit", "", "sign audit checkpoints with this Vault Transit ed25519 key `PATH` (mount/key) instead of a key file in --data")
		origin     = fs.String("log-origin", hub.DefaultLogOrigin, "the decision log's name in checkpoints")
	)
	var vf vaultFlags
	tlsf.register(fs)
	vf.register(fs)
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
	m, waitMetrics, err := startMetrics(ctx, *metricsAdr)
	if err != nil {
		return err
	}
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
	srv, err := hub.New(ctx, hub.Config{Listen: *listen, TLS: tlsCfg, DataDir: *data, Policy: pol, Reflection: *reflection, Metrics: m,
		Signer: signer, LogOrigin: *origin})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "veilmatch: hub listening on %s (data in %s)\n", srv.Addr(), *data)
	return errors.Join(srv.Serve(ctx), waitMetrics())
}

// loadPolicy loads the policy engine (built in, or from dir) and, for a
// directory, reloads it on file changes and on SIGHUP until ctx is done.
// A bundle that fails validation is refused and the previous one kept.
func loadPolicy(ctx context.Context, dir string) (*policy.Engine, error) {
	pol, err := policy.New(ctx, policy.Options{Dir: dir})
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

// startMetrics serves Prometheus metrics on addr until ctx is done; with an
// empty addr it returns nil metrics (recording nothing).
func startMetrics(ctx context.Context, addr string) (*metrics.Metrics, func() error, error) {
	if addr == "" {
		return nil, func() error { return nil }, nil
	}
	m := metrics.New(metrics.Options{})
	_, wait, err := m.Serve(ctx, addr, slog.Default())
	if err != nil {
		return nil, nil, err
	}
	return m, wait, nil
}
