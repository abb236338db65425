package bench

import (
	"bytes"
	"context"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/veilmatch/veilmatch/client/normalize"
	"github.com/veilmatch/veilmatch/crypto/oprf"
)

// worker holds one goroutine's inputs and a prepared batch at every stage
// of one VOPRF implementation, so that each operation can be repeated on
// its own, from and to the bytes the wire carries.
type worker interface {
	blind() error
	// evaluate is the key server's work on a batch from the wire: decode and
	// validate the blinded elements, evaluate, prove, serialize.
	evaluate() error
	// finalize is the client's work on the answer: decode, verify the proof,
	// unblind, hash.
	finalize() error
	len() int
}

// cryptoWorker is a worker on crypto/oprf, the path veilmatch runs.
type cryptoWorker struct {
	client    *oprf.Client
	eval      *oprf.Evaluator
	inputs    [][]byte
	batch     *oprf.Batch
	evaluated [][]byte
	proof     []byte
}

func newCryptoWorker(key *oprf.PrivateKey, inputs [][]byte) (worker, error) {
	c, err := oprf.NewClient(key.Public())
	if err != nil {
		return nil, err
	}
	w := &cryptoWorker{client: c, eval: oprf.NewEvaluator(key), inputs: inputs}
	if w.batch, err = c.Blind(w.inputs); err != nil {
		return nil, err
	}
	if err := w.evaluate(); err != nil {
		return nil, err
	}
	return w, w.finalize()
}

func (w *cryptoWorker) len() int { return len(w.inputs) }

func (w *cryptoWorker) blind() error {
	_, err := w.client.Blind(w.inputs)
	return err
}

func (w *cryptoWorker) evaluate() error {
	b, err := oprf.DecodeBatch(w.batch.Blinded)
	if err != nil {
		return err
	}
	w.evaluated, w.proof, err = w.eval.Evaluate(b)
	return err
}

func (w *cryptoWorker) finalize() error {
	_, err := w.client.Finalize(w.batch, w.evaluated, w.proof)
	return err
}

// workerInputs returns the encoded inputs of one worker's batch: synthetic
// phone numbers, distinct per seed.
func workerInputs(batch, seed int) ([][]byte, error) {
	inputs := make([][]byte, batch)
	for i := range inputs {
		var err error
		if inputs[i], err = oprf.Input(string(normalize.Phone), number(seed*batch+i)); err != nil {
			return nil, err
		}
	}
	return inputs, nil
}

// op names one of the three operations of a worker.
type op func(worker) error

var ops = [3]op{worker.blind, worker.evaluate, worker.finalize}

// measureCrypto measures veilmatch's VOPRF (crypto/oprf) and circl's, the
// reference, each operation on one goroutine (one core), then on
// GOMAXPROCS goroutines at once.
func measureCrypto(ctx context.Context, key *oprf.PrivateKey, o Options) (Crypto, error) {
	c := Crypto{Batch: o.Batch, Cores: cores()}
	var err error
	if c.CryptoCost, err = measureImpl(ctx, key, o, newCryptoWorker); err != nil {
		return c, err
	}
	c.Circl, err = measureImpl(ctx, key, o, newCirclWorker)
	return c, err
}

// measureImpl measures one implementation's three operations and the limit
// they set.
func measureImpl(ctx context.Context, key *oprf.PrivateKey, o Options, newWorker func(*oprf.PrivateKey, [][]byte) (worker, error)) (CryptoCost, error) {
	n := cores()
	var cc CryptoCost
	workers := make([]worker, n)
	for i := range workers {
		inputs, err := workerInputs(o.Batch, i)
		if err != nil {
			return cc, err
		}
		if workers[i], err = newWorker(key, inputs); err != nil {
			return cc, err
		}
	}
	var single, all [3]float64
	for i, f := range ops {
		var err error
		if single[i], err = bestOf(ctx, workers[:1], f, o.CryptoTime); err != nil {
			return cc, err
		}
		if all[i], err = bestOf(ctx, workers, f, o.CryptoTime); err != nil {
			return cc, err
		}
	}
	cc.Blind = CryptoOp{SingleCoreMicros: single[0] / 1e3, AllCoresPerSec: 1e9 / all[0]}
	cc.Evaluate = CryptoOp{SingleCoreMicros: single[1] / 1e3, AllCoresPerSec: 1e9 / all[1]}
	cc.Finalize = CryptoOp{SingleCoreMicros: single[2] / 1e3, AllCoresPerSec: 1e9 / all[2]}
	sum := single[0] + single[1] + single[2]
	cc.RoundTripMicros = sum / 1e3
	cc.LimitPerSec = float64(n) * 1e9 / sum
	cc.MeasuredLimitPerSec = 1e9 / (all[0] + all[1] + all[2])
	return cc, nil
}

// cryptoTrials is how many trials share a measurement's time. The best is
// kept: the bare cost is a lower bound, and another process taking a core
// for a moment would otherwise lower the limit the pipeline is held to.
const cryptoTrials = 3

// bestOf returns the lowest wall time per element of cryptoTrials runs of
// f, each for d/cryptoTrials.
func bestOf(ctx context.Context, workers []worker, f op, d time.Duration) (float64, error) {
	best := 0.0
	for i := range cryptoTrials {
		perElem, err := runOp(ctx, workers, f, d/cryptoTrials)
		if err != nil {
			return 0, err
		}
		if i == 0 || perElem < best {
			best = perElem
		}
	}
	return best, nil
}

// runOp runs f on every worker, each on its own goroutine, for at least d
// and one batch each, and returns the wall time per element processed.
func runOp(ctx context.Context, workers []worker, f op, d time.Duration) (float64, error) {
	var (
		mu    sync.Mutex
		elems int
	)
	start := time.Now()
	deadline := start.Add(d)
	g, ctx := errgroup.WithContext(ctx)
	for _, w := range workers {
		g.Go(func() error {
			n := 0
			for {
				if err := f(w); err != nil {
					return err
				}
				n += w.len()
				if time.Now().After(deadline) {
					break
				}
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			mu.Lock()
			elems += n
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	return float64(time.Since(start).Nanoseconds()) / float64(elems), nil
}

// measureNormalize returns the single-core cost of reading and normalizing
// one CSV row of a synthetic phone number, in microseconds: the part of the
// pipeline before the OPRF that is not cryptography.
func measureNormalize(o Options) (float64, error) {
	l := list{unique: 4096}
	data := l.csv()
	start := time.Now()
	rows := 0
	for {
		rep, err := normalize.ReadCSV(bytes.NewReader(data), "", normalize.Phone, normalize.Options{}, func(normalize.Row) error { return nil })
		if err != nil {
			return 0, err
		}
		rows += rep.Accepted
		if time.Since(start) >= o.CryptoTime/4 {
			break
		}
	}
	return float64(time.Since(start).Microseconds()) / float64(rows), nil
}
