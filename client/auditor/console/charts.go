package console

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strings"
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
	for x := range c.xs {
		var sum uint64
		for _, s := range c.series {
			sum += s.values[x]
		}
		total += sum
		top = max(top, sum)
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
	w := math.Max(1, slot*0.8)
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
