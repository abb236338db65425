package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/veilmatch/veilmatch/crypto/oprf"
	"github.com/veilmatch/veilmatch/server/keys"
	"github.com/veilmatch/veilmatch/server/keyserver"
	"github.com/veilmatch/veilmatch/server/quota"
)

func cmdKeyserver(ctx context.Context, e env, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "init-key":
			return cmdInitKey(ctx, e, args[1:])
		case "public-key":
			return cmdPublicKey(e, args[1:])
		case "split-key":
			return cmdSplitKey(e, args[1:])
		case "dkg":
			return cmdDKG(e, args[1:])
		case "reshare":
			return cmdReshare(e, args[1:])
		}
	}
	fs := newFlagSet(e, "keyserver", "keyserver --oprf-key FILE (--dev-certs DIR | --cert F --key F --client-ca F) [flags]",
		"veilmatch keyserver --listen 127.0.0.1:7443 --oprf-key oprf.key --dev-certs certs/dev")
	var (
		tlsf       serverTLSFlags
		listen     = fs.String("listen", "127.0.0.1:7443", "`ADDR` to listen on")
		keyFile    = fs.String("oprf-key", "", "OPRF key `FILE` (created by 'veilmatch keyserver init-key'), or one share of a threshold key (also --share-file)")
		usageLog   = fs.String("usage-log", "", "quota journal `FILE` (default: quota.jsonl beside the key file)")
		maxBatch   = fs.Int("max-batch", keyserver.DefaultMaxBatch, "largest batch of blinded elements accepted")
		def        = quota.DefaultLimits()
		rate       = fs.Float64("quota-rate", def.Rate, "evaluations per second per agency")
		burst      = fs.Int("quota-burst", def.Burst, "token bucket size per agency (at least --max-batch)")
		daily      = fs.Int("quota-daily", def.Daily, "evaluations per agency per UTC day")
		reflection = fs.Bool("reflection", true, "enable gRPC server reflection")
		vaultKV    = fs.String("vault-kv", "", "read the OPRF key from this Vault KV v2 `PATH` (mount/path) instead of --oprf-key; each version is an epoch")
		vaultGrace = fs.Duration("vault-grace", 7*24*time.Hour, "how long the previous KV version's key stays available after a rotation")
		reportHub  = fs.String("report-hub", "", "hub `ADDR` to deliver quota use and refusals to (its decision log); uses --cert/--key as client identity")
		policyDir  = fs.String("policy-dir", "", "policy bundle `DIR` whose agency registry says who may evaluate: the hub's bundle (default: the built-in policy; reloaded on change or SIGHUP)")
	)
	var (
		vf vaultFlags
		mf metricsFlags
	)
	tlsf.register(fs)
	vf.register(fs)
	mf.register(fs, "")
	fs.StringVar(keyFile, "share-file", "", "one share of a threshold key: the same as --oprf-key `FILE`")
	renamed(fs, "key-file", "oprf-key")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if (*keyFile == "") == (*vaultKV == "") {
		return usagef("create a key with: veilmatch keyserver init-key --out oprf.key (or --vault PATH)", "give exactly one of --oprf-key and --vault-kv")
	}
	name := devServerName(*keyFile)
	tlsCfg, err := tlsf.load(name, e.stderr)
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
		clientTLS, err := tlsf.client(name)
		if err != nil {
			return err
		}
		cfg.Report = &keyserver.ReportConfig{Hub: *reportHub, TLS: clientTLS, CursorFile: *usageLog + ".cursor"}
	}
	m, waitMetrics, err := mf.start(ctx)
	if err != nil {
		return err
	}
	cfg.Metrics = m
	tlsf.watch(ctx, name, m)
	srv, err := keyserver.New(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "veilmatch: key server listening on %s\n", srv.Addr())
	return errors.Join(srv.Serve(ctx), waitMetrics())
}

// devServerName is the development certificate a key server uses: that of
// keyserver-<i> for share i of a threshold key, else keyserver's.
func devServerName(keyFile string) string {
	if keyFile != "" {
		if k, err := oprf.LoadKeyFile(keyFile); err == nil {
			if i, _, ok := k.Share(); ok {
				return fmt.Sprintf("keyserver-%d", i)
			}
		}
	}
	return "keyserver"
}

