package session

import (
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"fieldvideo/internal/stream"
	"fieldvideo/internal/whip"
)

// layerOff is the target of a video track paused for lack of bandwidth.
const layerOff = -1

// downtrack sends one publication to one subscriber. Its stream reader gets
// every layer's units; it forwards those of the current layer, measures each
// layer's bitrate, and switches to the target layer at that layer's next
// keyframe, re-anchoring its rewriter so the subscriber sees one stream with
// continuous sequence numbers and timestamps. OnUnit runs on the reader's
// goroutine; Bind and Unbind on pion's; the rest on the participant's.
type downtrack struct {
	pub   *publication
	codec webrtc.RTPCodecParameters
	kind  webrtc.RTPCodecType
	// layerOf maps a stream track index to its layer (-1: not a layer).
	layerOf []int

	bound  atomic.Pointer[binding]
	sender *webrtc.RTPSender
	reader *stream.Reader

	// target is the layer the allocator chose; current the one forwarded
	// (written by the reader goroutine only).
	target  atomic.Int32
	current atomic.Int32

	// Reader goroutine state.
	rw  stream.Rewriter
	out whip.OutHeader
	// hist answers the subscriber's NACKs for video (within whip's retransmission
	// rules); nil for audio.
	hist *whip.History

	rc              *whip.ReportClock
	layerBytes      []atomic.Uint64
	packets, sent   atomic.Uint64
	firstAt         atomic.Int64 // unix nanos of the first packet sent
	remb            atomic.Int64 // receiver-estimated maximum bitrate, bps
	rembAt          atomic.Int64
	keyframeWaitsAt atomic.Int64

	// Participant goroutine state.
	started   bool
	pinned    bool
	lastBytes []uint64
	rates     []int // measured bitrate per layer, bps
	reported  int32 // last layer reported to the subscriber
}

type binding struct {
	ssrc  uint32
	pt    uint8
	w     webrtc.TrackLocalWriter
	stamp whip.CaptureStamp // the negotiated extension ids
}

func newDowntrack(pub *publication, codec webrtc.RTPCodecParameters) *downtrack {
	n := len(pub.stream.Tracks())
	dt := &downtrack{
		pub: pub, codec: codec, layerOf: make([]int, n),
		layerBytes: make([]atomic.Uint64, len(pub.layers)),
		lastBytes:  make([]uint64, len(pub.layers)), rates: make([]int, len(pub.layers)),
		reported: -2, rc: whip.NewReportClock(codec.ClockRate),
	}
	dt.kind = webrtc.RTPCodecTypeVideo
	if strings.HasPrefix(codec.MimeType, "audio/") {
		dt.kind = webrtc.RTPCodecTypeAudio
	} else {
		dt.hist = &whip.History{}
	}
	for i := range dt.layerOf {
		dt.layerOf[i] = -1
	}
	for l, t := range pub.layers {
		dt.layerOf[t] = l
	}
	dt.rw.ClockRate = codec.ClockRate
	dt.target.Store(0)
	dt.current.Store(layerOff)
	return dt
}

// Bind implements webrtc.TrackLocal.
func (dt *downtrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	for _, c := range ctx.CodecParameters() {
		if strings.EqualFold(c.MimeType, dt.codec.MimeType) {
			b := &binding{ssrc: uint32(ctx.SSRC()), pt: uint8(c.PayloadType), w: ctx.WriteStream()}
			b.stamp.Negotiated(ctx.HeaderExtensions())
			dt.bound.Store(b)
			return c, nil
		}
	}
	return webrtc.RTPCodecParameters{}, fmt.Errorf("%w: the subscriber did not accept %s", webrtc.ErrUnsupportedCodec, dt.codec.MimeType)
}

// Unbind implements webrtc.TrackLocal.
func (dt *downtrack) Unbind(webrtc.TrackLocalContext) error {
	dt.bound.Store(nil)
	return nil
}

// ID implements webrtc.TrackLocal: the subscriber sees the room's track id.
func (dt *downtrack) ID() string { return dt.pub.info.ID }

// RID implements webrtc.TrackLocal.
func (dt *downtrack) RID() string { return "" }

// StreamID implements webrtc.TrackLocal: the publishing participant.
func (dt *downtrack) StreamID() string { return dt.pub.info.Participant }

// Kind implements webrtc.TrackLocal.
func (dt *downtrack) Kind() webrtc.RTPCodecType { return dt.kind }

func (dt *downtrack) video() bool { return dt.kind == webrtc.RTPCodecTypeVideo }

// start attaches the stream reader; called once the track is bound and the
// connection is up, so the cached pictures replayed first are not lost.
func (dt *downtrack) start(name string, queue int, onEnd func(error)) error {
	r, err := dt.pub.stream.AddReader(stream.ReaderParams{
		Name: name, QueueSize: queue, Tracks: dt.pub.layers, OnUnit: dt.onUnit, OnEnd: onEnd,
	})
	if err != nil {
		return err
	}
	dt.reader, dt.started = r, true
	return nil
}

