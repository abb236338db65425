package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/veilmatch/veilmatch/certs"
	"github.com/veilmatch/veilmatch/client"
	"github.com/veilmatch/veilmatch/client/normalize"
	"github.com/veilmatch/veilmatch/crypto/mtls"
	"github.com/veilmatch/veilmatch/crypto/oprf"
)

// Default development endpoints, shared by `veilmatch dev` and --as.
const (
	defaultHubAddr       = "127.0.0.1:7444"
	defaultKeyserverAddr = "127.0.0.1:7443"
)

// errPartial marks a command that did its work but rejected some input
// rows; it exits with status 3.
var errPartial = errors.New("some rows were rejected")

// agencyCommands are the agency client's commands.
var agencyCommands = &group{
	name: "agency",
	cmds: []subcommand{
		{"publish", cmdPublish, "\tnormalize, blind and publish a CSV file as a list"},
		{"overlaps", cmdOverlaps, "\tshow which entries of one of your lists other agencies also hold"},
		{"check", cmdCheck, "\tcheck a CSV file against other agencies' lists without storing it"},
		{"lists", cmdLists, "\tshow your lists at the hub"},
		{"delete", cmdDelete, "\terase one of your lists"},
		{"request-disclosure", cmdRequestDisclosure, "\task the owners behind a flag or count result for the full match"},
		{"requests", cmdRequests, "\tdisclosure requests against your lists (--outgoing: yours)"},
		{"approve", cmdAnswer(true), "\tapprove a disclosure request against one of your lists"},
		{"refuse", cmdAnswer(false), "\trefuse a disclosure request against one of your lists"},
		{"disclosures", cmdDisclosures, "\twho learned matches of your lists in full"},
		{"watch", cmdWatch, "\tprint new matches of your lists as they happen, and retractions"},
		{"retract", cmdRetract, "\twithdraw an entry of one of your lists (a false positive)"},
		{"retractions", cmdRetractions, "\tyour retractions"},
		{"unretract", cmdUnretract, "\tundo a retraction: the entry matches again"},
	},
	footer: `
Identity: --as ID uses the development credentials of certs/dev/ID and the
'veilmatch dev' endpoints (override with VEILMATCH_HUB, VEILMATCH_KEYSERVER);
--config FILE serves real deployments.
`,
}

// partyConfig is what every --config file of a real deployment holds: the
// hub's address and the party's mTLS files.
type partyConfig struct {
	Hub  string `json:"hub"`
	Cert string `json:"cert"`
	Key  string `json:"key"`
	CA   string `json:"ca"`
}

// clientTLS checks that the configuration file path (of a what: agency,
// auditor) names the hub, the mTLS files and every extra field, and loads
// the party's TLS client configuration.
func (p partyConfig) clientTLS(path, what string, extra ...[2]string) (*tls.Config, error) {
	fields := append([][2]string{{"hub", p.Hub}, {"cert", p.Cert}, {"key", p.Key}, {"ca", p.CA}}, extra...)
	for _, kv := range fields {
		if kv[1] == "" {
			return nil, fmt.Errorf("%s config %s: %q is required", what, path, kv[0])
		}
	}
	cfg, err := mtls.ClientConfig(mtls.Files{Cert: p.Cert, Key: p.Key, CA: p.CA}, "")
	if err != nil {
		return nil, fmt.Errorf("%s config %s: %w", what, path, err)
	}
	return cfg, nil
}

// agencyConfig is the --config file of an agency in a real deployment.
type agencyConfig struct {
	partyConfig
	Agency string `json:"agency"`
	// KeyServer is the key server's address, or the comma-separated
	// addresses of the servers of a threshold key.
	KeyServer string `json:"keyserver"`
	StateDir  string `json:"state_dir"`
	// PinnedKeys are the key server keys the agency's operator trusts:
	// [{"key_id": …, "public_key": hex}]; pinned_key holds one.
	PinnedKeys []pinnedKey `json:"pinned_keys"`
	PinnedKey  *pinnedKey  `json:"pinned_key"`
}

