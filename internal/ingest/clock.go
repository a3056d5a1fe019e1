package ingest

import (
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/pion/rtcp"

	tsync "fieldvideo/internal/sync"
	"fieldvideo/internal/unit"
)

// refClocks maps each media of a session description to the reference clock
// its SDP signals (RFC 7273), read from the raw SDP because gortsplib's
// description drops those attributes. An SDP that cannot be read yields no
// signalled clocks: the tracks are then aligned from their sender reports or
// arrivals.
func refClocks(desc *description.Session, sdp []byte) map[*description.Media]tsync.RefClock {
	out := map[*description.Media]tsync.RefClock{}
	if desc == nil || len(sdp) == 0 {
		return out
	}
	refs, _ := tsync.RefClocksFromSDP(sdp)
	for i, m := range desc.Medias {
		if i < len(refs) {
			out[m] = refs[i]
		}
	}
	return out
}

// newClock returns the alignment of one track.
func newClock(t unit.Track, ref tsync.RefClock) *tsync.Clock {
	c, err := tsync.NewClock(tsync.TrackParams{ClockRate: t.ClockRate, RefClock: ref})
	if err != nil {
		return nil // a zero clock rate; such tracks are never selected
	}
	return c
}

// onRTCP feeds a session's sender reports to the clocks of its tracks.
func onRTCP(ws []*trackWriter) func(*description.Media, rtcp.Packet) {
	return func(m *description.Media, p rtcp.Packet) {
		sr, ok := p.(*rtcp.SenderReport)
		if !ok {
			return
		}
		now := time.Now()
		for _, w := range ws {
			if w.media == m && w.clk != nil {
				w.clk.SenderReport(sr.SSRC, sr.NTPTime, sr.RTPTime, now)
			}
		}
	}
}
