package hub

import "testing"

func TestEpochs(t *testing.T) {
	var e epochs
	if e.retired("k1") {
		t.Fatal("retired before any report")
	}
	if !e.set([]string{"k1"}) || e.set([]string{"k1"}) {
		t.Fatal("set does not report changes correctly")
	}
	e.set([]string{"k2", "k1"}) // rotation, within the grace period
	if e.retired("k1") || e.retired("k2") {
		t.Fatal("an epoch in its grace period is retired")
	}
	e.set([]string{"k2"}) // grace over
	if !e.retired("k1") || e.retired("k2") {
		t.Fatal("k1 should be retired, k2 current")
	}
	if e.retired("k3") {
		t.Fatal("a key id not yet reported (a newer rotation) is retired")
	}
}