// pinnedKey is a key server key in an agency configuration.
type pinnedKey struct {
	KeyID     string `json:"key_id"`
	PublicKey string `json:"public_key"`
}

// identityFlags are the flags every agency command shares.
type identityFlags struct {
	as, config, state, certsDir string
	// hub and keyServer are the addresses client resolved, for explain.
	hub, keyServer string
}

func (f *identityFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.as, "as", "", "development agency `ID` (uses certs/dev/ID and the dev endpoints)")
	fs.StringVar(&f.config, "config", "", "agency configuration `FILE` (JSON) for real deployments")
	fs.StringVar(&f.state, "state", "", "agency-side state `DIR` (default .veilmatch-agency/ID); holds raw values: keep it private")
	fs.StringVar(&f.certsDir, "dev-certs", "", "development certificate `DIR` for --as (default certs/dev if present, else built in)")
	renamed(fs, "certs", "dev-certs")
}

// client builds the agency client from the flags.
func (f *identityFlags) client(e env, needKeys bool) (*client.Client, error) {
	cfg := client.Config{Progress: e.stderr}
	switch {
	case f.as != "" && f.config != "":
		return nil, usagef("", "use either --as or --config, not both")
	case f.as != "":
		tlsCfg, err := devClientTLS(f.certsDir, f.as)
		if err != nil {
			return nil, withHint(err, "the development parties are police-gb, police-us, police-th, ngo-shelter and auditor")
		}
		cfg.Agency, cfg.TLS = f.as, tlsCfg
		cfg.Hub = envOr("VEILMATCH_HUB", defaultHubAddr)
		cfg.KeyServers = splitAddrs(envOr("VEILMATCH_KEYSERVER", defaultKeyserverAddr))
		cfg.StateDir = filepath.Join(".veilmatch-agency", f.as)
	case f.config != "":
		var ac agencyConfig
		data, err := os.ReadFile(f.config)
		if err != nil {
			return nil, fmt.Errorf("read agency config: %w", err)
		}
		if err := json.Unmarshal(data, &ac); err != nil {
			return nil, fmt.Errorf("agency config %s: %w", f.config, err)
		}
		tlsCfg, err := ac.clientTLS(f.config, "agency", [2]string{"agency", ac.Agency}, [2]string{"state_dir", ac.StateDir})
		if err != nil {
			return nil, err
		}
		cfg.Agency, cfg.TLS, cfg.Hub, cfg.KeyServers, cfg.StateDir = ac.Agency, tlsCfg, ac.Hub, splitAddrs(ac.KeyServer), ac.StateDir
		if ac.PinnedKey != nil {
			ac.PinnedKeys = append(ac.PinnedKeys, *ac.PinnedKey)
		}
		for i, p := range ac.PinnedKeys {
			b, err := hex.DecodeString(p.PublicKey)
			if err != nil || len(b) != oprf.ElementSize || !oprf.ValidKeyID(p.KeyID) {
				return nil, fmt.Errorf("agency config %s: pinned key %d: want a key id and a %d-byte hex public key", f.config, i, oprf.ElementSize)
			}
			cfg.PinnedKeys = append(cfg.PinnedKeys, oprf.PublicKey{KeyID: p.KeyID, Bytes: b})
		}
	default:
		return nil, usagef("for the development setup use --as police-gb", "say who you are: --as ID or --config FILE")
	}
	if needKeys && len(cfg.KeyServers) == 0 {
		return nil, errors.New("no key server address configured")
	}
	if f.state != "" {
		cfg.StateDir = f.state
	}
	f.hub, f.keyServer = cfg.Hub, strings.Join(cfg.KeyServers, ",")
	return client.New(cfg)
}

