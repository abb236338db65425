package servertest

import (
	"database/sql"
	"log/slog"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/auditsvc"
	"github.com/veilmatch/veilmatch/server/rpc"
	"github.com/veilmatch/veilmatch/server/store/sqlite"
)

// AuditOrigin names the logs of NewAuditLog.
const AuditOrigin = "hub.veilmatch.test/audit"

// AuditBase is the time of the first of SampleDecisions, and the audit
// service's clock.
var AuditBase = time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)

// SampleDecisions are decisions of every kind a log holds; decision i was
// taken at AuditBase + i hours.
func SampleDecisions() []audit.Record {
	recs := []audit.Record{
		{Agency: "police-gb", Action: "publish", Result: audit.ResultAllowed, Lists: []string{"police-gb/suspects"}},
		{Agency: "police-gb", Action: "overlaps", Result: audit.ResultAllowed, Purpose: "investigation", CaseRef: "GB-1",
			Outcomes: []audit.Outcome{{Class: "law_enforcement", Level: "full", Entries: 2}, {Class: "ngo", Level: "count", Entries: 1}},
			Rules:    []string{"le_full", "ngo_count"}},
		{Agency: "ngo-shelter", Action: "check", Result: audit.ResultAllowed, Purpose: "victim_support",
			Outcomes: []audit.Outcome{{Class: "law_enforcement", Level: "flag", Entries: 1}}, Rules: []string{"ngo_flag"}},
		{Agency: "police-us", Action: "overlaps", Result: audit.ResultRefused, Purpose: "investigation",
			Reason: "a case reference is required", Rules: []string{"case_ref_required"}},
		{Agency: "police-gb", Action: "check", Result: audit.ResultAllowed, Purpose: "investigation", CaseRef: "GB-2",
			Outcomes: []audit.Outcome{{Class: "victim", Level: "count", Entries: 3}}},
		{Agency: "ngo-shelter", Action: "overlaps", Result: audit.ResultRefused, Purpose: "research"},
		{Agency: "police-us", Action: "request_disclosure", Result: audit.ResultAllowed, Purpose: "investigation", CaseRef: "US-7"},
		{Agency: "police-gb", Action: "quota_usage", Result: audit.ResultAllowed,
			Details: map[string]string{"evaluations": "100", "day": "2026-11-01"}},
	}
	for i := range recs {
		recs[i].Time = AuditBase.Add(time.Duration(i) * time.Hour)
		recs[i].DecisionID = "d-" + string(rune('a'+i))
		recs[i].Caller = "spiffe://veilmatch.dev/agency/" + recs[i].Agency
		recs[i].PolicyRevision = "rev-1"
	}
	return recs
}

// NoteKey is a checkpoint signing key with its verifier.
type NoteKey struct {
	Signer   note.Signer
	Verifier note.Verifier
	// VKey is the verifier key, as auditors pin it.
	VKey string
}

// NewNoteKey returns a new checkpoint key named name.
func NewNoteKey(t testing.TB, name string) NoteKey {
	t.Helper()
	skey, vkey, err := audit.GenerateKey(name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := audit.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return NoteKey{Signer: s, Verifier: v, VKey: vkey}
}

// AuditLog is a decision log in a real SQLite store, served by a real
// AuditService over real mTLS on loopback: what the hub serves auditors.
type AuditLog struct {
	Store  *sqlite.Store
	DBPath string
	Addr   string
	Key    NoteKey
	// Roots holds the root hash of every size the log had.
	Roots map[uint64][]byte
}

// NewAuditLog serves a log named AuditOrigin that holds recs, signed by a
// new key, until the test ends.
func NewAuditLog(t testing.TB, recs []audit.Record) *AuditLog {
	t.Helper()
	dbPath := filepath.Join(t.TempDir(), "hub.db")
	st, err := sqlite.Open(t.Context(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l := &AuditLog{Store: st, DBPath: dbPath, Key: NewNoteKey(t, AuditOrigin), Roots: map[uint64][]byte{}}
	l.Record(t, 0)
	l.Append(t, recs...)
	l.Addr = ServeAudit(t, auditsvc.New(st, l.Key.Signer, AuditOrigin, l.Key.VKey, func() time.Time { return AuditBase }))
	return l
}

// ServeAudit serves svc on 127.0.0.1:0 with the hub's development
// certificate until the test ends, and returns its address.
func ServeAudit(t testing.TB, svc veilmatchv1.AuditServiceServer) string {
	t.Helper()
	srv, err := rpc.New(rpc.ServerOptions{Listen: "127.0.0.1:0", TLS: ServerTLS(t, "hub"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	veilmatchv1.RegisterAuditServiceServer(srv.GRPC, svc)
	Serve(t, srv.Serve)
	return srv.Addr().String()
}

// Append appends recs to the log, keeping the root of every size.
func (l *AuditLog) Append(t testing.TB, recs ...audit.Record) {
	t.Helper()
	for _, r := range recs {
		idx, err := l.Store.AppendDecision(t.Context(), &r, nil)
		if err != nil {
			t.Fatal(err)
		}
		l.Record(t, idx+1)
	}
}

// Record keeps the root of the log, which must have size records.
func (l *AuditLog) Record(t testing.TB, size uint64) {
	t.Helper()
	got, root, err := l.Store.LogHead(t.Context())
	if err != nil || got != size {
		t.Fatalf("LogHead = %d, %v; want size %d", got, err, size)
	}
	l.Roots[size] = root
}

// Client dials the log's service as a development party.
func (l *AuditLog) Client(t testing.TB, party string) veilmatchv1.AuditServiceClient {
	t.Helper()
	return veilmatchv1.NewAuditServiceClient(Dial(t, l.Addr, ClientTLS(t, party)))
}

// Tamper runs SQL statements directly against the log's database file, as
// an operator covering its tracks would.
func (l *AuditLog) Tamper(t testing.TB, stmts ...string) {
	t.Helper()
	u := url.URL{Scheme: "file", Path: l.DBPath, RawQuery: url.Values{"_pragma": {"busy_timeout(5000)"}}.Encode()}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.ExecContext(t.Context(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}
