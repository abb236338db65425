package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/veilmatch/veilmatch/client"
	"github.com/veilmatch/veilmatch/client/normalize"
	"github.com/veilmatch/veilmatch/crypto/oprf"
	"github.com/veilmatch/veilmatch/internal/servertest"
	"github.com/veilmatch/veilmatch/server/keyserver"
	"github.com/veilmatch/veilmatch/server/quota"
)

var investigation = client.Query{Purpose: "investigation", CaseRef: "CASE-1"}

// newAgency returns a client of agency with its state in state.
func newAgency(t *testing.T, agency, hubAddr, ks, state string, mod ...func(*client.Config)) *client.Client {
	t.Helper()
	cfg := client.Config{Agency: agency, Hub: hubAddr, KeyServer: ks, StateDir: state}
	for _, m := range mod {
		m(&cfg)
	}
	return servertest.Client(t, cfg)
}

func phones(list, region string) client.PublishOptions {
	return client.PublishOptions{List: list, Kind: normalize.Phone, Category: "suspect", Normalize: normalize.Options{Region: region}}
}

// cancelOnProgress cancels a publish at its first progress line.
type cancelOnProgress struct {
	cancel context.CancelFunc
	once   sync.Once
}

func (c *cancelOnProgress) Write(b []byte) (int, error) {
	if bytes.HasPrefix(b, []byte("publish ")) {
		c.once.Do(c.cancel)
	}
	return len(b), nil
}

// TestFailedRepublishKeepsMapping: a republish that fails midway leaves the
// hub with the old version, and overlaps shows the old file's lines and
// values, never the new file's.
func TestFailedRepublishKeepsMapping(t *testing.T) {
	k, _ := oprf.GenerateKey("k1")
	ks, hubAddr := startKeyServer(t, k), startHub(t)
	state := t.TempDir()
	gb := newAgency(t, "police-gb", hubAddr, ks, state)
	if _, err := gb.Publish(context.Background(), strings.NewReader("phone\n07700 900123\n07700 900456\n"), phones("suspects", "GB")); err != nil {
		t.Fatal(err)
	}
	us := newAgency(t, "police-us", hubAddr, ks, t.TempDir())
	if _, err := us.Publish(context.Background(), strings.NewReader("phone\n+44 7700 900123\n"), phones("suspects", "US")); err != nil {
		t.Fatal(err)
	}
	var other strings.Builder
	other.WriteString("phone\n")
	for i := range 40 {
		fmt.Fprintf(&other, "07700 9%05d\n", 10000+i)
	}
	ctx, cancel := context.WithCancel(context.Background())
	small := func(c *client.Config) { c.BatchSize, c.Workers, c.Progress = 10, 1, &cancelOnProgress{cancel: cancel} }
	if _, err := newAgency(t, "police-gb", hubAddr, ks, state, small).Publish(ctx, strings.NewReader(other.String()), phones("suspects", "GB")); err == nil {
		t.Fatal("the republish was not interrupted")
	}
	res, err := gb.Overlaps(context.Background(), "suspects", investigation)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Matches) != 1 || res.Matches[0].Line != 2 || res.Matches[0].Value != "+447700900123" {
		t.Fatalf("after a failed republish overlaps shows %+v, want line 2 +447700900123", res.Matches)
	}
}