// splitAddrs splits a comma-separated list of addresses, as
// VEILMATCH_KEYSERVER and the configuration's keyserver name the key
// servers of a threshold key.
func splitAddrs(s string) []string {
	var out []string
	for a := range strings.SplitSeq(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// keyServerOps start the client library's errors from calls to the key
// server ("evaluate lines 1-1024: …"); its other errors come from the hub.
var keyServerOps = []string{"get key server public key:", "evaluate "}

// explain wraps the error of an agency command with advice: for the
// client's refusals, what to do; for a call to the hub or the key server,
// advice by its gRPC code, naming the service that failed.
func (f *identityFlags) explain(err error) error {
	if err == nil {
		return nil
	}
	var guard *client.GuardError
	switch {
	case errors.As(err, &guard):
		return withHint(err, "the rejected rows are listed above (a forgotten --region?); --dry-run shows what would be published; --force publishes anyway")
	case errors.Is(err, client.ErrVocabulary):
		return usagef("the hub's policy defines the words; 'veilmatch agency publish -h' shows the flags", "%v", err)
	case errors.Is(err, client.ErrKeyNotVouched):
		return withHint(err, "a key server that rotated its key must endorse the new key with the old one; ask its operator. "+
			"If the operators confirm the new key out of band, add it to pinned_keys in your configuration ('veilmatch keyserver public-key' prints it)")
	case errors.Is(err, client.ErrKeyChanged):
		return withHint(err, "the key server presents another key under a key id you pinned: it may be tagging your agency; stop and tell its operator and the auditors")
	case errors.Is(err, client.ErrTooFewKeyServers):
		return withHint(err, "a threshold key needs that many of its key servers: start the stopped ones or ask their operators; nothing was sent to the hub")
	case errors.Is(err, client.ErrKeySetRolledBack):
		return withHint(err, "point VEILMATCH_KEYSERVER (or keyserver in your configuration) at the key servers holding the current shares")
	case errors.Is(err, client.ErrNoMapping):
		return withHint(err, "the rows behind a list's entries stay on the machine that published it (--state DIR)")
	}
	service, addr := "hub", f.hub
	if slices.ContainsFunc(keyServerOps, func(op string) bool { return strings.HasPrefix(err.Error(), op) }) {
		service, addr = "key server", f.keyServer
	}
	switch code := status.Code(err); {
	case code == codes.Unavailable:
		start := "For development start it with 'veilmatch dev'"
		if f.config != "" {
			start = "Check its address in " + f.config
		}
		return withHint(err, fmt.Sprintf("is the %s at %s running? %s", service, addr, start))
	case code == codes.DeadlineExceeded:
		return withHint(err, fmt.Sprintf("the %s at %s did not answer in time: try again, and if it persists ask its operator", service, addr))
	case code == codes.PermissionDenied && service == "hub":
		return withHint(err, "the hub refused the request and says why in the message; 'veilmatch policy eval' dry-runs a policy decision")
	case code == codes.ResourceExhausted && service == "key server":
		return withHint(err, "your agency's key-server quota is used up: try again later, or ask the key server's operator for more")
	}
	return err
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// devClientTLS loads a development party's credentials from dir, from
// ./certs/dev when it exists, or from the copy built into the binary.
func devClientTLS(dir, party string) (*tls.Config, error) {
	if dir == "" && fileExists(filepath.Join("certs", "dev", "ca.crt")) {
		dir = filepath.Join("certs", "dev")
	}
	if dir == "" {
		return mtls.ClientConfigFS(certs.DevFS, mtls.DevFiles(".", party), "localhost")
	}
	return mtls.ClientConfig(mtls.DevFiles(dir, party), "localhost")
}

// agencyFlags are the flags every agency command shares: who you are and,
// for commands that print results, the output format.
type agencyFlags struct {
	fs     *flag.FlagSet
	id     identityFlags
	format string
}

func newAgencyFlags(e env, name, synopsis, example string, withFormat bool) *agencyFlags {
	a := &agencyFlags{fs: newFlagSet(e, "agency "+name, synopsis, example), format: "text"}
	a.id.register(a.fs)
	if withFormat {
		a.fs.StringVar(&a.format, "format", "text", "output format: text or json")
	}
	return a
}

// parse parses args, checks the format and returns the positional arguments.
func (a *agencyFlags) parse(args []string) ([]string, error) {
	pos, err := parse(a.fs, args)
	if err != nil {
		return nil, err
	}
	return pos, checkFormat(a.format)
}

// connect parses args and returns the agency's client and the positional
// arguments.
func (a *agencyFlags) connect(e env, args []string, needKeys bool) (*client.Client, []string, error) {
	pos, err := a.parse(args)
	if err != nil {
		return nil, nil, err
	}
	c, err := a.id.client(e, needKeys)
	return c, pos, err
}

// inputFlags are the flags that describe an identifier file.
type inputFlags struct {
	kind, region, column string
	emailRules           bool
	minQuality           int
}

func (f *inputFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.kind, "kind", "", "identifier kind: phone, email, pdq, image, md5, sha1 or sha256 (image: FILE is a directory of images or a CSV of their paths)")
	fs.IntVar(&f.minQuality, "min-quality", normalize.DefaultMinQuality, "--kind image: reject images whose PDQ quality is below this (0-100)")
	fs.StringVar(&f.region, "region", "", "default region for national phone numbers, e.g. GB")
	fs.StringVar(&f.column, "column", "", "CSV column: header `NAME` or 1-based number (default: the first)")
	fs.BoolVar(&f.emailRules, "email-provider-rules", false, "apply provider rules to e-mails (Gmail dots and +tags, …)")
}

// input is an agency's input file as its flags describe it.
type input struct {
	kind normalize.Kind
	opts normalize.Options
	r    io.ReadCloser
	name string // the file name, or "stdin"
}

// open checks the flags and opens the one positional FILE ("-" is stdin).
func (f *inputFlags) open(pos []string) (input, error) {
	if f.kind == "" {
		return input{}, usagef("", "--kind is required (phone, email, pdq, image, md5, sha1 or sha256)")
	}
	k, err := normalize.ParseKind(f.kind)
	if err != nil {
		return input{}, usagef("", "--kind: %v", err)
	}
	if len(pos) != 1 {
		return input{}, usagef("", "exactly one input FILE is required, got %d arguments", len(pos))
	}
	if f.minQuality < 0 || f.minQuality > 100 {
		return input{}, usagef("", "--min-quality: %d is not in 0-100", f.minQuality)
	}
	in := input{kind: k, opts: normalize.Options{Region: f.region, EmailProviderRules: f.emailRules, MinQuality: f.minQuality}, r: io.NopCloser(os.Stdin), name: "stdin"}
	if k == normalize.Image && pos[0] != "-" {
		return imageInput(in, pos[0])
	}
	if pos[0] != "-" {
		if in.r, err = os.Open(pos[0]); err != nil {
			return input{}, err
		}
		in.name = pos[0]
	}
	return in, nil
}

// imageInput is the input of --kind image: a CSV of image paths, relative
// to its own directory, or a directory, whose images (by extension, in
// every subdirectory, in lexical order) become a CSV of their paths
// relative to it, so that the report's lines name them.
func imageInput(in input, path string) (input, error) {
	st, err := os.Stat(path)
	if err != nil {
		return input{}, err
	}
	in.name = path
	if !st.IsDir() {
		in.opts.BaseDir = filepath.Dir(path)
		in.r, err = os.Open(path)
		return in, err
	}
	b, err := normalize.ImageDirCSV(path)
	if err != nil {
		return input{}, err
	}
	in.opts.BaseDir, in.r, in.name = path, io.NopCloser(bytes.NewReader(b)), path+" (as a CSV of its images, line 2 on)"
	return in, nil
}

// printReport writes every rejected row and warning to w, and returns
// errPartial when rows were rejected.
func printReport(w io.Writer, name string, rep normalize.Report) error {
	for _, r := range rep.Rejected {
		fmt.Fprintf(w, "%s:%d: rejected: %s\n", name, r.Line, r.Reason)
	}
	for _, r := range rep.Warnings {
		fmt.Fprintf(w, "%s:%d: warning: %s\n", name, r.Line, r.Reason)
	}
	fmt.Fprintf(w, "%s: %s, %d accepted, %d rejected, %s\n", name, plural(rep.Rows, "row", "rows"), rep.Accepted, len(rep.Rejected), plural(len(rep.Warnings), "warning", "warnings"))
	if len(rep.Rejected) > 0 {
		return fmt.Errorf("%s: %w: %d of %d rows (listed above with their lines); the valid rows were processed", name, errPartial, len(rep.Rejected), rep.Rows)
	}
	return nil
}

func cmdPublish(ctx context.Context, e env, args []string) error {
	a := newAgencyFlags(e, "publish", "agency publish --as ID --list NAME --kind KIND --category CATEGORY [--region CC] [--column NAME|N] [--dry-run] FILE",
		"veilmatch agency publish --as police-gb --list suspects --kind phone --category suspect --region GB suspects.csv", false)
	var (
		in          inputFlags
		list        = a.fs.String("list", "", "list `NAME` (unique among your lists; republishing replaces it)")
		category    = a.fs.String("category", "", "list category: suspect, victim, missing_person, ad_contact, … (the hub's policy lists them)")
		expires     = a.fs.Duration("expires-in", 0, "retention: the list stops matching after this `DURATION` (e.g. 8760h); 0 = no expiry")
		consent     = a.fs.String("victim-consent", "", "comma-separated `ROLES` the listed victims consented to share with (e.g. law_enforcement)")
		ngoVisible  = a.fs.Bool("ngo-visible", false, "let NGOs see matches against this list in full")
		dryRun      = a.fs.Bool("dry-run", false, "normalize and check the file, report what would be published, send nothing")
		force       = a.fs.Bool("force", false, "republish even beyond --max-shrink and --max-rejected")
		maxShrink   = a.fs.Float64("max-shrink", 100*client.DefaultGuard.MaxShrink, "refuse a republish that drops more than this `PERCENT` of the list's entries")
		maxRejected = a.fs.Float64("max-rejected", 100*client.DefaultGuard.MaxRejected, "refuse a republish that rejects more than this `PERCENT` of the file's rows")
	)
	in.register(a.fs)
	pos, err := a.parse(args)
	if err != nil {
		return err
	}
	if *list == "" || *category == "" {
		return usagef("", "--list and --category are required")
	}
	for _, p := range []struct {
		flag string
		v    float64
	}{{"max-shrink", *maxShrink}, {"max-rejected", *maxRejected}} {
		if p.v < 0 || p.v > 100 {
			return usagef("", "--%s: %g is not a percentage (0-100)", p.flag, p.v)
		}
	}
	src, err := in.open(pos)
	if err != nil {
		return err
	}
	defer src.r.Close()
	c, err := a.id.client(e, true)
	if err != nil {
		return err
	}
	defer c.Close()
	po := client.PublishOptions{List: *list, Kind: src.kind, Category: *category, Normalize: src.opts, Column: in.column,
		Sharing: client.Sharing{NGOVisible: *ngoVisible}, DryRun: *dryRun, Force: *force,
		Guard: &client.Guard{MaxShrink: *maxShrink / 100, MaxRejected: *maxRejected / 100}}
	if *consent != "" {
		po.Sharing.VictimConsentRoles = strings.Split(*consent, ",")
	}
	if *expires > 0 {
		po.ExpiresAt = time.Now().Add(*expires)
	}
	res, err := c.Publish(ctx, src.r, po)
	var repErr error
	if err == nil || res.Report.Rows > 0 || errors.Is(err, client.ErrNoRows) {
		repErr = printReport(e.stderr, src.name, res.Report)
	}
	if err != nil {
		return a.id.explain(err)
	}
	l := res.List
	switch {
	case *dryRun && !res.Unchanged:
		now := "new list"
		if p := res.Previous; p != nil {
			now = "now " + plural(p.GetEntries(), "entry", "entries") + " at the hub"
		}
		fmt.Fprintf(e.stdout, "dry run: would publish list %s: %s (%s), kind %s, category %s, key %s; nothing sent\n",
			l.GetName(), plural(l.GetEntries(), "entry", "entries"), now, l.GetKind(), l.GetCategory(), l.GetKeyId())
	case res.Unchanged:
		fmt.Fprintf(e.stdout, "list %s/%s is already published with exactly this content (%s); nothing sent\n", l.GetOwner(), l.GetName(), plural(l.GetEntries(), "entry", "entries"))
	default:
		resumed := ""
		if res.Resumed {
			resumed = fmt.Sprintf(" (resumed: %d batches were already at the hub)", res.BatchesSkipped)
		}
		fmt.Fprintf(e.stdout, "published list %s/%s: %s, kind %s, category %s, jurisdiction %s, key %s%s\n",
			l.GetOwner(), l.GetName(), plural(l.GetEntries(), "entry", "entries"), l.GetKind(), l.GetCategory(), l.GetJurisdiction(), l.GetKeyId(), resumed)
	}
	return repErr
}

func cmdOverlaps(ctx context.Context, e env, args []string) error {
	a := newAgencyFlags(e, "overlaps", "agency overlaps --as ID --list NAME --purpose TEXT --case REF [--format json]",
		"veilmatch agency overlaps --as police-gb --list suspects --purpose investigation --case GB-2026-0042", true)
	list := a.fs.String("list", "", "your list `NAME`")
	purpose := a.fs.String("purpose", "", "why you ask: investigation, missing_person_search, victim_support, research")
	caseRef := a.fs.String("case", "", "case reference (required for law enforcement)")
	if _, err := a.parse(args); err != nil {
		return err
	}
	if *list == "" {
		return usagef("", "--list is required")
	}
	if err := checkFormat(a.format); err != nil {
		return err
	}
	c, err := a.id.client(e, false)
	if err != nil {
		return err
	}
	defer c.Close()
	res, err := c.Overlaps(ctx, *list, client.Query{Purpose: *purpose, CaseRef: *caseRef})
	if err != nil {
		return a.id.explain(err)
	}
	return printResult(e.stdout, a.format, res)
}

func cmdCheck(ctx context.Context, e env, args []string) error {
	a := newAgencyFlags(e, "check", "agency check --as ID --kind KIND [--region CC] [--column NAME|N] --purpose TEXT --case REF [--format json] [--dry-run] FILE",
		"veilmatch agency check --as ngo-shelter --kind phone --region GB --purpose victim_support clients.csv", true)
	var in inputFlags
	in.register(a.fs)
	purpose := a.fs.String("purpose", "", "why you ask: investigation, missing_person_search, victim_support, research")
	caseRef := a.fs.String("case", "", "case reference (required for law enforcement)")
	dryRun := a.fs.Bool("dry-run", false, "normalize and check the file and report; send nothing")
	pos, err := a.parse(args)
	if err != nil {
		return err
	}
	src, err := in.open(pos)
	if err != nil {
		return err
	}
	defer src.r.Close()
	c, err := a.id.client(e, true)
	if err != nil {
		return err
	}
	defer c.Close()
	res, err := c.Check(ctx, src.r, client.CheckOptions{Kind: src.kind, Normalize: src.opts, Column: in.column, Name: src.name, DryRun: *dryRun}, client.Query{Purpose: *purpose, CaseRef: *caseRef})
	var repErr error
	if res.Report != nil {
		repErr = printReport(e.stderr, src.name, *res.Report)
	}
	if err != nil {
		return a.id.explain(err)
	}
	if *dryRun {
		fmt.Fprintf(e.stdout, "dry run: would check %s from %s; nothing sent\n", plural(res.Report.Accepted, "entry", "entries"), src.name)
		return repErr
	}
	if err := printResult(e.stdout, a.format, res); err != nil {
		return err
	}
	return repErr
}

func cmdLists(ctx context.Context, e env, args []string) error {
	a := newAgencyFlags(e, "lists", "agency lists --as ID [--format json]", "veilmatch agency lists --as police-gb", true)
	c, _, err := a.connect(e, args, false)
	if err != nil {
		return err
	}
	defer c.Close()
	lists, err := c.Lists(ctx)
	if err != nil {
		return a.id.explain(err)
	}
	if a.format == "json" {
		type row struct {
			Name         string `json:"name"`
			Owner        string `json:"owner"`
			Kind         string `json:"kind"`
			Category     string `json:"category"`
			Jurisdiction string `json:"jurisdiction"`
			KeyID        string `json:"key_id"`
			Entries      uint64 `json:"entries"`
			CommittedAt  string `json:"committed_at,omitempty"`
			ExpiresAt    string `json:"expires_at,omitempty"`
		}
		out := []row{}
		for _, l := range lists {
			out = append(out, row{l.GetName(), l.GetOwner(), l.GetKind(), l.GetCategory(), l.GetJurisdiction(), l.GetKeyId(), l.GetEntries(), ts(l.GetCommittedAt()), ts(l.GetExpiresAt())})
		}
		return writeJSON(e.stdout, out)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LIST\tKIND\tCATEGORY\tENTRIES\tKEY\tCOMMITTED\tEXPIRES")
	for _, l := range lists {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", l.GetName(), l.GetKind(), l.GetCategory(), l.GetEntries(), l.GetKeyId(), orDash(ts(l.GetCommittedAt())), orDash(ts(l.GetExpiresAt())))
	}
	return tw.Flush()
}

func cmdDelete(ctx context.Context, e env, args []string) error {
	a := newAgencyFlags(e, "delete", "agency delete --as ID --list NAME", "veilmatch agency delete --as police-gb --list suspects", false)
	list := a.fs.String("list", "", "your list `NAME`")
	if _, err := a.parse(args); err != nil {
		return err
	}
	if *list == "" {
		return usagef("", "--list is required")
	}
	c, err := a.id.client(e, false)
	if err != nil {
		return err
	}
	defer c.Close()
	n, err := c.Delete(ctx, *list)
	if err != nil {
		return a.id.explain(err)
	}
	fmt.Fprintf(e.stdout, "deleted list %s: %s erased\n", *list, plural(n, "entry", "entries"))
	return nil
}

func checkFormat(f string) error {
	return checkOneOf("--format", f, "text", "json")
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printResult(w io.Writer, format string, r client.Result) error {
	if format == "json" {
		return writeJSON(w, r)
	}
	fmt.Fprintf(w, "decision %s: %s disclosed, %s counted\n", r.DecisionID, plural(len(r.Matches), "matching entry", "matching entries"), plural(len(r.Counts), "class", "classes"))
	if len(r.Matches) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "LINE\tVALUE\tLEVEL\tCOUNTERPARTY / CONTACT")
		for _, m := range r.Matches {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", m.Line, m.Value, m.Level, holder(m.Counterparty, m.LiaisonContact))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	refs := false
	for _, c := range r.Counts {
		verb := "match"
		if c.Matches == 1 {
			verb = "matches"
		}
		fmt.Fprintf(w, "count: %d of your entries %s lists of %s\n", c.Matches, verb, c.Class)
		refs = refs || c.MatchRef != ""
	}
	for _, m := range r.Matches {
		refs = refs || m.MatchRef != ""
	}
	if refs {
		fmt.Fprintln(w, "to ask the holders for a flag or count in full: take its match_ref from --format json and run 'veilmatch agency request-disclosure --ref …'")
	}
	return nil
}

// holder says who holds a match: the counterparty at level full, else the
// liaison to contact (the holder is protected).
func holder(cp *client.Counterparty, liaison string) string {
	if cp != nil {
		who := fmt.Sprintf("%s list %s (%s, %s)", cp.Agency, cp.List, cp.Category, cp.Jurisdiction)
		if cp.Contact != "" {
			who += " " + cp.Contact
		}
		return who
	}
	if liaison != "" {
		return "protected; contact " + liaison
	}
	return ""
}

func ts(t interface{ AsTime() time.Time }) string {
	if t == nil {
		return ""
	}
	if p, ok := t.(interface{ IsValid() bool }); ok && !p.IsValid() {
		return ""
	}
	return t.AsTime().UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
