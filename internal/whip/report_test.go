package whip

import (
	"testing"
	"time"

	tsync "fieldvideo/internal/sync"
	"fieldvideo/internal/unit"
)

// TestReportClock: a sender report maps RTP time to the capture time of what was sent, at
// any report time, whatever the delay between capture and sending.
func TestReportClock(t *testing.T) {
	c := &ReportClock{rate: 90000}
	if _, ok := c.Report(7, time.Now(), 0, 0); ok {
		t.Fatal("a report before anything was sent")
	}
	capture := time.Unix(1_800_000_000, 250_000_000)
	// sent 300 ms after capture: the report must not carry that delay.
	c.Sent(&unit.Unit{Capture: capture, Arrival: capture.Add(300 * time.Millisecond)}, 1_000_000)
	c.Sent(&unit.Unit{Capture: capture.Add(40 * time.Millisecond)}, 1_003_600)
	for _, after := range []time.Duration{-20 * time.Millisecond, 0, 500 * time.Millisecond, 3 * time.Second} {
		now := capture.Add(40*time.Millisecond + after)
		sr, ok := c.Report(7, now, 5, 4000)
		if !ok || sr.SSRC != 7 || sr.PacketCount != 5 || sr.OctetCount != 4000 {
			t.Fatalf("report %+v, %v", sr, ok)
		}
		if got := tsync.NTPToUnixNano(sr.NTPTime, now.UnixNano()); got != now.UnixNano() {
			t.Fatalf("NTP time %d, want now %d", got, now.UnixNano())
		}
		// the capture time a player derives for RTP time 1_003_600 is the frame's.
		derived := now.Add(-time.Duration(float64(int32(sr.RTPTime-1_003_600)) / 90000 * float64(time.Second)))
		if d := derived.Sub(capture.Add(40 * time.Millisecond)); d < -20*time.Microsecond || d > 20*time.Microsecond {
			t.Fatalf("report at %s after the frame: derived capture time off by %s", after, d)
		}
	}
	// a unit without a capture time maps on its arrival time.
	c.Sent(&unit.Unit{Arrival: capture.Add(time.Second)}, 1_090_000)
	sr, _ := c.Report(7, capture.Add(time.Second), 6, 4010)
	if sr.RTPTime != 1_090_000 || sr.PacketCount != 6 || sr.OctetCount != 4010 {
		t.Fatalf("report %+v at the arrival of an unaligned unit, want RTP time 1090000, 6 packets, 4010 bytes", sr)
	}
}
