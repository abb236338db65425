package client_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veilmatch/veilmatch/certs"
	"github.com/veilmatch/veilmatch/client"
	"github.com/veilmatch/veilmatch/client/normalize"
	"github.com/veilmatch/veilmatch/crypto/mtls"
	"github.com/veilmatch/veilmatch/crypto/oprf"
	"github.com/veilmatch/veilmatch/internal/devstack"
	"github.com/veilmatch/veilmatch/internal/servertest"
	"github.com/veilmatch/veilmatch/server/hub"
	"github.com/veilmatch/veilmatch/server/keyserver"
)

var quiet = slog.New(slog.DiscardHandler)

// startKeyServer runs a key server with key on loopback.
func startKeyServer(tb testing.TB, key *oprf.PrivateKey) string {
	return servertest.KeyServer(tb, keyserver.Config{Keys: []*oprf.PrivateKey{key}}).Addr().String()
}

// startHub runs a hub with the default policy on loopback.
func startHub(tb testing.TB) string {
	return servertest.Hub(tb, hub.Config{}).Addr().String()
}

// TestKeyChangeDetected: a key server that presents another key under a
// pinned key id — to make one agency's tokens recognizable — is refused
// before anything is blinded or sent.
func TestKeyChangeDetected(t *testing.T) {
	state := t.TempDir()
	hubAddr := startHub(t)
	k1, _ := oprf.GenerateKey("k1")
	forged, _ := oprf.GenerateKey("k1")
	newClient := func(ks string) *client.Client {
		c, err := client.New(client.Config{Agency: "police-gb", Hub: hubAddr, KeyServer: ks, TLS: servertest.ClientTLS(t, "police-gb"), StateDir: state, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	opts := client.PublishOptions{List: "s", Kind: normalize.Phone, Category: "suspect", Normalize: normalize.Options{Region: "GB"}}
	if _, err := newClient(startKeyServer(t, k1)).Publish(context.Background(), strings.NewReader("phone\n07700 900123\n"), opts); err != nil {
		t.Fatal(err)
	}
	opts.List = "t"
	_, err := newClient(startKeyServer(t, forged)).Publish(context.Background(), strings.NewReader("phone\n07700 900123\n"), opts)
	if !errors.Is(err, client.ErrKeyChanged) {
		t.Fatalf("err = %v, want ErrKeyChanged", err)
	}
	// A configured pin is enforced the same way.
	c, err := client.New(client.Config{Agency: "police-gb", Hub: hubAddr, KeyServer: startKeyServer(t, forged), TLS: servertest.ClientTLS(t, "police-gb"),
		StateDir: t.TempDir(), PinnedKeys: []oprf.PublicKey{k1.Public()}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Publish(context.Background(), strings.NewReader("phone\n07700 900123\n"), opts); !errors.Is(err, client.ErrKeyChanged) {
		t.Fatalf("configured pin: err = %v, want ErrKeyChanged", err)
	}
}

// TestStateIsPrivate: the agency-side state holds raw values, so it is
// readable by its owner only.
func TestStateIsPrivate(t *testing.T) {
	k, _ := oprf.GenerateKey("k1")
	state := filepath.Join(t.TempDir(), "state")
	c, err := client.New(client.Config{Agency: "police-gb", Hub: startHub(t), KeyServer: startKeyServer(t, k), TLS: servertest.ClientTLS(t, "police-gb"), StateDir: state, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Publish(context.Background(), strings.NewReader("phone\n07700 900123\n"), client.PublishOptions{List: "s", Kind: normalize.Phone, Category: "suspect", Normalize: normalize.Options{Region: "GB"}}); err != nil {
		t.Fatal(err)
	}
	rows, err := filepath.Glob(filepath.Join(state, "rows", "s", "*"))
	if err != nil || len(rows) != 1 {
		t.Fatalf("rows files of list s: %v, %v; want one", rows, err)
	}
	for _, p := range []string{filepath.Join(state, "lists"), filepath.Join(state, "lists", "s.json"), filepath.Join(state, "pinned-keys.json"),
		filepath.Join(state, "rows"), filepath.Join(state, "rows", "s"), rows[0]} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %04o", p, st.Mode().Perm())
		}
	}
}

// devServers starts the development stack (a key server and a hub on
// loopback with the development certificates) in dir, until ctx is done.
func devServers(ctx context.Context, dir string) (ks, hubAddr string, err error) {
	st, err := devstack.New(ctx, devstack.Config{Dir: dir, Logger: quiet})
	if err != nil {
		return "", "", err
	}
	go st.Serve(ctx)
	return st.KeyServer.Addr().String(), st.Hub.Addr().String(), nil
}

// Example shows an agency publishing a watchlist and asking which of its
// entries other agencies hold.
func Example() {
	dir, _ := os.MkdirTemp("", "veilmatch-example-")
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()                           // stops the servers before the directory goes
	ks, hubAddr, err := devServers(ctx, dir) // in production: two operators' services
	if err != nil {
		panic(err)
	}
	connect := func(agency string) *client.Client {
		tlsCfg, err := mtls.ClientConfigFS(certs.DevFS, mtls.DevFiles(".", agency), "localhost")
		if err != nil {
			panic(err)
		}
		c, err := client.New(client.Config{Agency: agency, Hub: hubAddr, KeyServer: ks, TLS: tlsCfg, StateDir: filepath.Join(dir, agency), Logger: quiet})
		if err != nil {
			panic(err)
		}
		return c
	}
	gb, us := connect("police-gb"), connect("police-us")
	defer gb.Close()
	defer us.Close()
	publish := func(c *client.Client, region, csv string) {
		_, err := c.Publish(ctx, strings.NewReader(csv), client.PublishOptions{
			List: "suspects", Kind: normalize.Phone, Category: "suspect", Normalize: normalize.Options{Region: region},
		})
		if err != nil {
			panic(err)
		}
	}
	publish(gb, "GB", "phone\n07700 900123\n07700 900456\n")
	publish(us, "US", "phone\n+44 7700 900123\n")

	res, err := gb.Overlaps(ctx, "suspects", client.Query{Purpose: "investigation", CaseRef: "GB-2026-0042"})
	if err != nil {
		panic(err)
	}
	for _, m := range res.Matches {
		fmt.Printf("line %d %s: %s, also on %s's %s list\n", m.Line, m.Value, m.Level, m.Counterparty.Agency, m.Counterparty.Category)
	}
	// Output:
	// line 2 +447700900123: full, also on police-us's suspect list
}
