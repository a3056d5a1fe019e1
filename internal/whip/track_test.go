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
	lt.bound.Store(&binding{ssrc: 4242, pt: 102, w: w, stamp: CaptureStamp{AbsID: 3, QualID: 4}})
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
		// the last packet again, within a round trip of its answer: refused.
		{"whole frame and one never sent", &rtcp.TransportLayerNack{MediaSSRC: 4242,
			Nacks: rtcp.NackPairsFromSequenceNumbers([]uint16{sent.SequenceNumber - 3, sent.SequenceNumber - 2, sent.SequenceNumber - 1, sent.SequenceNumber, sent.SequenceNumber + 1})}, 3},
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
	if lt.Retransmits() != 4 {
		t.Errorf("Retransmits() = %d, want 4", lt.Retransmits())
	}
	if s := lt.ResendStats(); s.Repeat != 1 || s.Gone != 2 {
		t.Errorf("refused %+v, want 1 repeat and 2 gone (never sent, forgotten)", s)
	}
}

// A packet is sent again at most once per round trip, not once older than a player can
// use, and only while the budget (a share of what was sent) lasts.
func TestResendRules(t *testing.T) {
	var h History
	const size = 1000
	t0 := time.Unix(1_800_000_000, 0).UnixNano()
	u := &unit.Unit{}
	for i := range 400 {
		u.Packets = append(u.Packets, &rtp.Packet{Payload: make([]byte, size)})
		h.Remember(u, i, &rtp.Header{SequenceNumber: uint16(i), Timestamp: 3000}, t0)
	}
	ms := func(n int) int64 { return t0 + int64(n)*int64(time.Millisecond) }
	if _, ok := h.take(5, ms(20)); !ok {
		t.Fatal("a packet asked for the first time was refused")
	}
	if _, ok := h.take(5, ms(60)); ok {
		t.Error("a packet asked again 40 ms after its answer was sent, before the 100 ms round trip assumed")
	}
	if _, ok := h.take(5, ms(130)); !ok {
		t.Error("a packet asked again after a round trip was refused")
	}
	// a measured round trip of 20 ms: asked again 30 ms later, it goes.
	h.rtt.Store(int64(20 * time.Millisecond))
	if _, ok := h.take(5, ms(160)); !ok {
		t.Error("a packet asked again after the measured round trip was refused")
	}
	// a receiver that still asks after five answers cannot take the packet (its SRTP
	// replay window has passed it): no sixth.
	sentTries := 0
	for i := range 7 {
		if _, ok := h.take(7, ms(200+100*i)); ok {
			sentTries++
		}
	}
	if sentTries != resendTries {
		t.Errorf("a packet asked 7 times a round trip apart was sent again %d times, want %d", sentTries, resendTries)
	}
	if _, ok := h.take(6, ms(1100)); ok {
		t.Error("a packet sent 1.1 s ago was sent again")
	}
	// 400 kB sent, 96 kB of credit at most: about 96 packets of 1000 bytes go, then none.
	sent := 0
	for i := 10; i < 400; i++ {
		if _, ok := h.take(uint16(i), ms(200)); ok {
			sent++
		}
	}
	s := h.Stats()
	t.Logf("budget: %d of 390 packets sent again; %+v", sent, s)
	if sent < 80 || sent > 100 || s.OverBudget != uint64(390-sent) {
		t.Errorf("the budget let %d of 390 packets of 1000 bytes go again (refused %d), want about 96", sent, s.OverBudget)
	}
	if s.Repeat != 1 || s.TooOld != 1 || s.Tries != 2 {
		t.Errorf("refused %+v, want 1 repeat, 1 too old and 2 tries", s)
	}
	// sending more earns more.
	for i := 400; i < 440; i++ {
		u.Packets = append(u.Packets, &rtp.Packet{Payload: make([]byte, size)})
		h.Remember(u, i, &rtp.Header{SequenceNumber: uint16(i), Timestamp: 6000}, ms(300))
	}
	if _, ok := h.take(420, ms(310)); !ok {
		t.Error("no credit after 40 kB more were sent")
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

// The round trip comes from receiver reports: the time since the sender report they
// name, less the time the receiver held it.
func TestRoundTripFromReceiverReport(t *testing.T) {
	var h History
	now := time.Unix(1_800_000_000, 0)
	lsr := uint32(tsync.UnixNanoToNTP(now.Add(-30*time.Millisecond).UnixNano()) >> 16)
	rr := &rtcp.ReceiverReport{Reports: []rtcp.ReceptionReport{{SSRC: 8, LastSenderReport: lsr}, {SSRC: 7, LastSenderReport: lsr, Delay: 655}}}
	h.ReceiverReport(rr, 7, now)
	if rtt := time.Duration(h.rtt.Load()); rtt < 19*time.Millisecond || rtt > 21*time.Millisecond {
		t.Errorf("round trip %s, want 20 ms (30 ms since the report, held 10 ms)", rtt)
	}
}

// A new viewer's replayed pictures go out paced: the keyframe at once, the rest
// spread so that the last goes replayMax after the first (they arrived over 1.6 s,
// more than replaySpeed × replayMax), not as one burst; live units are not held.
func TestReplayIsPaced(t *testing.T) {
	w := &sink{}
	lt := boundTrack(w)
	start := time.Now()
	var writes []time.Duration
	for i := range 9 {
		u := testFrame(uint16(i*4), uint32(i*18000), 4)
		u.Keyframe = i == 0
		u.Arrival = start.Add(-1600*time.Millisecond + time.Duration(i)*200*time.Millisecond)
		if err := lt.Write(stream.Delivery{Unit: u, RTPTime: u.RTPTime, Flags: stream.FlagReplay}); err != nil {
			t.Fatal(err)
		}
		writes = append(writes, time.Since(start))
	}
	if w.n != 36 {
		t.Fatalf("%d packets written, want 36", w.n)
	}
	// each unit is due 25 ms after the one before (200 ms of arrival / 8); sleeping
	// only ever runs late, so these are lower bounds.
	for i := 1; i < len(writes); i++ {
		if due := time.Duration(i) * replayMax / 8; writes[i] < due {
			t.Errorf("replayed unit %d went at %v, before it was due at %v", i, writes[i], due)
		}
	}
	// the next live unit is written as it comes, and a later replay is paced anew.
	live := testFrame(36, 9*18000, 4)
	if err := lt.Write(stream.Delivery{Unit: live, RTPTime: live.RTPTime}); err != nil {
		t.Fatal(err)
	}
	if !lt.replayStart.IsZero() {
		t.Error("the replay's pacing outlived it: a live unit did not end it")
	}
}
