package whip

import (
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"fieldvideo/internal/stream"
	tsync "fieldvideo/internal/sync"
	"fieldvideo/internal/unit"
)

// sink is a TrackLocalWriter that keeps the last packet written.
type sink struct {
	n    int
	last rtp.Packet
	keep bool
}

func (s *sink) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	s.n++
	if s.keep {
		s.last = rtp.Packet{Header: *h, Payload: append([]byte(nil), payload...)}
		s.last.Extensions = append([]rtp.Extension(nil), h.Extensions...)
	}
	return len(payload), nil
}

func (s *sink) Write(b []byte) (int, error) { return len(b), nil }

func testFrame(seq uint16, ts uint32, packets int) *unit.Unit {
	u := &unit.Unit{Seq: uint64(seq), RTPTime: uint64(ts), Keyframe: true, Arrival: time.Now(),
		Capture: time.Unix(1_700_000_000, 0), CaptureErr: 2 * time.Millisecond, CaptureTrust: uint8(tsync.TrustSenderReports)}
	for i := range packets {
		u.Packets = append(u.Packets, &rtp.Packet{
			Header:  rtp.Header{Version: 2, SequenceNumber: seq + uint16(i), Timestamp: ts, SSRC: 99, Marker: i == packets-1},
			Payload: []byte{0x65, byte(i), 1, 2, 3},
		})
	}
	return u
}

func boundTrack(w *sink) *LocalTrack {
	lt := NewLocalTrack("video0", "cam1", 0, unit.Track{Kind: unit.KindVideo, Codec: unit.CodecH264, ClockRate: 90000}, codecs[0])
	lt.bound.Store(&binding{ssrc: 4242, pt: 102, w: w, absID: 3, qualID: 4})
	return lt
}

func TestResendFromHistory(t *testing.T) {
	w := &sink{keep: true}
	lt := boundTrack(w)
	u := testFrame(1000, 90000, 4)
	if err := lt.Write(stream.Delivery{Unit: u, RTPTime: u.RTPTime}); err != nil {
		t.Fatal(err)
	}
	sent := w.last
	if w.n != 4 {
		t.Fatalf("wrote %d packets, want 4", w.n)
	}

	tests := []struct {
		name string
		nack *rtcp.TransportLayerNack
		want int
	}{
		{"last packet", &rtcp.TransportLayerNack{MediaSSRC: 4242, Nacks: rtcp.NackPairsFromSequenceNumbers([]uint16{sent.SequenceNumber})}, 1},
		{"whole frame and one never sent", &rtcp.TransportLayerNack{MediaSSRC: 4242,
			Nacks: rtcp.NackPairsFromSequenceNumbers([]uint16{sent.SequenceNumber - 3, sent.SequenceNumber - 2, sent.SequenceNumber - 1, sent.SequenceNumber, sent.SequenceNumber + 1})}, 4},
		{"another stream's SSRC", &rtcp.TransportLayerNack{MediaSSRC: 1, Nacks: rtcp.NackPairsFromSequenceNumbers([]uint16{sent.SequenceNumber})}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w.last = rtp.Packet{}
			n, err := lt.Resend(tc.nack)
			if err != nil || n != tc.want {
				t.Fatalf("Resend = %d, %v; want %d", n, err, tc.want)
			}
			if n == 1 && (w.last.SequenceNumber != sent.SequenceNumber || w.last.Timestamp != sent.Timestamp ||
				w.last.SSRC != 4242 || !w.last.Marker || string(w.last.Payload) != string(sent.Payload) ||
				string(w.last.GetExtension(3)) != string(sent.GetExtension(3)) || len(w.last.GetExtension(4)) == 0) {
				t.Errorf("resent %+v, first sent %+v", w.last.Header, sent.Header)
			}
		})
	}

	// Once historySize more packets went out, the old ones are forgotten.
	old := sent.SequenceNumber
	for i := range historySize / 4 {
		u := testFrame(1004+uint16(4*i), 90000+uint32(3000*(i+1)), 4)
		if err := lt.Write(stream.Delivery{Unit: u, RTPTime: u.RTPTime}); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := lt.Resend(&rtcp.TransportLayerNack{MediaSSRC: 4242, Nacks: rtcp.NackPairsFromSequenceNumbers([]uint16{old})}); n != 0 {
		t.Errorf("resent %d packets older than the history", n)
	}
	if lt.Retransmits() != 5 {
		t.Errorf("Retransmits() = %d, want 5", lt.Retransmits())
	}
}

// BenchmarkLocalTrackWrite measures writing a delivery's packets to a peer:
// header rewrite, extensions and the retransmission history.
func BenchmarkLocalTrackWrite(b *testing.B) {
	lt := boundTrack(&sink{})
	u := testFrame(1000, 90000, 8)
	d := stream.Delivery{Unit: u, RTPTime: u.RTPTime}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := lt.Write(d); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(u.Packets)), "ns/packet")
}
