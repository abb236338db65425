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
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/veilmatch/veilmatch/certs"
	"github.com/veilmatch/veilmatch/client"
	"github.com/veilmatch/veilmatch/client/auditor"
	"github.com/veilmatch/veilmatch/client/normalize"
	"github.com/veilmatch/veilmatch/crypto/mtls"
	"github.com/veilmatch/veilmatch/crypto/token"
	"github.com/veilmatch/veilmatch/internal/devstack"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/hub"
	"github.com/veilmatch/veilmatch/server/keyserver"
)

//go:embed *.csv images
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
	if _, err := Run(ctx, os.Stdout, *dir, Options{}); err != nil {
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
	// AfterDisclosure is police-gb's overlaps after the NGO approved its
	// disclosure request for the protected match.
	AfterDisclosure client.Result
	// Notices are the NGO's owner notices of full disclosures.
	Notices int
	// Alerts are what police-gb's watch delivered of the matches found as
	// the lists were published; Retraction what it delivered after
	// police-us withdrew a number.
	Alerts, Retraction []client.Alert
	// Images is police-us's publication of its advert photos, and
	// ImageCheck the NGO's check of photos found online against them.
	Images     client.PublishResult
	ImageCheck client.Result
	// Audit is the auditor's verification of the decision log.
	Audit auditor.VerifyReport
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

// Options change where the scenario's servers keep their keys and logs.
type Options struct {
	// Logger receives the servers' and clients' logs (nil: nowhere).
	Logger *slog.Logger
	// KeySource supplies the OPRF key (nil: a key file in dir), and Signer
	// signs checkpoints (nil: a key file in dir) — Vault in production.
	KeySource keyserver.KeySource
	Signer    hub.Signer
}

// Run plays the scenario against servers it starts in dir and writes the
// narrative to w.
func Run(ctx context.Context, w io.Writer, dir string, o Options) (*Outcome, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	logger := o.Logger
	ksAddr, hubAddr, wait, err := startServers(ctx, dir, o)
	if err != nil {
		return nil, err
	}
	defer func() { cancel(); _ = wait() }()

	fmt.Fprintf(w, "key server %s, hub %s (one process: development only)\n\n", ksAddr, hubAddr)
	out := &Outcome{Published: map[string]client.PublishResult{}, Overlaps: map[string]client.Result{}}
	clients := map[string]*client.Client{}
	for _, id := range []string{"police-gb", "police-us", "police-th", "ngo-shelter"} {
		tlsCfg, err := mtls.ClientConfigFS(certs.DevFS, mtls.DevFiles(".", id), "localhost")
		if err != nil {
			return nil, err
		}
		c, err := client.New(client.Config{Agency: id, Hub: hubAddr, KeyServer: ksAddr, TLS: tlsCfg, StateDir: filepath.Join(dir, "agency", id), Logger: logger})
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

	fmt.Fprintln(w, "\n3. The NGO checks its clients' numbers without storing them; no police unit is told of a count.")
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

	fmt.Fprintln(w, "\n4. police-gb asks the holder of the protected match for the full match (two-step disclosure).")
	var flagRef string
	for _, m := range out.AfterCheck.Matches {
		if m.Level == "flag" {
			flagRef = m.MatchRef
		}
	}
	if _, err := clients["police-gb"].RequestDisclosure(ctx, flagRef, "the number is on a trafficking suspect's seized phone", q("police-gb-2026-0042")); err != nil {
		return nil, fmt.Errorf("police-gb requests disclosure: %w", err)
	}
	pending, err := clients["ngo-shelter"].DisclosureRequests(ctx, false, false)
	if err != nil || len(pending) != 1 {
		return nil, fmt.Errorf("ngo-shelter's pending requests: %d, %v", len(pending), err)
	}
	fmt.Fprintf(w, "   ngo-shelter sees request %s from %s (%s, case %s): %q\n", pending[0].GetId(), pending[0].GetRequester(), pending[0].GetPurpose(), pending[0].GetCaseRef(), pending[0].GetReason())
	if _, err := clients["ngo-shelter"].AnswerDisclosureRequest(ctx, pending[0].GetId(), true, "the victim agreed; call our caseworker first"); err != nil {
		return nil, err
	}
	if out.AfterDisclosure, err = clients["police-gb"].Overlaps(ctx, "suspects", q("police-gb-2026-0042")); err != nil {
		return nil, err
	}
	describe(w, "police-gb after approval", out.AfterDisclosure)
	notices, err := clients["ngo-shelter"].Disclosures(ctx)
	if err != nil {
		return nil, err
	}
	out.Notices = len(notices)
	for _, n := range notices {
		fmt.Fprintf(w, "   ngo-shelter is told: %s learned %s of its %s list in full (%s, case %s)\n", n.GetRequester(), entries(n.GetEntries()), n.GetList(), n.GetPurpose(), n.GetCaseRef())
	}

	if out.Images, out.ImageCheck, err = imageCheck(ctx, w, dir, clients); err != nil {
		return nil, err
	}

	if out.Alerts, out.Retraction, err = alertsAndRetraction(ctx, w, clients); err != nil {
		return nil, err
	}

	fmt.Fprintln(w, "\n7. The auditor verifies the decision log against the hub's pinned checkpoint key.")
	if out.Audit, err = verifyLog(ctx, dir, hubAddr); err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "   %s\n", out.Audit.Summary())

	fmt.Fprintln(w, "\nThe hub saw tokens, list metadata and decisions; no party saw another's raw numbers or unmatched entries.")
	return out, nil
}

// imageCheck shows near-duplicate images: police-us publishes the photos
// of a trafficking ring's adverts (hashed with PDQ on its machine, only
// tokens leave it) and lets NGOs see matches; ngo-shelter checks photos
// its caseworkers found in online listings, one of them the same photo
// shrunk, without storing them. The images are written from the
// example's embedded copies into dir.
func imageCheck(ctx context.Context, w io.Writer, dir string, clients map[string]*client.Client) (client.PublishResult, client.Result, error) {
	fmt.Fprintln(w, "\n5. police-us enrols its advert photos; ngo-shelter checks photos from online listings against them.")
	root := filepath.Join(dir, "images")
	images, err := fs.Sub(data, "images")
	if err != nil {
		return client.PublishResult{}, client.Result{}, err
	}
	if err := os.CopyFS(root, images); err != nil {
		return client.PublishResult{}, client.Result{}, err
	}
	adverts, online := filepath.Join(root, "adverts"), filepath.Join(root, "online")
	csv, err := normalize.ImageDirCSV(adverts)
	if err != nil {
		return client.PublishResult{}, client.Result{}, err
	}
	pub, err := clients["police-us"].Publish(ctx, bytes.NewReader(csv), client.PublishOptions{List: "adverts", Kind: normalize.Image, Category: "ad_contact",
		Normalize: normalize.Options{BaseDir: adverts}, Sharing: client.Sharing{NGOVisible: true}})
	if err != nil {
		return pub, client.Result{}, fmt.Errorf("police-us publishes its advert photos: %w", err)
	}
	fmt.Fprintf(w, "   police-us   adverts  images/adverts/          %d images, %d published (%d OPRF evaluations each)\n", pub.Report.Rows, pub.List.GetEntries(), token.PDQTokens)
	if csv, err = normalize.ImageDirCSV(online); err != nil {
		return pub, client.Result{}, err
	}
	res, err := clients["ngo-shelter"].Check(ctx, bytes.NewReader(csv), client.CheckOptions{Kind: normalize.Image, Normalize: normalize.Options{BaseDir: online}, Name: "images/online"},
		client.Query{Purpose: "victim_support"})
	if err != nil {
		return pub, res, fmt.Errorf("ngo-shelter checks its photos: %w", err)
	}
	describe(w, "ngo-shelter", res)
	return pub, res, nil
}

// alertsAndRetraction shows standing matches: police-gb's watch (run as a
// scheduled job, --once) delivers the matches the hub found as the lists
// were published; police-us then withdraws a number reassigned to an
// innocent subscriber, and the next run tells police-gb, which was alerted
// of it, that it no longer matches.
func alertsAndRetraction(ctx context.Context, w io.Writer, clients map[string]*client.Client) (alerts, retraction []client.Alert, err error) {
	fmt.Fprintln(w, "\n6. police-gb's scheduled watch prints the matches found when the lists were published.")
	watch := func() ([]client.Alert, error) {
		var got []client.Alert
		err := clients["police-gb"].Watch(ctx, client.WatchOptions{List: "suspects", Once: true,
			Query: client.Query{Purpose: "investigation", CaseRef: "police-gb-2026-0042"}}, func(a client.Alert) error {
			got = append(got, a)
			switch a.Event {
			case client.AlertMatch:
				who := "a protected person; contact " + a.LiaisonContact
				if cp := a.Counterparty; cp != nil {
					who = fmt.Sprintf("also on %s's %s list (%s)", cp.Agency, cp.Category, cp.Jurisdiction)
				}
				fmt.Fprintf(w, "   alert: line %d %s: %s\n", a.Line, a.Value, who)
			case client.AlertCount:
				fmt.Fprintf(w, "   alert: %s also on lists of %s\n", entries(a.Matches), a.Class)
			case client.AlertRetraction:
				fmt.Fprintf(w, "   alert: line %d %s no longer matches: its holder withdrew it\n", a.Line, a.Value)
			}
			return nil
		})
		return got, err
	}
	if alerts, err = watch(); err != nil {
		return nil, nil, fmt.Errorf("police-gb watches: %w", err)
	}
	fmt.Fprintln(w, "   police-us withdraws +44 7700 900123: the number was reassigned to a new subscriber.")
	if _, err := clients["police-us"].Retract(ctx, client.Entry{List: "suspects", Value: "+447700900123"}, "number reassigned to a new subscriber"); err != nil {
		return nil, nil, fmt.Errorf("police-us retracts: %w", err)
	}
	if retraction, err = watch(); err != nil {
		return nil, nil, fmt.Errorf("police-gb watches again: %w", err)
	}
	return alerts, retraction, nil
}

// verifyLog runs the auditor's verification with the hub's verifier key.
func verifyLog(ctx context.Context, dir, hubAddr string) (auditor.VerifyReport, error) {
	vkey, err := os.ReadFile(filepath.Join(dir, "hub", hub.CheckpointPubFile))
	if err != nil {
		return auditor.VerifyReport{}, err
	}
	v, err := audit.NewVerifier(strings.TrimSpace(string(vkey)))
	if err != nil {
		return auditor.VerifyReport{}, err
	}
	tlsCfg, err := mtls.ClientConfigFS(certs.DevFS, mtls.DevFiles(".", "auditor"), "localhost")
	if err != nil {
		return auditor.VerifyReport{}, err
	}
	conn, err := grpc.NewClient(hubAddr, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		return auditor.VerifyReport{}, err
	}
	defer conn.Close()
	rep, _, err := auditor.Verify(ctx, veilmatchv1.NewAuditServiceClient(conn), v, hub.DefaultLogOrigin, nil)
	return rep, err
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
		fmt.Fprintf(w, "      %s also on lists of %s (no details without a disclosure request)\n", entries(c.Matches), c.Class)
	}
}

// entries returns "1 entry" or "n entries".
func entries[N int | uint64](n N) string {
	if n == 1 {
		return "1 entry"
	}
	return fmt.Sprintf("%d entries", n)
}

// startServers runs the development stack on 127.0.0.1:0 in dir.
func startServers(ctx context.Context, dir string, o Options) (ksAddr, hubAddr string, wait func() error, err error) {
	st, err := devstack.New(ctx, devstack.Config{Dir: dir, KeySource: o.KeySource, Signer: o.Signer, Logger: o.Logger})
	if err != nil {
		return "", "", nil, err
	}
	done := make(chan error, 1)
	go func() { done <- st.Serve(ctx) }()
	return st.KeyServer.Addr().String(), st.Hub.Addr().String(), func() error { return <-done }, nil
}
