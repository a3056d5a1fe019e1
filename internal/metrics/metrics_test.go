package metrics

import (
	"bytes"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

func TestWriter(t *testing.T) {
	var b bytes.Buffer
	m := NewWriter(&b)
	m.Family("fv_packets_total", "counter", "Packets.")
	m.Sample("fv_packets_total", 12, "source", `a"b\c`+"\n")
	m.Sample("fv_up", math.Inf(1))
	if err := m.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "# HELP fv_packets_total Packets.\n# TYPE fv_packets_total counter\n" +
		`fv_packets_total{source="a\"b\\c\n"} 12` + "\nfv_up +Inf\n"
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestHistogram(t *testing.T) {
	h := NewHistogram(LatencyBuckets)
	for i := 0; i < 98; i++ {
		h.Observe(300 * time.Microsecond)
	}
	h.Observe(30 * time.Millisecond)
	h.Observe(5 * time.Second)
	if h.Count() != 100 || h.Quantile(0.5) != 500*time.Microsecond || h.Quantile(0.985) != 50*time.Millisecond {
		t.Fatalf("count %d p50 %s p98.5 %s", h.Count(), h.Quantile(0.5), h.Quantile(0.985))
	}
	var b bytes.Buffer
	m := NewWriter(&b)
	h.Write(m, "x_seconds", "a", "b")
	m.Flush()
	for _, want := range []string{`x_seconds_bucket{a="b",le="0.0005"} 98`, `x_seconds_bucket{a="b",le="+Inf"} 100`, `x_seconds_count{a="b"} 100`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing %s in\n%s", want, b.String())
		}
	}
	if allocs := testing.AllocsPerRun(100, func() { h.Observe(time.Millisecond) }); allocs != 0 {
		t.Errorf("Observe allocates %v", allocs)
	}
}

func TestProcessCPU(t *testing.T) {
	deadline := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(deadline) { // spend some CPU
	}
	user, system, err := ProcessCPU(os.Getpid())
	if err != nil || user+system <= 0 {
		t.Fatalf("ProcessCPU(self) = %s, %s, %v; want some CPU time", user, system, err)
	}
	if _, _, err := ProcessCPU(-1); err == nil {
		t.Error("ProcessCPU(-1): want an error")
	}
}
