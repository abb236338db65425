package quota

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestTokenBucket(t *testing.T) {
	c := &clock{time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)}
	l, err := NewLimiter(Limits{Rate: 10, Burst: 100, Daily: 1000}, nil, c.now)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Take("a", 100); err != nil {
		t.Fatalf("first burst refused: %v", err)
	}
	err = l.Take("a", 20)
	var ee *ExceededError
	if !errors.As(err, &ee) || !errors.Is(err, ErrExceeded) {
		t.Fatalf("over burst: err = %v", err)
	}
	if ee.RetryAfter != 2*time.Second {
		t.Errorf("RetryAfter = %v, want 2s", ee.RetryAfter)
	}
	if err := l.Take("b", 50); err != nil {
		t.Errorf("agency b charged for agency a: %v", err)
	}
	c.advance(2 * time.Second)
	if err := l.Take("a", 20); err != nil {
		t.Errorf("after refill: %v", err)
	}
	if err := l.Take("a", 101); !errors.Is(err, ErrExceeded) {
		t.Errorf("batch larger than burst: err = %v", err)
	}
}

func TestDailyCap(t *testing.T) {
	c := &clock{time.Date(2026, 11, 28, 23, 0, 0, 0, time.UTC)}
	l, _ := NewLimiter(Limits{Rate: 1e6, Burst: 100, Daily: 250}, nil, c.now)
	for i := range 2 {
		c.advance(time.Second)
		if err := l.Take("a", 100); err != nil {
			t.Fatalf("take %d: %v", i, err)
		}
	}
	c.advance(time.Second)
	err := l.Take("a", 100)
	var ee *ExceededError
	if !errors.As(err, &ee) {
		t.Fatalf("over daily cap: err = %v", err)
	}
	if ee.RetryAfter <= 0 || ee.RetryAfter > time.Hour {
		t.Errorf("RetryAfter = %v, want until midnight", ee.RetryAfter)
	}
	if err := l.Take("a", 50); err != nil {
		t.Errorf("within cap: %v", err)
	}
	c.advance(time.Hour)
	if err := l.Take("a", 100); err != nil {
		t.Errorf("next day: %v", err)
	}
}

func TestJournalSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "quota.jsonl")
	c := &clock{time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)}
	lim := Limits{Rate: 1e6, Burst: 100, Daily: 150}
	j, err := OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	l, _ := NewLimiter(lim, j, c.now)
	if err := l.Take("a", 100); err != nil {
		t.Fatal(err)
	}
	if err := l.Take("a", 100); !errors.Is(err, ErrExceeded) {
		t.Fatalf("over cap: %v", err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	// A torn last line from a crash is ignored.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"time":"2026-11-28T10:00:01Z","agen`)
	f.Close()

	j, err = OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	l, _ = NewLimiter(lim, j, c.now)
	if err := l.Take("a", 100); !errors.Is(err, ErrExceeded) {
		t.Fatalf("restart reset the daily cap: %v", err)
	}
	sum := j.Summary()
	if len(sum) != 1 || sum[0].Evaluations != 100 || sum[0].Refusals != 2 || sum[0].Requests != 1 {
		t.Fatalf("summary = %+v", sum)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("journal mode %04o", st.Mode().Perm())
	}
}

func TestLimitsValidate(t *testing.T) {
	for _, l := range []Limits{{0, 1, 1}, {1, 0, 1}, {1, 1, 0}} {
		if l.Validate() == nil {
			t.Errorf("%+v accepted", l)
		}
	}
	if err := DefaultLimits().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestSinceReportsNewLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "quota.jsonl")
	c := &clock{time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)}
	j, err := OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	l, _ := NewLimiter(Limits{Rate: 1e6, Burst: 100, Daily: 150}, j, c.now)
	l.Take("a", 100)
	l.Take("b", 10)
	rep, err := j.Since(0)
	if err != nil || len(rep.Usage) != 2 || len(rep.Refusals) != 0 || rep.End == 0 {
		t.Fatalf("first report = %+v, %v", rep, err)
	}
	l.Take("a", 100) // refused: daily cap
	rep2, err := j.Since(rep.End)
	if err != nil || len(rep2.Refusals) != 1 || rep2.Refusals[0].Agency != "a" || rep2.Refusals[0].Elements != 100 {
		t.Fatalf("second report = %+v, %v", rep2, err)
	}
	if len(rep2.Usage) != 1 || rep2.Usage[0].Evaluations != 100 || rep2.Usage[0].Refusals != 1 {
		t.Fatalf("usage in second report = %+v", rep2.Usage)
	}
	if rep3, _ := j.Since(rep2.End); !rep3.Empty() {
		t.Fatalf("nothing new, got %+v", rep3)
	}
	cur := filepath.Join(t.TempDir(), "cursor")
	if n, err := LoadCursor(cur); err != nil || n != 0 {
		t.Fatalf("missing cursor = %d, %v", n, err)
	}
	if err := SaveCursor(cur, rep2.End); err != nil {
		t.Fatal(err)
	}
	if n, err := LoadCursor(cur); err != nil || n != rep2.End {
		t.Fatalf("cursor = %d, %v", n, err)
	}
}
