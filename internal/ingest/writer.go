package ingest

import (
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/pion/rtp"

	"fieldvideo/internal/unit"
)

// trackWriter turns one track's RTP packets of one upstream session into
// units on the source's stream: assembler, parameter-set injection, counters.
// It is used from the track's packet goroutine only.
type trackWriter struct {
	src  *source
	asm  *unit.Assembler
	inj  *paramInjector // H.264 and H.265 only
	lost uint64         // assembler's Lost already added to src
	now  func() time.Time
}

// newTrackWriters returns one writer per input track; index i writes track i.
func newTrackWriters(src *source, in []inputTrack) []*trackWriter {
	ws := make([]*trackWriter, len(in))
	for i, it := range in {
		w := &trackWriter{src: src, now: time.Now}
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
	w.src.stream.Write(u)
}
