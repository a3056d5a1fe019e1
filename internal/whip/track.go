package whip

import (
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"fieldvideo/internal/metrics"
	"fieldvideo/internal/stream"
	"fieldvideo/internal/unit"
)

// LocalTrack is an outgoing WebRTC track fed with stream deliveries: the one local
// track of the media edge, for WHEP viewers and call subscriptions alike. It
// rewrites each packet's header into the negotiated SSRC, payload type and a
// continuous sequence (see stream.Rewriter), stamps it with the unit's capture
// time and quality, keeps video packets in a history that answers NACKs, and
// writes it without allocating. A call subscription switches the input between
// simulcast layers with Reanchor. Write and Reanchor are called from one goroutine
// (the stream reader's); Bind and Unbind come from pion's.
type LocalTrack struct {
	id, streamID string
	kind         webrtc.RTPCodecType
	codec        webrtc.RTPCodecParameters
	source       int // track index in the stream

	bound atomic.Pointer[binding]

	rw   stream.Rewriter
	out  OutHeader
	hist *History // nil for audio: its NACKs are not answered
	rc   ReportClock

	packets, bytes atomic.Uint64

	// the replay of the cached pictures being paced: when it began, the first
	// replayed unit's arrival, and how much faster than they arrived they go out.
	replayStart, replayBase time.Time
	replayScale             float64

	// Batch, when set, gathers each unit's packets into one send (see BatchConn).
	Batch *Batch

	// Latency, when set, observes for each live unit the time from its
	// first packet's arrival to its last packet's write.
	Latency *metrics.Histogram
}

type binding struct {
	ssrc  uint32
	pt    uint8
	w     webrtc.TrackLocalWriter
	stamp CaptureStamp // the negotiated extension ids
}

// NewLocalTrack returns a track carrying stream track index source, described
// by t, offered with codec c.
func NewLocalTrack(id, streamID string, source int, t unit.Track, c webrtc.RTPCodecParameters) *LocalTrack {
	lt := &LocalTrack{
		id: id, streamID: streamID, kind: CodecType(t.Kind), codec: c, source: source,
		rw: stream.Rewriter{ClockRate: t.ClockRate}, rc: ReportClock{rate: float64(t.ClockRate)},
	}
	if t.Kind == unit.KindVideo {
		lt.hist = &History{}
	}
	return lt
}

// CountResendsIn makes the track's history count what it resends and refuses in c as
// well; call it before the first write.
func (t *LocalTrack) CountResendsIn(c *ResendCounters) {
	if t.hist != nil {
		t.hist.Also = c
	}
}

// Reanchor makes the next delivery continue the outgoing sequence and timestamps
// from another input (another simulcast layer, or the same after a pause).
func (t *LocalTrack) Reanchor() { t.rw.Reanchor() }

// Bind implements webrtc.TrackLocal.
func (t *LocalTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	for _, c := range ctx.CodecParameters() {
		if strings.EqualFold(c.MimeType, t.codec.MimeType) {
			b := &binding{ssrc: uint32(ctx.SSRC()), pt: uint8(c.PayloadType), w: ctx.WriteStream()}
			b.stamp.Negotiated(ctx.HeaderExtensions())
			t.bound.Store(b)
			return c, nil
		}
	}
	return webrtc.RTPCodecParameters{}, fmt.Errorf("%w: peer did not accept %s", webrtc.ErrUnsupportedCodec, t.codec.MimeType)
}

// Unbind implements webrtc.TrackLocal.
func (t *LocalTrack) Unbind(webrtc.TrackLocalContext) error {
	t.bound.Store(nil)
	return nil
}

// ID implements webrtc.TrackLocal.
func (t *LocalTrack) ID() string { return t.id }

// RID implements webrtc.TrackLocal.
func (t *LocalTrack) RID() string { return "" }

// StreamID implements webrtc.TrackLocal.
func (t *LocalTrack) StreamID() string { return t.streamID }

// Kind implements webrtc.TrackLocal.
func (t *LocalTrack) Kind() webrtc.RTPCodecType { return t.kind }

// Source returns the stream track index this track carries.
func (t *LocalTrack) Source() int { return t.source }

// Bound reports whether the peer connection has bound the track.
func (t *LocalTrack) Bound() bool { return t.bound.Load() != nil }

