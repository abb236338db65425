package hub

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/store/sqlite"
)

func TestEpochs(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "hub.db")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	e := &epochs{store: st}
	if err := e.load(ctx); err != nil {
		t.Fatal(err)
	}
	set := func(ids ...string) bool {
		t.Helper()
		changed, err := e.set(ctx, ids, &audit.Record{Time: time.Now(), Action: "key_epochs", Result: audit.ResultAllowed})
		if err != nil {
			t.Fatal(err)
		}
		return changed
	}
	if e.retired("k1") {
		t.Fatal("retired before any report")
	}
	if !set("k1") || set("k1") {
		t.Fatal("set does not report changes correctly")
	}
	set("k2", "k1") // rotation, within the grace period
	if e.retired("k1") || e.retired("k2") {
		t.Fatal("an epoch in its grace period is retired")
	}
	set("k2") // grace over
	if !e.retired("k1") || e.retired("k2") {
		t.Fatal("k1 should be retired, k2 current")
	}
	if e.retired("k3") {
		t.Fatal("a key id not yet reported (a newer rotation) is retired")
	}

	// A restarted hub remembers, before the key server reports again.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e = &epochs{store: st}
	if err := e.load(ctx); err != nil {
		t.Fatal(err)
	}
	if !e.retired("k1") || e.retired("k2") || e.retired("k3") {
		t.Fatal("after a restart: k1 should be retired, k2 current, k3 unknown")
	}
	if set("k2") {
		t.Fatal("the same report after a restart counts as a change")
	}
}
