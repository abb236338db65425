package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/veilmatch/veilmatch/client/auditor"
	"github.com/veilmatch/veilmatch/client/auditor/console"
	"github.com/veilmatch/veilmatch/crypto/mtls"
	"github.com/veilmatch/veilmatch/policy"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/quota"
	"github.com/veilmatch/veilmatch/server/rpc"
)

// auditCommands are the auditor's commands.
var auditCommands = &group{
	name: "audit",
	cmds: []subcommand{
		{"decisions", cmdAuditDecisions, "\tlist the hub's policy decisions, filtered"},
		{"verify", cmdAuditVerify, "\tcheck the signed checkpoint against a pinned key, that the log\nonly grew since the last run, and every record against it"},
		{"console", cmdAuditConsole, "\tverify the log and look at it in the browser: overview, charts,\ndecisions with filters, inclusion proofs, exports (loopback only)"},
		{"report", cmdAuditReport, "\tdecisions, levels disclosed, refusals and key-server use per\nagency and purpose: the monthly view of an oversight body"},
	},
	footer: `
Identity: --as auditor uses the development credentials of certs/dev/auditor
and the hub of 'veilmatch dev' (override with VEILMATCH_HUB); --config FILE
serves real deployments.

Example:
  veilmatch audit verify --as auditor
  veilmatch audit decisions --as auditor --agency police-gb --since 2026-11-01
`,
}

// maxVerifierKeyFile bounds a verifier key file; a key is about 100 bytes.
const maxVerifierKeyFile = 4096

// auditConfig is the --config file of an auditor in a real deployment.
type auditConfig struct {
	partyConfig
	// VerifierKey or VerifierKeyFile pins the hub's checkpoint key.
	VerifierKey     string `json:"verifier_key"`
	VerifierKeyFile string `json:"verifier_key_file"`
	// State is the file where verify keeps the last verified checkpoint.
	State string `json:"state"`
	// Origin is the log's name (default: the verifier key's name).
	Origin string `json:"origin"`
}

// auditorFlags are the identity flags of the audit commands.
type auditorFlags struct {
	as, config, certsDir string
}

func (f *auditorFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.as, "as", "", "development party `ID` (auditor; uses certs/dev/ID and the dev hub)")
	fs.StringVar(&f.config, "config", "", "auditor configuration `FILE` (JSON) for real deployments")
	fs.StringVar(&f.certsDir, "dev-certs", "", "development certificate `DIR` for --as (default certs/dev if present, else built in)")
	renamed(fs, "certs", "dev-certs")
}

// auditTarget is a hub to audit and how.
type auditTarget struct {
	hub string
	tls *tls.Config
	cfg auditConfig
	// defaultKeyFile and defaultState apply when neither a flag nor the
	// configuration names them.
	defaultKeyFile, defaultState string
}

// load resolves the flags into a target.
func (f *auditorFlags) load() (auditTarget, error) {
	switch {
	case f.as != "" && f.config != "":
		return auditTarget{}, usagef("", "use either --as or --config, not both")
	case f.as != "":
		tlsCfg, err := devClientTLS(f.certsDir, f.as)
		if err != nil {
			return auditTarget{}, withHint(err, "the development auditor is 'auditor': use --as auditor")
		}
		return auditTarget{
			hub:            envOr("VEILMATCH_HUB", defaultHubAddr),
			tls:            tlsCfg,
			defaultKeyFile: devCheckpointKeyFile,
			defaultState:   filepath.Join(".veilmatch-agency", f.as, "audit-state.json"),
		}, nil
	case f.config != "":
		var ac auditConfig
		data, err := os.ReadFile(f.config)
		if err != nil {
			return auditTarget{}, fmt.Errorf("read auditor config: %w", err)
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ac); err != nil {
			return auditTarget{}, fmt.Errorf("auditor config %s: %w", f.config, err)
		}
		tlsCfg, err := ac.clientTLS(f.config, "auditor")
		if err != nil {
			return auditTarget{}, err
		}
		return auditTarget{hub: ac.Hub, tls: tlsCfg, cfg: ac}, nil
	default:
		return auditTarget{}, usagef("for the development setup use --as auditor", "say who you are: --as ID or --config FILE")
	}
}

