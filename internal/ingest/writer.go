package ingest

import (
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/pion/rtp"

	tsync "fieldvideo/internal/sync"
	"fieldvideo/internal/unit"
)

// trackWriter turns one track's RTP packets of one upstream session into
// units on the source's stream: assembler, parameter-set injection, counters.
// It is used from the track's packet goroutine only.
type trackWriter struct {
	src   *source
	media *description.Media
	clk   *tsync.Clock // nil when the track cannot be aligned
	asm   *unit.Assembler
	inj   *paramInjector // H.264 and H.265 only
	lost  uint64         // assembler's Lost already added to src
	now   func() time.Time
}

// newTrackWriters returns one writer per input track; index i writes track i.
// refs are the reference clocks the session's SDP signals per media.
func newTrackWriters(src *source, in []inputTrack, refs map[*description.Media]tsync.RefClock) []*trackWriter {
	ws := make([]*trackWriter, len(in))
	for i, it := range in {
		w := &trackWriter{src: src, media: it.media, clk: newClock(it.track, refs[it.media]), now: time.Now}
		switch f := it.format.(type) {
		case *format.H264:
			w.inj = newParamInjector(unit.CodecH264, nil, f.SPS, f.PPS)
		case *format.H265:
			w.inj = newParamInjector(unit.CodecH265, f.VPS, f.SPS, f.PPS)
		}
		w.asm = unit.NewAssembler(i, it.track, w.emit)
		ws[i] = w
	}
	return ws
}

// onPacket is the RTP callback of the track.
func (w *trackWriter) onPacket(p *rtp.Packet) {
	if p == nil {
		return
	}
	w.src.packets.Add(1)
	w.src.bytes.Add(uint64(len(p.Payload)))
	w.asm.Push(p, w.now())
	if l := w.asm.Lost; l != w.lost {
		w.src.lost.Add(int64(l) - int64(w.lost))
		w.lost = l
	}
}

func (w *trackWriter) emit(u *unit.Unit) {
	if w.inj != nil {
		u = w.inj.Process(u)
	}
	if w.clk != nil && len(u.Packets) > 0 {
		var trust tsync.Trust
		u.Capture, u.CaptureErr, trust = w.clk.Frame(u.Packets[0].SSRC, u.RTPTime, u.Arrival)
		u.CaptureTrust = uint8(trust)
	}
	w.src.stream.Write(u)
}

// health returns the track's alignment.
func (w *trackWriter) health(now time.Time) (tsync.ClockInfo, bool) {
	if w.clk == nil {
		return tsync.ClockInfo{}, false
	}
	return w.clk.Health(now).Info(), true
}