// Write sends one delivery's packets. It returns the first write error.
func (t *LocalTrack) Write(d stream.Delivery) error {
	b := t.bound.Load()
	if b == nil {
		return nil
	}
	t.rw.SSRC, t.rw.PayloadType = b.ssrc, b.pt
	if !t.rw.Begin(d) {
		return nil
	}
	u := d.Unit
	if d.Flags&stream.FlagReplay != 0 {
		t.pace(u.Arrival)
	} else {
		t.replayStart = time.Time{}
	}
	t.out.Unit(b.stamp, u)
	at := time.Now().UnixNano()
	held := t.Batch.Hold()
	defer t.Batch.Release(held)
	for i, p := range u.Packets {
		hdr := t.out.Rewrite(&t.rw, p)
		if t.hist != nil {
			t.hist.Remember(u, i, hdr, at)
		}
		if _, err := b.w.WriteRTP(hdr, p.Payload); err != nil {
			return err
		}
		t.packets.Add(1)
		t.bytes.Add(uint64(len(p.Payload)))
	}
	if len(u.Packets) > 0 {
		t.rc.Sent(u, t.out.Last().Timestamp)
	}
	if t.Latency != nil && d.Flags&stream.FlagReplay == 0 {
		t.Latency.Observe(time.Since(d.Unit.Arrival))
	}
	return nil
}

// A new reader's cached pictures (up to a group of pictures, a second or more of video)
// go out replaySpeed times faster than they arrived, and within replayMax at most, so
// that the replay reaches the live edge quickly without arriving as one burst that
// overflows the viewer's socket or a router's queue. The keyframe goes at once.
const (
	replaySpeed = 8
	replayMax   = 200 * time.Millisecond
)

// pace waits until the replayed unit that arrived at arrival is due.
func (t *LocalTrack) pace(arrival time.Time) {
	if arrival.IsZero() {
		return
	}
	now := time.Now()
	if t.replayStart.IsZero() {
		t.replayStart, t.replayBase, t.replayScale = now, arrival, 0
		if span := now.Sub(arrival); span > 0 {
			t.replayScale = float64(min(span/replaySpeed, replayMax)) / float64(span)
		}
		return
	}
	due := t.replayStart.Add(time.Duration(float64(arrival.Sub(t.replayBase)) * t.replayScale))
	if wait := due.Sub(now); wait > 0 {
		time.Sleep(wait)
	}
}

// SenderReport implements Reporter: the track's sender report at now, on the common
// time baseline (see ReportClock).
func (t *LocalTrack) SenderReport(now time.Time) (rtcp.SenderReport, bool) {
	b := t.bound.Load()
	if b == nil {
		return rtcp.SenderReport{}, false
	}
	return t.rc.Report(b.ssrc, now, t.packets.Load(), t.bytes.Load())
}

// Stats returns the packets and payload bytes written.
func (t *LocalTrack) Stats() (packets, bytes uint64) { return t.packets.Load(), t.bytes.Load() }

// Retransmits returns how many packets were sent again on a NACK.
func (t *LocalTrack) Retransmits() uint64 { return t.ResendStats().Sent }

// ResendStats returns what the track did with the packets NACKs asked for.
func (t *LocalTrack) ResendStats() ResendStats {
	if t.hist == nil {
		return ResendStats{}
	}
	return t.hist.Stats()
}

// OutHeader builds the headers of an outgoing track without allocating: the header, room
// for its extensions, and the capture stamps of the unit being sent. WHEP viewers'
// tracks, call subscriptions and retransmissions use it. The zero value is ready.
type OutHeader struct {
	hdr   rtp.Header
	ext   []rtp.Extension
	stamp CaptureStamp
}

// Unit prepares the capture stamps of u, with the extension ids ids negotiated.
func (o *OutHeader) Unit(ids CaptureStamp, u *unit.Unit) {
	if o.ext == nil {
		o.ext = make([]rtp.Extension, 0, 4)
	}
	o.stamp.AbsID, o.stamp.QualID = ids.AbsID, ids.QualID
	o.stamp.Unit(u)
}

// Rewrite returns the header of p as rw rewrites it, with the unit's stamps.
func (o *OutHeader) Rewrite(rw *stream.Rewriter, p *rtp.Packet) *rtp.Header {
	rw.Header(p, &o.hdr, o.ext)
	o.stamp.Extend(&o.hdr)
	return &o.hdr
}

// Again returns the header of p sent again as it first went out: with sequence number
// seq and timestamp ts on SSRC ssrc and payload type pt, with the unit's stamps.
func (o *OutHeader) Again(p *rtp.Packet, ssrc uint32, pt uint8, seq uint16, ts uint32) *rtp.Header {
	o.hdr = rtp.Header{
		Version: 2, Marker: p.Marker, PayloadType: pt, SequenceNumber: seq, Timestamp: ts,
		SSRC: ssrc, CSRC: p.CSRC, Extensions: o.ext[:0],
	}
	o.stamp.Extend(&o.hdr)
	return &o.hdr
}

// Last returns the header built last.
func (o *OutHeader) Last() *rtp.Header { return &o.hdr }
