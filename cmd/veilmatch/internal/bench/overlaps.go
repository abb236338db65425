package bench

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/veilmatch/veilmatch/client"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
	"github.com/veilmatch/veilmatch/server/rpc"
	"github.com/veilmatch/veilmatch/server/store"
)

// benchQuery is the reason the query list's owner gives for every query.
var benchQuery = client.Query{Purpose: "investigation", CaseRef: "BENCH-1"}

// measureOverlaps times the query list's overlaps end to end through the
// client (request, policy, join, decision log, answer, mapping back to
// rows), the hub's RPC alone, and the store's join alone, each after one
// untimed warm-up.
func measureOverlaps(ctx context.Context, e *servers, pl plan, o Options, p *progressWriter) (Overlaps, error) {
	ov := Overlaps{QueryEntries: pl.query.rows(), HubTokens: e.hubTokens(), Repetitions: o.Repetitions, ExpectedPairs: int64(pl.expectedPairs())}
	p.printf("overlaps: query list of %d against a hub of %d tokens, %d repetitions", ov.QueryEntries, ov.HubTokens, o.Repetitions)
	c, err := e.newClient(pl.query, o)
	if err != nil {
		return ov, err
	}
	defer c.Close()
	ov.P50Millis, ov.P95Millis, err = timed(o.Repetitions, func() error {
		res, err := c.Overlaps(ctx, queryList, benchQuery)
		if err == nil {
			ov.Matches, ov.CountedClasses = len(res.Matches), len(res.Counts)
		}
		return err
	})
	if err != nil {
		return ov, err
	}
	p.printf("overlaps: through the client p50 %s ms; now the hub's RPC alone", ms(ov.P50Millis))

	// The hub's RPC alone, without the client reading its state and
	// mapping entries back to rows.
	conn, err := grpc.NewClient(e.hubAddr, grpc.WithTransportCredentials(credentials.NewTLS(e.tls[queryOwner])),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(rpc.MaxMessageSize)))
	if err != nil {
		return ov, err
	}
	defer conn.Close()
	hc := veilmatchv1.NewHubServiceClient(conn)
	req := &veilmatchv1.OverlapsRequest{List: queryList, Purpose: benchQuery.Purpose, CaseRef: benchQuery.CaseRef}
	ov.RPCP50Millis, ov.RPCP95Millis, err = timed(o.Repetitions, func() error {
		_, err := hc.Overlaps(ctx, req)
		return err
	})
	if err != nil {
		return ov, err
	}
	p.printf("overlaps: hub RPC p50 %s ms; now the store's join alone", ms(ov.RPCP50Millis))

	if ov.StoreP50Millis, ov.StoreP95Millis, ov.Pairs, err = timeStoreJoin(ctx, e, o); err != nil {
		return ov, err
	}
	if ov.Pairs != ov.ExpectedPairs {
		return ov, fmt.Errorf("the store's join found %d (entry, list) pairs, the synthetic data has %d", ov.Pairs, ov.ExpectedPairs)
	}
	return ov, nil
}

// timeStoreJoin times the store's join of the query list alone, and
// returns the distinct (entry, list) pairs it found.
func timeStoreJoin(ctx context.Context, e *servers, o Options) (p50, p95 float64, pairs int64, err error) {
	l, err := e.store.GetList(ctx, queryOwner, queryList)
	if err != nil {
		return 0, 0, 0, err
	}
	p50, p95, err = timed(o.Repetitions, func() error {
		pairs = 0
		return e.store.Overlaps(ctx, l.ID, func(uint64, int64) error {
			pairs++
			return nil
		})
	})
	return p50, p95, pairs, err
}

// timed calls fn once untimed, as a warm-up, then n times timed, and
// returns the latencies' nearest-rank 50th and 95th percentiles in
// milliseconds.
func timed(n int, fn func() error) (p50, p95 float64, err error) {
	lat := make([]time.Duration, 0, n)
	for i := range n + 1 {
		start := time.Now()
		if err := fn(); err != nil {
			return 0, 0, err
		}
		if i > 0 {
			lat = append(lat, time.Since(start))
		}
	}
	p50, p95 = percentiles(lat)
	return p50, p95, nil
}

