package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/veilmatch/veilmatch/certs"
	"github.com/veilmatch/veilmatch/client"
	"github.com/veilmatch/veilmatch/client/normalize"
	"github.com/veilmatch/veilmatch/crypto/mtls"
	"github.com/veilmatch/veilmatch/internal/servertest"
	"github.com/veilmatch/veilmatch/policy"
	"github.com/veilmatch/veilmatch/server/hub"
	"github.com/veilmatch/veilmatch/server/keyserver"
)

// loadAgencies are the agencies of the load test: three jurisdictions, so
// that answers mix full and count levels.
var loadAgencies = []struct{ id, jurisdiction string }{
	{"agency-1", "GB"}, {"agency-2", "GB"}, {"agency-3", "GB"}, {"agency-4", "US"},
	{"agency-5", "US"}, {"agency-6", "US"}, {"agency-7", "TH"}, {"agency-8", "TH"},
}

// loadEnv is a PKI and a policy bundle with the load test's agencies.
type loadEnv struct {
	certs, policy string
}

func newLoadEnv(t *testing.T) loadEnv {
	t.Helper()
	e := loadEnv{certs: t.TempDir(), policy: t.TempDir()}
	parties := []certs.Party{{Kind: mtls.KindServer, ID: "hub"}, {Kind: mtls.KindServer, ID: "keyserver"}}
	agencies := map[string]any{}
	for _, a := range loadAgencies {
		parties = append(parties, certs.Party{Kind: mtls.KindAgency, ID: a.id})
		agencies[a.id] = map[string]string{"role": "law_enforcement", "jurisdiction": a.jurisdiction, "contact": "desk@" + a.id + ".example"}
	}
	if err := certs.Generate(e.certs, certs.Options{Parties: parties}); err != nil {
		t.Fatal(err)
	}
	var data map[string]map[string]map[string]any
	raw, err := os.ReadFile("../../policy/data.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &data); err != nil {
		t.Fatal(err)
	}
	data["veilmatch"]["registry"]["agencies"] = agencies
	out, _ := json.Marshal(data)
	if err := os.WriteFile(filepath.Join(e.policy, "data.json"), out, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"authz.rego", "disclosure.rego"} {
		b, err := os.ReadFile(filepath.Join("../../policy", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(e.policy, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// start runs a key server and a hub with the load test's PKI and policy.
func (e loadEnv) start(t *testing.T) (ks, hubAddr string) {
	t.Helper()
	pol, err := policy.New(context.Background(), policy.Options{Dir: e.policy, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ksTLS, _ := mtls.ServerConfig(mtls.DevFiles(e.certs, "keyserver"))
	k := servertest.KeyServer(t, keyserver.Config{TLS: ksTLS, Registry: pol})
	hubTLS, _ := mtls.ServerConfig(mtls.DevFiles(e.certs, "hub"))
	h := servertest.Hub(t, hub.Config{TLS: hubTLS, Policy: pol})
	return k.Addr().String(), h.Addr().String()
}

// loadCSV returns agency i's list: n numbers, a fifth of them shared with
// the next agency and a tenth with every agency.
func loadCSV(i, n int) string {
	var b strings.Builder
	b.WriteString("phone\n")
	for j := range n {
		switch {
		case j%10 == 0:
			fmt.Fprintf(&b, "+1 415 555 %04d\n", j%10000) // everyone
		case j%5 == 0:
			fmt.Fprintf(&b, "+44 7700 9%02d%03d\n", (i+1)%len(loadAgencies), j%1000) // shared with agency i-1
		default:
			fmt.Fprintf(&b, "+44 7700 9%02d%03d\n", i, j%1000)
		}
	}
	return b.String()
}

// loadEntries is the list size per agency: small under go test, 100k with
// VEILMATCH_LOAD_ENTRIES=100000 (the large profile).
func loadEntries(t *testing.T) int {
	if s := os.Getenv("VEILMATCH_LOAD_ENTRIES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("VEILMATCH_LOAD_ENTRIES: %v", err)
		}
		return n
	}
	return 300
}

// run publishes every agency's list and asks each for its overlaps, either
// one agency after another or all at once, and returns each agency's answer
// without decision ids.
func (e loadEnv) run(t *testing.T, concurrent bool, n int) map[string]string {
	ks, hubAddr := e.start(t)
	answers := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	step := func(phase func(i int) error) {
		for i := range loadAgencies {
			if !concurrent {
				if err := phase(i); err != nil {
					t.Fatal(err)
				}
				continue
			}
			wg.Go(func() {
				if err := phase(i); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	clients := make([]*client.Client, len(loadAgencies))
	for i, a := range loadAgencies {
		tlsCfg, err := mtls.ClientConfig(mtls.DevFiles(e.certs, a.id), "localhost")
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.New(client.Config{Agency: a.id, Hub: hubAddr, KeyServer: ks, TLS: tlsCfg, StateDir: t.TempDir(), BatchSize: 128,
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients[i] = c
	}
	step(func(i int) error {
		_, err := clients[i].Publish(context.Background(), strings.NewReader(loadCSV(i, n)),
			client.PublishOptions{List: "watch", Kind: normalize.Phone, Category: "suspect"})
		return err
	})
	step(func(i int) error {
		for range 3 { // repeated queries must agree with each other too
			r, err := clients[i].Overlaps(context.Background(), "watch", client.Query{Purpose: "investigation", CaseRef: "LOAD-1"})
			if err != nil {
				return err
			}
			var lines []string
			for _, m := range r.Matches {
				who := m.LiaisonContact
				if m.Counterparty != nil {
					who = m.Counterparty.Agency
				}
				lines = append(lines, fmt.Sprintf("%d %s %s", m.Line, m.Level, who))
			}
			for _, c := range r.Counts {
				lines = append(lines, fmt.Sprintf("count %s %d", c.Class, c.Matches))
			}
			sort.Strings(lines)
			got := strings.Join(lines, "\n")
			mu.Lock()
			prev, seen := answers[loadAgencies[i].id]
			answers[loadAgencies[i].id] = got
			mu.Unlock()
			if seen && prev != got {
				return fmt.Errorf("%s: answers differ between repeated queries", loadAgencies[i].id)
			}
		}
		return nil
	})
	return answers
}

// TestLoadEightAgencies: eight agencies publishing and querying at once get
// exactly the answers they get one after another, with zero errors.
func TestLoadEightAgencies(t *testing.T) {
	e := newLoadEnv(t)
	n := loadEntries(t)
	seq := e.run(t, false, n)
	par := e.run(t, true, n)
	for _, a := range loadAgencies {
		if seq[a.id] == "" {
			t.Fatalf("%s found no overlaps; the comparison would prove nothing", a.id)
		}
		if seq[a.id] != par[a.id] {
			t.Errorf("%s: concurrent answer differs from the sequential one", a.id)
		}
	}
}