// dial connects to the hub's audit service. The connection is made lazily,
// on the first call.
func (t auditTarget) dial() (veilmatchv1.AuditServiceClient, func(), error) {
	tlsCfg, err := mtls.ForServer(t.tls, "hub")
	if err != nil {
		return nil, nil, err
	}
	conn, err := grpc.NewClient(t.hub,
		grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(rpc.MaxMessageSize)))
	if err != nil {
		return nil, nil, fmt.Errorf("connect to hub %s: %w", t.hub, err)
	}
	return veilmatchv1.NewAuditServiceClient(conn), func() { conn.Close() }, nil
}

// auditRPCError wraps an error of the audit service with advice.
func auditRPCError(op string, err error) error {
	err = fmt.Errorf("%s: %w", op, err)
	switch status.Code(err) {
	case codes.PermissionDenied:
		return withHint(err, "the audit service serves auditors only: use --as auditor or an auditor certificate")
	case codes.Unavailable:
		return withHint(err, "is the hub running? For development start it with 'veilmatch dev'")
	case codes.Unimplemented:
		return withHint(err, "this hub does not serve the audit service")
	case codes.Internal, codes.DataLoss:
		return withHint(err, "the decision log may be damaged: run 'veilmatch audit verify --as auditor'")
	}
	return err
}

// parseTimeFlag parses an RFC 3339 time or a UTC date (2006-01-02).
func parseTimeFlag(name, v string) (*timestamppb.Timestamp, error) {
	if v == "" {
		return nil, nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.DateOnly} {
		if t, err := time.Parse(layout, v); err == nil {
			return timestamppb.New(t), nil
		}
	}
	return nil, usagef("for example 2026-11-01T00:00:00Z or 2026-11-01", "--%s: %q is not an RFC 3339 time or a date", name, v)
}

// timeFlags are the --since and --until flags.
type timeFlags struct {
	since, until string
}

func (f *timeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.since, "since", "", "only decisions at or after `TIME` (RFC 3339, or a date for midnight UTC)")
	fs.StringVar(&f.until, "until", "", "only decisions before `TIME` (RFC 3339, or a date for midnight UTC)")
}

// apply sets the time range of req.
func (f *timeFlags) apply(req *veilmatchv1.ListDecisionsRequest) error {
	var err error
	if req.Since, err = parseTimeFlag("since", f.since); err != nil {
		return err
	}
	if req.Until, err = parseTimeFlag("until", f.until); err != nil {
		return err
	}
	if req.Since != nil && req.Until != nil && !req.Since.AsTime().Before(req.Until.AsTime()) {
		return usagef("", "--since must be before --until")
	}
	return nil
}

// auditQuery holds the flags the audit listing commands share: who the
// auditor is, the time range and the output format.
type auditQuery struct {
	fs     *flag.FlagSet
	id     auditorFlags
	tf     timeFlags
	format string
}

func newAuditQuery(e env, name, synopsis, example string) *auditQuery {
	q := &auditQuery{fs: newFlagSet(e, "audit "+name, synopsis, example)}
	q.id.register(q.fs)
	q.tf.register(q.fs)
	q.fs.StringVar(&q.format, "format", "text", "output format: text or json")
	return q
}

// fetch parses args, lets fill check the parsed flags and complete req,
// and downloads every decision req selects.
func (q *auditQuery) fetch(ctx context.Context, args []string, req *veilmatchv1.ListDecisionsRequest, fill func() error) ([]audit.Record, error) {
	pos, err := parse(q.fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) > 0 {
		return nil, usagef("", "unexpected argument %q", pos[0])
	}
	if err := checkFormat(q.format); err != nil {
		return nil, err
	}
	if err := fill(); err != nil {
		return nil, err
	}
	if err := q.tf.apply(req); err != nil {
		return nil, err
	}
	target, err := q.id.load()
	if err != nil {
		return nil, err
	}
	c, done, err := target.dial()
	if err != nil {
		return nil, err
	}
	defer done()
	recs, err := auditor.ListRecords(ctx, c, req)
	if errors.Is(err, auditor.ErrNotCanonical) {
		return nil, withHint(err, "run 'veilmatch audit verify --as auditor'")
	}
	if err != nil {
		return nil, auditRPCError("list decisions", err)
	}
	return recs, nil
}

