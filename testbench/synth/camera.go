// Package synth generates synthetic camera streams for tests and the load
// generator: H.264-shaped RTP frames (parameter sets and IDR slices every
// GOP, predicted slices between) whose payloads carry the time they were
// made, so a receiver can measure the latency of every packet.
package synth

import (
	"context"
	"encoding/binary"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"fieldvideo/internal/stream"
	"fieldvideo/internal/unit"
)

// Magic starts every stamped slice payload, after the NAL header.
const Magic = 0xF1E1D0C0

// TrustRefClock is the sync.Trust value of a reference-clock-locked capture
// time: a synthetic camera knows its capture times exactly.
const TrustRefClock = 3

// Params describe a synthetic camera.
type Params struct {
	FPS             int // frames per second; default 25
	GOP             int // frames per keyframe interval; default 50
	PacketsPerFrame int // slices per frame; default 4 (keyframes: 4x)
	PayloadSize     int // bytes per slice; default 1000
	Audio           bool
	SSRC            uint32
}

func (p *Params) defaults() {
	if p.FPS <= 0 {
		p.FPS = 25
	}
	if p.GOP <= 0 {
		p.GOP = 50
	}
	if p.PacketsPerFrame <= 0 {
		p.PacketsPerFrame = 4
	}
	if p.PayloadSize < 16 {
		p.PayloadSize = 1000
	}
}

// Tracks returns the tracks a camera with params p produces.
func Tracks(p Params) []unit.Track {
	ts := []unit.Track{{Kind: unit.KindVideo, Codec: unit.CodecH264, ClockRate: 90000, PayloadType: 96}}
	if p.Audio {
		ts = append(ts, unit.Track{Kind: unit.KindAudio, Codec: unit.CodecOpus, ClockRate: 48000, Channels: 2, PayloadType: 111})
	}
	return ts
}

// Camera produces frames.
type Camera struct {
	p        Params
	frame    int
	seq      uint16
	aseq     uint16
	useq     uint64
	ts, ats  uint32
	sps, pps []byte
	force    atomic.Bool
}

// ForceKeyframe makes the next frame a keyframe, as an encoder does on a
// keyframe request. It may be called from any goroutine.
func (c *Camera) ForceKeyframe() { c.force.Store(true) }

// New returns a camera.
func New(p Params) *Camera {
	p.defaults()
	return &Camera{p: p, seq: 1000, aseq: 5000, ts: 123456, ats: 654321,
		// A complete baseline SPS and PPS of 320x180 pictures, so that
		// recorders and players can read the format.
		sps: []byte{0x67, 0x42, 0xc0, 0x0c, 0xda, 0x05, 0x06, 0x7e, 0x7c, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40, 0x00, 0x00, 0x0c, 0xa3, 0xc5, 0x0a, 0xa8},
		pps: []byte{0x68, 0xce, 0x0f, 0xc8}}
}

// Params returns the camera's parameters with defaults filled in.
func (c *Camera) Params() Params { return c.p }

// Stamp reads the creation time from a slice payload made by a camera.
func Stamp(payload []byte) (time.Time, bool) {
	if len(payload) < 13 || binary.BigEndian.Uint32(payload[1:5]) != Magic {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(payload[5:13]))), true
}

// Next returns the next video frame, stamped with now.
func (c *Camera) Next(now time.Time) *unit.Unit {
	key := c.frame%c.p.GOP == 0 || c.force.Swap(false)
	n := c.p.PacketsPerFrame
	nal := byte(0x41) // non-IDR slice
	if key {
		n *= 4
		nal = 0x65
	}
	u := &unit.Unit{Track: 0, Keyframe: key, RTPTime: uint64(c.ts), Arrival: now,
		Capture: now, CaptureErr: time.Millisecond, CaptureTrust: TrustRefClock}
	if key {
		stap := []byte{0x78}
		for _, ps := range [][]byte{c.sps, c.pps} {
			stap = append(stap, byte(len(ps)>>8), byte(len(ps)))
			stap = append(stap, ps...)
		}
		u.Packets = append(u.Packets, c.packet(stap, false))
	}
	for i := 0; i < n; i++ {
		b := make([]byte, c.p.PayloadSize)
		b[0] = nal
		binary.BigEndian.PutUint32(b[1:5], Magic)
		binary.BigEndian.PutUint64(b[5:13], uint64(now.UnixNano()))
		for j := 13; j < len(b); j++ {
			b[j] = byte(j + c.frame)
		}
		u.Packets = append(u.Packets, c.packet(b, i == n-1))
	}
	u.Seq = c.useq
	c.useq += uint64(len(u.Packets))
	c.frame++
	c.ts += uint32(90000 / c.p.FPS)
	return u
}

func (c *Camera) packet(payload []byte, marker bool) *rtp.Packet {
	p := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: c.seq, Timestamp: c.ts, SSRC: c.p.SSRC, Marker: marker}, Payload: payload}
	c.seq++
	return p
}

// NextAudio returns the next 20 ms Opus-shaped audio packet.
func (c *Camera) NextAudio(now time.Time) *unit.Unit {
	b := make([]byte, 13+40)
	b[0] = 0xfc
	binary.BigEndian.PutUint32(b[1:5], Magic)
	binary.BigEndian.PutUint64(b[5:13], uint64(now.UnixNano()))
	p := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: c.aseq, Timestamp: c.ats, SSRC: c.p.SSRC + 1}, Payload: b}
	u := &unit.Unit{Track: 1, Packets: []*rtp.Packet{p}, Seq: uint64(c.aseq), RTPTime: uint64(c.ats), Arrival: now,
		Capture: now, CaptureErr: time.Millisecond, CaptureTrust: TrustRefClock}
	c.aseq++
	c.ats += 960
	return u
}

// Run writes frames (and audio) to s in real time until ctx is done.
func (c *Camera) Run(ctx context.Context, s *stream.Stream) {
	frame := time.NewTicker(time.Second / time.Duration(c.p.FPS))
	defer frame.Stop()
	var audio <-chan time.Time
	if c.p.Audio {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		audio = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-frame.C:
			s.Write(c.Next(time.Now()))
		case <-audio:
			s.Write(c.NextAudio(time.Now()))
		}
	}
}
