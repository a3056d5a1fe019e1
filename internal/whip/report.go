package whip

import (
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	tsync "fieldvideo/internal/sync"
	"fieldvideo/internal/unit"
)

// ReportInterval is how often sender reports go out for each track.
const ReportInterval = time.Second

// ReportClock is what the sender reports of an outgoing track say: the RTP time of the
// last unit sent and its capture time on the common baseline. A report maps RTP time to
// that baseline — RTP time = the unit's + (now − its capture time) × clock rate, at NTP
// time now — as libwebrtc does with its capture clock. A player that lines tracks up by
// RTCP alone then lines them up on the baseline (pion's reports extrapolate from when a
// packet was written, which carries every delay and jitter of the path before us).
// Sent is called from the writing goroutine, Report from the reporting one.
type ReportClock struct {
	mu      sync.Mutex
	rate    float64
	ts      uint32
	capture int64 // unix ns
}

// Sent notes that unit u went out with RTP time ts.
func (c *ReportClock) Sent(u *unit.Unit, ts uint32) {
	at := u.Capture
	if at.IsZero() {
		at = u.Arrival
	}
	if at.IsZero() {
		return
	}
	c.mu.Lock()
	c.ts, c.capture = ts, at.UnixNano()
	c.mu.Unlock()
}

// Report returns the sender report of SSRC ssrc at now, with the track's packet and
// payload byte counts, and false when nothing with a time was sent yet.
func (c *ReportClock) Report(ssrc uint32, now time.Time, packets, octets uint64) (rtcp.SenderReport, bool) {
	c.mu.Lock()
	ts, capture := c.ts, c.capture
	c.mu.Unlock()
	if capture == 0 {
		return rtcp.SenderReport{}, false
	}
	elapsed := float64(now.UnixNano()-capture) / 1e9
	return rtcp.SenderReport{
		SSRC: ssrc, NTPTime: tsync.UnixNanoToNTP(now.UnixNano()),
		RTPTime:     ts + uint32(int64(elapsed*c.rate)),
		PacketCount: uint32(packets), OctetCount: uint32(octets),
	}, true
}

// Reporters returns a list function for SendReports over a fixed set of tracks (nil
// entries are left out).
func Reporters(tracks []*LocalTrack) func([]Reporter) []Reporter {
	return func(dst []Reporter) []Reporter {
		for _, t := range tracks {
			if t != nil {
				dst = append(dst, t)
			}
		}
		return dst
	}
}

// Reporter is an outgoing track that has sender reports to send.
type Reporter interface {
	SenderReport(now time.Time) (rtcp.SenderReport, bool)
}

// SendReports sends, every ReportInterval until done is closed, the sender reports of the
// tracks list returns (appended to the slice it is given) on pc.
func SendReports(pc *webrtc.PeerConnection, done <-chan struct{}, list func([]Reporter) []Reporter) {
	tick := time.NewTicker(ReportInterval)
	defer tick.Stop()
	var tracks []Reporter
	var pkts []rtcp.Packet
	for {
		select {
		case <-done:
			return
		case now := <-tick.C:
			tracks = list(tracks[:0])
			pkts = pkts[:0]
			for _, t := range tracks {
				if sr, ok := t.SenderReport(now); ok {
					pkts = append(pkts, &sr)
				}
			}
			if len(pkts) > 0 {
				_ = pc.WriteRTCP(pkts)
			}
		}
	}
}
