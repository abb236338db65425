package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/veilmatch/veilmatch/crypto/oprf"
	"github.com/veilmatch/veilmatch/server/keyserver"
	"github.com/veilmatch/veilmatch/server/quota"
)

func cmdKeyserver(ctx context.Context, e env, args []string) error {
	if len(args) > 0 && args[0] == "init-key" {
		return cmdInitKey(e, args[1:])
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
		reportHub  = fs.String("report-hub", "", "hub `ADDR` to deliver quota use and refusals to (its decision log); uses --cert/--key as client identity")
	)
	tlsf.register(fs)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *keyFile == "" {
		return usagef("create one with: veilmatch keyserver init-key --out oprf.key", "--key-file is required")
	}
	tlsCfg, err := tlsf.load("keyserver", e.stderr)
	if err != nil {
		return err
	}
	key, err := oprf.LoadKeyFile(*keyFile)
	if err != nil {
		return err
	}
	if *usageLog == "" {
		*usageLog = filepath.Join(filepath.Dir(*keyFile), "quota.jsonl")
	}
	cfg := keyserver.Config{
		Listen: *listen, TLS: tlsCfg, Keys: []*oprf.PrivateKey{key}, UsageLog: *usageLog,
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
	fmt.Fprintf(e.stderr, "veilmatch: key server listening on %s (key id %s)\n", srv.Addr(), key.KeyID())
	return errors.Join(srv.Serve(ctx), waitMetrics())
}

func cmdInitKey(e env, args []string) error {
	fs := newFlagSet(e, "keyserver init-key", "keyserver init-key --out FILE [--key-id ID]", "veilmatch keyserver init-key --out /etc/veilmatch/oprf.key")
	out := fs.String("out", "", "`FILE` to create (mode 0600; never overwritten)")
	keyID := fs.String("key-id", "", "key id (epoch); default k<date>-<random>")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("", "--out is required")
	}
	if *keyID == "" {
		*keyID = oprf.NewKeyID(time.Now())
	}
	key, err := oprf.GenerateKey(*keyID)
	if err != nil {
		return err
	}
	if err := oprf.WriteKeyFile(*out, key); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote OPRF key %s to %s\n", key.KeyID(), *out)
	return nil
}
