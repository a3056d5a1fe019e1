package session

import (
	"bytes"
	"math"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/conf"
	"fieldvideo/internal/stream"
	"fieldvideo/internal/unit"
	"fieldvideo/internal/whip"
)

// publication is a track of a room that can be subscribed to: a
// participant's published track, or a field camera's track. Its stream holds
// one stream track per simulcast layer, lowest first.
type publication struct {
	info   TrackInfo
	stream *stream.Stream
	// layers are the stream track indices of the layers, lowest first.
	layers []int
	// role is the publisher's role (empty for field cameras), which orders
	// subscriptions when bandwidth is short.
	role  auth.Role
	muted *atomic.Bool
	// up is the published track; nil for field cameras.
	up *uptrack
}

func (pub *publication) snapshot() TrackInfo {
	in := pub.info
	in.Muted = pub.muted.Load()
	in.Layers = append([]string(nil), pub.info.Layers...)
	return in
}

// uptrack is a track a participant publishes: one remote track per
// simulcast layer, each assembled into units on the track's stream.
type uptrack struct {
	pub  *publication
	mid  string
	pc   *webrtc.PeerConnection
	ssrc []atomic.Uint32 // per layer, for keyframe requests
	// clocks put each layer's frames on the common time baseline; set
	// when the layer's first packet comes.
	clocks []atomic.Pointer[whip.TrackClock]
	kf     chan int
	done   chan struct{}
	closed atomic.Bool
	// stopRecording ends the publication's recording; nil when not
	// recorded. Owned by the participant goroutine, like close.
	stopRecording func()

	// level is the smoothed audio level (0 silence .. 1000 loudest) and
	// heard the unix nanos of the last audio packet, for the active
	// speaker.
	level atomic.Int32
	heard atomic.Int64
}

func newUptrack(info TrackInfo, role auth.Role, mid string, pc *webrtc.PeerConnection, tracks []unit.Track, sc conf.Stream) *uptrack {
	up := &uptrack{mid: mid, pc: pc, ssrc: make([]atomic.Uint32, len(tracks)), clocks: make([]atomic.Pointer[whip.TrackClock], len(tracks)), kf: make(chan int, 8), done: make(chan struct{})}
	layers := make([]int, len(tracks))
	for i := range layers {
		layers[i] = i
	}
	up.pub = &publication{info: info, layers: layers, role: role, muted: &atomic.Bool{}, up: up}
	up.pub.stream = stream.New(stream.Params{
		Name: info.ID, Tracks: tracks, GOPCacheUnits: sc.GOPCacheUnits, GOPCacheBytes: sc.GOPCacheBytes,
		KeyframeInterval: sc.KeyframeInterval, RequestKeyframe: up.requestKeyframe,
	})
	go up.sendKeyframeRequests()
	return up
}

func (up *uptrack) requestKeyframe(layer int) {
	select {
	case up.kf <- layer:
	default:
	}
}

// sendKeyframeRequests turns the stream's keyframe requests into PLIs for
// the layer's sender; the stream already limits their rate.
func (up *uptrack) sendKeyframeRequests() {
	for {
		select {
		case <-up.done:
			return
		case l := <-up.kf:
			if ssrc := up.ssrc[l].Load(); ssrc != 0 {
				_ = up.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
			}
		}
	}
}

// close ends the track: its stream closes, which ends every subscriber's
// reader.
func (up *uptrack) close() {
	if up.closed.CompareAndSwap(false, true) {
		close(up.done)
		if up.stopRecording != nil {
			up.stopRecording()
		}
		up.pub.stream.Close()
	}
}

// audioLevelID returns the negotiated id of the audio level extension, or 0.
func audioLevelID(rcv *webrtc.RTPReceiver) uint8 {
	for _, e := range rcv.GetParameters().HeaderExtensions {
		if e.URI == sdp.AudioLevelURI {
			return uint8(e.ID)
		}
	}
	return 0
}

// read assembles one layer's packets into units until the track ends.
func (up *uptrack) read(layer int, t *webrtc.TrackRemote, rcv *webrtc.RTPReceiver) {
	up.ssrc[layer].Store(uint32(t.SSRC()))
	st := up.pub.stream
	tr := st.Tracks()[layer]
	clk := whip.NewTrackClock(tr, rcv.GetParameters().HeaderExtensions)
	up.clocks[layer].Store(clk)
	go func() {
		rid := t.RID()
		for {
			var pkts []rtcp.Packet
			var err error
			if rid != "" {
				pkts, _, err = rcv.ReadSimulcastRTCP(rid)
			} else {
				pkts, _, err = rcv.ReadRTCP()
			}
			if err != nil {
				return
			}
			for _, p := range pkts {
				if sr, ok := p.(*rtcp.SenderReport); ok {
					clk.SenderReport(sr, time.Now())
				}
			}
		}
	}()
	levelID := uint8(0)
	if tr.Kind == unit.KindAudio {
		levelID = audioLevelID(rcv)
	}
	asm := unit.NewAssembler(layer, tr, func(u *unit.Unit) {
		clk.Align(u)
		st.Write(u)
	})
	buf := make([]byte, 1500)
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			asm.Flush()
			return
		}
		if up.closed.Load() {
			continue
		}
		pkt := &rtp.Packet{}
		if err := pkt.Unmarshal(bytes.Clone(buf[:n])); err != nil {
			continue
		}
		now := time.Now()
		if levelID != 0 {
			up.hear(pkt, levelID, now)
		}
		asm.Push(pkt, now)
	}
}

// hear updates the smoothed audio level from a packet's RFC 6464 extension.
func (up *uptrack) hear(p *rtp.Packet, id uint8, now time.Time) {
	b := p.GetExtension(id)
	if len(b) == 0 {
		return
	}
	var ext rtp.AudioLevelExtension
	if ext.Unmarshal(b) != nil {
		return
	}
	// -dBov 0 (loudest) .. 127 (silence) → 0 .. 1000 on a scale that
	// follows loudness: speech sits around 30-50 -dBov.
	l := int32(math.Round(1000 * (1 - float64(ext.Level)/127)))
	old := up.level.Load()
	up.level.Store(old + (l-old)/4)
	up.heard.Store(now.UnixNano())
}

// loudness returns the smoothed level (0..1), zero when nothing was heard
// lately (discontinuous transmission sends nothing in silence).
func (up *uptrack) loudness(now time.Time) float64 {
	if now.UnixNano()-up.heard.Load() > int64(300*time.Millisecond) {
		return 0
	}
	return float64(up.level.Load()) / 1000
}
