package client

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/veilmatch/veilmatch/client/pdq"
	"github.com/veilmatch/veilmatch/crypto/oprf"
	"github.com/veilmatch/veilmatch/crypto/token"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
)

// maxQuotaWait is the longest the client waits on its own for a key server
// rate limit before giving up with the server's reason.
const maxQuotaWait = 30 * time.Second

// batchResult is the tokens of one batch.
type batchResult struct {
	seq  int
	toks []token.Token
}

// tokenize turns the values of rows into tokens under the session's key,
// batch by batch: blind, evaluate at the key server (or the share servers),
// verify the proofs, finalize.
// Only the batches listed in seqs are computed; emit receives each, in
// completion order, from a single goroutine. Several batches are in flight
// at once so the key server's and this machine's cores stay busy. Errors
// name the rows' lines in the agency's file.
func (c *Client) tokenize(ctx context.Context, ks *session, kind string, rows []localEntry, seqs []int, emit func(batchResult) error) error {
	g, ctx := errgroup.WithContext(ctx)
	work := make(chan int)
	out := make(chan batchResult, c.cfg.Workers)
	g.Go(func() error {
		defer close(work)
		for _, s := range seqs {
			select {
			case work <- s:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	workers, _ := errgroup.WithContext(ctx)
	for range c.cfg.Workers {
		workers.Go(func() error {
			for seq := range work {
				lo := seq * c.rowsPerBatch(kind)
				hi := min(lo+c.rowsPerBatch(kind), len(rows))
				toks, err := c.tokenizeBatch(ctx, ks, kind, rows[lo:hi])
				if err != nil {
					return err
				}
				select {
				case out <- batchResult{seq, toks}:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		err := workers.Wait()
		close(out)
		return err
	})
	g.Go(func() error {
		for r := range out {
			if err := emit(r); err != nil {
				return err
			}
		}
		return nil
	})
	return g.Wait()
}

// tokenizeBatch computes the tokens of one batch of rows: tokensPerRow(kind)
// tokens for each row, in row order, at most BatchSize values per
// key-server call. The several tokens of one row (a PDQ hash's) are
// sorted, so that their order says nothing of which value is the hash's
// own chunk.
func (c *Client) tokenizeBatch(ctx context.Context, ks *session, kind string, rows []localEntry) ([]token.Token, error) {
	perRow := tokensPerRow(kind)
	inputs := make([][]byte, 0, len(rows)*perRow)
	for _, r := range rows {
		var err error
		if inputs, err = appendInputs(inputs, kind, r.Value); err != nil {
			return nil, fmt.Errorf("line %d: %w", r.Line, err)
		}
	}
	out := make([]token.Token, 0, len(inputs))
	for lo := 0; lo < len(inputs); lo += c.cfg.BatchSize {
		hi := min(lo+c.cfg.BatchSize, len(inputs))
		toks, err := ks.tokens(ctx, inputs[lo:hi], fmt.Sprintf("lines %d-%d", rows[lo/perRow].Line, rows[(hi-1)/perRow].Line))
		if err != nil {
			return nil, err
		}
		out = append(out, toks...)
	}
	if perRow > 1 {
		for lo := 0; lo < len(out); lo += perRow {
			slices.SortFunc(out[lo:lo+perRow], func(a, b token.Token) int { return bytes.Compare(a[:], b[:]) })
		}
	}
	return out, nil
}

// appendInputs appends the OPRF inputs of one canonical value of kind to
// in: the value itself, or for a PDQ hash the values near it (see
// pdq.Hash.Values).
func appendInputs(in [][]byte, kind, value string) ([][]byte, error) {
	if kind != token.PDQKind {
		b, err := oprf.Input(kind, value)
		return append(in, b), err
	}
	h, err := pdq.ParseHash(value)
	if err != nil {
		return in, err
	}
	for _, v := range h.Values() {
		b, err := oprf.Input(kind, string(v))
		if err != nil {
			return in, err
		}
		in = append(in, b)
	}
	return in, nil
}

// tokensPerRow is the number of tokens one row of kind makes.
func tokensPerRow(kind string) int {
	if kind == token.PDQKind {
		return token.PDQTokens
	}
	return 1
}

// rowsPerBatch is the number of rows in one upload or check batch:
// BatchSize identifiers, or one PDQ hash, whose tokens are as many as
// four batches of identifiers.
func (c *Client) rowsPerBatch(kind string) int {
	if kind == token.PDQKind {
		return 1
	}
	return c.cfg.BatchSize
}

// evaluate has key server k evaluate req, waiting out a rate limit of up to
// maxQuotaWait that the server asks for.
func (c *Client) evaluate(ctx context.Context, k *keyServer, req *veilmatchv1.EvaluateRequest) (*veilmatchv1.EvaluateResponse, error) {
	for {
		resp, err := k.kc.Evaluate(ctx, req)
		if err == nil {
			if resp.GetKeyId() != req.GetKeyId() {
				return nil, fmt.Errorf("%w: asked for key %q, evaluated under %q", ErrKeyChanged, req.GetKeyId(), resp.GetKeyId())
			}
			return resp, nil
		}
		wait, ok := retryDelay(err)
		if !ok || wait > maxQuotaWait {
			return nil, err
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// errorText says what went wrong in a call to a key server, in words.
func errorText(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return err.Error()
	}
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded:
		return "unreachable: " + st.Message()
	case codes.ResourceExhausted:
		return "quota refused: " + st.Message()
	}
	return st.Code().String() + ": " + st.Message()
}

// retryDelay returns the delay a RESOURCE_EXHAUSTED answer asks for.
func retryDelay(err error) (time.Duration, bool) {
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted {
		return 0, false
	}
	for _, d := range st.Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok {
			return r.GetRetryDelay().AsDuration(), true
		}
	}
	return 0, false
}

// progress prints "what done/total" lines at most once a second, and the
// last one always.
type progress struct {
	c     *Client
	what  string
	total int
	done  int
	last  time.Time
}

func (p *progress) add(n int) {
	p.done += n
	if now := time.Now(); p.done >= p.total || now.Sub(p.last) >= time.Second {
		p.last = now
		fmt.Fprintf(p.c.cfg.Progress, "%s: %d/%d\n", p.what, p.done, p.total)
	}
}
