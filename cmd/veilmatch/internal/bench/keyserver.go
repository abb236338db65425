package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/veilmatch/veilmatch/crypto/oprf"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
)

// callers is the number of concurrent key-server callers: enough to keep
// every core of the key server busy while answers travel back.
func callers() int { return max(4, 2*cores()) }

// measureKeyServer has several agencies' connections send pre-blinded
// batches to the key server as fast as it answers, and returns its
// evaluations per second. Each caller has its own connection (its own
// TLS session), as separate agencies would.
func measureKeyServer(ctx context.Context, e *servers, key *oprf.PrivateKey, o Options) (KeyServer, error) {
	n := callers()
	ks := KeyServer{Callers: n, Batch: o.Batch}
	type caller struct {
		kc  veilmatchv1.KeyServiceClient
		req *veilmatchv1.EvaluateRequest
	}
	oc, err := oprf.NewClient(key.Public())
	if err != nil {
		return ks, err
	}
	cs := make([]caller, n)
	for i := range cs {
		conn, err := grpc.NewClient(e.ksAddr, grpc.WithTransportCredentials(credentials.NewTLS(e.tls[units[i%len(units)]])))
		if err != nil {
			return ks, err
		}
		defer conn.Close()
		inputs, err := workerInputs(o.Batch, 1000+i)
		if err != nil {
			return ks, err
		}
		batch, err := oc.Blind(inputs)
		if err != nil {
			return ks, err
		}
		cs[i] = caller{kc: veilmatchv1.NewKeyServiceClient(conn), req: &veilmatchv1.EvaluateRequest{KeyId: key.KeyID(), BlindedElements: batch.Blinded}}
		// Warm-up: the TLS handshake and the first call are not timed.
		if _, err := cs[i].kc.Evaluate(ctx, cs[i].req); err != nil {
			return ks, fmt.Errorf("evaluate: %w", err)
		}
	}
	var elems atomic.Int64
	cpu0, machine0 := cpuTime(), machineCPU()
	start := time.Now()
	deadline := start.Add(o.KeyServerTime)
	g, gctx := errgroup.WithContext(ctx)
	for _, c := range cs {
		g.Go(func() error {
			for {
				resp, err := c.kc.Evaluate(gctx, c.req)
				if err != nil {
					return fmt.Errorf("evaluate: %w", err)
				}
				if len(resp.GetEvaluatedElements()) != len(c.req.BlindedElements) {
					return fmt.Errorf("evaluate: %d elements answered for %d", len(resp.GetEvaluatedElements()), len(c.req.BlindedElements))
				}
				elems.Add(int64(len(resp.GetEvaluatedElements())))
				if time.Now().After(deadline) {
					return nil
				}
			}
		})
	}
	if err := g.Wait(); err != nil {
		return ks, err
	}
	elapsed := time.Since(start)
	ks.Seconds = elapsed.Seconds()
	ks.Evaluations = elems.Load()
	ks.PerSec = float64(ks.Evaluations) / ks.Seconds
	cpu := cpuTime() - cpu0
	ks.CPUMicrosPerEval = micros(cpu) / float64(ks.Evaluations)
	ks.OtherLoad = otherLoad(machineCPU()-machine0, cpu, elapsed)
	return ks, nil
}
