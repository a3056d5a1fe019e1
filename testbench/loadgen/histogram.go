package main

import (
	"slices"
	"time"
)

// histogram counts durations in 10 µs buckets up to 1 s.
type histogram struct {
	buckets [100000]uint32
	over    uint64
	n       uint64
}

const bucket = 10 * time.Microsecond

func (h *histogram) add(d time.Duration) {
	h.n++
	i := int(d / bucket)
	if i < 0 {
		i = 0
	}
	if i >= len(h.buckets) {
		h.over++
		return
	}
	h.buckets[i]++
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.buckets {
		h.buckets[i] += c
	}
	h.over += o.over
	h.n += o.n
}

func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	target := uint64(q * float64(h.n))
	var seen uint64
	for i, c := range h.buckets {
		seen += uint64(c)
		if seen > target {
			return time.Duration(i+1) * bucket
		}
	}
	return time.Second
}

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}