func cmdSplitKey(e env, args []string) error {
	fs := newFlagSet(e, "keyserver split-key", "keyserver split-key --oprf-key FILE --shares N --threshold T --out DIR",
		"veilmatch keyserver split-key --oprf-key oprf.key --shares 3 --threshold 2 --out shares")
	keyFile := fs.String("oprf-key", "", "the whole OPRF key `FILE` to split (also --key-file)")
	fs.StringVar(keyFile, "key-file", "", "the same as --oprf-key `FILE`")
	n := fs.Int("shares", 0, "`N`, the number of shares (key servers)")
	t := fs.Int("threshold", 0, "`T`, how many shares evaluate (1 ≤ T ≤ N)")
	out := fs.String("out", "", "`DIR` to write share-1.json … share-N.json to (mode 0600, never overwritten)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *keyFile == "" || *out == "":
		return usagef("", "--oprf-key and --out are required")
	case *t < 1 || *t > *n || *n > oprf.MaxShares:
		return usagef("", "--threshold %d of --shares %d: want 1 ≤ T ≤ N ≤ %d", *t, *n, oprf.MaxShares)
	}
	key, err := oprf.LoadKeyFile(*keyFile)
	if err != nil {
		return err
	}
	shares, err := oprf.Split(key, *n, *t)
	if err != nil {
		return err
	}
	if err := writeShares(*out, shares); err != nil {
		return err
	}
	_, set, _ := shares[0].Share()
	fmt.Fprintf(e.stdout, "split key %s into %d shares, any %d of which evaluate; tokens are unchanged\n", key.KeyID(), *n, *t)
	printShares(e, *out, set)
	fmt.Fprintf(e.stderr, "veilmatch: warning: %s still holds the whole key: whoever has it alone can compute the token of any identifier. "+
		"Once the share servers run, destroy it (for example: shred -u %s) and every copy of it.\n", *keyFile, *keyFile)
	return nil
}

// writeShares writes each share to DIR/share-<i>.json.
func writeShares(dir string, shares []*oprf.PrivateKey) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, sh := range shares {
		i, _, _ := sh.Share()
		if err := oprf.WriteKeyFile(filepath.Join(dir, fmt.Sprintf("share-%d.json", i)), sh); err != nil {
			return err
		}
	}
	return nil
}

// printShares lists a key set's share files and keys, for the operators to
// compare out of band.
func printShares(e env, dir string, set oprf.KeySet) {
	fmt.Fprintf(e.stdout, "group key %s=%s (generation %d)\n", set.KeyID, hex.EncodeToString(set.GroupKey), set.Generation)
	for _, sh := range set.Shares {
		fmt.Fprintf(e.stdout, "share %d  %s  key %x\n", sh.Index, filepath.Join(dir, fmt.Sprintf("share-%d.json", sh.Index)), sh.PublicKey)
	}
	fmt.Fprintf(e.stdout, "serve each with: veilmatch keyserver --share-file %s …\n", filepath.Join(dir, "share-N.json"))
}

func cmdInitKey(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "keyserver init-key", "keyserver init-key --out FILE [--key-id ID] [--endorse-with OLD]",
		"veilmatch keyserver init-key --out /etc/veilmatch/oprf-2027.key --endorse-with /etc/veilmatch/oprf.key")
	out := fs.String("out", "", "`FILE` to create (mode 0600; never overwritten)")
	vaultPath := fs.String("vault", "", "write the key as a new version of this Vault KV v2 `PATH` (mount/path) instead; it never touches disk; the newest version's key endorses it")
	keyID := fs.String("key-id", "", "key id (epoch); default k<date>-<random>")
	endorseWith := fs.String("endorse-with", "", "key `FILE` of the key being rotated out: it endorses the new key, so agencies and the hub that trust it trust the new one")
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
	if *endorseWith != "" {
		if *vaultPath != "" {
			return usagef("", "--endorse-with is for key files; with --vault the newest version's key endorses the new key")
		}
		prev, err := oprf.LoadKeyFile(*endorseWith)
		if err != nil {
			return err
		}
		if key, err = oprf.EndorseKey(prev, key); err != nil {
			return err
		}
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
	if err := os.MkdirAll(filepath.Dir(*out), 0o700); err != nil {
		return err
	}
	if err := oprf.WriteKeyFile(*out, key); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote OPRF key %s to %s\n", key.KeyID(), *out)
	if n := len(key.Endorsements()); n > 0 {
		fmt.Fprintf(e.stdout, "endorsed by %s (a chain of %s); serve it with: veilmatch keyserver --oprf-key %s …\n",
			*endorseWith, plural(n, "endorsement", "endorsements"), *out)
	}
	return nil
}

func cmdPublicKey(e env, args []string) error {
	fs := newFlagSet(e, "keyserver public-key", "keyserver public-key --oprf-key FILE", "veilmatch keyserver public-key --oprf-key /etc/veilmatch/oprf.key")
	keyFile := fs.String("oprf-key", "", "OPRF key `FILE`")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *keyFile == "" {
		return usagef("", "--oprf-key is required")
	}
	k, err := oprf.LoadKeyFile(*keyFile)
	if err != nil {
		return err
	}
	pub := k.Public()
	// KEY_ID=HEX: what 'veilmatch hub --trust-key' and an agency's
	// pinned_keys take.
	fmt.Fprintf(e.stdout, "%s=%s\n", pub.KeyID, hex.EncodeToString(pub.Bytes))
	return nil
}
