package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/veilmatch/veilmatch/certs"
	"github.com/veilmatch/veilmatch/internal/devstack"
	"github.com/veilmatch/veilmatch/server/hub"
)

const devBanner = `
  ********************************************************************
  *  veilmatch DEVELOPMENT setup: key server and hub in ONE process.  *
  *  Whoever runs both services can evaluate the OPRF on guessed      *
  *  phone numbers and test them against the hub's tokens (a          *
  *  dictionary attack). In production, separate operators must run   *
  *  them. Certificates are the public development set: DEV ONLY.     *
  ********************************************************************
`

// defaultDevDir is where 'veilmatch dev' keeps its data by default.
const defaultDevDir = ".veilmatch-dev"

// devCheckpointKeyFile is where 'veilmatch dev' writes the hub's checkpoint
// verifier key by default, and where 'audit verify --as' looks for it.
var devCheckpointKeyFile = filepath.Join(defaultDevDir, "hub", hub.CheckpointPubFile)

func cmdDev(ctx context.Context, e env, args []string) error {
	if len(args) > 0 && args[0] == "certs" {
		return cmdDevCerts(e, args[1:])
	}
	fs := newFlagSet(e, "dev", "dev [--data DIR] [--hub-listen ADDR] [--keyserver-listen ADDR[,ADDR...]] [--threshold T-of-N]", "veilmatch dev --data ./.veilmatch-dev")
	dir := fs.String("data", defaultDevDir, "data `DIR` for the key, the quota journal and the hub's database (kept across restarts)")
	hubAddr := fs.String("hub-listen", defaultHubAddr, "`ADDR` the hub listens on")
	ksAddr := fs.String("keyserver-listen", "", "`ADDR` the key server listens on (default "+defaultKeyserverAddr+"); with --threshold, one address per key server (default "+defaultThresholdAddrs+"…)")
	threshold := fs.String("threshold", "", "run N key servers, each holding one share of a `T-of-N` key made by a distributed key generation among them, such as 2-of-3")
	certDir := fs.String("dev-certs", "", "development certificate `DIR` laid out like certs/dev (default: built in)")
	policyDir := fs.String("policy-dir", "", "policy bundle `DIR` overriding the built-in policy")
	storeURL := fs.String("store", "", "keep the hub's lists and decision log in PostgreSQL at this `DSN` (postgres://…) instead of SQLite")
	renamed(fs, "dir", "data")
	renamed(fs, "hub-addr", "hub-listen")
	renamed(fs, "keyserver-addr", "keyserver-listen")
	renamed(fs, "certs", "dev-certs")
	var mf metricsFlags
	mf.register(fs, defaultMetricsAddr)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	cfg := devstack.Config{Dir: *dir, HubAddr: *hubAddr, Certs: *certDir, ReportEvery: 10 * time.Second, Reflection: true}
	if err := devKeyServers(&cfg, *ksAddr, *threshold); err != nil {
		return err
	}
	fmt.Fprint(e.stderr, devBanner)
	pol, err := loadPolicy(ctx, *policyDir)
	if err != nil {
		return err
	}
	m, waitMetrics, err := mf.start(ctx)
	if err != nil {
		return err
	}
	cfg.Policy, cfg.Metrics = pol, m
	if cfg.Store, err = openStore(ctx, *storeURL); err != nil {
		return err
	}
	st, err := devstack.New(ctx, cfg)
	if err != nil {
		if cfg.Store != nil {
			cfg.Store.Close()
		}
		return err
	}
	keyFile := filepath.Join(st.HubDir, hub.CheckpointPubFile)
	printKeyServers(e, st)
	db := filepath.Join(st.HubDir, hub.DBFile)
	if *storeURL != "" {
		db = "PostgreSQL"
	}
	fmt.Fprintf(e.stdout, "hub         %s  (database %s)\n", st.Hub.Addr(), db)
	fmt.Fprintf(e.stdout, "audit key   %s  (pin it: %s)\n", keyFile, auditVerifyCommand(keyFile))
	if mf.addr != "" {
		fmt.Fprintf(e.stdout, "metrics     http://%s/metrics  (operator only, no authentication)\n", mf.addr)
	}
	fmt.Fprintf(e.stdout, "parties     police-gb, police-us, police-th (law enforcement), ngo-shelter (NGO), auditor\n")
	fmt.Fprintf(e.stdout, "try         veilmatch agency publish --as police-gb --list suspects --kind phone --category suspect --region GB FILE.csv\n")
	fmt.Fprintf(e.stdout, "stop        Ctrl-C (data stays in %s)\n", *dir)
	err = errors.Join(st.Serve(ctx), waitMetrics())
	fmt.Fprintln(e.stderr, "veilmatch: dev stopped")
	return err
}

