package quota

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
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

// journaled returns a limiter (rate 1e6, burst 100, daily 150) journaling
// into a new journal, closed when the test ends, and the journal's path.
func journaled(t *testing.T) (*Limiter, *Journal, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "quota.jsonl")
	c := &clock{time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)}
	j, err := OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	l, err := NewLimiter(Limits{Rate: 1e6, Burst: 100, Daily: 150}, j, c.now)
	if err != nil {
		t.Fatal(err)
	}
	return l, j, path
}

func TestSinceReportsNewLines(t *testing.T) {
	l, j, _ := journaled(t)
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

// TestTornTailTruncatedAtOpen is a crash in the middle of an append: the
// torn bytes are cut off at open, so the next entry starts a line of its
// own and the journal opens again after the next restart.
func TestTornTailTruncatedAtOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "quota.jsonl")
	good := `{"time":"2026-11-28T09:00:00Z","agency":"a","type":"grant","n":30}` + "\n" +
		`{"time":"2026-11-28T09:30:00Z","agency":"a","type":"grant","n":20}` + "\n"
	torn := `{"time":"2026-11-28T09:45:00Z","agency":"a","ty`
	if err := os.WriteFile(path, []byte(good+torn), 0o600); err != nil {
		t.Fatal(err)
	}
	j, err := OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := j.TornBytes(); got != int64(len(torn)) {
		t.Errorf("TornBytes = %d, want %d", got, len(torn))
	}
	c := &clock{time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)}
	l, _ := NewLimiter(Limits{Rate: 1e6, Burst: 100, Daily: 1000}, j, c.now)
	if err := l.Take("a", 7); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	j, err = OpenJournal(path)
	if err != nil {
		t.Fatalf("reopen after appending past a torn line: %v", err)
	}
	defer j.Close()
	if got := j.TornBytes(); got != 0 {
		t.Errorf("TornBytes on a clean journal = %d", got)
	}
	if got := j.UsedOn("2026-11-28"); len(got) != 1 || got["a"] != 30+20+7 {
		t.Errorf("UsedOn = %v, want a:57", got)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rest, ok := strings.CutPrefix(string(b), good)
	if !ok || strings.Count(rest, "\n") != 1 || !strings.HasSuffix(rest, "\n") || !json.Valid([]byte(rest)) || strings.Contains(rest, "09:45") {
		t.Errorf("journal after restart:\n%s", b)
	}
}

// TestCorruptLineFailsOpen: a complete line that does not parse is not a
// crash artefact, so the journal refuses to open, names the line and is
// left as it was.
func TestCorruptLineFailsOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "quota.jsonl")
	content := `{"time":"2026-11-28T09:00:00Z","agency":"a","type":"grant","n":30}` + "\n" +
		`{"time":"2026-11-28T09:30:00Z","agen` + "\n" +
		`{"time":"2026-11-28T09:45:00Z","agency":"a","type":"grant","n":5}` + "\n" +
		`{"time":"2026-11-28T09:50:00Z","agency"`
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	j, err := OpenJournal(path)
	if err == nil {
		j.Close()
		t.Fatal("corrupt journal opened")
	}
	if !strings.Contains(err.Error(), "line 2") {
		t.Errorf("error does not name line 2: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != content {
		t.Errorf("failed open changed the journal:\n%s", b)
	}
}

// TestSinceLeavesTornTail: a line still being written is neither reported
// nor passed by the cursor; it is reported once complete.
func TestSinceLeavesTornTail(t *testing.T) {
	l, j, path := journaled(t)
	if err := l.Take("a", 100); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	complete := st.Size()

	line := `{"time":"2026-11-28T10:00:01Z","agency":"a","type":"refusal","n":100,"reason":"cap"}` + "\n"
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString(line[:40])
	rep, err := j.Since(0)
	if err != nil || rep.End != complete || len(rep.Refusals) != 0 || len(rep.Usage) != 1 {
		t.Fatalf("report with a torn tail = %+v, %v; want End %d", rep, err, complete)
	}
	f.WriteString(line[40:])
	rep, err = j.Since(rep.End)
	if err != nil || rep.End != complete+int64(len(line)) || len(rep.Refusals) != 1 {
		t.Fatalf("report once the line is complete = %+v, %v", rep, err)
	}
}

// TestAppendSyncsBeforeAnswering: Take answers, grant or refusal, only once
// its journal entry is written and synced; a failed sync refuses and
// charges nothing.
func TestAppendSyncsBeforeAnswering(t *testing.T) {
	path := filepath.Join(t.TempDir(), "quota.jsonl")
	c := &clock{time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)}
	j, err := OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	var synced []int64 // the journal's size at each sync
	fsync := j.fsync
	j.fsync = func() error {
		st, err := os.Stat(path)
		if err != nil {
			return err
		}
		synced = append(synced, st.Size())
		return fsync()
	}
	size := func() int64 {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	l, _ := NewLimiter(Limits{Rate: 1e6, Burst: 100, Daily: 150}, j, c.now)
	if err := l.Take("a", 100); err != nil {
		t.Fatal(err)
	}
	if len(synced) != 1 || synced[0] != size() {
		t.Fatalf("grant answered with syncs at sizes %v, journal size %d", synced, size())
	}
	if err := l.Take("a", 100); !errors.Is(err, ErrExceeded) {
		t.Fatalf("over cap: %v", err)
	}
	if len(synced) != 2 || synced[1] != size() {
		t.Fatalf("refusal answered with syncs at sizes %v, journal size %d", synced, size())
	}

	c.advance(time.Second) // refill the bucket: the next take is a grant
	j.fsync = func() error { return errors.New("sync: input/output error") }
	if err := l.Take("a", 10); err == nil || errors.Is(err, ErrExceeded) || !strings.Contains(err.Error(), "record quota use") {
		t.Fatalf("take with a failed sync: %v", err)
	}
	if got := j.UsedOn("2026-11-28"); got["a"] != 100 {
		t.Errorf("failed sync counted in the journal: %v", got)
	}
	if got := size(); got != synced[1] {
		t.Errorf("the refused entry stayed in the journal: %d bytes, want %d", got, synced[1])
	}
	j.fsync = fsync
	if err := l.Take("a", 50); err != nil {
		t.Errorf("failed sync charged the limiter: %v", err)
	}
	j.Close()
	reopened, err := OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	defer reopened.Close()
	if got := reopened.UsedOn("2026-11-28"); got["a"] != 150 {
		t.Errorf("after a restart the journal holds %v, want the two grants answered (150)", got)
	}
}
