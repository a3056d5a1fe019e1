// Package unit defines the one media type that flows through the system: the
// RTP packets of one frame, plus what readers need to know about them.
package unit

import (
	"time"

	"github.com/pion/rtp"
)

// Kind is the media kind of a track.
type Kind uint8

// Track kinds.
const (
	KindVideo Kind = iota + 1
	KindAudio
)

func (k Kind) String() string {
	switch k {
	case KindVideo:
		return "video"
	case KindAudio:
		return "audio"
	}
	return "unknown"
}

// Codec names, as in SDP rtpmap encoding names.
const (
	CodecH264 = "H264"
	CodecH265 = "H265"
	CodecVP8  = "VP8"
	CodecVP9  = "VP9"
	CodecAV1  = "AV1"
	CodecOpus = "opus"
	CodecPCMU = "PCMU"
	CodecPCMA = "PCMA"
	CodecAAC  = "MPEG4-GENERIC"
)

// Track describes one media track of a source.
type Track struct {
	Kind      Kind
	Codec     string // one of the Codec constants
	ClockRate uint32
	Channels  uint16
	Fmtp      string // SDP fmtp parameters as received, without the payload type
	// PayloadType is the RTP payload type the packets of this track carry.
	PayloadType uint8
}

// Relayable reports whether browsers can receive this track over WebRTC.
// Tracks that are not relayable are still carried for recording.
func (t Track) Relayable() bool {
	switch t.Codec {
	case CodecH264, CodecH265, CodecVP8, CodecVP9, CodecAV1, CodecOpus, CodecPCMU, CodecPCMA:
		return true
	}
	return false
}

// Compatible reports whether a reader bound to t can go on reading u without
// renegotiating: same kind, codec and clock.
func (t Track) Compatible(u Track) bool {
	return t.Kind == u.Kind && t.Codec == u.Codec && t.ClockRate == u.ClockRate && t.Channels == u.Channels
}

// Unit is one frame of video or one packet of audio. Units are immutable once
// written to a stream: a reader that must rewrite headers copies them.
type Unit struct {
	// Track is the index of the track in the source's track list.
	Track int
	// Packets are the RTP packets of the frame, in sequence order.
	Packets []*rtp.Packet
	// Seq is the unwrapped sequence number of Packets[0].
	Seq uint64
	// RTPTime is the unwrapped RTP timestamp, in the track's clock.
	RTPTime uint64
	// Keyframe is true when the frame can be decoded without earlier frames.
	Keyframe bool
	// Arrival is the local time the first packet of the unit was received.
	Arrival time.Time
	// Capture is the capture time on the common baseline, or zero if unknown.
	Capture time.Time
	// CaptureErr is the estimated error of Capture; negative when unaligned.
	CaptureErr time.Duration
	// CaptureTrust says what Capture rests on, as a sync.Trust value
	// (0: unaligned, then arrival, sender reports, a signalled reference
	// clock).
	CaptureTrust uint8
	// Epoch identifies the upstream session that produced the unit. It changes
	// when a source's publisher reconnects, so readers can re-anchor their
	// sequence numbers and timestamps. Set by the stream on Write.
	Epoch uint32
	// Written is when the stream took the unit whole (Unix ns), which may be well
	// after Arrival for a large keyframe paced out over a slow uplink; how long a
	// reader has kept it waiting counts from here. Set by the stream on Write.
	Written int64
}

// Bytes returns the payload size of the unit.
func (u *Unit) Bytes() int {
	n := 0
	for _, p := range u.Packets {
		n += len(p.Payload)
	}
	return n
}
