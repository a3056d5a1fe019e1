package ingest

import (
	"testing"

	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/pion/rtp"

	"fieldvideo/internal/stream"
	"fieldvideo/internal/unit"
)

// TestTrackWriterCounts checks the counters a track writer keeps: packets,
// payload bytes, and losses from sequence gaps (late packets undo them).
func TestTrackWriterCounts(t *testing.T) {
	f := &format.H264{PayloadTyp: 96, SPS: testSPS, PPS: testPPS, PacketizationMode: 1}
	in := []inputTrack{{format: f, track: unit.Track{Kind: unit.KindVideo, Codec: unit.CodecH264, ClockRate: 90000, PayloadType: 96}}}
	src := &source{name: "x", stream: stream.New(stream.Params{Name: "x", Tracks: tracksOf(in)})}
	w := newTrackWriters(src, in, nil)[0]
	for _, seq := range []uint16{10, 11, 14, 12} { // 12 and 13 missing, then 12 arrives late
		w.onPacket(pkt(seq, uint32(seq)*3000, true, 0x65, 1, 2))
	}
	w.onPacket(nil)
	if got := src.packets.Load(); got != 4 {
		t.Errorf("packets %d, want 4", got)
	}
	if got := src.bytes.Load(); got != 12 {
		t.Errorf("bytes %d, want 12", got)
	}
	if got := src.lost.Load(); got != 1 {
		t.Errorf("lost %d, want 1 (13)", got)
	}
	if st := src.stream.Stats(); st.Units != 4 || st.Packets != 7 {
		t.Errorf("stream got %d units, %d packets; want 4 units and 7 packets (3 injected)", st.Units, st.Packets)
	}
}

// BenchmarkTrackWriter measures the per-packet cost of the ingest path:
// assembler, parameter-set injection and stream write (no reader), for
// 3-packet frames with a keyframe every 50 frames.
func BenchmarkTrackWriter(b *testing.B) {
	f := &format.H264{PayloadTyp: 96, SPS: testSPS, PPS: testPPS, PacketizationMode: 1}
	in := []inputTrack{{format: f, track: unit.Track{Kind: unit.KindVideo, Codec: unit.CodecH264, ClockRate: 90000, PayloadType: 96}}}
	src := &source{name: "x", stream: stream.New(stream.Params{Name: "x", Tracks: tracksOf(in), GOPCacheUnits: -1})}
	w := newTrackWriters(src, in, nil)[0]
	key := []byte{0x7c, 0x85, 0}
	mid := []byte{0x7c, 0x05, 0}
	end := []byte{0x7c, 0x45, 0}
	pkts := make([]rtp.Packet, 1024)
	b.ReportAllocs()
	seq := uint16(0)
	for i := 0; b.Loop(); i++ {
		frame := i / 3
		payload := mid
		switch i % 3 {
		case 0:
			if frame%50 == 0 {
				payload = key
			}
		case 2:
			payload = end
		}
		p := &pkts[i%len(pkts)]
		*p = rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: uint32(frame * 3000), Marker: i%3 == 2}, Payload: payload}
		seq++
		w.onPacket(p)
	}
}
