package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rogpeppe/go-internal/testscript"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	_ "modernc.org/sqlite"

	"github.com/veilmatch/veilmatch/certs"
	"github.com/veilmatch/veilmatch/crypto/mtls"
)

// TestMain lets the scripts run this test binary as `veilmatch`: testscript
// copies it into a directory on the scripts' PATH under that name.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"veilmatch": main})
}

// TestScripts runs the CLI scripts in testdata/script. Each script gets
// free loopback addresses in VEILMATCH_HUB and VEILMATCH_KEYSERVER (for
// `veilmatch dev --hub-listen … --keyserver-listen …` and for --as),
// VEILMATCH_METRICS and VEILMATCH_CONSOLE, HOME=$WORK, the built-in
// development certificates copied to $DEVCERTS, for servers started by hand, and Meta's PDQ
// reference images (client/pdq/testdata) in $PDQIMAGES.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup:               setupScript,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits":       cmdExits,
			"waitserving": cmdWaitServing,
			"sqlexec":     cmdSQLExec,
			"httpget":     cmdHTTPGet,
			"jsondrop":    cmdJSONDrop,
			"mode":        cmdMode,
			"pgdb":        cmdPGDB,
			"pgwait":      cmdPGWait,
		},
		Condition: func(cond string) (bool, error) {
			if cond != "postgres" {
				return false, fmt.Errorf("unknown condition %q", cond)
			}
			if os.Getenv("VEILMATCH_TEST_POSTGRES") == "" && os.Getenv("CI") != "" {
				return false, errors.New("VEILMATCH_TEST_POSTGRES must point at a PostgreSQL server in CI (.ci/postgres starts one)")
			}
			return os.Getenv("VEILMATCH_TEST_POSTGRES") != "", nil
		},
	})
}

// cmdPGWait polls the database of pgdb until a query returns true, for
// up to waitTimeout:
//
//	pgwait 'SELECT count(*) >= 2 FROM batches'
func cmdPGWait(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: pgwait QUERY")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, ts.Getenv("PGDSN"))
	ts.Check(err)
	defer conn.Close(ctx)
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		var ok bool
		ts.Check(conn.QueryRow(ctx, args[0]).Scan(&ok))
		if ok {
			return
		}
		if time.Since(start) > waitTimeout {
			ts.Fatalf("pgwait: %q still false after %s", args[0], waitTimeout)
		}
	}
}

