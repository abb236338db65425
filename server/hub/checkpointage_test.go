package hub

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/store/sqlite"
)

// TestCheckpointAge: zero for an empty log and a covered one, else the age
// of the oldest record no checkpoint covers.
func TestCheckpointAge(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hub.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	age := func() time.Duration {
		t.Helper()
		d, err := checkpointAge(ctx, st, now)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := age(); d != 0 {
		t.Fatalf("empty log: %s", d)
	}
	for i := range 5 {
		rec := &audit.Record{Time: now.Add(time.Duration(i-10) * time.Minute), DecisionID: "d", Caller: "c", Agency: "police-gb",
			Action: audit.ActionPublish, Result: audit.ResultAllowed}
		if _, err := st.AppendDecision(ctx, rec, nil); err != nil {
			t.Fatal(err)
		}
	}
	if d := age(); d != 10*time.Minute {
		t.Fatalf("no checkpoint: %s, want the first record's 10m", d)
	}
	if err := st.PutCheckpoint(ctx, 3, []byte("checkpoint of 3")); err != nil {
		t.Fatal(err)
	}
	if d := age(); d != 7*time.Minute {
		t.Fatalf("checkpoint of 3: %s, want record 3's 7m", d)
	}
	if err := st.PutCheckpoint(ctx, 5, []byte("checkpoint of 5")); err != nil {
		t.Fatal(err)
	}
	if d := age(); d != 0 {
		t.Fatalf("covered: %s", d)
	}
}
