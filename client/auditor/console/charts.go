package console

import (
	"fmt"
	"html"
	"html/template"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/veilmatch/veilmatch/client/auditor"
)

// The charts are SVG drawn here, on the Go side, from aggregates the index
// computed once: no JavaScript library to vendor, review and keep up to
// date, nothing to download, and a page's cost does not grow with the
// log (a million records draw as a year of daily bars). Every bar carries
// its value in data-value and a <title> tooltip, so that the totals can be
// read back (the browser tests do) and the chart is accessible as text.

// series is one stacked series of a bar chart.
type series struct {
	name, color string
	values      []uint64 // by x
}

// barChart is a stacked bar chart over labelled x positions, with an
// optional horizontal limit line and marked x positions (drawn as a red
// dot above the bar).
type barChart struct {
	id, title string
	xs        []string
	series    []series
	limit     uint64 // 0: none
	limitName string
	marks     map[int]string // x → tooltip of its mark
}

const (
	chartW, chartH         = 760, 220
	padL, padR, padT, padB = 56, 12, 24, 34
)

// svg renders the chart.
func (c barChart) svg() template.HTML {
	var b strings.Builder
	var total, top uint64
	sums := make([]uint64, len(c.xs))
	for x := range c.xs {
		for _, s := range c.series {
			sums[x] += s.values[x]
		}
		total += sums[x]
		top = max(top, sums[x])
	}
	top = max(top, c.limit, 1)
	scale := float64(chartH-padT-padB) / float64(niceCeil(top))
	fmt.Fprintf(&b, `<svg id="%s" class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s" data-total="%d">`,
		c.id, chartW, chartH, html.EscapeString(c.title), total)
	fmt.Fprintf(&b, `<title>%s</title>`, html.EscapeString(c.title))
	// Axis: the scale's top and zero.
	y0 := chartH - padB
	fmt.Fprintf(&b, `<line class="axis" x1="%d" y1="%d" x2="%d" y2="%d"/>`, padL, y0, chartW-padR, y0)
	fmt.Fprintf(&b, `<text class="tick" x="%d" y="%d" text-anchor="end">%d</text>`, padL-4, padT+4, niceCeil(top))
	fmt.Fprintf(&b, `<text class="tick" x="%d" y="%d" text-anchor="end">0</text>`, padL-4, y0)
	n := max(len(c.xs), 1)
	slot := float64(chartW-padL-padR) / float64(n)
	w := math.Min(48, math.Max(1, slot*0.8))
	labelValues := n <= 31 // few bars: write each total above its bar
	labelEvery := max(1, int(math.Ceil(float64(n)/8)))
	for x, label := range c.xs {
		left := float64(padL) + float64(x)*slot + (slot-w)/2
		y := float64(y0)
		for _, s := range c.series {
			v := s.values[x]
			if v == 0 {
				continue
			}
			h := float64(v) * scale
			y -= h
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" data-x="%s" data-series="%s" data-value="%d"><title>%s, %s: %d</title></rect>`,
				left, y, w, h, s.color, html.EscapeString(label), html.EscapeString(s.name), v, html.EscapeString(label), html.EscapeString(s.name), v)
		}
		if labelValues && sums[x] > 0 {
			fmt.Fprintf(&b, `<text class="value" x="%.1f" y="%.1f" text-anchor="middle">%d</text>`, left+w/2, y-3, sums[x])
		}
		if tip, ok := c.marks[x]; ok {
			fmt.Fprintf(&b, `<circle class="mark" cx="%.1f" cy="%.1f" r="4" data-x="%s"><title>%s</title></circle>`, left+w/2, y-7, html.EscapeString(label), html.EscapeString(tip))
		}
		if x%labelEvery == 0 {
			fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%d" text-anchor="middle">%s</text>`, left+w/2, y0+14, html.EscapeString(label))
		}
	}
	if c.limit > 0 {
		ly := float64(y0) - float64(c.limit)*scale
		fmt.Fprintf(&b, `<line class="limit" x1="%d" y1="%.1f" x2="%d" y2="%.1f" data-value="%d"><title>%s: %d</title></line>`,
			padL, ly, chartW-padR, ly, c.limit, html.EscapeString(c.limitName), c.limit)
	}
	// Legend.
	lx := padL
	for _, s := range c.series {
		fmt.Fprintf(&b, `<rect x="%d" y="6" width="10" height="10" fill="%s"/><text class="legend" x="%d" y="15">%s</text>`, lx, s.color, lx+14, html.EscapeString(s.name))
		lx += 22 + 7*len(s.name)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // every value above is escaped
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v uint64) uint64 {
	p := uint64(1)
	for {
		for _, m := range []uint64{1, 2, 5} {
			if m*p >= v {
				return m * p
			}
		}
		p *= 10
	}
}

