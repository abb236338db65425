package hub_test

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/veilmatch/veilmatch/client"
	"github.com/veilmatch/veilmatch/client/normalize"
	"github.com/veilmatch/veilmatch/internal/servertest"
	"github.com/veilmatch/veilmatch/policy"
	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/hub"
	"github.com/veilmatch/veilmatch/server/keyserver"
	"github.com/veilmatch/veilmatch/server/store"
	"github.com/veilmatch/veilmatch/server/store/sqlite"
)

// crashHubEnv makes the test binary run a hub instead of the tests: the
// crash tests start it as a child process and kill it with SIGKILL.
const crashHubEnv = "VEILMATCH_TEST_CRASH_HUB"

// crashHubListenEnv is the child hub's listen address (default
// 127.0.0.1:0).
const crashHubListenEnv = "VEILMATCH_TEST_CRASH_HUB_LISTEN"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashHubEnv); dir != "" {
		runChildHub(dir, cmp.Or(os.Getenv(crashHubListenEnv), "127.0.0.1:0"))
		return
	}
	os.Exit(m.Run())
}

// runChildHub serves a hub on listen over dir and prints its address.
func runChildHub(dir, listen string) {
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	pol, err := policy.New(ctx, policy.Options{Logger: quiet})
	if err == nil {
		var h *hub.Server
		h, err = hub.New(ctx, hub.Config{Listen: listen, TLS: servertest.ServerTLS(fatalTB{}, "hub"), DataDir: dir, Policy: pol, Logger: quiet})
		if err == nil {
			fmt.Printf("addr %s\n", h.Addr())
			err = h.Serve(ctx)
		}
	}
	fmt.Fprintln(os.Stderr, "child hub:", err)
	os.Exit(1)
}

// fatalTB lets the child use the servertest helpers outside a test.
type fatalTB struct{ testing.TB }

func (fatalTB) Helper()                   {}
func (fatalTB) Fatal(args ...any)         { fmt.Fprintln(os.Stderr, args...); os.Exit(1) }
func (fatalTB) Fatalf(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...); os.Exit(1) }

// startChild starts a hub process over dir and returns its address.
func startChild(t *testing.T, dir string) (*exec.Cmd, string) {
	t.Helper()
	return startChildAt(t, dir, "127.0.0.1:0")
}

// startChildAt starts a hub process over dir listening on listen.
func startChildAt(t *testing.T, dir, listen string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashHubEnv+"="+dir, crashHubListenEnv+"="+listen)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "addr ") {
		t.Fatalf("child hub did not start: %q, %v", line, err)
	}
	return cmd, strings.TrimSpace(strings.TrimPrefix(line, "addr "))
}

// TestCrashKeepsActionsAndRecordsTogether kills the hub with SIGKILL while
// agencies publish, query and delete, restarts it, and checks that every
// committed list has its publish record, every record's action happened,
// no entry is lost or duplicated, the log is intact, and the interrupted
// upload resumes.
func TestCrashKeepsActionsAndRecordsTogether(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	ks := servertest.KeyServer(t, keyserver.Config{})
	dir := t.TempDir()
	child, addr := startChild(t, dir)

	const rows = 300
	var csv strings.Builder
	csv.WriteString("phone\n")
	for i := range rows {
		fmt.Fprintf(&csv, "+1 415 555 %04d\n", i)
	}
	state := t.TempDir()
	mk := func(addr string) *client.Client {
		c, err := client.New(client.Config{Agency: "police-us", Hub: addr, KeyServer: ks.Addr().String(), TLS: servertest.ClientTLS(t, "police-us"),
			StateDir: state, BatchSize: 10, Workers: 1, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	c := mk(addr)
	ctx := context.Background()
	opts := func(name string) client.PublishOptions {
		return client.PublishOptions{List: name, Kind: normalize.Phone, Category: "suspect"}
	}
	// Some completed work, recorded.
	for i := range 3 {
		if _, err := c.Publish(ctx, strings.NewReader(csv.String()), opts(fmt.Sprintf("done%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Delete(ctx, "done2"); err != nil {
		t.Fatal(err)
	}
	// Work in flight when the hub dies: a big upload and queries.
	done := make(chan error, 2)
	go func() {
		_, err := c.Publish(ctx, strings.NewReader(csv.String()), opts("inflight"))
		done <- err
	}()
	go func() {
		for {
			if _, err := c.Overlaps(ctx, "done0", client.Query{Purpose: "investigation", CaseRef: "C"}); err != nil {
				done <- err
				return
			}
		}
	}()
	time.Sleep(150 * time.Millisecond)
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	for range 2 {
		if err := <-done; err == nil {
			t.Log("an operation finished before the kill")
		}
	}

	// The store after the crash: lists and records agree.
	st, err := sqlite.Open(ctx, filepath.Join(dir, hub.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	lists, err := st.Lists(ctx, "police-us")
	if err != nil {
		t.Fatal(err)
	}
	size, root, err := st.LogHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := st.LogRecords(ctx, 0, int(size)+1)
	if err != nil || uint64(len(recs)) != size {
		t.Fatalf("log has %d records, head says %d: %v", len(recs), size, err)
	}
	tree, _ := audit.NewTree(0, nil)
	published, deleted := map[string]int{}, map[string]int{}
	for i, data := range recs {
		r, err := audit.ParseRecord(data)
		if err != nil || r.Index != uint64(i) {
			t.Fatalf("record %d: %v", i, err)
		}
		if _, err := tree.Append(audit.LeafHash(data)); err != nil {
			t.Fatal(err)
		}
		switch r.Action {
		case "publish":
			published[r.Lists[0]]++
		case "delete":
			deleted[r.Lists[0]]++
		}
	}
	if got, _ := tree.Root(); string(got) != string(root) {
		t.Fatal("the log's stored root differs from its records")
	}
	for _, l := range lists {
		if published["police-us/"+l.Name] == 0 {
			t.Errorf("list %s is committed without a publish record", l.Name)
		}
		if l.Entries != rows {
			t.Errorf("list %s has %d entries, want %d", l.Name, l.Entries, rows)
		}
	}
	if deleted["police-us/done2"] != 1 {
		t.Errorf("delete records for done2: %d", deleted["police-us/done2"])
	}
	inflightCommitted := published["police-us/inflight"] > 0
	if has := hasList(lists, "inflight"); has != inflightCommitted {
		t.Fatalf("inflight list committed=%t but publish record=%t", has, inflightCommitted)
	}
	st.Close()

	// Restart and resume: exactly one copy of every entry.
	_, addr2 := startChild(t, dir)
	c2 := mk(addr2)
	res, err := c2.Publish(ctx, strings.NewReader(csv.String()), opts("inflight"))
	if err != nil {
		t.Fatal(err)
	}
	if res.List.GetEntries() != rows {
		t.Fatalf("resumed list has %d entries, want %d", res.List.GetEntries(), rows)
	}
	t.Logf("killed after %d records; inflight committed before the kill: %t; resumed: %t, %d batches skipped",
		size, inflightCommitted, res.Resumed, res.BatchesSkipped)
}

func hasList(ls []store.List, name string) bool {
	for _, l := range ls {
		if l.Name == name {
			return true
		}
	}
	return false
}