// memoryJoin is the reference: a Go map of every counterparty token (the
// lists of other owners, which the hub joins against), built beforehand,
// probed with the query list's tokens; only the probing is timed, with the
// same repetitions and warm-up as the hub's overlaps.
func memoryJoin(ctx context.Context, e *servers, pl plan, o Options, p *progressWriter, ov *Overlaps) error {
	p.printf("in-memory hash join: building a map of the counterparty tokens")
	if err := e.store.flush(); err != nil {
		return err
	}
	start := time.Now()
	j := newHashJoin(int(e.hubTokens()))
	for _, l := range pl.agencies {
		if l.owner == queryOwner {
			continue
		}
		id := j.newList()
		if err := e.store.capturedTokens(l.owner, l.name, func(b []byte) error {
			for t := range slices.Chunk(b, store.TokenSize) {
				j.add([store.TokenSize]byte(t), id)
			}
			return nil
		}); err != nil {
			return err
		}
	}
	for i := range e.bg.sizes {
		if e.bg.owner(i) == queryOwner {
			continue
		}
		id := j.newList()
		if err := e.bg.tokens(i, 1<<16, func(es []store.Entry) error {
			for _, en := range es {
				j.add([store.TokenSize]byte(en.Token), id)
			}
			return ctx.Err()
		}); err != nil {
			return err
		}
	}
	var query [][store.TokenSize]byte
	if err := e.store.capturedTokens(queryOwner, queryList, func(b []byte) error {
		for t := range slices.Chunk(b, store.TokenSize) {
			query = append(query, [store.TokenSize]byte(t))
		}
		return nil
	}); err != nil {
		return err
	}
	if len(query) != pl.query.rows() {
		return fmt.Errorf("captured %d query tokens, published %d", len(query), pl.query.rows())
	}
	ov.MemoryTokens = int64(len(j.m))
	ov.MemoryBuildSeconds = time.Since(start).Seconds()

	var err error
	ov.MemoryP50Millis, ov.MemoryP95Millis, err = timed(o.Repetitions, func() error {
		pairs := int64(0)
		j.probe(query, func(uint64, int32) { pairs++ })
		if pairs != ov.Pairs {
			return fmt.Errorf("the in-memory join found %d pairs, the store %d: they did not join the same tokens", pairs, ov.Pairs)
		}
		return nil
	})
	return err
}

// hashJoin maps a token to the list holding it, or, for a token on several
// lists, to an entry of multi.
type hashJoin struct {
	m     map[[store.TokenSize]byte]int32 // list id ≥ 0, or -(index into multi)-1
	multi [][]int32
	lists int32
}

func newHashJoin(capacity int) *hashJoin {
	return &hashJoin{m: make(map[[store.TokenSize]byte]int32, capacity)}
}

func (j *hashJoin) newList() int32 {
	j.lists++
	return j.lists - 1
}

func (j *hashJoin) add(t [store.TokenSize]byte, list int32) {
	v, ok := j.m[t]
	switch {
	case !ok:
		j.m[t] = list
	case v >= 0:
		if v != list {
			j.multi = append(j.multi, []int32{v, list})
			j.m[t] = -int32(len(j.multi))
		}
	default:
		if ls := j.multi[-v-1]; !slices.Contains(ls, list) {
			j.multi[-v-1] = append(ls, list)
		}
	}
}

// probe calls fn for every distinct (query index, list) pair.
func (j *hashJoin) probe(query [][store.TokenSize]byte, fn func(ref uint64, list int32)) {
	for i, t := range query {
		v, ok := j.m[t]
		switch {
		case !ok:
		case v >= 0:
			fn(uint64(i), v)
		default:
			for _, l := range j.multi[-v-1] {
				fn(uint64(i), l)
			}
		}
	}
}

// percentiles returns the nearest-rank 50th and 95th percentiles of ds in
// milliseconds.
func percentiles(ds []time.Duration) (p50, p95 float64) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return float64(s[max(i, 0)].Nanoseconds()) / 1e6
	}
	return rank(0.50), rank(0.95)
}
