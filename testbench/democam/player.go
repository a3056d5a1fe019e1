package main

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtplpcm"
	"github.com/pion/rtp"
)

const (
	videoClockRate = 90000
	// tickPeriod is how often a player checks for frames that are due.
	tickPeriod = 10 * time.Millisecond
	// maxLag is how far a player may fall behind the wall clock (a stalled process, a
	// suspended machine) before it skips the frames it missed instead of sending a burst.
	maxLag = time.Second
)

// mediaSink receives a player's RTP packets, one frame at a time.
type mediaSink interface {
	writeVideoFrame(pkts []*rtp.Packet, ntp time.Time, keyframe bool) error
	writeAudioFrame(pkts []*rtp.Packet, ntp time.Time) error
}

// player turns a clip into a live camera: it sends each frame when the wall clock reaches it,
// loops the clip forever, and keeps RTP timestamps and sequence numbers continuous across
// loops. The NTP time given with each packet is the frame's capture time, which gortsplib
// puts into the RTCP sender reports.
type player struct {
	clip *Clip

	videoFormat *format.H264
	audioFormat *format.G711
	videoEnc    *rtph264.Encoder
	audioEnc    *rtplpcm.Encoder

	// clip position of frame 0, in video frames and audio frames.
	videoOffset int
	audioOffset int

	videoTS0 uint32
	audioTS0 uint32

	start     time.Time
	nextVideo int64 // index of the next video frame to send, counted from start
	nextAudio int64
}

// newPlayer creates a player that starts the clip at offset (taken modulo the clip length).
func newPlayer(clip *Clip, offset time.Duration) (*player, error) {
	p := &player{
		clip: clip,
		videoFormat: &format.H264{
			PayloadTyp:        96,
			PacketizationMode: 1,
			SPS:               clip.SPS,
			PPS:               clip.PPS,
		},
		audioFormat: &format.G711{
			PayloadTyp:   0,
			MULaw:        true,
			SampleRate:   audioSampleRate,
			ChannelCount: 1,
		},
		videoTS0: rand.Uint32(),
		audioTS0: rand.Uint32(),
	}

	var err error
	p.videoEnc, err = p.videoFormat.CreateEncoder()
	if err != nil {
		return nil, fmt.Errorf("create the H.264 RTP encoder: %w", err)
	}
	p.audioEnc, err = p.audioFormat.CreateEncoder()
	if err != nil {
		return nil, fmt.Errorf("create the G.711 RTP encoder: %w", err)
	}

	if d := clip.Duration(); d > 0 {
		offset %= d
		if offset < 0 {
			offset += d
		}
	}
	p.videoOffset = int(offset / clip.FrameDuration)
	p.audioOffset = int(offset / audioFrameLength)
	return p, nil
}

// newDescription returns a fresh session description with one video and one audio media.
// Every RTSP session needs its own, since a client fills in control attributes.
func (p *player) newDescription() *description.Session {
	return &description.Session{
		Title: "democam",
		Medias: []*description.Media{
			{Type: description.MediaTypeVideo, Formats: []format.Format{p.videoFormat}},
			{Type: description.MediaTypeAudio, Formats: []format.Format{p.audioFormat}},
		},
	}
}

// begin sets the wall-clock time of frame 0.
func (p *player) begin(now time.Time) {
	p.start = now
	p.nextVideo = 0
	p.nextAudio = 0
}

// writeDue sends every video and audio frame whose time has come by now to sink.
func (p *player) writeDue(now time.Time, sink mediaSink) error {
	elapsed := now.Sub(p.start)
	if elapsed < 0 {
		return nil
	}

	// skip what was missed during a stall, so that a stall does not end in a burst.
	if lag := elapsed - time.Duration(p.nextVideo)*p.clip.FrameDuration; lag > maxLag {
		p.nextVideo = int64(elapsed / p.clip.FrameDuration)
	}
	if lag := elapsed - time.Duration(p.nextAudio)*audioFrameLength; lag > maxLag {
		p.nextAudio = int64(elapsed / audioFrameLength)
	}

	for ; time.Duration(p.nextVideo)*p.clip.FrameDuration <= elapsed; p.nextVideo++ {
		if err := p.writeVideo(sink, p.nextVideo); err != nil {
			return err
		}
	}
	for ; time.Duration(p.nextAudio)*audioFrameLength <= elapsed; p.nextAudio++ {
		if err := p.writeAudio(sink, p.nextAudio); err != nil {
			return err
		}
	}
	return nil
}

func (p *player) writeVideo(sink mediaSink, n int64) error {
	i := int((int64(p.videoOffset) + n) % int64(len(p.clip.Video)))
	au := p.clip.Video[i]
	pkts, err := p.videoEnc.Encode(au)
	if err != nil {
		return fmt.Errorf("packetize video frame %d: %w", n, err)
	}
	pts := time.Duration(n) * p.clip.FrameDuration
	ts := p.videoTS0 + uint32(durationToTicks(pts, videoClockRate))
	ntp := p.start.Add(pts)
	for _, pkt := range pkts {
		pkt.Timestamp = ts
	}
	return sink.writeVideoFrame(pkts, ntp, p.clip.IsKeyframe(i))
}

func (p *player) writeAudio(sink mediaSink, n int64) error {
	frame := p.clip.Audio[(int64(p.audioOffset)+n)%int64(len(p.clip.Audio))]
	pkts, err := p.audioEnc.Encode(frame)
	if err != nil {
		return fmt.Errorf("packetize audio frame %d: %w", n, err)
	}
	ts := p.audioTS0 + uint32(n*audioFrameBytes)
	ntp := p.start.Add(time.Duration(n) * audioFrameLength)
	for _, pkt := range pkts {
		pkt.Timestamp = ts
	}
	return sink.writeAudioFrame(pkts, ntp)
}

// durationToTicks converts d to ticks of a clock of the given rate without overflowing for
// durations of years.
func durationToTicks(d time.Duration, rate int64) int64 {
	secs := int64(d / time.Second)
	rem := int64(d % time.Second)
	return secs*rate + rem*rate/int64(time.Second)
}