func cmdAuditDecisions(ctx context.Context, e env, args []string) error {
	q := newAuditQuery(e, "decisions", "audit decisions --as auditor [--agency ID] [--action A] [--purpose P] [--level L] [--since TIME] [--until TIME] [--format json]",
		"veilmatch audit decisions --as auditor --agency police-gb --level full --since 2026-11-01")
	var (
		agency  = q.fs.String("agency", "", "only decisions of agency `ID`")
		action  = q.fs.String("action", "", "only decisions of `ACTION`: "+orList(audit.Actions))
		purpose = q.fs.String("purpose", "", "only decisions stating `PURPOSE`")
		level   = q.fs.String("level", "", "only decisions disclosing at `LEVEL` ("+strings.Join(levelNames(), ", ")+"), or refused ones (refused)")
	)
	req := &veilmatchv1.ListDecisionsRequest{}
	recs, err := q.fetch(ctx, args, req, func() error {
		if err := checkOneOf("--action", *action, audit.Actions...); err != nil {
			return err
		}
		if err := checkOneOf("--level", *level, slices.Concat(levelNames(), []string{audit.ResultRefused})...); err != nil {
			return err
		}
		req.Agency, req.Action, req.Purpose, req.Level = *agency, *action, *purpose, *level
		return nil
	})
	if err != nil {
		return err
	}
	if q.format == "json" {
		if recs == nil {
			recs = []audit.Record{}
		}
		return writeJSON(e.stdout, recs)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INDEX\tTIME\tAGENCY\tACTION\tRESULT\tPURPOSE\tCASE\tLEVELS\tRULES")
	for _, r := range recs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Index, r.Time.UTC().Format(time.RFC3339), orDash(r.Agency), r.Action, r.Result,
			orDash(r.Purpose), orDash(r.CaseRef), orDash(levelSummary(r.Outcomes)), orDash(strings.Join(r.Rules, ",")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(e.stderr, plural(len(recs), "decision", "decisions"))
	return nil
}

// levelNames are the disclosure levels, least revealing first.
func levelNames() []string {
	out := make([]string, len(policy.Levels))
	for i, l := range policy.Levels {
		out[i] = string(l)
	}
	return out
}

// levelSummary returns "full:2,count:1": the entries disclosed per level,
// most revealing level first.
func levelSummary(outs []audit.Outcome) string {
	sums := map[string]uint64{}
	var levels []string
	for _, o := range outs {
		if _, ok := sums[o.Level]; !ok {
			levels = append(levels, o.Level)
		}
		sums[o.Level] += o.Entries
	}
	slices.SortFunc(levels, func(a, b string) int { return policy.Level(b).Rank() - policy.Level(a).Rank() })
	parts := make([]string, len(levels))
	for i, l := range levels {
		parts[i] = l + ":" + strconv.FormatUint(sums[l], 10)
	}
	return strings.Join(parts, ",")
}

// verifyFlags are the flags of the commands that verify the log: which
// hub, which pinned key, which saved state.
type verifyFlags struct {
	id                      auditorFlags
	stateFile, key, keyFile *string
	origin                  *string
}

func (f *verifyFlags) register(fs *flag.FlagSet) {
	f.id.register(fs)
	f.stateFile = fs.String("state", "", "`FILE` keeping the last verified checkpoint (default .veilmatch-agency/ID/audit-state.json for --as)")
	f.key = fs.String("verifier-key", "", "the hub's checkpoint verifier key `VKEY` (name+hash+key), obtained out of band")
	f.keyFile = fs.String("verifier-key-file", "", "`FILE` holding the hub's checkpoint verifier key (default for --as: "+devCheckpointKeyFile+")")
	renamed(fs, "key", "verifier-key")
	renamed(fs, "key-file", "verifier-key-file")
	f.origin = fs.String("origin", "", "the log's `NAME` (default: the verifier key's name)")
}

// verifySetup is what a verification needs, from the flags.
type verifySetup struct {
	audit    veilmatchv1.AuditServiceClient
	verifier note.Verifier
	origin   string
	state    string
	done     func()
}

// open dials the hub as the auditor and resolves the pinned key and the
// state file.
func (f *verifyFlags) open(ctx context.Context) (verifySetup, error) {
	if *f.key != "" && *f.keyFile != "" {
		return verifySetup{}, usagef("", "use either --verifier-key or --verifier-key-file, not both")
	}
	target, err := f.id.load()
	if err != nil {
		return verifySetup{}, err
	}
	c, done, err := target.dial()
	if err != nil {
		return verifySetup{}, err
	}
	v, err := target.verifier(ctx, c, *f.key, *f.keyFile)
	if err != nil {
		done()
		return verifySetup{}, err
	}
	path := firstNonEmpty(*f.stateFile, target.cfg.State, target.defaultState)
	if path == "" {
		done()
		return verifySetup{}, usagef("", "--state FILE is required with --config (or set \"state\" in the configuration)")
	}
	return verifySetup{audit: c, verifier: v, origin: firstNonEmpty(*f.origin, target.cfg.Origin), state: path, done: done}, nil
}

func cmdAuditConsole(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "audit console", "audit console --as auditor [--listen 127.0.0.1:PORT] [--state FILE] [--verifier-key VKEY | --verifier-key-file FILE] [--quota-daily N]",
		"veilmatch audit console --as auditor --listen 127.0.0.1:7480 --verifier-key-file hub-checkpoint.pub --state audit-state.json")
	var vf verifyFlags
	vf.register(fs)
	listen := fs.String("listen", "127.0.0.1:7480", "loopback `ADDR` to serve the console on (it has no login: never expose it)")
	daily := fs.Uint64("quota-daily", uint64(quota.DefaultLimits().Daily), "the key server's daily evaluations per agency, drawn on the usage charts")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("", "unexpected argument %q", pos[0])
	}
	host, _, err := net.SplitHostPort(*listen)
	if ip := net.ParseIP(host); err != nil || host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return usagef("", "--listen %q: give a loopback address such as 127.0.0.1:7480; the console has no login and answers only on loopback", *listen)
	}
	s, err := vf.open(ctx)
	if err != nil {
		return err
	}
	defer s.done()
	c := console.New(console.Config{Audit: s.audit, Verifier: s.verifier, Origin: s.origin, StatePath: s.state, QuotaDaily: *daily, Logger: slog.Default()})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	if err := c.Verify(ctx); err != nil {
		var f *auditor.Failure
		if !errors.As(err, &f) {
			ln.Close()
			return auditRPCError("verify decision log", err)
		}
		fmt.Fprintf(e.stderr, "veilmatch: decision log verification FAILED: %v (the console shows it)\n", err)
	}
	srv := &http.Server{Handler: c.Handler(), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(e.stdout, "auditor console on http://%s/ (state %s); Ctrl-C stops it\n", ln.Addr(), s.state)
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func cmdAuditVerify(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "audit verify", "audit verify --as auditor [--state FILE] [--verifier-key VKEY | --verifier-key-file FILE] [--origin NAME]",
		"veilmatch audit verify --as auditor --verifier-key-file hub-checkpoint.pub --state audit-state.json")
	var vf verifyFlags
	vf.register(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("", "unexpected argument %q", pos[0])
	}
	s, err := vf.open(ctx)
	if err != nil {
		return err
	}
	defer s.done()
	c, v, path := s.audit, s.verifier, s.state
	prev, err := auditor.ReadState(path)
	if errors.Is(err, auditor.ErrBadState) {
		return withHint(err, "restore it from a backup; deleting it gives up the rollback check")
	}
	if err != nil {
		return err
	}
	rep, next, err := auditor.Verify(ctx, c, v, s.origin, prev)
	if err != nil {
		var f *auditor.Failure
		if errors.As(err, &f) {
			return withHint(fmt.Errorf("decision log verification failed: %w", err),
				"keep "+path+" and the hub's database as evidence and report this to the hub operator and the oversight body")
		}
		return auditRPCError("verify decision log", err)
	}
	if err := auditor.WriteState(path, next); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, rep.Summary())
	if rep.Consistent {
		fmt.Fprintf(e.stdout, "consistent with the checkpoint of size %d verified before\n", rep.PreviousSize)
	} else {
		fmt.Fprintf(e.stdout, "first verification: no earlier state in %s, so this checkpoint is trusted on first use; later runs prove the log only grows\n", path)
	}
	actions := make([]string, 0, len(rep.Actions))
	for a := range rep.Actions {
		actions = append(actions, a)
	}
	slices.Sort(actions)
	for _, a := range actions {
		fmt.Fprintf(e.stdout, "  %s: %d allowed, %d refused\n", a, rep.Actions[a][audit.ResultAllowed], rep.Actions[a][audit.ResultRefused])
	}
	return nil
}

