package audit

import (
	"path/filepath"
	"testing"
)

// BenchmarkWrite measures durable writes (chain, write and fsync) from many
// goroutines at once, as many requests are audited at the same time; the
// writers share fsyncs.
func BenchmarkWrite(b *testing.B) {
	l := openTest(b, Params{File: filepath.Join(b.TempDir(), "audit.log"), KeyFile: testKeyFile(b)})
	e := Event{Actor: "eoc-wall", Role: "wall", Action: "view", Source: "cam1", Via: "whep", Remote: "10.0.0.5:51234",
		Method: "POST", Path: "/cam1/whep", Status: 201}
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.Write(e); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
	closeTest(b, l)
}
