package bench

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/veilmatch/veilmatch/server/store"
)

// units are the development police units (role law_enforcement in the
// built-in registry) that own the synthetic agencies' lists.
var units = []string{"police-us", "police-th", "police-gb"}

// The query list is police-gb's.
const (
	queryOwner = "police-gb"
	queryList  = "bench-query"
)

// firstNumber is the subscriber part of the first synthetic number:
// number(0) is +14155550000, and the range runs to +14159999999, all in
// valid North American exchanges.
const firstNumber = 5_550_000

// number returns the k-th synthetic phone number in E.164.
func number(k int) string { return "+1415" + strconv.Itoa(firstNumber+k) }

// list is one synthetic list: its owner, its name, and its rows as ranges
// of synthetic number indexes.
type list struct {
	owner, name string
	// shared rows are numbers [0, shared) of the shared pool; the unique
	// rows are numbers [uniqueFrom, uniqueFrom+unique).
	shared, uniqueFrom, unique int
}

func (l list) rows() int { return l.shared + l.unique }

// csv returns the list as a CSV file with a header.
func (l list) csv() []byte {
	var b bytes.Buffer
	b.Grow(16 * (l.rows() + 1))
	b.WriteString("phone\n")
	for k := range l.shared {
		b.WriteString(number(k))
		b.WriteByte('\n')
	}
	for k := range l.unique {
		b.WriteString(number(l.uniqueFrom + k))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// plan lays out the synthetic lists. Every agency list begins with the
// pool's first round(Overlap×Entries) numbers; the query list with the
// first min(round(Overlap×Query), pool) of them; all other rows are unique
// across lists.
type plan struct {
	agencies []list
	query    list
	pool     int
}

func newPlan(o Options) plan {
	pool := int(math.Round(o.Overlap * float64(o.Entries)))
	p := plan{pool: pool}
	next := pool
	for i := range o.Agencies {
		l := list{owner: units[i%len(units)], name: fmt.Sprintf("bench-a%03d", i), shared: pool, uniqueFrom: next, unique: o.Entries - pool}
		next += l.unique
		p.agencies = append(p.agencies, l)
	}
	qs := min(int(math.Round(o.Overlap*float64(o.Query))), pool)
	p.query = list{owner: queryOwner, name: queryList, shared: qs, uniqueFrom: next, unique: o.Query - qs}
	return p
}

// distinct is the number of distinct phone numbers the plan uses.
func (p plan) distinct() int { return p.query.uniqueFrom + p.query.unique }

// lists is the number of lists published through the pipeline.
func (p plan) lists() int { return len(p.agencies) + 1 }

// rows is the number of rows published through the pipeline.
func (p plan) rows() int {
	n := p.query.rows()
	for _, l := range p.agencies {
		n += l.rows()
	}
	return n
}

// counterparts is the number of agency lists the hub joins the query list
// against: those of other owners.
func (p plan) counterparts() int {
	n := 0
	for _, l := range p.agencies {
		if l.owner != queryOwner {
			n++
		}
	}
	return n
}

// expectedPairs is the number of distinct (query entry, counterparty list)
// pairs the join must find: every shared query row is on every
// counterparty list, and random background tokens match nothing.
func (p plan) expectedPairs() int { return p.query.shared * p.counterparts() }

// background lays out the random tokens written directly into the store:
// lists of at most backgroundListSize tokens, owned round-robin by the
// police units, each generated from its own seed so the in-memory join can
// regenerate them instead of keeping them.
type background struct {
	sizes []int
}

const backgroundListSize = 1_000_000

func newBackground(n int) background {
	if n == 0 {
		return background{}
	}
	lists := max(2, (n+backgroundListSize-1)/backgroundListSize)
	lists = min(lists, n)
	var b background
	for i := range lists {
		b.sizes = append(b.sizes, n/lists+boolInt(i < n%lists))
	}
	return b
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (b background) owner(i int) string { return units[i%len(units)] }
func (b background) name(i int) string  { return fmt.Sprintf("bench-bg%03d", i) }

// tokens calls fn with consecutive chunks of background list i's tokens,
// each at most chunk entries, with refs counting from 0. The entries are
// only valid during the call.
func (b background) tokens(i, chunk int, fn func([]store.Entry) error) error {
	rng := rand.NewChaCha8([32]byte{'v', 'e', 'i', 'l', 'b', 'g', byte(i), byte(i >> 8)})
	buf := make([]byte, chunk*store.TokenSize)
	es := make([]store.Entry, chunk)
	for done := 0; done < b.sizes[i]; {
		n := min(chunk, b.sizes[i]-done)
		rng.Read(buf[:n*store.TokenSize])
		for j := range n {
			es[j] = store.Entry{Token: buf[j*store.TokenSize : (j+1)*store.TokenSize : (j+1)*store.TokenSize], Ref: uint64(done + j)}
		}
		if err := fn(es[:n]); err != nil {
			return err
		}
		done += n
	}
	return nil
}
