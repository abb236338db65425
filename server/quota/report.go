package quota

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/veilmatch/veilmatch/internal/atomicfile"
)

// Refusal is one refused request, as journaled.
type Refusal struct {
	Time     time.Time
	Agency   string
	Elements int
	Reason   string
}

// Report is what the journal recorded since a cursor: every refusal, and
// the cumulative daily use of each (day, agency) that changed.
type Report struct {
	Usage    []DailyUsage
	Refusals []Refusal
	// End is the cursor to acknowledge once the report is delivered.
	End int64
}

// Empty reports whether there is nothing to deliver.
func (r Report) Empty() bool { return len(r.Usage) == 0 && len(r.Refusals) == 0 }

// Since reads the journal lines after byte offset cursor. A torn last line
// is left for the next call.
func (j *Journal) Since(cursor int64) (Report, error) {
	rep := Report{End: cursor}
	f, err := os.Open(j.f.Name())
	if err != nil {
		return rep, fmt.Errorf("read quota journal: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(cursor, io.SeekStart); err != nil {
		return rep, fmt.Errorf("read quota journal: %w", err)
	}
	touched := map[dayAgency]bool{}
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return rep, fmt.Errorf("read quota journal: %w", err)
		}
		var e entry
		if err := json.Unmarshal(line, &e); err != nil {
			return rep, fmt.Errorf("quota journal at byte %d: %w", rep.End, err)
		}
		rep.End += int64(len(line))
		touched[dayAgency{dayOf(e.Time), e.Agency}] = true
		if e.Type == typeRefusal {
			rep.Refusals = append(rep.Refusals, Refusal{Time: e.Time, Agency: e.Agency, Elements: e.N, Reason: e.Reason})
		}
	}
	j.mu.Lock()
	for k := range touched {
		if u := j.usage[k]; u != nil {
			rep.Usage = append(rep.Usage, *u)
		}
	}
	j.mu.Unlock()
	sort.Slice(rep.Usage, func(a, b int) bool {
		if rep.Usage[a].Day != rep.Usage[b].Day {
			return rep.Usage[a].Day < rep.Usage[b].Day
		}
		return rep.Usage[a].Agency < rep.Usage[b].Agency
	})
	return rep, nil
}

// LoadCursor reads a cursor file; a missing file is cursor 0.
func LoadCursor(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read report cursor: %w", err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("report cursor %s is not a byte offset", path)
	}
	return n, nil
}

// SaveCursor writes a cursor file atomically and durably (see
// atomicfile.WriteFile): a crash leaves the old cursor or the new, never
// an empty file.
func SaveCursor(path string, cursor int64) error {
	if err := atomicfile.WriteFile(path, []byte(strconv.FormatInt(cursor, 10)+"\n"), 0o600); err != nil {
		return fmt.Errorf("save report cursor: %w", err)
	}
	return nil
}