// verifier returns the pinned checkpoint verifier: --verifier-key, --verifier-key-file, the
// configuration, or the development default for --as. With none, the
// error shows the key the hub presents, to be confirmed out of band.
func (t auditTarget) verifier(ctx context.Context, c veilmatchv1.AuditServiceClient, key, keyFile string) (note.Verifier, error) {
	if key == "" && keyFile == "" {
		key, keyFile = t.cfg.VerifierKey, t.cfg.VerifierKeyFile
	}
	if key == "" && keyFile == "" && t.defaultKeyFile != "" {
		if _, err := os.Stat(t.defaultKeyFile); err == nil {
			keyFile = t.defaultKeyFile
		}
	}
	if key == "" && keyFile == "" {
		hint := "pass the hub's checkpoint verifier key with --verifier-key or --verifier-key-file; 'veilmatch dev' writes it to " + devCheckpointKeyFile
		if resp, err := c.GetCheckpoint(ctx, &veilmatchv1.GetCheckpointRequest{}); err == nil && resp.GetVerifierKey() != "" {
			hint = fmt.Sprintf("the hub presents the verifier key %s: confirm it with the hub operator out of band, then pin it with --verifier-key", resp.GetVerifierKey())
		}
		return nil, withHint(errors.New("no pinned checkpoint verifier key"), hint)
	}
	if keyFile != "" {
		data, err := readSmallFile(keyFile, maxVerifierKeyFile)
		if err != nil {
			return nil, fmt.Errorf("read checkpoint verifier key: %w", err)
		}
		key = string(bytes.TrimSpace(data))
	}
	v, err := audit.NewVerifier(key)
	if err != nil {
		return nil, withHint(err, "a verifier key looks like NAME+HASH+BASE64")
	}
	return v, nil
}

