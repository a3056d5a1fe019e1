package e2e

import (
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"fieldvideo/testbench/democam/truth"
)

// A frame's SEI packet retransmitted after the next frame began still belongs to its frame:
// the watch counts every frame with its truth and none without.
func TestTruthWatchReordered(t *testing.T) {
	w := &truthWatch{rtcpOnly: true}
	base := time.Unix(1_800_000_000, 0)
	frame := func(i int) (sei, slice *rtp.Packet) {
		ts := uint32(i * 3000)
		sei = &rtp.Packet{Header: rtp.Header{SequenceNumber: uint16(2 * i), Timestamp: ts},
			Payload: truth.AppendSEI(nil, base.Add(time.Duration(i)*time.Second/30))}
		slice = &rtp.Packet{Header: rtp.Header{SequenceNumber: uint16(2*i + 1), Timestamp: ts, Marker: true},
			Payload: []byte{0x41, 0x9a, 0x00}}
		return sei, slice
	}
	const n = 40
	var late *rtp.Packet
	for i := range n {
		sei, slice := frame(i)
		if i == 10 {
			late = sei // lost, and retransmitted after frame 11 began
		} else {
			w.on(webrtc.RTPCodecTypeVideo, "", sei, time.Now())
		}
		w.on(webrtc.RTPCodecTypeVideo, "", slice, time.Now())
		if i == 11 {
			w.on(webrtc.RTPCodecTypeVideo, "", late, time.Now())
		}
	}
	frames, _, noTruth, bad := w.snapshot()
	if len(bad) > 0 || noTruth > 0 {
		t.Fatalf("%d frames without their SEI, bad input %v", noTruth, bad)
	}
	// a frame closes once the newest is more than half a second ahead: frames 0-23 of 40.
	if want := 24; len(frames) != want {
		t.Fatalf("%d frames closed, want %d", len(frames), want)
	}
}
