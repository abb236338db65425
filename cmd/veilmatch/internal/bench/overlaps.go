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
	c, err := e.newClient(pl.query, o)
	if err != nil {
		return ov, err
	}
	defer c.Close()
	lat := make([]time.Duration, 0, o.Repetitions)
	for i := range o.Repetitions + 1 {
		start := time.Now()
		res, err := c.Overlaps(ctx, queryList, benchQuery)
		if err != nil {
			return ov, err
		}
		if i > 0 {
			lat = append(lat, time.Since(start))
		}
		ov.Matches, ov.CountedClasses = len(res.Matches), len(res.Counts)
	}
	ov.P50Millis, ov.P95Millis = percentiles(lat)
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
	lat = lat[:0]
	for i := range o.Repetitions + 1 {
		start := time.Now()
		if _, err := hc.Overlaps(ctx, req); err != nil {
			return ov, err
		}
		if i > 0 {
			lat = append(lat, time.Since(start))
		}
	}
	ov.RPCP50Millis, ov.RPCP95Millis = percentiles(lat)
	p.printf("overlaps: hub RPC p50 %s ms; now the store's join alone", ms(ov.RPCP50Millis))

	l, err := e.store.GetList(ctx, queryOwner, queryList)
	if err != nil {
		return ov, err
	}
	lat = lat[:0]
	for i := range o.Repetitions + 1 {
		pairs := int64(0)
		start := time.Now()
		err := e.store.Overlaps(ctx, l.ID, func(uint64, int64) error {
			pairs++
			return nil
		})
		if err != nil {
			return ov, err
		}
		if i > 0 {
			lat = append(lat, time.Since(start))
		}
		ov.Pairs = pairs
	}
	ov.StoreP50Millis, ov.StoreP95Millis = percentiles(lat)
	if ov.Pairs != ov.ExpectedPairs {
		return ov, fmt.Errorf("the store's join found %d (entry, list) pairs, the synthetic data has %d", ov.Pairs, ov.ExpectedPairs)
	}
	return ov, nil
}

// memoryJoin is the reference: a Go map of every counterparty token (the
// lists of other owners, which the hub joins against), built beforehand,
// probed with the query list's tokens; only the probing is timed, with the
// same repetitions and warm-up as the hub's overlaps.
func memoryJoin(ctx context.Context, e *servers, pl plan, o Options, ov *Overlaps) error {
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

	lat := make([]time.Duration, 0, o.Repetitions)
	for i := range o.Repetitions + 1 {
		pairs := int64(0)
		start := time.Now()
		j.probe(query, func(uint64, int32) { pairs++ })
		if i > 0 {
			lat = append(lat, time.Since(start))
		}
		if pairs != ov.Pairs {
			return fmt.Errorf("the in-memory join found %d pairs, the store %d: they did not join the same tokens", pairs, ov.Pairs)
		}
	}
	ov.MemoryP50Millis, ov.MemoryP95Millis = percentiles(lat)
	return nil
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