// palette colours series in order; levels have their own colours.
var palette = []string{"#3b6ea5", "#e07b39", "#5a9e5a", "#a4508b", "#c9a227", "#4fa3a5", "#8c6d46", "#d1495b", "#6c757d", "#2e4057"}

var levelColors = map[uint8]string{levelNone: "#b8bfc7", levelCount: "#7fa7d1", levelFlag: "#e0a526", levelFull: "#c0392b"}

// overviewCharts is what the overview draws, computed once per verified
// log: its cost then does not depend on the log's size.
type overviewCharts struct {
	byAgency, byLevel template.HTML
	quota             []template.HTML
	quotaOf           map[string]template.HTML // by agency
	probing           template.HTML
	flags             []auditor.CheckRow
	summary           auditor.Summary
}

// overview returns the overview's charts, drawing them on first use.
func (x *index) overview(daily uint64) *overviewCharts {
	x.drawOnce.Do(func() {
		sum := x.sum.Summary()
		ch := &overviewCharts{summary: sum}
		ch.byAgency, ch.byLevel = x.dayCharts()
		ch.quota, ch.quotaOf = quotaCharts(sum.Quota, daily)
		ch.probing, ch.flags = probingChart(sum.Checks)
		x.drawn = ch
	})
	return x.drawn
}

// maxBars is the most bars a chart draws; longer periods are drawn by
// week (the bar's label is the week's first day).
const maxBars = 92

// buckets maps days (sorted YYYY-MM-DD) to bar positions and labels: one
// per day, or one per 7 days when there are more than maxBars.
func buckets(days []string) (pos []int, labels []string) {
	per := 1
	if len(days) > maxBars {
		per = 7
	}
	pos = make([]int, len(days))
	var first time.Time
	for i, d := range days {
		t, _ := time.Parse(time.DateOnly, d)
		if i == 0 {
			first = t
		}
		b := int(t.Sub(first).Hours()/24) / per
		for len(labels) <= b {
			labels = append(labels, first.AddDate(0, 0, len(labels)*per).Format(time.DateOnly))
		}
		pos[i] = b
	}
	return pos, labels
}

// dayCharts draws decisions per day by agency and by level.
func (x *index) dayCharts() (byAgency, byLevel template.HTML) {
	days := slices.Sorted(maps.Keys(x.byDay))
	pos, labels := buckets(days)
	agencies := x.choices["agency"]
	as := make([]series, len(agencies))
	slot := map[string]int{}
	for i, a := range agencies {
		as[i] = series{name: a, color: palette[i%len(palette)], values: make([]uint64, len(labels))}
		slot[a] = i
	}
	ls := make([]series, len(levelNames))
	for l := range levelNames {
		ls[l] = series{name: levelNames[l], color: levelColors[uint8(l)], values: make([]uint64, len(labels))}
	}
	for d, day := range days {
		for k, n := range x.byDay[day] {
			if i, ok := slot[k.agency]; ok {
				as[i].values[pos[d]] += n
			}
			ls[k.level].values[pos[d]] += n
		}
	}
	per := "day"
	if len(labels) < len(days) {
		per = "week"
	}
	return barChart{id: "by-agency", title: "Decisions per " + per + ", by agency", xs: labels, series: as}.svg(),
		barChart{id: "by-level", title: "Decisions per " + per + ", by most revealing level disclosed", xs: labels, series: ls}.svg()
}

