package quota

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"time"
)

const (
	typeGrant   = "grant"
	typeRefusal = "refusal"
)

// entry is one line of the journal. It names the agency and a count, never
// an element.
type entry struct {
	Time   time.Time `json:"time"`
	Agency string    `json:"agency"`
	Type   string    `json:"type"`
	N      int       `json:"n"`
	Reason string    `json:"reason,omitempty"`
}

// Journal is an append-only JSON-lines record of quota use, for auditors:
// every grant and every refusal with its time, agency and size. It keeps
// per-day totals in memory, not the lines.
type Journal struct {
	mu sync.Mutex
	f  *os.File
	// fsync makes what was written to f durable: f.Sync, which tests wrap
	// to see when it is called.
	fsync func() error
	usage map[dayAgency]*DailyUsage
	torn  int64 // bytes of a torn last line cut off at open
	size  int64 // the end of the last entry written whole
}

type dayAgency struct{ day, agency string }

// OpenJournal opens (creating, mode 0600) the journal at path and reads
// what it already holds. A torn last line, left by a crash in the middle of
// an append, is cut off and the cut synced, so that the next entry starts a
// line of its own (see TornBytes); any other line that does not parse is an
// error.
func OpenJournal(path string) (*Journal, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open quota journal: %w", err)
	}
	j := &Journal{f: f, fsync: f.Sync, usage: map[dayAgency]*DailyUsage{}}
	var end int64 // the end of the last complete line
	r := bufio.NewReader(f)
	for line := 1; ; line++ {
		b, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			j.torn = int64(len(b)) // a final line without newline is torn
			break
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("read quota journal %s: %w", path, err)
		}
		var e entry
		if err := json.Unmarshal(b, &e); err != nil {
			f.Close()
			return nil, fmt.Errorf("quota journal %s line %d: %w", path, line, err)
		}
		j.count(e)
		end += int64(len(b))
	}
	if j.torn > 0 {
		err := f.Truncate(end)
		if err == nil {
			err = f.Sync()
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("quota journal %s: cut torn last line: %w", path, err)
		}
	}
	j.size = end
	return j, nil
}

// TornBytes returns how many bytes of a torn last line OpenJournal cut off,
// 0 if the journal ended with a complete line. They began an entry whose
// write never completed, so its Take never answered.
func (j *Journal) TornBytes() int64 { return j.torn }

func (j *Journal) count(e entry) {
	key := dayAgency{dayOf(e.Time), e.Agency}
	u := j.usage[key]
	if u == nil {
		u = &DailyUsage{Day: key.day, Agency: key.agency}
		j.usage[key] = u
	}
	switch e.Type {
	case typeGrant:
		u.Evaluations += e.N
		u.Requests++
	case typeRefusal:
		u.Refusals++
	}
}

// append writes e and syncs it before counting it, so that an answer given
// to a client is on disk and survives a power failure.
// append writes e and syncs it; if either fails, it cuts the journal back
// to its last whole entry, so that a failed append neither leaves a
// fragment for the next entry to be glued onto nor a line for a request
// that was refused.
func (j *Journal) append(e entry) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	line := append(b, '\n')
	_, err = j.f.Write(line)
	if err == nil {
		err = j.fsync()
	}
	if err != nil {
		if terr := j.f.Truncate(j.size); terr != nil {
			err = errors.Join(err, fmt.Errorf("cut the failed entry: %w", terr))
		}
		return err
	}
	j.size += int64(len(line))
	j.count(e)
	return nil
}

// UsedOn returns the evaluations granted per agency on a UTC day
// ("2006-01-02").
func (j *Journal) UsedOn(day string) map[string]int {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := map[string]int{}
	for k, u := range j.usage {
		if k.day == day {
			out[k.agency] = u.Evaluations
		}
	}
	return out
}

// DailyUsage is one agency's use on one day.
type DailyUsage struct {
	Day         string `json:"day"`
	Agency      string `json:"agency"`
	Evaluations int    `json:"evaluations"`
	Requests    int    `json:"requests"`
	Refusals    int    `json:"refusals"`
}

// Summary returns per-day, per-agency use, oldest first.
func (j *Journal) Summary() []DailyUsage {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make([]DailyUsage, 0, len(j.usage))
	for _, u := range j.usage {
		out = append(out, *u)
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].Day != out[b].Day {
			return out[a].Day < out[b].Day
		}
		return out[a].Agency < out[b].Agency
	})
	return out
}

// Close flushes and closes the journal.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return errors.Join(j.f.Sync(), j.f.Close())
}
