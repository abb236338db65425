package hub_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	_ "modernc.org/sqlite"

	"github.com/veilmatch/veilmatch/client"
	"github.com/veilmatch/veilmatch/client/normalize"
	"github.com/veilmatch/veilmatch/crypto/token"
	"github.com/veilmatch/veilmatch/internal/devstack"
	"github.com/veilmatch/veilmatch/internal/servertest"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/hub"
	"github.com/veilmatch/veilmatch/server/metrics"
)

// env is a key server and a hub on loopback with real mTLS.
type env struct {
	ks, hub string
	dataDir string
}

func start(t *testing.T) *env { return startWith(t, nil) }

// startWith starts the development stack, recording into m.
func startWith(t *testing.T, m *metrics.Metrics) *env {
	t.Helper()
	st := servertest.Stack(t, devstack.Config{Metrics: m})
	return &env{ks: st.KeyServer.Addr().String(), hub: st.Hub.Addr().String(), dataDir: st.HubDir}
}

func (e *env) client(t *testing.T, agency string, mod ...func(*client.Config)) *client.Client {
	t.Helper()
	cfg := client.Config{Agency: agency, Hub: e.hub, KeyServer: e.ks}
	for _, m := range mod {
		m(&cfg)
	}
	return servertest.Client(t, cfg)
}

func (e *env) hubClient(t *testing.T, agency string) veilmatchv1.HubServiceClient {
	return veilmatchv1.NewHubServiceClient(servertest.Dial(t, e.hub, servertest.ClientTLS(t, agency)))
}

func publish(t *testing.T, c *client.Client, list, region, csv string) client.PublishResult {
	t.Helper()
	res, err := c.Publish(context.Background(), strings.NewReader(csv), client.PublishOptions{
		List: list, Kind: normalize.Phone, Category: "suspect", Normalize: normalize.Options{Region: region},
	})
	if err != nil {
		t.Fatalf("publish %s: %v", list, err)
	}
	return res
}

var investigation = client.Query{Purpose: "investigation", CaseRef: "CASE-1"}

