package session

import (
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"fieldvideo/internal/stream"
	"fieldvideo/internal/whip"
)

// layerOff is the target of a video track paused for lack of bandwidth.
const layerOff = -1

// downtrack sends one publication to one subscriber: a whip.LocalTrack (header
// rewrite, capture stamps, NACK history, sender reports) fed by a stream reader that
// gets every layer's units. It forwards those of the current layer, measures each
// layer's bitrate, and switches to the target layer at that layer's next keyframe,
// re-anchoring the local track so the subscriber sees one stream with continuous
// sequence numbers and timestamps. OnUnit runs on the reader's goroutine; Bind and
// Unbind on pion's; the rest on the participant's.
type downtrack struct {
	*whip.LocalTrack
	pub *publication
	// layerOf maps a stream track index to its layer (-1: not a layer).
	layerOf []int

	sender *webrtc.RTPSender
	reader *stream.Reader

	// target is the layer the allocator chose; current the one forwarded
	// (written by the reader goroutine only).
	target  atomic.Int32
	current atomic.Int32

	layerBytes      []atomic.Uint64
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

func newDowntrack(pub *publication, codec webrtc.RTPCodecParameters) *downtrack {
	n := len(pub.stream.Tracks())
	first := pub.layers[0]
	dt := &downtrack{
		LocalTrack: whip.NewLocalTrack(pub.info.ID, pub.info.Participant, first, pub.stream.Tracks()[first], codec),
		pub:        pub, layerOf: make([]int, n),
		layerBytes: make([]atomic.Uint64, len(pub.layers)),
		lastBytes:  make([]uint64, len(pub.layers)), rates: make([]int, len(pub.layers)),
		reported: -2,
	}
	for i := range dt.layerOf {
		dt.layerOf[i] = -1
	}
	for l, t := range pub.layers {
		dt.layerOf[t] = l
	}
	dt.target.Store(0)
	dt.current.Store(layerOff)
	return dt
}

func (dt *downtrack) video() bool { return dt.Kind() == webrtc.RTPCodecTypeVideo }

// start attaches the stream reader; called once the track is bound and the
// connection is up, so the cached pictures replayed first are not lost.
func (dt *downtrack) start(name string, queue int, onEnd func(error)) error {
	r, err := dt.pub.stream.AddReader(stream.ReaderParams{
		Name: name, QueueSize: queue, MaxLag: stream.LiveLag, Tracks: dt.pub.layers, OnUnit: dt.onUnit, OnEnd: onEnd,
		// onUnit only chooses the layer and sends: the publisher's goroutine may
		// deliver while the subscriber keeps up
		Inline: true,
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

// onUnit forwards one delivery; it runs on the reader's goroutine or, inline, the
// publisher's, and does not allocate.
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
			dt.Reanchor()
			dt.current.Store(tgt)
			cur = tgt
		}
	}
	if int32(layer) != cur {
		return
	}
	_ = dt.Write(d)
}

// readRTCP handles the subscriber's feedback as for WHEP viewers (NACKs, receiver
// reports, keyframe requests, which go to the publisher; the stream limits their
// rate); REMB is kept as the estimate of subscribers that do not send transport-wide
// feedback.
func (dt *downtrack) readRTCP() {
	keyframe := func() {
		if l := dt.current.Load(); l >= 0 {
			dt.pub.stream.RequestKeyframe(dt.pub.layers[l])
		}
	}
	dt.ServeRTCP(dt.sender, keyframe, func(p rtcp.Packet) {
		if r, ok := p.(*rtcp.ReceiverEstimatedMaximumBitrate); ok {
			dt.remb.Store(int64(r.Bitrate))
			dt.rembAt.Store(time.Now().UnixNano())
		}
	})
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
