package ingest

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/pion/rtp"

	"fieldvideo/internal/stream"
	"fieldvideo/internal/unit"
)

// rtspOut serves one source to RTSP players: a reader of the source's stream
// that writes into a gortsplib ServerStream shared by all the source's
// players. Sequence numbers and timestamps stay continuous across upstream
// reconnections with the same tracks; when the tracks change, the reader
// ends and the ServerStream is closed (players reconnect and get the new
// description).
type rtspOut struct {
	src    *source
	log    *slog.Logger
	ss     *gortsplib.ServerStream
	medias []*description.Media
	tracks []unit.Track
	reader *stream.Reader

	// players counts the RTSP sessions set up on ss; guarded by registry.mu.
	players int

	// Used from the reader's goroutine only.
	rw  []stream.Rewriter
	pkt []rtp.Packet
	ext []rtp.Extension

	writeErrs atomic.Uint64
	closeOnce sync.Once
	onEnd     func(*rtspOut)
}

// newRTSPOut builds the ServerStream for tracks in and attaches a reader to
// src's stream. onEnd is called, from the reader's goroutine, when the
// reader ends on its own (tracks changed, stream closed).
func newRTSPOut(srv *gortsplib.Server, src *source, in []inputTrack, queue int, log *slog.Logger, onEnd func(*rtspOut)) (*rtspOut, error) {
	if len(in) == 0 {
		return nil, errors.New("the source has no tracks")
	}
	o := &rtspOut{
		src: src, log: log, onEnd: onEnd,
		medias: make([]*description.Media, len(in)),
		tracks: tracksOf(in),
		rw:     make([]stream.Rewriter, len(in)),
		pkt:    make([]rtp.Packet, len(in)),
		ext:    make([]rtp.Extension, 0, 4),
	}
	desc := &description.Session{Title: src.name}
	want := make([]int, len(in))
	for i, it := range in {
		f := outputFormat(it)
		if f == nil {
			return nil, fmt.Errorf("track %d (%s) cannot be served over RTSP", i, it.track.Codec)
		}
		o.medias[i] = &description.Media{Type: mediaType(it.track.Kind), Formats: []format.Format{f}}
		o.rw[i] = stream.Rewriter{PayloadType: f.PayloadType(), ClockRate: it.track.ClockRate}
		want[i] = i
	}
	desc.Medias = o.medias
	o.ss = &gortsplib.ServerStream{Server: srv, Desc: desc}
	if err := o.ss.Initialize(); err != nil {
		return nil, fmt.Errorf("RTSP output of %s: %w", src.name, err)
	}
	r, err := src.stream.AddReader(stream.ReaderParams{
		Name:      "rtsp-out",
		QueueSize: queue,
		MaxLag:    stream.LiveLag,
		Tracks:    want,
		OnUnit:    o.write,
		OnEnd:     o.ended,
	})
	if err != nil {
		o.ss.Close()
		return nil, fmt.Errorf("RTSP output of %s: %w", src.name, err)
	}
	o.reader = r
	return o, nil
}

// write sends one delivery to every player of the ServerStream.
func (o *rtspOut) write(d stream.Delivery) {
	t := d.Unit.Track
	if t < 0 || t >= len(o.rw) {
		return
	}
	rw := &o.rw[t]
	if !rw.Begin(d) {
		return
	}
	ntp := d.Unit.Capture
	if ntp.IsZero() {
		ntp = d.Unit.Arrival
	}
	if ntp.IsZero() {
		ntp = time.Now()
	}
	pkt := &o.pkt[t]
	for _, p := range d.Unit.Packets {
		if p == nil {
			continue
		}
		rw.Header(p, &pkt.Header, o.ext)
		pkt.Payload = p.Payload
		if err := o.ss.WritePacketRTPWithNTP(o.medias[t], pkt, ntp); err != nil {
			if o.writeErrs.Add(1) == 1 {
				o.log.Warn("RTSP output cannot send a packet; players will miss such packets",
					"source", o.src.name, "bytes", len(p.Payload), "error", err)
			}
		}
	}
	pkt.Payload = nil
}

func (o *rtspOut) ended(err error) {
	if errors.Is(err, stream.ErrReaderClosed) {
		return // closed by us
	}
	o.log.Info("RTSP output ended; players must reconnect", "source", o.src.name, "cause", err)
	o.ss.Close()
	if o.onEnd != nil {
		o.onEnd(o)
	}
}

// close detaches the reader and disconnects the players. It must not be
// called from the reader's goroutine.
func (o *rtspOut) close() {
	o.closeOnce.Do(func() {
		o.reader.Close()
		o.ss.Close()
	})
}

// carries reports whether the output can go on with a source's new tracks;
// the stream's reader ends otherwise.
func (o *rtspOut) carries(tracks []unit.Track) bool {
	for i, t := range o.tracks {
		if i >= len(tracks) || !t.Compatible(tracks[i]) {
			return false
		}
	}
	return true
}
