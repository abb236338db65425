package matchrow

import (
	"testing"
	"time"
)

// TestRebind: placeholders become SQLite's numbered ones, in place.
func TestRebind(t *testing.T) {
	got := Rebind(`SELECT 1 FROM t WHERE a = $1 AND b BETWEEN $2 AND $12`)
	if want := `SELECT 1 FROM t WHERE a = ?1 AND b BETWEEN ?2 AND ?12`; got != want {
		t.Errorf("Rebind = %q, want %q", got, want)
	}
}

// TestTimeScan: a time column of either store scans into the same UTC
// time, to the microsecond, and NULL or 0 into the zero time.
func TestTimeScan(t *testing.T) {
	at := time.Date(2026, 12, 1, 9, 30, 0, 123456789, time.FixedZone("CET", 3600))
	want := time.Date(2026, 12, 1, 8, 30, 0, 123456000, time.UTC)
	for _, v := range []any{at.UnixMicro(), at} {
		var got Time
		if err := got.Scan(v); err != nil || !got.T.Equal(want) || got.T.Location() != time.UTC {
			t.Errorf("Scan(%T) = %v, %v; want %v in UTC", v, got.T, err, want)
		}
	}
	for _, v := range []any{nil, int64(0)} {
		got := Time{T: at}
		if err := got.Scan(v); err != nil || !got.T.IsZero() {
			t.Errorf("Scan(%v) = %v, %v; want the zero time", v, got.T, err)
		}
	}
	if err := new(Time).Scan("2026-12-01"); err == nil {
		t.Error("Scan(string) succeeded")
	}
}
