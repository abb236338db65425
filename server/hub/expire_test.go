package hub_test

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/veilmatch/veilmatch/policy"
	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/hub"
	"github.com/veilmatch/veilmatch/server/store"
	"github.com/veilmatch/veilmatch/server/store/sqlite"
)

// TestEraseExpired: a list past its retention is erased, with an "expire"
// record in the decision log; a list still within it stays.
func TestEraseExpired(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hub.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	for name, exp := range map[string]time.Time{"old": now.Add(-time.Hour), "current": now.Add(time.Hour)} {
		m := store.List{Kind: "phone", KeyID: "k1", Category: "suspect", Jurisdiction: "GB", ExpiresAt: exp}
		if err := st.BeginUpload(ctx, store.Upload{Owner: "police-gb", List: name, ID: "u-" + name, Meta: m}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.PutBatch(ctx, "police-gb", name, "u-"+name, 0, []store.Entry{{Token: bytes.Repeat([]byte{1}, 32), Ref: 0}}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.CommitUpload(ctx, "police-gb", name, "u-"+name, 1, 1, now.Add(-2*time.Hour), nil); err != nil {
			t.Fatal(err)
		}
	}
	pol, err := policy.New(ctx, policy.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := hub.NewService(st, pol, bytes.Repeat([]byte{9}, 32), hub.ServiceOptions{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := svc.EraseExpired(ctx); err != nil || n != 1 {
		t.Fatalf("EraseExpired = %d, %v; want 1", n, err)
	}
	lists, _ := st.Lists(ctx, "police-gb")
	if len(lists) != 1 || lists[0].Name != "current" {
		t.Fatalf("lists after erasure: %+v", lists)
	}
	recs, err := st.LogRecords(ctx, 0, 10)
	if err != nil || len(recs) != 1 {
		t.Fatalf("log: %d records, %v", len(recs), err)
	}
	r, _ := audit.ParseRecord(recs[0])
	if r.Action != "expire" || r.Lists[0] != "police-gb/old" {
		t.Fatalf("record = %+v", r)
	}
}
