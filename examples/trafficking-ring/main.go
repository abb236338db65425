// Command trafficking-ring is a runnable cross-agency scenario with
// synthetic data: three police units in three jurisdictions and an NGO find
// where their watchlists overlap through a veilmatch hub, without handing
// each other a single raw identifier.
//
//	go run ./examples/trafficking-ring
//
// It starts a key server and a hub in-process on loopback with the
// development certificates, publishes each party's CSV file through the
// agency client library, and prints what every party learns.
package main

import (
	"bytes"
	"context"
	"embed"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/veilmatch/veilmatch/certs"
	"github.com/veilmatch/veilmatch/client"
	"github.com/veilmatch/veilmatch/client/normalize"
	"github.com/veilmatch/veilmatch/crypto/mtls"
	"github.com/veilmatch/veilmatch/crypto/oprf"
	"github.com/veilmatch/veilmatch/policy"
	"github.com/veilmatch/veilmatch/server/hub"
	"github.com/veilmatch/veilmatch/server/keyserver"
	"github.com/veilmatch/veilmatch/server/quota"
)

//go:embed *.csv
var data embed.FS

func main() {
	dir := flag.String("dir", "", "keep the key, the hub database and the agencies' state in `DIR` (default: a temporary directory, removed afterwards)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if *dir == "" {
		tmp, err := os.MkdirTemp("", "veilmatch-example-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "trafficking-ring:", err)
			os.Exit(1)
		}
		defer os.RemoveAll(tmp)
		*dir = tmp
	}
	if _, err := Run(ctx, os.Stdout, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "trafficking-ring:", err)
		os.Exit(1)
	}
}

// Outcome is what each query of the scenario returned, for tests.
type Outcome struct {
	Published map[string]client.PublishResult
	Overlaps  map[string]client.Result // by agency, of its phone list
	Emails    client.Result            // police-gb's e-mail list
	Check     client.Result            // ngo-shelter's victim-safe check
	// AfterCheck is police-gb's overlaps again, after the NGO's check.
	AfterCheck client.Result
	HubDB      string
}

// publication is one party's list.
type publication struct {
	agency, list, file, kind, category, region string
}

var publications = []publication{
	{"police-gb", "suspects", "police-gb.csv", "phone", "suspect", "GB"},
	{"police-us", "suspects", "police-us.csv", "phone", "suspect", "US"},
	{"police-th", "suspects", "police-th.csv", "phone", "suspect", "TH"},
	{"ngo-shelter", "victims", "ngo-shelter-victims.csv", "phone", "victim", "GB"},
	{"police-gb", "emails", "police-gb-emails.csv", "email", "suspect", ""},
	{"police-us", "emails", "police-us-emails.csv", "email", "suspect", ""},
}

// Run plays the scenario against servers it starts in dir and writes the
// narrative to w.
func Run(ctx context.Context, w io.Writer, dir string) (*Outcome, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ksAddr, hubAddr, dbPath, wait, err := startServers(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer func() { cancel(); _ = wait() }()

	fmt.Fprintf(w, "key server %s, hub %s (one process: development only)\n\n", ksAddr, hubAddr)
	out := &Outcome{Published: map[string]client.PublishResult{}, Overlaps: map[string]client.Result{}, HubDB: dbPath}
	clients := map[string]*client.Client{}
	for _, id := range []string{"police-gb", "police-us", "police-th", "ngo-shelter"} {
		tlsCfg, err := mtls.ClientConfigFS(certs.DevFS, mtls.DevFiles(".", id), "localhost")
		if err != nil {
			return nil, err
		}
		c, err := client.New(client.Config{Agency: id, Hub: hubAddr, KeyServer: ksAddr, TLS: tlsCfg, StateDir: filepath.Join(dir, "agency", id)})
		if err != nil {
			return nil, err
		}
		defer c.Close()
		clients[id] = c
	}

	fmt.Fprintln(w, "1. Each party normalizes and blinds its own file; only tokens reach the hub.")
	for _, p := range publications {
		f, err := data.ReadFile(p.file)
		if err != nil {
			return nil, err
		}
		res, err := clients[p.agency].Publish(ctx, bytes.NewReader(f), client.PublishOptions{
			List: p.list, Kind: normalize.Kind(p.kind), Category: p.category, Normalize: normalize.Options{Region: p.region},
		})
		if err != nil {
			return nil, fmt.Errorf("%s publishes %s: %w", p.agency, p.file, err)
		}
		out.Published[p.agency+"/"+p.list] = res
		fmt.Fprintf(w, "   %-11s %-8s %-24s %d rows, %d published, %d rejected\n", p.agency, p.list, p.file, res.Report.Rows, res.List.GetEntries(), len(res.Report.Rejected))
		for _, r := range res.Report.Rejected {
			fmt.Fprintf(w, "               %s line %d rejected: %s\n", p.file, r.Line, r.Reason)
		}
	}

	fmt.Fprintln(w, "\n2. Each police unit asks which of its suspects' numbers others hold.")
	q := func(caseRef string) client.Query { return client.Query{Purpose: "investigation", CaseRef: caseRef} }
	for _, id := range []string{"police-gb", "police-us", "police-th"} {
		res, err := clients[id].Overlaps(ctx, "suspects", q(id+"-2026-0042"))
		if err != nil {
			return nil, fmt.Errorf("%s overlaps: %w", id, err)
		}
		out.Overlaps[id] = res
		describe(w, id, res)
	}
	res, err := clients["police-gb"].Overlaps(ctx, "emails", q("police-gb-2026-0042"))
	if err != nil {
		return nil, fmt.Errorf("police-gb e-mail overlaps: %w", err)
	}
	out.Emails = res
	fmt.Fprintln(w, "   (e-mail lists, written in different case by GB and US)")
	describe(w, "police-gb", res)

	fmt.Fprintln(w, "\n3. The NGO checks its clients' numbers without storing them and without any police unit being told.")
	f, _ := data.ReadFile("ngo-shelter-clients.csv")
	res, err = clients["ngo-shelter"].Check(ctx, bytes.NewReader(f), client.CheckOptions{Kind: normalize.Phone, Normalize: normalize.Options{Region: "GB"}, Name: "ngo-shelter-clients.csv"},
		client.Query{Purpose: "victim_support"})
	if err != nil {
		return nil, fmt.Errorf("ngo-shelter check: %w", err)
	}
	out.Check = res
	describe(w, "ngo-shelter", res)
	if out.AfterCheck, err = clients["police-gb"].Overlaps(ctx, "suspects", q("police-gb-2026-0042")); err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "   police-gb's overlaps after the check: %d matches, %d counted classes (unchanged)\n", len(out.AfterCheck.Matches), len(out.AfterCheck.Counts))

	fmt.Fprintln(w, "\nThe hub saw tokens, list metadata and decisions; no party saw another's raw numbers or unmatched entries.")
	return out, nil
}