// cmdPGDB creates a new, empty PostgreSQL database on the server of
// VEILMATCH_TEST_POSTGRES, dropped when the script ends, and sets PGDSN to
// its URL:
//
//	pgdb
func cmdPGDB(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: pgdb")
	}
	server := os.Getenv("VEILMATCH_TEST_POSTGRES")
	if server == "" {
		ts.Fatalf("pgdb: VEILMATCH_TEST_POSTGRES is not set (guard the script with [!postgres] skip)")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, server)
	ts.Check(err)
	defer conn.Close(ctx)
	name := fmt.Sprintf("vm_script_%d", rand.Int64N(1<<62))
	_, err = conn.Exec(ctx, "CREATE DATABASE "+name)
	ts.Check(err)
	ts.Defer(func() {
		c, err := pgx.Connect(ctx, server)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	u, err := url.Parse(server)
	ts.Check(err)
	u.Path = "/" + name
	ts.Setenv("PGDSN", u.String())
}

func setupScript(env *testscript.Env) error {
	hub, err := freeLoopbackAddr()
	if err != nil {
		return err
	}
	ks, err := freeLoopbackAddr()
	if err != nil {
		return err
	}
	metrics, err := freeLoopbackAddr()
	if err != nil {
		return err
	}
	for _, name := range []string{"KS1", "KS2", "KS3", "KS4", "KS5", "KS6"} {
		addr, err := freeLoopbackAddr()
		if err != nil {
			return err
		}
		env.Setenv(name, addr)
	}
	env.Setenv("VEILMATCH_HUB", hub)
	env.Setenv("VEILMATCH_KEYSERVER", ks)
	env.Setenv("VEILMATCH_METRICS", metrics)
	console, err := freeLoopbackAddr()
	if err != nil {
		return err
	}
	env.Setenv("VEILMATCH_CONSOLE", console)
	env.Setenv("HOME", env.WorkDir)
	dir := filepath.Join(env.WorkDir, "devcerts")
	if err := os.CopyFS(dir, certs.DevFS); err != nil {
		return err
	}
	env.Setenv("DEVCERTS", dir)
	images, err := filepath.Abs("../../client/pdq/testdata")
	if err != nil {
		return err
	}
	env.Setenv("PDQIMAGES", images)
	return nil
}

// handedOut remembers the ports given to scripts, which run in parallel,
// so that no two scripts get the same one.
var handedOut struct {
	sync.Mutex
	ports map[int]bool
}

// freeLoopbackAddr returns 127.0.0.1:PORT for a port that was free a moment
// ago and has not been given to another script of this run. It prefers
// ports below the ephemeral ranges of Linux (32768-60999), macOS and Windows
// (49152-65535), so that no outgoing connection or other ":0" listener
// takes the port between now and the moment `veilmatch dev` binds it.
func freeLoopbackAddr() (string, error) {
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports == nil {
		handedOut.ports = map[int]bool{}
	}
	for i := range 200 {
		port := 0 // the last tries let the kernel choose
		if i < 150 {
			port = 20000 + rand.IntN(12000)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		port = l.Addr().(*net.TCPAddr).Port
		if err := l.Close(); err != nil {
			return "", err
		}
		if !handedOut.ports[port] {
			handedOut.ports[port] = true
			return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
		}
	}
	return "", errors.New("no free loopback port found")
}

// cmdExits runs a program like exec and requires the exact exit status:
//
//	exits N program [args...]
//
// so that scripts can tell a usage error (2) from a failure (1) and from
// rejected rows (3). stdout and stderr are kept for the next commands.
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! exits")
	}
	if len(args) < 2 {
		ts.Fatalf("usage: exits STATUS program [args...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: bad status %q", args[0])
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exits: %s: %v", args[1], err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}

// waitTimeout bounds waitserving. It is generous: on a loaded two-core
// machine the first start compiles the policy while other scripts run.
const waitTimeout = 60 * time.Second

// zeroSignal only checks that a process is still there.
var zeroSignal = syscall.Signal(0)

// cmdWaitServing polls the standard gRPC health service at an address over
// mTLS (as the development party police-gb) until it reports SERVING:
//
//	waitserving ADDR [SERVICE]
//
// SERVICE defaults to "" (the whole server). It fails after waitTimeout, or
// as soon as a background command of the script has exited (a server that
// could not start).
func cmdWaitServing(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! waitserving")
	}
	if len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: waitserving ADDR [SERVICE]")
	}
	addr, service := args[0], ""
	if len(args) == 2 {
		service = args[1]
	}
	tlsCfg, err := mtls.ClientConfigFS(certs.DevFS, mtls.DevFiles(".", "police-gb"), "localhost")
	ts.Check(err)
	start := time.Now()
	var last error
	for {
		st, err := healthCheck(addr, service, credentials.NewTLS(tlsCfg))
		if err == nil && st == healthpb.HealthCheckResponse_SERVING {
			ts.Logf("%s serving after %s", addr, time.Since(start).Round(time.Millisecond))
			return
		}
		if err == nil {
			err = fmt.Errorf("status %s", st)
		}
		last = err
		for _, cmd := range ts.BackgroundCmds() {
			if cmd.Process.Signal(zeroSignal) != nil {
				ts.Fatalf("waitserving %s: background command %q exited (use 'wait' to see its output); last health check: %v", addr, cmd.Args, last)
			}
		}
		if time.Since(start) > waitTimeout {
			ts.Fatalf("waitserving %s: not serving after %s: %v", addr, waitTimeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// healthCheck makes one health check on a fresh connection, so that gRPC's
// reconnection backoff never delays noticing a server that has come up.
func healthCheck(addr, service string, creds credentials.TransportCredentials) (healthpb.HealthCheckResponse_ServingStatus, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return 0, err
	}
	return resp.GetStatus(), nil
}

// cmdJSONDrop reads JSON from FILE ("stdout", "stderr" or a path), removes
// every object member named one of KEYs at any depth, and writes the rest,
// indented like the CLI's --format json and in the same member order, to
// stdout for cmp:
//
//	jsondrop FILE KEY...
//
// It takes out what changes from run to run: decision ids, match
// references, key ids, times.
func cmdJSONDrop(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! jsondrop")
	}
	if len(args) < 1 {
		ts.Fatalf("usage: jsondrop FILE KEY...")
	}
	drop := map[string]bool{}
	for _, k := range args[1:] {
		drop[k] = true
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(ts.ReadFile(args[0]))))
	dec.UseNumber()
	v, err := decodeOrdered(dec, drop)
	if err != nil {
		ts.Fatalf("jsondrop %s: %v", args[0], err)
	}
	if _, err := dec.Token(); err == nil {
		ts.Fatalf("jsondrop %s: more than one JSON value", args[0])
	}
	out, err := json.MarshalIndent(v, "", "  ")
	ts.Check(err)
	fmt.Fprintf(ts.Stdout(), "%s\n", out)
}

// member is one member of a JSON object; orderedObject keeps the order.
type member struct {
	key   string
	value any
}

type orderedObject []member

func (o orderedObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(m.key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(m.value)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// decodeOrdered decodes the next JSON value, keeping object member order
// and leaving out members named in drop.
func decodeOrdered(dec *json.Decoder, drop map[string]bool) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return tok, nil
	}
	switch d {
	case '{':
		obj := orderedObject{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := decodeOrdered(dec, drop)
			if err != nil {
				return nil, err
			}
			if k := kt.(string); !drop[k] {
				obj = append(obj, member{k, v})
			}
		}
		_, err = dec.Token() // '}'
		return obj, err
	case '[':
		arr := []any{}
		for dec.More() {
			v, err := decodeOrdered(dec, drop)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		_, err = dec.Token() // ']'
		return arr, err
	}
	return nil, fmt.Errorf("unexpected %v", d)
}

// cmdMode checks a file's permission bits:
//
//	mode 0600 FILE
func cmdMode(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: [!] mode PERM FILE")
	}
	want, err := strconv.ParseUint(args[0], 8, 32)
	if err != nil {
		ts.Fatalf("mode: bad permission %q", args[0])
	}
	fi, err := os.Stat(ts.MkAbs(args[1]))
	ts.Check(err)
	got := fi.Mode().Perm()
	if (got == os.FileMode(want)) == neg {
		ts.Fatalf("%s has mode %#o, want %s%#o", args[1], got, map[bool]string{true: "not "}[neg], want)
	}
}

// cmdSQLExec runs one SQL statement on a SQLite database file, as an
// operator with write access to the hub's disk could:
//
//	sqlexec DB SQL
func cmdSQLExec(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: sqlexec DB SQL")
	}
	db, err := sql.Open("sqlite", "file:"+ts.MkAbs(args[0]))
	if err != nil {
		ts.Fatalf("sqlexec: %v", err)
	}
	defer db.Close()
	res, err := db.Exec(args[1])
	if err != nil {
		ts.Fatalf("sqlexec: %v", err)
	}
	n, _ := res.RowsAffected()
	ts.Logf("sqlexec: %d rows affected", n)
}

// cmdHTTPGet fetches a URL, as curl would, into stdout:
//
//	httpget URL
//
// It retries for up to waitTimeout while nothing listens.
func cmdHTTPGet(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: httpget URL")
	}
	// A server started in the background may not be listening yet.
	resp, err := http.Get(args[0])
	for start := time.Now(); err != nil && time.Since(start) < waitTimeout; resp, err = http.Get(args[0]) {
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		ts.Fatalf("httpget: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		ts.Fatalf("httpget: %s: %v", resp.Status, err)
	}
	ts.Stdout().Write(body)
}
