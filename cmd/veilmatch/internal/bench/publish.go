package bench

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/veilmatch/veilmatch/client"
	"github.com/veilmatch/veilmatch/client/normalize"
)

// newClient returns the agency client that publishes or queries list l.
// Every list has its own state directory, as every synthetic agency would.
func (e *servers) newClient(l list, o Options) (*client.Client, error) {
	return client.New(client.Config{
		Agency: l.owner, Hub: e.hubAddr, KeyServer: e.ksAddr, TLS: e.tls[l.owner],
		StateDir: filepath.Join(e.dir, "agency", l.name), BatchSize: o.Batch, Logger: o.Logger,
	})
}

// runPublish publishes every list of the plan concurrently through the real
// client: CSV rows are read and normalized, blinded, evaluated by the key
// server over gRPC, verified and finalized, and uploaded to the hub, which
// stores them. The clock runs from the first row read to the last commit.
func runPublish(ctx context.Context, e *servers, pl plan, o Options, p *progressWriter) (Publish, error) {
	p.printf("publish: %d lists, %d rows, concurrently through the full pipeline", pl.lists(), pl.rows())
	lists := append([]list{pl.query}, pl.agencies...)
	files := make([][]byte, len(lists))
	clients := make([]*client.Client, len(lists))
	for i, l := range lists {
		files[i] = l.csv()
		c, err := e.newClient(l, o)
		if err != nil {
			return Publish{}, err
		}
		defer c.Close()
		clients[i] = c
	}
	res := Publish{Lists: len(lists), Rows: pl.rows()}

	tokens0, busy0, commits0 := e.store.tokens.Load(), e.store.busyTime(), e.store.commitTime()
	done := make(chan struct{})
	var ticker sync.WaitGroup
	ticker.Go(func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				p.printf("publish: %d/%d rows stored", e.store.tokens.Load()-tokens0, res.Rows)
			}
		}
	})
	cpu0, machine0 := cpuTime(), machineCPU()
	start := time.Now()
	warnings, err := publishAll(ctx, clients, lists, files)
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	res.OtherLoad = otherLoad(machineCPU()-machine0, cpu, elapsed)
	close(done)
	ticker.Wait() // no progress line after the phase's own
	if err != nil {
		return res, err
	}
	p.printf("publish: %d rows stored in %.1fs", e.store.tokens.Load()-tokens0, elapsed.Seconds())
	res.Warnings = warnings
	res.Seconds = elapsed.Seconds()
	res.RowsPerSec = float64(res.Rows) / res.Seconds
	res.CPUMicrosPerRow = micros(cpu) / float64(res.Rows)
	res.CPUUtilization = cpu.Seconds() / (res.Seconds * float64(cores()))
	res.StoreBusySeconds = (e.store.busyTime() - busy0).Seconds()
	res.CommitSeconds = (e.store.commitTime() - commits0).Seconds()
	return res, nil
}

// publishAll publishes every list through its client at once, checks that
// no synthetic row was rejected and that the hub committed every row, and
// returns the number of rows with warnings.
func publishAll(ctx context.Context, clients []*client.Client, lists []list, files [][]byte) (int, error) {
	g, gctx := errgroup.WithContext(ctx)
	warnings := make([]int, len(lists))
	for i, l := range lists {
		g.Go(func() error {
			r, err := clients[i].Publish(gctx, bytes.NewReader(files[i]), client.PublishOptions{
				List: l.name, Kind: normalize.Phone, Category: "suspect",
			})
			if err != nil {
				return fmt.Errorf("%s publishes %s: %w", l.owner, l.name, err)
			}
			if n := len(r.Report.Rejected); n > 0 {
				return fmt.Errorf("%s publishes %s: %d synthetic rows rejected, first at line %d: %s", l.owner, l.name, n, r.Report.Rejected[0].Line, r.Report.Rejected[0].Reason)
			}
			if got := r.List.GetEntries(); got != uint64(l.rows()) {
				return fmt.Errorf("%s publishes %s: the hub committed %d entries, want %d", l.owner, l.name, got, l.rows())
			}
			warnings[i] = len(r.Report.Warnings)
			return nil
		})
	}
	err := g.Wait()
	total := 0
	for _, w := range warnings {
		total += w
	}
	return total, err
}

// otherLoad is the share of the machine's cores that other processes used
// during a measurement of the given wall time, or 0 where it is unknown.
func otherLoad(machine, own, wall time.Duration) float64 {
	if machine == 0 || own == 0 {
		return 0
	}
	return max(0, ratio((machine-own).Seconds(), wall.Seconds()*float64(runtime.NumCPU())))
}

func micros(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