// readSmallFile reads a file of at most limit bytes.
func readSmallFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func cmdAuditReport(ctx context.Context, e env, args []string) error {
	q := newAuditQuery(e, "report", "audit report --as auditor [--since TIME] [--until TIME] [--format json]",
		"veilmatch audit report --as auditor --since 2026-11-01 --until 2026-12-01")
	req := &veilmatchv1.ListDecisionsRequest{}
	recs, err := q.fetch(ctx, args, req, func() error { return nil })
	if err != nil {
		return err
	}
	rep := struct {
		Since string `json:"since,omitempty"`
		Until string `json:"until,omitempty"`
		auditor.Summary
	}{Since: ts(req.Since), Until: ts(req.Until), Summary: auditor.Summarize(recs)}
	if q.format == "json" {
		return writeJSON(e.stdout, rep)
	}
	var total uint64
	for _, r := range rep.Decisions {
		total += r.Decisions
	}
	fmt.Fprintf(e.stdout, "%d decisions from %s to %s\n", total, orDefault(rep.Since, "the start of the log"), orDefault(rep.Until, "now"))
	return printSummary(e.stdout, rep.Summary)
}

// printSummary writes a summary's three tables, each that has rows.
func printSummary(w io.Writer, s auditor.Summary) error {
	table := func(title, header, footer string, rows int, row func(tw io.Writer, i int)) error {
		if rows == 0 {
			return nil
		}
		fmt.Fprint(w, title)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, header)
		for i := range rows {
			row(tw, i)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprint(w, footer)
		return nil
	}
	return errors.Join(
		table("", "AGENCY\tPURPOSE\tDECISIONS\tREFUSED\tFULL\tFLAG\tCOUNT",
			"FULL, FLAG, COUNT: matching entries disclosed at that level (in how many decisions)\n", len(s.Decisions), func(tw io.Writer, i int) {
				r := s.Decisions[i]
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d", orDash(r.Agency), orDash(r.Purpose), r.Decisions, r.Refusals)
				for _, l := range auditor.ReportLevels {
					lc := r.Levels[string(l)]
					fmt.Fprintf(tw, "\t%d (%d)", lc.Entries, lc.Decisions)
				}
				fmt.Fprintln(tw)
			}),
		table("\nkey-server use:\n", "AGENCY\tDAY\tEVALUATIONS\tREQUESTS\tQUOTA REFUSALS", "", len(s.Quota), func(tw io.Writer, i int) {
			q := s.Quota[i]
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\n", orDash(q.Agency), q.Day, q.Evaluations, q.Requests, q.Refusals)
		}),
		table("\nchecks against the daily check budget:\n", "AGENCY\tDAY\tCHECKS\tENTRIES\tREFUSED\tSMALL CHECKS\tFLAG",
			fmt.Sprintf("SMALL CHECKS: checks of at most %d entries; PROBING?: %d or more in a day, the pattern of learning which entries a count covers one by one\n",
				auditor.SmallCheck, auditor.ProbingChecks), len(s.Checks), func(tw io.Writer, i int) {
				c := s.Checks[i]
				flag := "-"
				if c.Probing {
					flag = "PROBING?"
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\n", c.Agency, c.Day, c.Checks, c.Entries, c.Refused, c.SmallChecks, flag)
			}),
	)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