// stop detaches the reader and waits for it.
func (dt *downtrack) stop() {
	if dt.reader != nil {
		dt.reader.Close()
		dt.reader = nil
	}
}

// setTarget changes the wanted layer and asks for a keyframe on it.
func (dt *downtrack) setTarget(l int) {
	if int(dt.target.Swap(int32(l))) != l && l != layerOff && int(dt.current.Load()) != l {
		dt.keyframeWaitsAt.Store(time.Now().UnixNano())
		dt.pub.stream.RequestKeyframe(dt.pub.layers[l])
	}
}

// onUnit forwards one delivery; it runs on the reader's goroutine and does
// not allocate.
func (dt *downtrack) onUnit(d stream.Delivery) {
	u := d.Unit
	if u.Track < 0 || u.Track >= len(dt.layerOf) {
		return
	}
	layer := dt.layerOf[u.Track]
	if layer < 0 {
		return
	}
	dt.layerBytes[layer].Add(uint64(u.Bytes()))
	cur, tgt := dt.current.Load(), dt.target.Load()
	if cur != tgt {
		switch {
		case tgt == layerOff:
			dt.current.Store(layerOff)
			return
		case int32(layer) == tgt && (u.Keyframe || !dt.video()):
			// A new input (another layer, or the same after a pause):
			// continue the outgoing sequence and timestamps from here.
			dt.rw.Reanchor()
			dt.current.Store(tgt)
			cur = tgt
		}
	}
	if int32(layer) != cur {
		return
	}
	b := dt.bound.Load()
	if b == nil {
		return
	}
	dt.rw.SSRC, dt.rw.PayloadType = b.ssrc, b.pt
	if !dt.rw.Begin(d) {
		return
	}
	dt.out.Unit(b.stamp, u)
	at := time.Now().UnixNano()
	for i, p := range u.Packets {
		hdr := dt.out.Rewrite(&dt.rw, p)
		if dt.hist != nil {
			dt.hist.Remember(u, i, hdr, at)
		}
		if _, err := b.w.WriteRTP(hdr, p.Payload); err != nil {
			return
		}
		dt.packets.Add(1)
		dt.sent.Add(uint64(len(p.Payload)))
	}
	if len(u.Packets) > 0 {
		dt.rc.Sent(u, dt.out.Last().Timestamp)
	}
	if dt.firstAt.Load() == 0 {
		dt.firstAt.Store(time.Now().UnixNano())
	}
}

// SenderReport implements whip.Reporter: the subscription's sender report, on the
// common time baseline.
func (dt *downtrack) SenderReport(now time.Time) (rtcp.SenderReport, bool) {
	b := dt.bound.Load()
	if b == nil {
		return rtcp.SenderReport{}, false
	}
	return dt.rc.Report(b.ssrc, now, dt.packets.Load(), dt.sent.Load())
}

// readRTCP handles the subscriber's feedback as whip.Feedback does for WHEP viewers
// (NACKs, receiver reports, keyframe requests, which go to the publisher; the stream
// limits their rate); REMB is kept as the estimate of subscribers that do not send
// transport-wide feedback.
func (dt *downtrack) readRTCP() {
	keyframe := func() {
		if l := dt.current.Load(); l >= 0 {
			dt.pub.stream.RequestKeyframe(dt.pub.layers[l])
		}
	}
	remb := func(p rtcp.Packet) {
		if r, ok := p.(*rtcp.ReceiverEstimatedMaximumBitrate); ok {
			dt.remb.Store(int64(r.Bitrate))
			dt.rembAt.Store(time.Now().UnixNano())
		}
	}
	for {
		pkts, _, err := dt.sender.ReadRTCP()
		if err != nil {
			return
		}
		var sent whip.Outgoing
		if b := dt.bound.Load(); b != nil {
			sent = whip.Outgoing{SSRC: b.ssrc, PT: b.pt, Stamp: b.stamp, W: b.w, Hist: dt.hist}
		}
		whip.Feedback(pkts, sent, keyframe, remb)
	}
}

// sample updates the measured layer bitrates over dt seconds.
func (dt *downtrack) sample(secs float64) {
	for l := range dt.rates {
		b := dt.layerBytes[l].Load()
		bps := int(float64(b-dt.lastBytes[l]) * 8 / secs)
		dt.lastBytes[l] = b
		// Smooth, but follow a layer that stops at once.
		if bps == 0 || dt.rates[l] == 0 {
			dt.rates[l] = bps
		} else {
			dt.rates[l] = (dt.rates[l]*2 + bps) / 3
		}
	}
}

// layerName returns what a layer is called in messages.
func (dt *downtrack) layerName(l int32) string {
	if l < 0 {
		return "off"
	}
	return dt.pub.info.Layers[l]
}
