package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/veilmatch/veilmatch/crypto/oprf"
	"github.com/veilmatch/veilmatch/server/keys"
	"github.com/veilmatch/veilmatch/server/keyserver"
	"github.com/veilmatch/veilmatch/server/quota"
)

func cmdKeyserver(ctx context.Context, e env, args []string) error {
	if len(args) > 0 && args[0] == "init-key" {
		return cmdInitKey(ctx, e, args[1:])
	}
	fs := newFlagSet(e, "keyserver", "keyserver --key-file FILE (--dev-certs DIR | --cert F --key F --client-ca F) [flags]",
		"veilmatch keyserver --listen 127.0.0.1:7443 --key-file oprf.key --dev-certs certs/dev")
	var (
		tlsf       serverTLSFlags
		listen     = fs.String("listen", "127.0.0.1:7443", "`ADDR` to listen on")
		keyFile    = fs.String("key-file", "", "OPRF key `FILE` (created by 'veilmatch keyserver init-key')")
		usageLog   = fs.String("usage-log", "", "quota journal `FILE` (default: quota.jsonl beside the key file)")
		maxBatch   = fs.Int("max-batch", keyserver.DefaultMaxBatch, "largest batch of blinded elements accepted")
		def        = quota.DefaultLimits()
		rate       = fs.Float64("quota-rate", def.Rate, "evaluations per second per agency")
		burst      = fs.Int("quota-burst", def.Burst, "token bucket size per agency (at least --max-batch)")
		daily      = fs.Int("quota-daily", def.Daily, "evaluations per agency per UTC day")
		reflection = fs.Bool("reflection", true, "enable gRPC server reflection")
		metricsAdr = fs.String("metrics-addr", "", "Prometheus metrics listen `ADDR` (empty: off)")
		vaultKV    = fs.String("vault-kv", "", "read the OPRF key from this Vault KV v2 `PATH` (mount/path) instead of --key-file; each version is an epoch")
		vaultGrace = fs.Duration("vault-grace", 7*24*time.Hour, "how long the previous KV version's key stays available after a rotation")
		reportHub  = fs.String("report-hub", "", "hub `ADDR` to deliver quota use and refusals to (its decision log); uses --cert/--key as client identity")
		policyDir  = fs.String("policy-dir", "", "policy bundle `DIR` whose agency registry says who may evaluate: the hub's bundle (default: the built-in policy; reloaded on change or SIGHUP)")
	)
	var vf vaultFlags
	tlsf.register(fs)
	vf.register(fs)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if (*keyFile == "") == (*vaultKV == "") {
		return usagef("create a key with: veilmatch keyserver init-key --out oprf.key (or --vault PATH)", "give exactly one of --key-file and --vault-kv")
	}
	tlsCfg, err := tlsf.load("keyserver", e.stderr)
	if err != nil {
		return err
	}
	var source keyserver.KeySource = keys.FileOPRF(*keyFile)
	if *vaultKV != "" {
		mount, path, err := keys.SplitMountPath(*vaultKV)
		if err != nil {
			return usagef("", "--vault-kv: %v", err)
		}
		v, err := vf.dial(ctx)
		if err != nil {
			return err
		}
		defer v.Close()
		source = v.OPRFSource(mount, path, *vaultGrace)
	}
	if *usageLog == "" {
		if *keyFile == "" {
			return usagef("", "--usage-log is required with --vault-kv")
		}
		*usageLog = filepath.Join(filepath.Dir(*keyFile), "quota.jsonl")
	}
	pol, err := loadPolicy(ctx, *policyDir)
	if err != nil {
		return err
	}
	cfg := keyserver.Config{
		Listen: *listen, TLS: tlsCfg, KeySource: source, UsageLog: *usageLog, Registry: pol,
		MaxBatch: *maxBatch, Quota: quota.Limits{Rate: *rate, Burst: *burst, Daily: *daily}, Reflection: *reflection,
	}
	if *reportHub != "" {
		clientTLS, err := tlsf.client("keyserver")
		if err != nil {
			return err
		}
		cfg.Report = &keyserver.ReportConfig{Hub: *reportHub, TLS: clientTLS, CursorFile: *usageLog + ".cursor"}
	}
	m, waitMetrics, err := startMetrics(ctx, *metricsAdr)
	if err != nil {
		return err
	}
	cfg.Metrics = m
	srv, err := keyserver.New(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "veilmatch: key server listening on %s\n", srv.Addr())
	return errors.Join(srv.Serve(ctx), waitMetrics())
}

func cmdInitKey(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "keyserver init-key", "keyserver init-key --out FILE [--key-id ID]", "veilmatch keyserver init-key --out /etc/veilmatch/oprf.key")
	out := fs.String("out", "", "`FILE` to create (mode 0600; never overwritten)")
	vaultPath := fs.String("vault", "", "write the key as a new version of this Vault KV v2 `PATH` (mount/path) instead; it never touches disk")
	keyID := fs.String("key-id", "", "key id (epoch); default k<date>-<random>")
	var vf vaultFlags
	vf.register(fs)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if (*out == "") == (*vaultPath == "") {
		return usagef("", "give exactly one of --out and --vault")
	}
	if *keyID == "" {
		*keyID = oprf.NewKeyID(time.Now())
	}
	key, err := oprf.GenerateKey(*keyID)
	if err != nil {
		return err
	}
	if *vaultPath != "" {
		mount, path, err := keys.SplitMountPath(*vaultPath)
		if err != nil {
			return usagef("", "--vault: %v", err)
		}
		v, err := vf.dial(ctx)
		if err != nil {
			return err
		}
		defer v.Close()
		version, err := v.WriteOPRFKey(ctx, mount, path, key)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "wrote OPRF key %s to Vault %s as version %d\n", key.KeyID(), *vaultPath, version)
		return nil
	}
	if err := oprf.WriteKeyFile(*out, key); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote OPRF key %s to %s\n", key.KeyID(), *out)
	return nil
}
