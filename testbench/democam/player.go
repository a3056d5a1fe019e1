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

	"fieldvideo/testbench/democam/truth"
)

const (
	videoClockRate = 90000
	// maxWait bounds the sleep between two checks for due frames.
	maxWait = 100 * time.Millisecond
	// maxLag is how far a player may fall behind the wall clock (a stalled process, a
	// suspended machine) before it skips the frames it missed instead of sending a burst.
	maxLag = time.Second
)

// mediaSink receives a player's RTP packets, one frame at a time, and its sender reports.
type mediaSink interface {
	writeVideoFrame(pkts []*rtp.Packet, ntp time.Time, keyframe bool) error
	writeAudioFrame(pkts []*rtp.Packet, ntp time.Time) error
	// writeSenderReports offers the clocks at now; a sink sends reports when they are due.
	writeSenderReports(now time.Time, sr srPoint) error
}

// srPoint is what the camera's clocks read at one instant: its wall clock and the RTP time
// of each media. Sender reports carry it.
type srPoint struct {
	ntp          time.Time
	video, audio uint32
	interval     time.Duration
}

// player turns a clip into a live camera with the clocks of a ClockModel: it captures a
// frame every frame period of the camera's oscillator, stamps it with the oscillator's RTP
// time, sends it when the true time reaches its capture time plus the model's delay and
// jitter, and loops the clip forever with continuous RTP timestamps and sequence numbers.
// The NTP time given with each packet is the camera's wall clock at capture.
type player struct {
	clip  *Clip
	clock ClockModel
	rng   *rand.Rand

	videoFormat *format.H264
	audioFormat *format.G711
	videoEnc    *rtph264.Encoder
	audioEnc    *rtplpcm.Encoder

	// clip position of frame 0, in video frames and audio frames.
	videoOffset int
	audioOffset int

	videoTS0 uint32
	audioTS0 uint32

	start     time.Time // true time of the capture of frame 0
	nextVideo int64     // index of the next video frame to send, counted from start
	nextAudio int64
	videoDue  time.Time // when the next video frame leaves
	audioDue  time.Time
}

