package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/veilmatch/veilmatch/client"
	"github.com/veilmatch/veilmatch/crypto/oprf"
	"github.com/veilmatch/veilmatch/internal/devstack"
)

// Threshold is publish through the key servers of threshold keys beside
// one key server holding the whole key: the same lists, in the same run,
// each configuration on a fresh hub.
type Threshold struct {
	Lists  int            `json:"lists"`
	Rows   int            `json:"rows"`
	Single ThresholdRun   `json:"single"`
	Runs   []ThresholdRun `json:"runs"`
}

// ThresholdRun is one configuration's publish.
type ThresholdRun struct {
	// Threshold and Shares are t and n; 0 for the whole key.
	Threshold  int     `json:"threshold"`
	Shares     int     `json:"shares"`
	Seconds    float64 `json:"seconds"`
	RowsPerSec float64 `json:"rows_per_sec"`
	// CPUMicrosPerRow is the process's CPU time (the client, every key
	// server and the hub) per row.
	CPUMicrosPerRow float64 `json:"cpu_us_per_row"`
	// RatioToSingle is RowsPerSec / Single.RowsPerSec.
	RatioToSingle float64 `json:"ratio_to_single"`
}

// thresholdConfigs are the threshold keys measured: t-of-n.
var thresholdConfigs = [][2]int{{2, 3}, {3, 5}}

// thresholdRows is about how many rows each configuration publishes: the
// agency lists up to that many.
const thresholdRows = 80_000

// measureThreshold publishes the plan's agency lists (up to thresholdRows)
// with the whole key, then through each threshold configuration of key
// split by the dealer, and reports the rates.
func measureThreshold(ctx context.Context, e *servers, key *oprf.PrivateKey, pl plan, o Options, p *progressWriter) (Threshold, error) {
	dir := filepath.Join(e.dir, "threshold")
	var lists []list
	th := Threshold{}
	for _, l := range pl.agencies {
		if th.Rows >= thresholdRows {
			break
		}
		lists = append(lists, l)
		th.Rows += l.rows()
	}
	th.Lists = len(lists)
	var err error
	if th.Single, err = publishThrough(ctx, filepath.Join(dir, "single"), key, 0, 0, lists, e.tls, o); err != nil {
		return th, fmt.Errorf("whole key: %w", err)
	}
	p.printf("threshold: whole key, %s rows in %.1fs", count(th.Rows), th.Single.Seconds)
	for _, c := range thresholdConfigs {
		run, err := publishThrough(ctx, filepath.Join(dir, fmt.Sprintf("%d-of-%d", c[0], c[1])), key, c[0], c[1], lists, e.tls, o)
		if err != nil {
			return th, fmt.Errorf("%d-of-%d: %w", c[0], c[1], err)
		}
		run.RatioToSingle = ratio(run.RowsPerSec, th.Single.RowsPerSec)
		th.Runs = append(th.Runs, run)
		p.printf("threshold: %d-of-%d, %s rows in %.1fs", c[0], c[1], count(th.Rows), run.Seconds)
	}
	return th, nil
}

// publishThrough starts a development stack in dir — one key server with
// key, or n servers of key split t-of-n — and publishes lists through it.
func publishThrough(ctx context.Context, dir string, key *oprf.PrivateKey, t, n int, lists []list, tlsFor map[string]*tls.Config, o Options) (ThresholdRun, error) {
	run := ThresholdRun{Threshold: t, Shares: n}
	cfg := devstack.Config{Dir: dir, Key: key, Quota: benchQuota, Logger: o.Logger}
	if n > 0 {
		shares, err := oprf.Split(key, n, t)
		if err != nil {
			return run, err
		}
		cfg.Key, cfg.Threshold = nil, &devstack.Threshold{T: t, N: n, Shares: shares}
	}
	st, err := devstack.New(ctx, cfg)
	if err != nil {
		return run, err
	}
	sctx, cancel := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- st.Serve(sctx) }()
	defer func() {
		cancel()
		<-served
	}()
	clients := make([]*client.Client, len(lists))
	files := make([][]byte, len(lists))
	for i, l := range lists {
		var err error
		if clients[i], err = client.New(client.Config{
			Agency: l.owner, Hub: st.Hub.Addr().String(), KeyServers: strings.Split(st.KeyServerAddrs(), ","), TLS: tlsFor[l.owner],
			StateDir: filepath.Join(dir, "agency", l.name), BatchSize: o.Batch, Logger: o.Logger,
		}); err != nil {
			return run, err
		}
		defer clients[i].Close()
		files[i] = l.csv()
	}
	rows := 0
	for _, l := range lists {
		rows += l.rows()
	}
	cpu0 := cpuTime()
	start := time.Now()
	if _, err := publishAll(ctx, clients, lists, files); err != nil {
		return run, err
	}
	elapsed := time.Since(start)
	run.Seconds = elapsed.Seconds()
	run.RowsPerSec = float64(rows) / run.Seconds
	run.CPUMicrosPerRow = micros(cpuTime()-cpu0) / float64(rows)
	return run, nil
}
