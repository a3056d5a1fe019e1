package session

import (
	"math"
	"sync/atomic"
	"time"

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
	pub    *publication
	mid    string
	up     *whip.Uplink // one stream track per layer
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
	up := &uptrack{mid: mid, up: whip.NewUplink(pc, len(tracks)), done: make(chan struct{})}
	layers := make([]int, len(tracks))
	for i := range layers {
		layers[i] = i
	}
	up.pub = &publication{info: info, layers: layers, role: role, muted: &atomic.Bool{}, up: up}
	up.pub.stream = stream.New(stream.Params{
		Name: info.ID, Tracks: tracks, GOPCacheUnits: sc.GOPCacheUnits, GOPCacheBytes: sc.GOPCacheBytes,
		KeyframeInterval: sc.KeyframeInterval, RequestKeyframe: up.up.RequestKeyframe,
	})
	go up.up.SendKeyframeRequests(up.done)
	return up
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
	st := up.pub.stream
	tr := st.Tracks()[layer]
	levelID := uint8(0)
	if tr.Kind == unit.KindAudio {
		levelID = audioLevelID(rcv)
	}
	up.up.Read(t, rcv, whip.ReadParams{
		Track: layer, Desc: tr, Write: st.Write,
		Packet: func(p *rtp.Packet, at time.Time) bool {
			if up.closed.Load() {
				return false
			}
			if levelID != 0 {
				up.hear(p, levelID, at)
			}
			return true
		},
	})
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