// newPlayer creates a player that starts the clip at offset (taken modulo the clip length)
// and keeps time as clock says.
func newPlayer(clip *Clip, offset time.Duration, clock ClockModel) (*player, error) {
	if err := clock.Validate(); err != nil {
		return nil, err
	}
	p := &player{
		clip:  clip,
		clock: clock,
		rng:   rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
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

// begin sets the true time of the capture of frame 0.
func (p *player) begin(now time.Time) {
	p.start = now
	p.setNextVideo(0, time.Time{})
	p.setNextAudio(0, time.Time{})
}

// videoCapture returns the true capture time of video frame n.
func (p *player) videoCapture(n int64) time.Time {
	return p.start.Add(p.clock.trueElapsed(time.Duration(n) * p.clip.FrameDuration))
}

func (p *player) audioCapture(n int64) time.Time {
	return p.start.Add(p.clock.trueElapsed(time.Duration(n) * audioFrameLength))
}

// setNextVideo makes frame n the next to send, leaving no earlier than after.
func (p *player) setNextVideo(n int64, after time.Time) {
	p.nextVideo = n
	capture := p.videoCapture(n)
	p.videoDue = laterOf(after, capture.Add(p.clock.sendDelay(capture.Sub(p.start))+p.clock.jitter(p.rng)))
}

func (p *player) setNextAudio(n int64, after time.Time) {
	p.nextAudio = n
	capture := p.audioCapture(n)
	p.audioDue = laterOf(after, capture.Add(p.clock.sendDelay(capture.Sub(p.start))+p.clock.jitter(p.rng)))
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// nextDue returns when the next frame leaves.
func (p *player) nextDue() time.Time {
	if p.audioDue.Before(p.videoDue) {
		return p.audioDue
	}
	return p.videoDue
}

// writeDue sends every video and audio frame whose time has come by now to sink, then
// offers it the sender reports.
func (p *player) writeDue(now time.Time, sink mediaSink) error {
	if now.Before(p.start) {
		return nil
	}

	// skip what was missed during a stall, so that a stall does not end in a burst.
	if now.Sub(p.videoDue) > maxLag {
		camera := p.clock.cameraElapsed(now.Sub(p.start) - p.clock.Delay)
		p.setNextVideo(max(p.nextVideo, int64(camera/p.clip.FrameDuration)), time.Time{})
	}
	if now.Sub(p.audioDue) > maxLag {
		camera := p.clock.cameraElapsed(now.Sub(p.start) - p.clock.Delay)
		p.setNextAudio(max(p.nextAudio, int64(camera/audioFrameLength)), time.Time{})
	}

	for !p.videoDue.After(now) {
		if err := p.writeVideo(sink, p.nextVideo); err != nil {
			return err
		}
		p.setNextVideo(p.nextVideo+1, p.videoDue)
	}
	for !p.audioDue.After(now) {
		if err := p.writeAudio(sink, p.nextAudio); err != nil {
			return err
		}
		p.setNextAudio(p.nextAudio+1, p.audioDue)
	}
	if !p.clock.NoSenderReports {
		return sink.writeSenderReports(now, p.senderReport(now))
	}
	return nil
}

// senderReport reads the camera's clocks at true time now.
func (p *player) senderReport(now time.Time) srPoint {
	elapsed := now.Sub(p.start)
	camera := p.clock.cameraElapsed(elapsed)
	return srPoint{
		ntp:      p.clock.wallAt(p.start, elapsed),
		video:    p.videoTS0 + uint32(durationToTicks(camera, videoClockRate)),
		audio:    p.audioTS0 + uint32(durationToTicks(camera, audioSampleRate)),
		interval: p.clock.srInterval(),
	}
}

func (p *player) writeVideo(sink mediaSink, n int64) error {
	i := int((int64(p.videoOffset) + n) % int64(len(p.clip.Video)))
	au := p.clip.Video[i]
	pts := time.Duration(n) * p.clip.FrameDuration // on the camera's oscillator
	capture := p.videoCapture(n)
	if p.clock.TruthSEI {
		au = withSEI(au, capture)
	}
	pkts, err := p.videoEnc.Encode(au)
	if err != nil {
		return fmt.Errorf("packetize video frame %d: %w", n, err)
	}
	ts := p.videoTS0 + uint32(durationToTicks(pts, videoClockRate))
	for _, pkt := range pkts {
		pkt.Timestamp = ts
	}
	return sink.writeVideoFrame(pkts, p.clock.wallAt(p.start, capture.Sub(p.start)), p.clip.IsKeyframe(i))
}

// withSEI returns a copy of access unit au with an SEI NAL unit carrying capture inserted
// before its first slice. Packets keep referring to the NAL units, so each frame gets its
// own SEI.
func withSEI(au [][]byte, capture time.Time) [][]byte {
	out := make([][]byte, 0, len(au)+1)
	inserted := false
	for _, nalu := range au {
		if !inserted && isVCL(nalu[0]&0x1f) {
			out = append(out, truth.AppendSEI(nil, capture))
			inserted = true
		}
		out = append(out, nalu)
	}
	return out
}

func (p *player) writeAudio(sink mediaSink, n int64) error {
	frame := p.clip.Audio[(int64(p.audioOffset)+n)%int64(len(p.clip.Audio))]
	pkts, err := p.audioEnc.Encode(frame)
	if err != nil {
		return fmt.Errorf("packetize audio frame %d: %w", n, err)
	}
	ts := p.audioTS0 + uint32(n*audioFrameBytes)
	capture := p.audioCapture(n)
	for _, pkt := range pkts {
		pkt.Timestamp = ts
	}
	return sink.writeAudioFrame(pkts, p.clock.wallAt(p.start, capture.Sub(p.start)))
}

// durationToTicks converts d to ticks of a clock of the given rate without overflowing for
// durations of years.
func durationToTicks(d time.Duration, rate int64) int64 {
	secs := int64(d / time.Second)
	rem := int64(d % time.Second)
	return secs*rate + rem*rate/int64(time.Second)
}