// dayTable is the decisions per day, agency and level, for export.
func (x *index) dayTable() []map[string]any {
	var out []map[string]any
	for _, day := range slices.Sorted(maps.Keys(x.byDay)) {
		m := x.byDay[day]
		keys := slices.SortedFunc(maps.Keys(m), func(a, b dayKey) int {
			return strings.Compare(a.agency+levelNames[a.level], b.agency+levelNames[b.level])
		})
		for _, k := range keys {
			out = append(out, map[string]any{"day": day, "agency": k.agency, "level": levelNames[k.level], "decisions": m[k]})
		}
	}
	return out
}

// quotaCharts draws each agency's key-server evaluations per day (by
// week: its busiest day) against the daily cap, with a mark where
// requests were refused.
func quotaCharts(rows []auditor.QuotaRow, daily uint64) ([]template.HTML, map[string]template.HTML) {
	byAgency := map[string][]auditor.QuotaRow{}
	for _, q := range rows {
		byAgency[q.Agency] = append(byAgency[q.Agency], q)
	}
	var out []template.HTML
	of := map[string]template.HTML{}
	for i, a := range slices.Sorted(maps.Keys(byAgency)) {
		qs := byAgency[a]
		days := make([]string, len(qs))
		for j, q := range qs {
			days[j] = q.Day
		}
		pos, labels := buckets(days)
		title := "Key-server evaluations per day: " + a
		if len(labels) < len(days) {
			title = "Key-server evaluations on the busiest day of each week: " + a
		}
		c := barChart{id: "quota-" + a, title: title, xs: labels, limit: daily, limitName: "daily quota", marks: map[int]string{}}
		s := series{name: a + " evaluations", color: palette[i%len(palette)], values: make([]uint64, len(labels))}
		refused := make([]uint64, len(labels))
		for j, q := range qs {
			s.values[pos[j]] = max(s.values[pos[j]], q.Evaluations)
			refused[pos[j]] += q.Refusals
		}
		for b, n := range refused {
			if n > 0 {
				c.marks[b] = fmt.Sprintf("%s: %d requests refused", labels[b], n)
			}
		}
		c.series = []series{s}
		out = append(out, c.svg())
		of[a] = out[len(out)-1]
	}
	return out, of
}

// probingChart draws, per agency, its busiest day of small checks
// against the probing threshold, and returns the flagged agency-days in
// day order.
func probingChart(rows []auditor.CheckRow) (template.HTML, []auditor.CheckRow) {
	var flagged []auditor.CheckRow
	c := barChart{id: "probing", title: fmt.Sprintf("Most small checks (≤ %d entries) in a day, per agency; %d or more flag probing", auditor.SmallCheck, auditor.ProbingChecks),
		limit: auditor.ProbingChecks, limitName: "probing threshold", marks: map[int]string{}}
	s := series{name: "small checks, busiest day", color: palette[0]}
	slot := map[string]int{}
	days := map[string]int{}
	for _, r := range rows {
		i, ok := slot[r.Agency]
		if !ok {
			i = len(c.xs)
			slot[r.Agency] = i
			c.xs = append(c.xs, r.Agency)
			s.values = append(s.values, 0)
		}
		s.values[i] = max(s.values[i], r.SmallChecks)
		if r.Probing {
			flagged = append(flagged, r)
			days[r.Agency]++
			c.marks[i] = fmt.Sprintf("%s flagged as probing on %d days", r.Agency, days[r.Agency])
		}
	}
	c.series = []series{s}
	slices.SortFunc(flagged, func(a, b auditor.CheckRow) int { return strings.Compare(a.Day+a.Agency, b.Day+b.Agency) })
	return c.svg(), flagged
}
