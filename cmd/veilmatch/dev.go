package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
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
	fs := newFlagSet(e, "dev", "dev [--data DIR] [--hub-listen ADDR] [--keyserver-listen ADDR]", "veilmatch dev --data ./.veilmatch-dev")
	dir := fs.String("data", defaultDevDir, "data `DIR` for the key, the quota journal and the hub's database (kept across restarts)")
	hubAddr := fs.String("hub-listen", defaultHubAddr, "`ADDR` the hub listens on")
	ksAddr := fs.String("keyserver-listen", defaultKeyserverAddr, "`ADDR` the key server listens on")
	certDir := fs.String("dev-certs", "", "development certificate `DIR` laid out like certs/dev (default: built in)")
	policyDir := fs.String("policy-dir", "", "policy bundle `DIR` overriding the built-in policy")
	renamed(fs, "dir", "data")
	renamed(fs, "hub-addr", "hub-listen")
	renamed(fs, "keyserver-addr", "keyserver-listen")
	renamed(fs, "certs", "dev-certs")
	var mf metricsFlags
	mf.register(fs, defaultMetricsAddr)
	if _, err := parse(fs, args); err != nil {
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
	st, err := devstack.New(ctx, devstack.Config{
		Dir: *dir, KeyServerAddr: *ksAddr, HubAddr: *hubAddr, Certs: *certDir, Policy: pol,
		ReportEvery: 10 * time.Second, Reflection: true, Metrics: m,
	})
	if err != nil {
		return err
	}
	keyFile := filepath.Join(st.HubDir, hub.CheckpointPubFile)
	fmt.Fprintf(e.stdout, "key server  %s  (key %s)\nhub         %s  (database %s)\n", st.KeyServer.Addr(), st.Key.KeyID(), st.Hub.Addr(), filepath.Join(st.HubDir, hub.DBFile))
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