func describe(w io.Writer, who string, r client.Result) {
	fmt.Fprintf(w, "   %s learns (decision %s):\n", who, r.DecisionID)
	if len(r.Matches) == 0 && len(r.Counts) == 0 {
		fmt.Fprintln(w, "      nothing")
	}
	for _, m := range r.Matches {
		switch {
		case m.Counterparty != nil:
			fmt.Fprintf(w, "      line %d %s: also on %s's %s list (%s), contact %s\n", m.Line, m.Value, m.Counterparty.Agency, m.Counterparty.Category, m.Counterparty.Jurisdiction, m.Counterparty.Contact)
		default:
			fmt.Fprintf(w, "      line %d %s: PROTECTED person - do not act alone; contact %s\n", m.Line, m.Value, m.LiaisonContact)
		}
	}
	for _, c := range r.Counts {
		fmt.Fprintf(w, "      %d entries also on lists of %s (no details without a disclosure request)\n", c.Matches, c.Class)
	}
}

// startServers runs a key server and a hub on 127.0.0.1:0.
func startServers(ctx context.Context, dir string) (ksAddr, hubAddr, dbPath string, wait func() error, err error) {
	quiet := slog.New(slog.DiscardHandler)
	for _, d := range []string{"keyserver", "hub"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return "", "", "", nil, err
		}
	}
	keyFile := filepath.Join(dir, "keyserver", "oprf.key")
	if _, err := os.Stat(keyFile); err != nil {
		k, err := oprf.GenerateKey(oprf.NewKeyID(time.Now()))
		if err != nil {
			return "", "", "", nil, err
		}
		if err := oprf.WriteKeyFile(keyFile, k); err != nil {
			return "", "", "", nil, err
		}
	}
	key, err := oprf.LoadKeyFile(keyFile)
	if err != nil {
		return "", "", "", nil, err
	}
	ksTLS, err := mtls.ServerConfigFS(certs.DevFS, mtls.DevFiles(".", "keyserver"))
	if err != nil {
		return "", "", "", nil, err
	}
	hubTLS, err := mtls.ServerConfigFS(certs.DevFS, mtls.DevFiles(".", "hub"))
	if err != nil {
		return "", "", "", nil, err
	}
	pol, err := policy.New(ctx, policy.Options{Logger: quiet})
	if err != nil {
		return "", "", "", nil, err
	}
	ks, err := keyserver.New(ctx, keyserver.Config{Listen: "127.0.0.1:0", TLS: ksTLS, Keys: []*oprf.PrivateKey{key},
		UsageLog: filepath.Join(dir, "keyserver", "quota.jsonl"), Quota: quota.Limits{Rate: 1e5, Burst: 65536, Daily: 1e7}, Logger: quiet})
	if err != nil {
		return "", "", "", nil, err
	}
	h, err := hub.New(ctx, hub.Config{Listen: "127.0.0.1:0", TLS: hubTLS, DataDir: filepath.Join(dir, "hub"), Policy: pol, Logger: quiet})
	if err != nil {
		return "", "", "", nil, err
	}
	g := new(errgroup.Group)
	g.Go(func() error { return ks.Serve(ctx) })
	g.Go(func() error { return h.Serve(ctx) })
	return ks.Addr().String(), h.Addr().String(), filepath.Join(dir, "hub", hub.DBFile), g.Wait, nil
}