// TestCheckStoresNothing: a check stores nothing but its decision record —
// every table except the decision log is unchanged, the record holds no
// list, token or identifier — and no other agency's answers change.
func TestCheckStoresNothing(t *testing.T) {
	e := start(t)
	gb, us := e.client(t, "police-gb"), e.client(t, "police-us")
	publish(t, gb, "suspects", "GB", "phone\n07700 900123\n07700 900456\n")
	publish(t, us, "suspects", "US", "phone\n+44 7700 900123\n")
	before, err := gb.Overlaps(context.Background(), "suspects", investigation)
	if err != nil {
		t.Fatal(err)
	}
	tables := dumpTables(t, filepath.Join(e.dataDir, hub.DBFile))
	logBefore := len(tables["log_records"])

	ngo := e.client(t, "ngo-shelter")
	res, err := ngo.Check(context.Background(), strings.NewReader("phone\n07700 900123\n07700 900999\n"),
		client.CheckOptions{Kind: normalize.Phone, Normalize: normalize.Options{Region: "GB"}}, client.Query{Purpose: "victim_support"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Matches)+len(res.Counts) == 0 {
		t.Fatal("check found nothing; the test would prove nothing")
	}
	after := dumpTables(t, filepath.Join(e.dataDir, hub.DBFile))
	for name, rows := range tables {
		// The decision log grows by the check's record, and the check's
		// entries count against the NGO's daily budget.
		if strings.HasPrefix(name, "log_") || name == "checkpoints" || name == "check_use" {
			continue
		}
		if strings.Join(rows, "\n") != strings.Join(after[name], "\n") {
			t.Errorf("check changed table %s", name)
		}
	}
	if n := len(after["log_records"]); n != logBefore+1 {
		t.Fatalf("check added %d decision records, want 1", n-logBefore)
	}
	rec, err := audit.ParseRecord([]byte(after["log_records"][logBefore]))
	if err != nil {
		t.Fatal(err)
	}
	if rec.Action != "check" || rec.Agency != "ngo-shelter" || len(rec.Lists) != 0 {
		t.Fatalf("check record = %+v", rec)
	}
	for _, v := range []string{"7700900123", "7700900999"} {
		if strings.Contains(after["log_records"][logBefore], v) {
			t.Fatalf("the check's record holds an identifier")
		}
	}
	again, err := gb.Overlaps(context.Background(), "suspects", investigation)
	if err != nil {
		t.Fatal(err)
	}
	if mustJSON(t, before.Matches, before.Counts) != mustJSON(t, again.Matches, again.Counts) {
		t.Fatalf("police-gb's overlaps changed after a check:\n%v\n%v", before, again)
	}
}

func mustJSON(t *testing.T, v ...any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// dumpTables reads every table of the hub's database through a separate
// read-only connection: table name to rows rendered as text.
func dumpTables(t *testing.T, path string) map[string][]string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	names, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for names.Next() {
		var n string
		names.Scan(&n)
		tables = append(tables, n)
	}
	names.Close()
	out := map[string][]string{}
	for _, name := range tables {
		rows, err := db.Query(`SELECT * FROM "` + name + `"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			if name == "log_records" {
				out[name] = append(out[name], string(vals[1].([]byte)))
				continue
			}
			out[name] = append(out[name], fmt.Sprintf("%v", vals))
		}
		rows.Close()
	}
	return out
}

// progressCanceler cancels a publish at its first progress line, once the
// hub holds at least one batch of the upload (read from the agency's state).
type progressCanceler struct {
	t      *testing.T
	hub    veilmatchv1.HubServiceClient
	state  string
	cancel context.CancelFunc
	once   sync.Once
}

func (p *progressCanceler) Write(b []byte) (int, error) {
	if !bytes.HasPrefix(b, []byte("publish ")) {
		return len(b), nil
	}
	p.once.Do(func() {
		var local struct {
			Pending struct {
				UploadID string `json:"upload_id"`
			} `json:"pending"`
		}
		data, err := os.ReadFile(filepath.Join(p.state, "lists", "big.json"))
		if err == nil {
			err = json.Unmarshal(data, &local)
		}
		if err != nil {
			p.t.Errorf("read agency state: %v", err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			st, err := p.hub.GetUploadStatus(context.Background(), &veilmatchv1.GetUploadStatusRequest{List: "big", UploadId: local.Pending.UploadID})
			if err == nil && len(st.GetSequences()) > 0 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		p.cancel()
	})
	return len(b), nil
}

// TestInterruptedPublishResumes: a publish cancelled mid-stream and run
// again leaves exactly one copy of each entry, and re-sends only what the
// hub did not already hold.
func TestInterruptedPublishResumes(t *testing.T) {
	e := start(t)
	var csv strings.Builder
	csv.WriteString("phone\n")
	const n = 200
	for i := range n {
		fmt.Fprintf(&csv, "+1 415 555 %04d\n", 1000+i)
	}
	state := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	pc := &progressCanceler{t: t, hub: e.hubClient(t, "police-us"), state: state, cancel: cancel}
	small := func(c *client.Config) { c.BatchSize, c.Workers, c.StateDir, c.Progress = 10, 1, state, pc }
	us := e.client(t, "police-us", small)
	_, err := us.Publish(ctx, strings.NewReader(csv.String()), client.PublishOptions{List: "big", Kind: normalize.Phone, Category: "suspect"})
	if err == nil {
		t.Fatal("publish was not interrupted")
	}
	lists, _ := us.Lists(context.Background())
	if len(lists) != 0 {
		t.Fatalf("an interrupted upload became visible: %v", lists)
	}

	us2 := e.client(t, "police-us", func(c *client.Config) { c.BatchSize, c.Workers, c.StateDir = 10, 1, state })
	res, err := us2.Publish(context.Background(), strings.NewReader(csv.String()), client.PublishOptions{List: "big", Kind: normalize.Phone, Category: "suspect"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resumed || res.BatchesSkipped == 0 {
		t.Errorf("rerun did not resume: %+v", res)
	}
	if res.List.GetEntries() != n {
		t.Fatalf("list has %d entries, want %d", res.List.GetEntries(), n)
	}
	// Every entry matches exactly once against another agency's copy.
	gb := e.client(t, "police-gb")
	publish(t, gb, "mirror", "GB", csv.String())
	ov, err := gb.Overlaps(context.Background(), "mirror", investigation)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]int{}
	for _, m := range ov.Matches {
		seen[m.EntryRef]++
	}
	if len(ov.Matches) != n || len(seen) != n {
		t.Fatalf("%d matches over %d entries, want %d each once", len(ov.Matches), len(seen), n)
	}
	// Publishing the same content again sends nothing.
	again, err := us2.Publish(context.Background(), strings.NewReader(csv.String()), client.PublishOptions{List: "big", Kind: normalize.Phone, Category: "suspect"})
	if err != nil || !again.Unchanged {
		t.Fatalf("republish: %+v, %v", again, err)
	}
}

// TestMalformedRowsDoNotStopValidRows: every bad row is reported with its
// line, and the rest is published.
func TestMalformedRowsDoNotStopValidRows(t *testing.T) {
	e := start(t)
	gb := e.client(t, "police-gb")
	res := publish(t, gb, "s", "GB", "phone\n07700 900123\nnot a number\n\n07700 900456\n12\n")
	if res.List.GetEntries() != 2 {
		t.Fatalf("entries = %d, want 2", res.List.GetEntries())
	}
	var lines []int
	for _, r := range res.Report.Rejected {
		lines = append(lines, r.Line)
	}
	if fmt.Sprint(lines) != "[3 6]" {
		t.Fatalf("rejected lines = %v, want [3 6]", lines)
	}
}

// TestOwnListsOnly: one agency cannot read, query, resume into or delete
// another agency's lists.
func TestOwnListsOnly(t *testing.T) {
	e := start(t)
	publish(t, e.client(t, "police-gb"), "suspects", "GB", "phone\n07700 900123\n")
	us := e.hubClient(t, "police-us")
	ctx := context.Background()
	calls := map[string]func() error{
		"overlaps": func() error {
			_, err := us.Overlaps(ctx, &veilmatchv1.OverlapsRequest{List: "police-gb/suspects", Purpose: "investigation", CaseRef: "C"})
			return err
		},
		"delete": func() error {
			_, err := us.DeleteList(ctx, &veilmatchv1.DeleteListRequest{List: "police-gb/suspects"})
			return err
		},
		"upload status": func() error {
			_, err := us.GetUploadStatus(ctx, &veilmatchv1.GetUploadStatusRequest{List: "police-gb/suspects", UploadId: "0123456789abcdef"})
			return err
		},
	}
	for name, call := range calls {
		if err := call(); status.Code(err) != codes.PermissionDenied {
			t.Errorf("%s: err = %v, want PermissionDenied", name, err)
		}
	}
	lists, err := us.ListLists(ctx, &veilmatchv1.ListListsRequest{})
	if err != nil || len(lists.GetLists()) != 0 {
		t.Fatalf("police-us sees lists %v (%v)", lists.GetLists(), err)
	}
	// Unqualified names are the caller's own: police-us has no "suspects".
	if _, err := us.Overlaps(ctx, &veilmatchv1.OverlapsRequest{List: "suspects", Purpose: "investigation", CaseRef: "C"}); status.Code(err) != codes.NotFound {
		t.Fatalf("err = %v, want NotFound", err)
	}
	gbLists, _ := e.client(t, "police-gb").Lists(ctx)
	if len(gbLists) != 1 || gbLists[0].GetEntries() != 1 {
		t.Fatalf("police-gb's list was touched: %v", gbLists)
	}
}

// TestBadPublishStreams: malformed uploads fail with InvalidArgument naming
// the message and field at fault, and leave the committed list untouched.
func TestBadPublishStreams(t *testing.T) {
	e := start(t)
	gb := e.client(t, "police-gb")
	first := publish(t, gb, "suspects", "GB", "phone\n07700 900123\n")
	hc := e.hubClient(t, "police-gb")
	begin := func(mod func(*veilmatchv1.ListInfo)) *veilmatchv1.PublishRequest {
		l := &veilmatchv1.ListInfo{Name: "suspects", Kind: "phone", Category: "suspect", KeyId: first.List.GetKeyId()}
		if mod != nil {
			mod(l)
		}
		return &veilmatchv1.PublishRequest{Msg: &veilmatchv1.PublishRequest_Begin{Begin: &veilmatchv1.PublishBegin{List: l, UploadId: "upload-0001"}}}
	}
	batch := func(seq uint64, toks ...[]byte) *veilmatchv1.PublishRequest {
		var es []*veilmatchv1.Entry
		for i, tk := range toks {
			es = append(es, &veilmatchv1.Entry{Token: tk, EntryRef: uint64(i)})
		}
		return &veilmatchv1.PublishRequest{Msg: &veilmatchv1.PublishRequest_Batch{Batch: &veilmatchv1.PublishBatch{Sequence: seq, Entries: es}}}
	}
	commit := func(b, n uint64) *veilmatchv1.PublishRequest {
		return &veilmatchv1.PublishRequest{Msg: &veilmatchv1.PublishRequest_Commit{Commit: &veilmatchv1.PublishCommit{TotalBatches: b, TotalEntries: n}}}
	}
	tok := bytes.Repeat([]byte{7}, 32)
	photos := begin(func(l *veilmatchv1.ListInfo) { l.Name, l.Kind = "photos", token.PDQKind })
	// A hash's tokens whose entry_ref changes at token 5.
	split := batch(0)
	for i := range token.PDQTokens {
		split.GetBatch().Entries = append(split.GetBatch().Entries, &veilmatchv1.Entry{Token: tok, EntryRef: uint64(min(i/5, 1))})
	}
	tests := []struct {
		name string
		msgs []*veilmatchv1.PublishRequest
		code codes.Code
		want string
	}{
		{"no begin", []*veilmatchv1.PublishRequest{batch(0, tok)}, codes.InvalidArgument, "first message must be PublishBegin"},
		{"bad kind", []*veilmatchv1.PublishRequest{begin(func(l *veilmatchv1.ListInfo) { l.Kind = "fax" })}, codes.InvalidArgument, "begin.list.kind"},
		{"bad name", []*veilmatchv1.PublishRequest{begin(func(l *veilmatchv1.ListInfo) { l.Name = "../x" })}, codes.InvalidArgument, "begin.list.name"},
		{"bad category", []*veilmatchv1.PublishRequest{begin(func(l *veilmatchv1.ListInfo) { l.Category = "Bad Category" })}, codes.InvalidArgument, "begin.list.category"},
		{"short token", []*veilmatchv1.PublishRequest{begin(nil), batch(0, tok, tok[:31])}, codes.InvalidArgument, "batch 0 entries[1]: token has 31 bytes"},
		{"empty batch", []*veilmatchv1.PublishRequest{begin(nil), batch(0)}, codes.InvalidArgument, "batch 0: no entries"},
		{"second begin", []*veilmatchv1.PublishRequest{begin(nil), begin(nil)}, codes.InvalidArgument, "PublishBegin may only come first"},
		{"missing batch", []*veilmatchv1.PublishRequest{begin(nil), batch(1, tok), commit(2, 1)}, codes.FailedPrecondition, "commit list suspects"},
		{"wrong total", []*veilmatchv1.PublishRequest{begin(nil), batch(0, tok), commit(1, 5)}, codes.FailedPrecondition, "commit list suspects"},
		{"pdq part of a hash", []*veilmatchv1.PublishRequest{photos, batch(0, tok, tok, tok)}, codes.InvalidArgument, "batch 0: 3 entries; a list of kind pdq sends 4232 per hash"},
		{"pdq hash split", []*veilmatchv1.PublishRequest{photos, split}, codes.InvalidArgument, "batch 0 entries[5]: entry_ref 1 in the middle of the 4232 tokens of hash 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stream, err := hc.Publish(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range tc.msgs {
				if err := stream.Send(m); err != nil {
					break
				}
			}
			_, err = stream.CloseAndRecv()
			st := status.Convert(err)
			if st.Code() != tc.code || !strings.Contains(st.Message(), tc.want) {
				t.Fatalf("err = %v, want %s containing %q", err, tc.code, tc.want)
			}
		})
	}
	lists, err := gb.Lists(context.Background())
	if err != nil || len(lists) != 1 || lists[0].GetEntries() != 1 {
		t.Fatalf("committed list changed: %v, %v", lists, err)
	}
}

// TestBadCheck: malformed check requests name the token at fault.
func TestBadCheck(t *testing.T) {
	e := start(t)
	hc := e.hubClient(t, "ngo-shelter")
	tok := bytes.Repeat([]byte{1}, 32)
	tests := []struct {
		req  *veilmatchv1.CheckRequest
		want string
	}{
		{&veilmatchv1.CheckRequest{Kind: "phone", KeyId: "k1", Purpose: "victim_support"}, "tokens: empty"},
		{&veilmatchv1.CheckRequest{Kind: "phone", KeyId: "k1", Tokens: [][]byte{tok, tok, {1}}, Purpose: "victim_support"}, "tokens[2]"},
		{&veilmatchv1.CheckRequest{Kind: "fax", KeyId: "k1", Tokens: [][]byte{tok}, Purpose: "victim_support"}, "kind"},
		{&veilmatchv1.CheckRequest{Kind: token.PDQKind, KeyId: "k1", Tokens: [][]byte{tok, tok}, Purpose: "victim_support"}, "tokens: 2 tokens; a check of kind pdq sends 4232 per hash"},
		{&veilmatchv1.CheckRequest{Kind: "phone", KeyId: "bad key", Tokens: [][]byte{tok}, Purpose: "victim_support"}, "key_id"},
	}
	for _, tc := range tests {
		_, err := hc.Check(context.Background(), tc.req)
		st := status.Convert(err)
		if st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), tc.want) {
			t.Errorf("err = %v, want InvalidArgument containing %q", err, tc.want)
		}
	}
}

// TestNoRawIdentifiersAtHub publishes known values and searches the hub's
// data directory byte for byte for every raw and canonical form.
func TestNoRawIdentifiersAtHub(t *testing.T) {
	e := start(t)
	raw := map[string]string{"07700 900123": "+447700900123", "+1 (415) 555-0132": "+14155550132"}
	var csv strings.Builder
	csv.WriteString("phone\n")
	for r := range raw {
		csv.WriteString(r + "\n")
	}
	gb := e.client(t, "police-gb")
	publish(t, gb, "suspects", "GB", csv.String())
	publish(t, e.client(t, "police-us"), "suspects", "US", "phone\n+44 7700 900123\n")
	if _, err := gb.Overlaps(context.Background(), "suspects", investigation); err != nil {
		t.Fatal(err)
	}
	var needles []string
	for r, c := range raw {
		needles = append(needles, r, c, strings.TrimPrefix(c, "+"), strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, r))
	}
	err := filepath.WalkDir(e.dataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, n := range needles {
			if bytes.Contains(b, []byte(n)) {
				t.Errorf("%s contains the identifier %q", p, n)
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
}

// errorsCause returns the gRPC status error inside err, if any.
func errorsCause(err error) error {
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return se.GRPCStatus().Err()
	}
	return err
}

func itoa(n int) string { return fmt.Sprint(n) }
