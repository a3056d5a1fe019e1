package main

import (
	_ "embed"
	"errors"
	"fmt"
	"time"
)

// The demo clip, made by clip/generate.sh.
var (
	//go:embed clip/video.h264
	embeddedVideo []byte
	//go:embed clip/audio.ulaw
	embeddedAudio []byte
)

const (
	clipFPS = 25
	// audio frame: 20 ms of 8 kHz G.711, one byte per sample.
	audioSampleRate  = 8000
	audioFrameBytes  = 160
	audioFrameLength = 20 * time.Millisecond
)

// Clip is a looping audio/video clip ready to be packetized: H.264 access units at a fixed
// frame rate and G.711 µ-law audio cut into 20 ms frames.
type Clip struct {
	// Video holds one access unit (a list of NAL units) per frame.
	Video [][][]byte
	// FrameDuration is the time between two video frames.
	FrameDuration time.Duration
	// SPS and PPS are the first parameter sets of the stream, for the SDP.
	SPS []byte
	PPS []byte
	// Audio holds 20 ms G.711 µ-law frames of 160 bytes.
	Audio [][]byte
}

// EmbeddedClip returns the clip compiled into the program.
func EmbeddedClip() (*Clip, error) {
	return ParseClip(embeddedVideo, embeddedAudio, clipFPS)
}

// ParseClip builds a clip from an Annex-B H.264 stream and raw 8 kHz mono G.711 µ-law audio.
// The stream must start with an IDR picture preceded by SPS and PPS so that it can loop.
func ParseClip(video, audio []byte, fps int) (*Clip, error) {
	if fps <= 0 || fps > 240 {
		return nil, fmt.Errorf("frame rate %d is out of range: use 1 to 240", fps)
	}
	nalus, err := SplitAnnexB(video)
	if err != nil {
		return nil, fmt.Errorf("read the clip's video: %w", err)
	}
	aus, err := GroupAccessUnits(nalus)
	if err != nil {
		return nil, fmt.Errorf("read the clip's video: %w", err)
	}

	c := &Clip{
		Video:         aus,
		FrameDuration: time.Second / time.Duration(fps),
	}
	hasIDR := false
	for _, nalu := range aus[0] {
		switch nalu[0] & 0x1f {
		case naluSPS:
			if c.SPS == nil {
				c.SPS = nalu
			}
		case naluPPS:
			if c.PPS == nil {
				c.PPS = nalu
			}
		case naluIDR:
			hasIDR = true
		}
	}
	if c.SPS == nil || c.PPS == nil || !hasIDR {
		return nil, errors.New("the clip's first frame must be an IDR picture preceded by SPS and PPS: " +
			"encode it with x264 `repeat-headers=1` (see clip/generate.sh)")
	}

	if len(audio) == 0 || len(audio)%audioFrameBytes != 0 {
		return nil, fmt.Errorf("the clip's audio is %d bytes: expected a non-empty multiple of %d bytes "+
			"(20 ms frames of 8 kHz mono G.711 µ-law)", len(audio), audioFrameBytes)
	}
	for off := 0; off < len(audio); off += audioFrameBytes {
		c.Audio = append(c.Audio, audio[off:off+audioFrameBytes])
	}
	return c, nil
}

// Duration is the length of the video loop.
func (c *Clip) Duration() time.Duration {
	return time.Duration(len(c.Video)) * c.FrameDuration
}

// IsKeyframe tells whether video frame i is an IDR picture.
func (c *Clip) IsKeyframe(i int) bool {
	for _, nalu := range c.Video[i] {
		if nalu[0]&0x1f == naluIDR {
			return true
		}
	}
	return false
}
