package hub_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/veilmatch/veilmatch/client"
	"github.com/veilmatch/veilmatch/client/normalize"
	"github.com/veilmatch/veilmatch/crypto/oprf"
	"github.com/veilmatch/veilmatch/internal/servertest"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
	"github.com/veilmatch/veilmatch/server/hub"
	"github.com/veilmatch/veilmatch/server/keyserver"
	"github.com/veilmatch/veilmatch/server/quota"
)

// TestKeyUsageReachesTheLog: the key server's daily use and every quota
// refusal become records of the hub's decision log; only the key server may
// report.
func TestKeyUsageReachesTheLog(t *testing.T) {
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	h := servertest.Hub(t, hub.Config{})
	ks := servertest.KeyServer(t, keyserver.Config{
		Quota: quota.Limits{Rate: 1e6, Burst: 4096, Daily: 3},
		Report: &keyserver.ReportConfig{Hub: h.Addr().String(), TLS: servertest.ClientTLS(t, "keyserver"),
			CursorFile: filepath.Join(t.TempDir(), "quota.cursor"), Every: 20 * time.Millisecond},
	})

	c, err := client.New(client.Config{Agency: "police-th", Hub: h.Addr().String(), KeyServer: ks.Addr().String(),
		TLS: servertest.ClientTLS(t, "police-th"), StateDir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	opts := client.PublishOptions{List: "s", Kind: normalize.Phone, Category: "suspect", Normalize: normalize.Options{Region: "TH"}}
	if _, err := c.Publish(ctx, strings.NewReader("phone\n081 234 5678\n081 234 5679\n"), opts); err != nil {
		t.Fatal(err)
	}
	opts.List = "t"
	_, err = c.Publish(ctx, strings.NewReader("phone\n081 234 5670\n081 234 5671\n"), opts)
	if status.Code(errorsCause(err)) != codes.ResourceExhausted {
		t.Fatalf("over the daily cap: %v", err)
	}

	aud := veilmatchv1.NewAuditServiceClient(servertest.Dial(t, h.Addr().String(), servertest.ClientTLS(t, "auditor")))
	deadline := time.Now().Add(30 * time.Second)
	for {
		usage, _ := aud.ListDecisions(ctx, &veilmatchv1.ListDecisionsRequest{Action: "quota_usage", Agency: "police-th"})
		refusals, _ := aud.ListDecisions(ctx, &veilmatchv1.ListDecisionsRequest{Action: "quota_refusal", Agency: "police-th"})
		last := len(usage.GetDecisions()) - 1
		if last >= 0 && len(refusals.GetDecisions()) == 1 && usage.GetDecisions()[last].GetDetails()["refusals"] == "1" {
			if got := usage.GetDecisions()[last].GetDetails()["evaluations"]; got != "2" {
				t.Fatalf("evaluations = %s, want 2", got)
			}
			if !strings.Contains(refusals.GetDecisions()[0].GetReason(), "daily cap") {
				t.Fatalf("refusal reason = %q", refusals.GetDecisions()[0].GetReason())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("usage records did not arrive: usage %v, refusals %v", usage.GetDecisions(), refusals.GetDecisions())
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Nobody but the key server may report.
	for _, who := range []string{"police-gb", "hub", "auditor"} {
		u := veilmatchv1.NewUsageServiceClient(servertest.Dial(t, h.Addr().String(), servertest.ClientTLS(t, who)))
		if _, err := u.ReportKeyUsage(ctx, &veilmatchv1.ReportKeyUsageRequest{}); status.Code(err) != codes.PermissionDenied {
			t.Errorf("%s reported usage: %v", who, err)
		}
	}
}

// TestBadUsageReportChangesNothing: a report with a bad field is refused
// with INVALID_ARGUMENT naming the field, and neither its key ids nor any of
// its records are stored.
func TestBadUsageReportChangesNothing(t *testing.T) {
	ctx := context.Background()
	h := servertest.Hub(t, hub.Config{})
	u := veilmatchv1.NewUsageServiceClient(servertest.Dial(t, h.Addr().String(), servertest.ClientTLS(t, "keyserver")))
	aud := veilmatchv1.NewAuditServiceClient(servertest.Dial(t, h.Addr().String(), servertest.ClientTLS(t, "auditor")))
	day := time.Now().UTC().Format(time.DateOnly)
	good := &veilmatchv1.DailyKeyUsage{Agency: "police-th", Day: day, Evaluations: 1, Requests: 1}
	key := func(id string) *veilmatchv1.ServedKey {
		k, err := oprf.GenerateKey(id)
		if err != nil {
			t.Fatal(err)
		}
		return &veilmatchv1.ServedKey{KeyId: id, PublicKey: k.Public().Bytes}
	}
	k1, k2 := key("k1"), key("k2")
	keys := func(ks ...*veilmatchv1.ServedKey) []*veilmatchv1.ServedKey { return ks }
	for _, tt := range []struct {
		name, field string
		req         *veilmatchv1.ReportKeyUsageRequest
	}{
		{"bad key id", "keys[1].key_id", &veilmatchv1.ReportKeyUsageRequest{Keys: keys(k1, &veilmatchv1.ServedKey{KeyId: "no spaces"})}},
		{"repeated key id", "keys[2]", &veilmatchv1.ReportKeyUsageRequest{Keys: keys(k1, k2, k1)}},
		{"short public key", "keys[0].public_key", &veilmatchv1.ReportKeyUsageRequest{Keys: keys(&veilmatchv1.ServedKey{KeyId: "k3", PublicKey: []byte{1}})}},
		{"bad usage after good keys", "usage[1]", &veilmatchv1.ReportKeyUsageRequest{Keys: keys(k1), Usage: []*veilmatchv1.DailyKeyUsage{good, {Agency: "police-th", Day: "yesterday"}}}},
		{"bad refusal", "refusals[0]", &veilmatchv1.ReportKeyUsageRequest{Keys: keys(k1), Refusals: []*veilmatchv1.QuotaRefusal{{Reason: "cap"}}}},
	} {
		_, err := u.ReportKeyUsage(ctx, tt.req)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("%s: %v, want InvalidArgument naming %s", tt.name, err, tt.field)
		}
	}
	if got, err := aud.ListDecisions(ctx, &veilmatchv1.ListDecisionsRequest{}); err != nil || len(got.GetDecisions()) != 0 {
		t.Fatalf("refused reports left records: %v, %v", got.GetDecisions(), err)
	}
	// A good report is stored.
	res, err := u.ReportKeyUsage(ctx, &veilmatchv1.ReportKeyUsageRequest{Keys: keys(k1), Usage: []*veilmatchv1.DailyKeyUsage{good}})
	if err != nil || res.GetRecords() != 2 {
		t.Fatalf("good report: %v records, %v; want 2", res.GetRecords(), err)
	}
}
