package unit

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/pion/rtp"
)

func pkt(seq uint16, ts uint32, marker bool, payload ...byte) *rtp.Packet {
	return &rtp.Packet{Header: rtp.Header{SequenceNumber: seq, Timestamp: ts, Marker: marker}, Payload: payload}
}

func TestAssemblerGroupsFrames(t *testing.T) {
	var got []*Unit
	a := NewAssembler(0, Track{Kind: KindVideo, Codec: CodecH264}, func(u *Unit) { got = append(got, u) })
	now := time.Now()
	a.Push(pkt(65534, 100, false, 0x7c, 0x85), now) // FU-A start of an IDR
	a.Push(pkt(65535, 100, true, 0x7c, 0x45), now)
	a.Push(pkt(0, 200, false, 0x41), now) // marker lost: closed by the timestamp change
	a.Push(pkt(2, 300, true, 0x41), now)  // seq 1 lost
	a.Push(pkt(1, 200, false, 0x41), now) // late retransmission of an earlier frame
	if len(got) != 4 {
		t.Fatalf("got %d units, want 4", len(got))
	}
	if !got[0].Keyframe || len(got[0].Packets) != 2 || got[1].Keyframe {
		t.Fatalf("unit 0 keyframe %v packets %d; unit 1 keyframe %v", got[0].Keyframe, len(got[0].Packets), got[1].Keyframe)
	}
	if got[1].Seq != got[0].Seq+2 || got[2].Seq != got[1].Seq+2 {
		t.Errorf("unwrapped seqs %d %d %d do not continue across the wrap", got[0].Seq, got[1].Seq, got[2].Seq)
	}
	if got[3].RTPTime != got[1].RTPTime || len(got[3].Packets) != 1 {
		t.Errorf("late packet: rtp %d packets %d", got[3].RTPTime, len(got[3].Packets))
	}
	if a.Lost != 0 || a.Late != 1 {
		t.Errorf("lost %d late %d; want 0 and 1 after the retransmission", a.Lost, a.Late)
	}
}

func TestAssemblerAudioUnitPerPacket(t *testing.T) {
	n := 0
	a := NewAssembler(1, Track{Kind: KindAudio, Codec: CodecOpus}, func(u *Unit) {
		n++
		if u.Track != 1 || len(u.Packets) != 1 {
			t.Fatalf("audio unit %+v", u)
		}
	})
	for i := 0; i < 5; i++ {
		a.Push(pkt(uint16(i), uint32(i*960), false, 1), time.Now())
	}
	if n != 5 {
		t.Fatalf("%d units", n)
	}
}

func TestAssemblerBoundsFrameSize(t *testing.T) {
	n := 0
	a := NewAssembler(0, Track{Kind: KindVideo, Codec: CodecH264}, func(u *Unit) {
		n++
		if len(u.Packets) > MaxFramePackets {
			t.Fatalf("frame of %d packets", len(u.Packets))
		}
	})
	for i := 0; i < MaxFramePackets*2+1; i++ {
		a.Push(pkt(uint16(i), 5, false, 1), time.Now())
	}
	if n != 2 {
		t.Fatalf("%d units emitted, want 2 full ones", n)
	}
}

// TestAssemblerDropsOversizedFrame: a source that sends big packets with
// one timestamp and no marker has its frame dropped once it would hold more
// than MaxFrameBytes, its later packets too, and the assembler holds no
// more than that meanwhile; the next frame is assembled as usual.
func TestAssemblerDropsOversizedFrame(t *testing.T) {
	const size, n = 65000, 4000 // as RTP over TCP allows
	var got []*Unit
	var calls []string
	a := NewAssembler(0, Track{Kind: KindVideo, Codec: CodecH264}, func(u *Unit) { got = append(got, u) })
	a.OnOversized = func(rtpTime uint64, packets, bytes int) {
		calls = append(calls, fmt.Sprintf("%d packets %d bytes", packets, bytes))
	}
	payload := make([]byte, size)
	payload[0] = 0x41
	now := time.Now()
	for i := range n {
		a.Push(pkt(uint16(i), 7, false, payload...), now)
		held := 0
		if a.pending != nil {
			held = a.pending.Bytes()
		}
		if held > MaxFrameBytes || held != a.pendingBytes {
			t.Fatalf("after packet %d the assembler holds %d bytes (counted %d); at most %d", i, held, a.pendingBytes, MaxFrameBytes)
		}
	}
	fit := MaxFrameBytes / size
	if len(got) != 0 || a.pending != nil || a.Oversized != 1 || a.OversizedPackets != n {
		t.Fatalf("%d units emitted, pending %v, %d oversized frames of %d packets; want the frame dropped whole, its %d packets counted",
			len(got), a.pending != nil, a.Oversized, a.OversizedPackets, n)
	}
	if want := fmt.Sprintf("%d packets %d bytes", fit+1, (fit+1)*size); len(calls) != 1 || calls[0] != want {
		t.Fatalf("OnOversized calls %q, want one with %q", calls, want)
	}
	a.Push(pkt(n, 3007, false, 0x65, 1), now)
	a.Push(pkt(n+1, 3007, true, 0x65, 2), now)
	a.Push(pkt(5, 7, true, 0x41, 3), now) // a late packet of the dropped frame
	if len(got) != 1 || len(got[0].Packets) != 2 || !got[0].Keyframe || a.OversizedPackets != n+1 || a.Oversized != 1 {
		t.Fatalf("after the dropped frame: %d units (%+v), %d frames %d packets dropped; want the next frame whole", len(got), got, a.Oversized, a.OversizedPackets)
	}
}

