package dashboard

import (
	"fmt"
	"html/template"
	"math"
	"strings"
	"time"
)

// chart is a time series drawn as an SVG on the server: an area under a
// line, a few grid lines, and per point a transparent column whose title
// the browser shows on hover (and screen readers read).
type chart struct {
	SVG template.HTML
	// Points are the values, for the table the chart also offers.
	Points []chartPoint
	Total  int64
}

type chartPoint struct {
	Label string
	Value int64
}

// Chart geometry, in SVG units; the SVG scales to its box.
const (
	chartW, chartH         = 800.0, 220.0
	chartLeft, chartBottom = 44.0, 24.0
	chartTop               = 10.0
)

// drawChart draws points (their times in loc) labelled for interval.
func drawChart(times []time.Time, values []int64, interval string, metric string) chart {
	c := chart{Points: make([]chartPoint, len(values))}
	var peak int64
	for i, v := range values {
		c.Points[i] = chartPoint{Label: pointLabel(times[i], interval), Value: v}
		c.Total += v
		peak = max(peak, v)
	}
	top := niceCeil(peak)
	plotW, plotH := chartW-chartLeft-8, chartH-chartBottom-chartTop
	x := func(i int) float64 {
		if len(values) <= 1 {
			return chartLeft + plotW/2
		}
		return chartLeft + plotW*float64(i)/float64(len(values)-1)
	}
	y := func(v int64) float64 { return chartTop + plotH - plotH*float64(v)/float64(top) }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %g %g" role="img" aria-labelledby="chart-title">`, chartW, chartH)
	fmt.Fprintf(&b, `<title id="chart-title">%s over time, %d in all</title>`, template.HTMLEscapeString(metric), c.Total)
	for _, g := range []int64{0, top / 2, top} {
		gy := y(g)
		fmt.Fprintf(&b, `<line class="grid" x1="%g" y1="%.1f" x2="%g" y2="%.1f"/>`, chartLeft, gy, chartW-8, gy)
		fmt.Fprintf(&b, `<text class="axis" x="%g" y="%.1f" text-anchor="end">%s</text>`, chartLeft-6, gy+4, formatNum(g))
	}
	if len(values) > 0 {
		var line, area strings.Builder
		for i, v := range values {
			cmd := " L"
			if i == 0 {
				cmd = "M"
			}
			fmt.Fprintf(&line, "%s%.1f,%.1f", cmd, x(i), y(v))
		}
		fmt.Fprintf(&area, "%s L%.1f,%.1f L%.1f,%.1f Z", line.String(), x(len(values)-1), y(0), x(0), y(0))
		fmt.Fprintf(&b, `<path class="area" d="%s"/><path class="line" d="%s"/>`, area.String(), line.String())
		// About six labels along the bottom.
		step := max(1, int(math.Ceil(float64(len(values))/6)))
		for i := 0; i < len(values); i += step {
			anchor := "middle"
			switch {
			case i == 0:
				anchor = "start"
			case i == len(values)-1:
				anchor = "end"
			}
			fmt.Fprintf(&b, `<text class="axis" x="%.1f" y="%g" text-anchor="%s">%s</text>`, x(i), chartH-6, anchor, template.HTMLEscapeString(c.Points[i].Label))
		}
		colW := plotW / float64(max(1, len(values)))
		for i := range values {
			fmt.Fprintf(&b, `<rect class="hit" x="%.1f" y="%g" width="%.1f" height="%g"><title>%s: %s</title></rect>`,
				x(i)-colW/2, chartTop, colW, plotH, template.HTMLEscapeString(c.Points[i].Label), formatInt(values[i]))
		}
	}
	b.WriteString(`</svg>`)
	c.SVG = template.HTML(b.String()) // built above from numbers and escaped labels only
	return c
}

// pointLabel names a point of interval.
func pointLabel(t time.Time, interval string) string {
	switch interval {
	case "minute":
		return t.Format("15:04")
	case "hour":
		if t.Hour() == 0 {
			return t.Format("Jan 2")
		}
		return t.Format("15:04")
	}
	return t.Format("Jan 2")
}

// niceCeil rounds a chart's top up to 1, 2 or 5 times a power of ten.
func niceCeil(v int64) int64 {
	if v <= 1 {
		return 1
	}
	p := int64(1)
	for p*10 <= v {
		p *= 10
	}
	for _, m := range []int64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}
