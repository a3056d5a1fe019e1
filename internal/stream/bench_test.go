package stream

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/pion/rtp"

	"fieldvideo/internal/unit"
)

// BenchmarkFanout writes units of one packet to n readers that consume them;
// allocs/op is the allocations per packet for all readers together.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("readers=%d", n), func(b *testing.B) {
			s := New(Params{Name: "bench", Tracks: testTracks, GOPCacheUnits: -1})
			defer s.Close()
			var got atomic.Int64
			for i := 0; i < n; i++ {
				r, err := s.AddReader(ReaderParams{QueueSize: 4096, OnUnit: func(Delivery) { got.Add(1) }})
				if err != nil {
					b.Fatal(err)
				}
				defer r.Close()
			}
			units := make([]*unit.Unit, 1024)
			for i := range units {
				units[i] = frame(uint16(i), uint32(i)*3000, i == 0, 1)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s.Write(units[i%len(units)])
			}
			b.StopTimer()
			b.ReportMetric(float64(n), "readers")
		})
	}
}

// BenchmarkRewriter measures the per-packet header rewrite a WebRTC writer does.
func BenchmarkRewriter(b *testing.B) {
	w := Rewriter{SSRC: 1234, PayloadType: 102, ClockRate: 90000}
	u := frame(100, 9000, true, 8)
	d := Delivery{Unit: u, RTPTime: u.RTPTime}
	var h rtp.Header
	ext := make([]rtp.Extension, 0, 4)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if w.Begin(d) {
			for _, p := range u.Packets {
				w.Header(p, &h, ext)
			}
		}
	}
}
