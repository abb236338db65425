package bench

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"strconv"
	"sync"
	"time"
)

// procStatus returns a memory field of /proc/self/status (VmRSS, VmHWM, …)
// in bytes, or 0 where there is no such file.
func procStatus(field string) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		name, rest, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok || string(name) != field {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) == 0 {
			return 0
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	return 0
}

// machineCPU returns the CPU time every process of the machine has used
// since boot (user, nice, system, irq, softirq and steal in /proc/stat), or
// 0 where there is no such file. Minus the process's own CPU time, it shows
// whether something else competed for the cores during a measurement.
func machineCPU() time.Duration {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 9 || string(f[0]) != "cpu" {
		return 0
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system irq softirq steal
		n, err := strconv.ParseInt(string(f[i]), 10, 64)
		if err != nil {
			return 0
		}
		ticks += n
	}
	// USER_HZ is 100 on every Linux platform Go supports.
	return time.Duration(ticks) * 10 * time.Millisecond
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// Phases of the run that the sampler tells apart.
const (
	phaseIdle = iota
	phasePublish
	phaseOverlaps
)

// sampleEvery is the RSS sampling period.
const sampleEvery = 100 * time.Millisecond

// sampler records resident memory and the hub's size every sampleEvery,
// labelled with the phase of the run, to show whether memory follows the
// hub's size.
type sampler struct {
	tokens func() int64
	done   chan struct{}
	wg     sync.WaitGroup

	mu      sync.Mutex
	phase   int
	samples map[int][]sample
}

type sample struct {
	rss, tokens int64
}

func startSampler(tokens func() int64) *sampler {
	s := &sampler{tokens: tokens, done: make(chan struct{}), samples: map[int][]sample{}}
	s.wg.Go(func() {
		t := time.NewTicker(sampleEvery)
		defer t.Stop()
		for {
			select {
			case <-s.done:
				return
			case <-t.C:
				s.take()
			}
		}
	})
	return s
}

func (s *sampler) take() {
	rss, n := procStatus("VmRSS"), s.tokens()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.phase != phaseIdle && rss > 0 {
		s.samples[s.phase] = append(s.samples[s.phase], sample{rss, n})
	}
}

// setPhase takes a sample at the boundary, so that every phase has its
// first and last sample even when it is shorter than the period.
func (s *sampler) setPhase(p int) {
	s.take()
	s.mu.Lock()
	s.phase = p
	s.mu.Unlock()
	s.take()
}

func (s *sampler) stop() {
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	s.wg.Wait()
}

func (s *sampler) report() Memory {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Memory{Publish: phaseRSS(s.samples[phasePublish]), Overlaps: phaseRSS(s.samples[phaseOverlaps])}
}

func phaseRSS(ss []sample) PhaseRSS {
	if len(ss) == 0 {
		return PhaseRSS{}
	}
	p := PhaseRSS{
		Samples: len(ss), StartMiB: mib(ss[0].rss), EndMiB: mib(ss[len(ss)-1].rss),
		HubTokensStart: ss[0].tokens, HubTokensEnd: ss[len(ss)-1].tokens,
	}
	for _, x := range ss {
		p.MaxMiB = max(p.MaxMiB, mib(x.rss))
	}
	return p
}

// measureDisk measures the hub's store at rest, after the hub has stopped
// and closed it.
func measureDisk(ctx context.Context, e *servers, o Options) (Storage, error) {
	st := Storage{Background: int64(o.Background), Tokens: e.hubTokens()}
	var err error
	if st.Bytes, st.Files, err = e.backend.size(ctx, e.hubDir); err != nil {
		return st, err
	}
	st.BytesPerToken = ratio(float64(st.Bytes), float64(st.Tokens))
	return st, nil
}