func TestUnwrapper(t *testing.T) {
	w := Unwrapper{Bits: 16}
	first := w.Unwrap(65000)
	for _, c := range []struct {
		in   uint64
		want int64
	}{{65535, 535}, {10, 546}, {65530, 530}, {40000, -25000}} {
		if got := int64(w.Unwrap(c.in) - first); got != c.want {
			t.Errorf("unwrap %d: %d want %d", c.in, got, c.want)
		}
	}
}

func TestIsKeyframe(t *testing.T) {
	for _, c := range []struct {
		name    string
		codec   string
		payload []byte
		want    bool
	}{
		{"h264 idr", CodecH264, []byte{0x65, 0}, true},
		{"h264 non-idr", CodecH264, []byte{0x41, 0}, false},
		{"h264 stap-a sps pps idr", CodecH264, []byte{0x78, 0, 2, 0x67, 1, 0, 2, 0x68, 1, 0, 2, 0x65, 1}, true},
		{"h264 stap-a truncated", CodecH264, []byte{0x78, 0, 9, 0x67}, false},
		{"h264 fu-a idr start", CodecH264, []byte{0x7c, 0x85}, true},
		{"h264 fu-a idr middle", CodecH264, []byte{0x7c, 0x05}, false},
		{"h265 idr", CodecH265, []byte{19 << 1, 1}, true},
		{"h265 trail", CodecH265, []byte{1 << 1, 1}, false},
		{"h265 fu idr start", CodecH265, []byte{49 << 1, 1, 0x80 | 19}, true},
		{"h265 ap with cra", CodecH265, []byte{48 << 1, 1, 0, 2, 21 << 1, 1}, true},
		{"vp8 key", CodecVP8, []byte{0x10, 0x00}, true},
		{"vp8 inter", CodecVP8, []byte{0x10, 0x01}, false},
		{"vp8 ext picid key", CodecVP8, []byte{0x90, 0x80, 0x81, 0x02, 0x00}, true},
		{"vp8 not start", CodecVP8, []byte{0x00, 0x00}, false},
		{"vp9 key", CodecVP9, []byte{0x08}, true},
		{"vp9 inter", CodecVP9, []byte{0x48}, false},
		{"av1 new sequence", CodecAV1, []byte{0x08}, true},
		{"empty", CodecH264, nil, false},
		{"audio", CodecOpus, []byte{1}, false},
	} {
		if got := IsKeyframe(c.codec, c.payload); got != c.want {
			t.Errorf("%s: %v want %v", c.name, got, c.want)
		}
	}
}

func FuzzIsKeyframe(f *testing.F) {
	for _, s := range [][]byte{{0x65}, {0x78, 0, 2, 0x67, 1}, {0x7c, 0x85}, {0x60, 1, 0, 2, 0x2a, 1}, {0x90, 0x80, 0x81}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		for _, c := range []string{CodecH264, CodecH265, CodecVP8, CodecVP9, CodecAV1} {
			IsKeyframe(c, b)
		}
		if !bytes.Equal(orig, b) {
			t.Fatal("payload modified")
		}
	})
}

// FuzzAssembler feeds arbitrary packet sequences: no panic, bounded frames,
// and every packet comes out exactly once.
func FuzzAssembler(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 0, 100, 1, 0x65, 0, 2, 0, 0, 0, 100, 0, 0x41})
	f.Fuzz(func(t *testing.T, b []byte) {
		in, out := 0, 0
		a := NewAssembler(0, Track{Kind: KindVideo, Codec: CodecH264}, func(u *Unit) { out += len(u.Packets) })
		for len(b) >= 8 {
			p := pkt(uint16(b[0])<<8|uint16(b[1]), uint32(b[2])<<24|uint32(b[3])<<16|uint32(b[4])<<8|uint32(b[5]), b[6]&1 == 1, b[7])
			a.Push(p, time.Now())
			in++
			b = b[8:]
		}
		a.Flush()
		if uint64(in) != uint64(out)+a.OversizedPackets {
			t.Fatalf("%d packets in, %d out, %d dropped in oversized frames", in, out, a.OversizedPackets)
		}
	})
}

func TestAssemblerBFrames(t *testing.T) {
	var got []*Unit
	a := NewAssembler(0, Track{Kind: KindVideo, Codec: CodecH264}, func(u *Unit) { got = append(got, u) })
	now := time.Now()
	// Decode order I P B B, two packets each; presentation timestamps go back.
	ts := []uint32{0, 9000, 3000, 6000}
	seq := uint16(10)
	for _, t0 := range ts {
		a.Push(pkt(seq, t0, false, 0x41), now)
		a.Push(pkt(seq+1, t0, true, 0x41), now)
		seq += 2
	}
	if len(got) != 4 {
		t.Fatalf("got %d units, want 4 frames", len(got))
	}
	for i, u := range got {
		if len(u.Packets) != 2 || u.RTPTime-got[0].RTPTime != uint64(ts[i]) {
			t.Errorf("frame %d: %d packets, rtp +%d", i, len(u.Packets), u.RTPTime-got[0].RTPTime)
		}
	}
}
