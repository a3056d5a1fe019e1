package metrics

import (
	"strconv"
	"sync/atomic"
	"time"
)

// Histogram counts durations in fixed buckets without locks or allocations,
// for hot paths.
type Histogram struct {
	bounds []time.Duration
	counts []atomic.Uint64 // one per bound, plus +Inf
	sum    atomic.Int64    // nanoseconds
}

// LatencyBuckets are bounds from 100 µs to 1 s, about three per decade.
var LatencyBuckets = []time.Duration{
	100 * time.Microsecond, 200 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond,
	10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond, time.Second,
}

// NewHistogram returns a histogram with the given ascending bucket bounds.
func NewHistogram(bounds []time.Duration) *Histogram {
	return &Histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

// Observe counts one duration.
func (h *Histogram) Observe(d time.Duration) {
	i := 0
	for i < len(h.bounds) && d > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

// Count returns the number of observations.
func (h *Histogram) Count() uint64 {
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	return n
}

// Quantile estimates the q-quantile as the upper bound of its bucket.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.Count()
	if n == 0 {
		return 0
	}
	target := uint64(q * float64(n))
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen > target {
			if i < len(h.bounds) {
				return h.bounds[i]
			}
			break
		}
	}
	return h.bounds[len(h.bounds)-1] * 2
}

// Write renders the histogram as a Prometheus histogram in seconds.
func (h *Histogram) Write(m *Writer, name string, labels ...string) {
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i].Load()
		m.Sample(name+"_bucket", float64(cum), append(labels, "le", strconv.FormatFloat(b.Seconds(), 'g', -1, 64))...)
	}
	cum += h.counts[len(h.bounds)].Load()
	m.Sample(name+"_bucket", float64(cum), append(labels, "le", "+Inf")...)
	m.Sample(name+"_sum", time.Duration(h.sum.Load()).Seconds(), labels...)
	m.Sample(name+"_count", float64(cum), labels...)
}