// defaultThresholdAddrs is where the key servers of 'veilmatch dev
// --threshold' listen by default: 127.0.0.1:7461, 7462, ….
const (
	defaultThresholdAddrs = "127.0.0.1:7461,127.0.0.1:7462"
	firstThresholdPort    = 7461
)

// devKeyServers sets the key servers of the dev stack from --keyserver-listen
// and --threshold.
func devKeyServers(cfg *devstack.Config, listen, threshold string) error {
	if threshold == "" {
		cfg.KeyServerAddr = cmp.Or(listen, defaultKeyserverAddr)
		if strings.Contains(cfg.KeyServerAddr, ",") {
			return usagef("several key servers hold the shares of a threshold key: add --threshold T-of-N", "--keyserver-listen takes one address without --threshold")
		}
		return nil
	}
	var t, n int
	if _, err := fmt.Sscanf(threshold, "%d-of-%d", &t, &n); err != nil || fmt.Sprintf("%d-of-%d", t, n) != threshold || t < 1 || t > n || n > 5 {
		return usagef("for example --threshold 2-of-3", "--threshold %q: want T-of-N with 1 ≤ T ≤ N ≤ 5 (the development certificates keyserver-1 to keyserver-5)", threshold)
	}
	addrs := splitAddrs(listen)
	if listen == "" {
		for i := range n {
			addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", firstThresholdPort+i))
		}
	}
	if len(addrs) != n {
		return usagef("", "--keyserver-listen names %d addresses for %d key servers", len(addrs), n)
	}
	cfg.Threshold = &devstack.Threshold{T: t, N: n, Addrs: addrs}
	return nil
}

// printKeyServers prints the key server, or the key servers of a threshold
// key and how to point agencies at them.
func printKeyServers(e env, st *devstack.Stack) {
	if len(st.Shares) == 0 {
		fmt.Fprintf(e.stdout, "key server  %s  (key %s)\n", st.KeyServer.Addr(), st.Key.KeyID())
		return
	}
	_, set, _ := st.Shares[0].Share()
	for i, ks := range st.KeyServers {
		fmt.Fprintf(e.stdout, "key server  %s  (share %d of %d-of-%d key %s)\n", ks.Addr(), i+1, set.Threshold, len(set.Shares), set.KeyID)
	}
	fmt.Fprintf(e.stdout, "agencies    export VEILMATCH_KEYSERVER=%s\n", st.KeyServerAddrs())
}

// auditVerifyCommand returns the command that verifies the decision log of
// a dev hub whose checkpoint key is in keyFile.
func auditVerifyCommand(keyFile string) string {
	if keyFile == devCheckpointKeyFile {
		return "veilmatch audit verify --as auditor"
	}
	return "veilmatch audit verify --as auditor --verifier-key-file " + keyFile
}

func cmdDevCerts(e env, args []string) error {
	fs := newFlagSet(e, "dev certs", "dev certs --out DIR", "veilmatch dev certs --out certs/dev")
	out := fs.String("out", "", "`DIR` to write the development CA and certificates to")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("", "--out is required")
	}
	if err := certs.Generate(*out, certs.Options{}); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote development CA and certificates to %s (DEV ONLY)\n", *out)
	return nil
}
