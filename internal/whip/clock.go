package whip

import (
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	tsync "fieldvideo/internal/sync"
	"fieldvideo/internal/unit"
)

// TrackClock puts one published track's frames on the common time baseline.
// A publisher that is this system's ingest sends the capture time it
// already aligned (abs-capture-time) with how well it knows it
// (capture-quality), and that is taken as it is. Any other publisher — a
// browser, a phone — is aligned here from its sender reports,
// abs-capture-time and arrivals.
type TrackClock struct {
	absID, qualID uint8 // negotiated extension ids; 0 when absent
	clk           *tsync.Clock

	upstream   atomic.Pointer[tsync.CaptureQuality] // last quality ingest sent
	upstreamAt atomic.Int64                         // when, unix nanos
}

// NewTrackClock returns the clock of track t received with the negotiated
// header extensions exts.
func NewTrackClock(t unit.Track, exts []webrtc.RTPHeaderExtensionParameter) *TrackClock {
	var ids CaptureStamp
	ids.Negotiated(exts)
	tc := &TrackClock{absID: ids.AbsID, qualID: ids.QualID}
	tc.clk, _ = tsync.NewClock(tsync.TrackParams{ClockRate: t.ClockRate})
	return tc
}

// Align sets u's capture time, error and trust.
func (tc *TrackClock) Align(u *unit.Unit) {
	if tc.clk == nil || len(u.Packets) == 0 {
		return
	}
	first := u.Packets[0]
	act, hasAbs := tc.absCaptureTime(first)
	if hasAbs && tc.qualID != 0 {
		if q, err := tsync.UnmarshalCaptureQuality(first.GetExtension(tc.qualID)); err == nil && q.Trust != tsync.TrustUnaligned {
			u.Capture, u.CaptureErr, u.CaptureTrust = act.Time(u.Arrival), q.Err, uint8(q.Trust)
			tc.upstream.Store(&q)
			tc.upstreamAt.Store(u.Arrival.UnixNano())
			return
		}
	}
	if hasAbs {
		tc.clk.AbsCaptureTime(first.SSRC, u.RTPTime, act, u.Arrival)
	}
	var trust tsync.Trust
	u.Capture, u.CaptureErr, trust = tc.clk.Frame(first.SSRC, u.RTPTime, u.Arrival)
	u.CaptureTrust = uint8(trust)
}

func (tc *TrackClock) absCaptureTime(p *rtp.Packet) (tsync.AbsCaptureTime, bool) {
	if tc.absID == 0 {
		return tsync.AbsCaptureTime{}, false
	}
	b := p.GetExtension(tc.absID)
	if b == nil {
		return tsync.AbsCaptureTime{}, false
	}
	act, err := tsync.UnmarshalAbsCaptureTime(b)
	return act, err == nil
}

// SenderReport takes a sender report of the track received at at.
func (tc *TrackClock) SenderReport(sr *rtcp.SenderReport, at time.Time) {
	if tc.clk != nil {
		tc.clk.SenderReport(sr.SSRC, sr.NTPTime, sr.RTPTime, at)
	}
}

// Info reports the track's alignment: as ingest made it when ingest sent it
// within the last few seconds, else as aligned here.
func (tc *TrackClock) Info(now time.Time) *tsync.ClockInfo {
	if q := tc.upstream.Load(); q != nil && now.Sub(time.Unix(0, tc.upstreamAt.Load())) < 5*time.Second {
		ci := tsync.ClockInfo{Trust: q.Trust.String(), ErrorMS: float64(q.Err.Microseconds()) / 1000, Upstream: true, ReportAgeMS: -1}
		limit := tsync.ConvergedWall
		if q.Trust == tsync.TrustArrival {
			limit = tsync.ConvergedArrival
		}
		ci.Converged = q.Err >= 0 && q.Err <= limit
		return &ci
	}
	if tc.clk == nil {
		return nil
	}
	ci := tc.clk.Health(now).Info()
	return &ci
}