// TestOverlapsRefusesUnknownVersion: overlaps maps matches only through the
// rows of the version the hub answered about; without them it refuses.
func TestOverlapsRefusesUnknownVersion(t *testing.T) {
	k, _ := oprf.GenerateKey("k1")
	ks, hubAddr := startKeyServer(t, k), startHub(t)
	a := newAgency(t, "police-gb", hubAddr, ks, t.TempDir())
	if _, err := a.Publish(context.Background(), strings.NewReader("phone\n07700 900123\n"), phones("suspects", "GB")); err != nil {
		t.Fatal(err)
	}
	// Another machine of the same agency publishes another version.
	b := newAgency(t, "police-gb", hubAddr, ks, t.TempDir())
	if _, err := b.Publish(context.Background(), strings.NewReader("phone\n07700 900456\n07700 900123\n"), phones("suspects", "GB")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Overlaps(context.Background(), "suspects", investigation); !errors.Is(err, client.ErrNoMapping) || !strings.Contains(err.Error(), "this machine holds the rows of upload") {
		t.Fatalf("overlaps of another version: %v, want ErrNoMapping", err)
	}
	fresh := newAgency(t, "police-gb", hubAddr, ks, t.TempDir())
	if _, err := fresh.Overlaps(context.Background(), "suspects", investigation); !errors.Is(err, client.ErrNoMapping) {
		t.Fatalf("overlaps without state: %v, want ErrNoMapping", err)
	}
	if _, err := b.Overlaps(context.Background(), "suspects", investigation); err != nil {
		t.Fatalf("overlaps on the publishing machine: %v", err)
	}
}

// TestVocabularyCheckedFirst: a category, kind or consent role outside the
// hub's vocabulary fails before the file is read or the key server is
// contacted.
func TestVocabularyCheckedFirst(t *testing.T) {
	unreachable := "127.0.0.1:1"
	c := newAgency(t, "ngo-shelter", startHub(t), unreachable, t.TempDir())
	for _, o := range []client.PublishOptions{
		{List: "v", Kind: normalize.Phone, Category: "victims"},
		{List: "v", Kind: normalize.Phone, Category: "victim", Sharing: client.Sharing{VictimConsentRoles: []string{"police"}}},
	} {
		_, err := c.Publish(context.Background(), strings.NewReader("phone\n07700 900123\n"), o)
		if !errors.Is(err, client.ErrVocabulary) || !strings.Contains(err.Error(), "use one of:") {
			t.Errorf("%+v: %v, want ErrVocabulary listing the valid words", o, err)
		}
	}
	_, err := c.Check(context.Background(), strings.NewReader("phone\n07700 900123\n"), client.CheckOptions{Kind: normalize.Phone}, client.Query{Purpose: "victims_support"})
	if !errors.Is(err, client.ErrVocabulary) {
		t.Errorf("check with an unknown purpose: %v, want ErrVocabulary", err)
	}
}

// TestDryRunSendsNothing: a dry run reports what would be published, and
// neither evaluates (the key server's daily cap of one evaluation is still
// whole after it) nor publishes anything.
func TestDryRunSendsNothing(t *testing.T) {
	k, _ := oprf.GenerateKey("k1")
	hubAddr := startHub(t)
	ks := servertest.KeyServer(t, keyserver.Config{Keys: []*oprf.PrivateKey{k}, Quota: quota.Limits{Rate: 1e6, Burst: 4096, Daily: 1}}).Addr().String()
	c := newAgency(t, "police-gb", hubAddr, ks, t.TempDir())
	o := phones("suspects", "GB")
	o.DryRun = true
	csv := "phone\n07700 900123\nnot a number\n"
	res, err := c.Publish(context.Background(), strings.NewReader(csv), o)
	if err != nil || res.List.GetEntries() != 1 || res.List.GetKeyId() != "k1" || len(res.Report.Rejected) != 1 || res.Previous != nil {
		t.Fatalf("dry run = %+v, %v", res, err)
	}
	if lists, err := c.Lists(context.Background()); err != nil || len(lists) != 0 {
		t.Fatalf("a dry run published %v, %v", lists, err)
	}
	o.DryRun = false
	if _, err := c.Publish(context.Background(), strings.NewReader(csv), o); err != nil {
		t.Fatalf("the dry run used the key server's quota: %v", err)
	}
	cr, err := c.Check(context.Background(), strings.NewReader("phone\n07700 900123\n"), client.CheckOptions{Kind: normalize.Phone, Normalize: normalize.Options{Region: "GB"}, DryRun: true}, investigation)
	if err != nil || cr.Report.Accepted != 1 || cr.DecisionID != "" {
		t.Fatalf("check dry run = %+v, %v", cr, err)
	}
}

// TestRepublishGuard: a republish that rejects most rows or drops most of
// the list is refused, leaving the list as it was, unless forced.
func TestRepublishGuard(t *testing.T) {
	k, _ := oprf.GenerateKey("k1")
	ks, hubAddr := startKeyServer(t, k), startHub(t)
	c := newAgency(t, "police-gb", hubAddr, ks, t.TempDir())
	var full strings.Builder
	full.WriteString("phone\n")
	for i := range 8 {
		fmt.Fprintf(&full, "07700 9001%02d\n", i)
	}
	ctx := context.Background()
	if _, err := c.Publish(ctx, strings.NewReader(full.String()), phones("suspects", "GB")); err != nil {
		t.Fatal(err)
	}
	// The same file without its default region: national numbers rejected.
	noRegion := phones("suspects", "")
	_, err := c.Publish(ctx, strings.NewReader(full.String()+"+44 7700 900999\n"), noRegion)
	var ge *client.GuardError
	if !errors.As(err, &ge) || len(ge.Reasons) != 2 || !strings.Contains(err.Error(), "shrink the list from 8 to 1 entries") ||
		!strings.Contains(err.Error(), "8 of 9 rows were rejected") {
		t.Fatalf("guarded republish: %v", err)
	}
	lists, _ := c.Lists(ctx)
	if len(lists) != 1 || lists[0].GetEntries() != 8 {
		t.Fatalf("the guard let the list change: %v", lists)
	}
	// A shrink within the guard passes; so does anything forced.
	if _, err := c.Publish(ctx, strings.NewReader("phone\n07700 900100\n07700 900101\n07700 900102\n07700 900103\n07700 900104\n"), phones("suspects", "GB")); err != nil {
		t.Fatalf("a republish of 5 of 8: %v", err)
	}
	noRegion.Force = true
	if res, err := c.Publish(ctx, strings.NewReader(full.String()+"+44 7700 900999\n"), noRegion); err != nil || res.List.GetEntries() != 1 {
		t.Fatalf("forced republish = %+v, %v", res, err)
	}
}

// TestRogueKeyServerRefused: a key server presenting a key id no trusted
// key endorses makes publish fail before anything is sent, and the list at
// the hub stays as it was; an endorsed rotation is trusted and pinned.
func TestRogueKeyServerRefused(t *testing.T) {
	k1, _ := oprf.GenerateKey("k1")
	hubAddr, state := startHub(t), t.TempDir()
	ctx := context.Background()
	before, err := newAgency(t, "police-gb", hubAddr, startKeyServer(t, k1), state).Publish(ctx, strings.NewReader("phone\n07700 900123\n"), phones("suspects", "GB"))
	if err != nil {
		t.Fatal(err)
	}
	rogue, _ := oprf.GenerateKey("k2")
	c := newAgency(t, "police-gb", hubAddr, startKeyServer(t, rogue), state)
	_, err = c.Publish(ctx, strings.NewReader("phone\n07700 900456\n"), phones("suspects", "GB"))
	if !errors.Is(err, client.ErrKeyNotVouched) || !strings.Contains(err.Error(), `new key "k2"`) {
		t.Fatalf("publish through a rogue key server: %v, want ErrKeyNotVouched", err)
	}
	lists, _ := c.Lists(ctx)
	if len(lists) != 1 || lists[0].GetUploadId() != before.List.GetUploadId() || lists[0].GetKeyId() != "k1" {
		t.Fatalf("the list changed: %v", lists)
	}
	next, _ := oprf.GenerateKey("k3")
	k3, err := oprf.EndorseKey(k1, next)
	if err != nil {
		t.Fatal(err)
	}
	res, err := newAgency(t, "police-gb", hubAddr, startKeyServer(t, k3), state).Publish(ctx, strings.NewReader("phone\n07700 900456\n"), phones("suspects", "GB"))
	if err != nil || res.List.GetKeyId() != "k3" {
		t.Fatalf("publish after an endorsed rotation = %+v, %v", res.List, err)
	}
	// Once pinned, k3 needs its endorsement no more.
	bare, _ := oprf.ParseKey(mustMarshal(t, next))
	if _, err := newAgency(t, "police-gb", hubAddr, startKeyServer(t, bare), state).Publish(ctx, strings.NewReader("phone\n07700 900789\n"), phones("other", "GB")); err != nil {
		t.Fatalf("the pinned k3 without its chain: %v", err)
	}
}

func mustMarshal(t *testing.T, k *oprf.PrivateKey) []byte {
	t.Helper()
	b, err := oprf.MarshalKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
