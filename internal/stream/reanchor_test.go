package stream

import (
	"testing"
	"time"

	"github.com/pion/rtp"

	"fieldvideo/internal/unit"
)

func TestRewriterReanchorSwitchesInputs(t *testing.T) {
	rw := Rewriter{ClockRate: 90000}
	now := time.Now()
	mk := func(seq uint16, ts uint32, at time.Time) Delivery {
		p := &rtp.Packet{Header: rtp.Header{SequenceNumber: seq, Timestamp: ts}}
		return Delivery{Unit: &unit.Unit{Packets: []*rtp.Packet{p}, Seq: uint64(seq), RTPTime: uint64(ts), Arrival: at}, RTPTime: uint64(ts)}
	}
	var h rtp.Header
	var out []rtp.Header
	write := func(d Delivery) {
		if rw.Begin(d) {
			rw.Header(d.Unit.Packets[0], &h, nil)
			out = append(out, h)
		}
	}
	write(mk(100, 9000, now))
	write(mk(101, 12600, now.Add(40*time.Millisecond)))
	rw.Reanchor()
	// Another input with unrelated numbering.
	write(mk(50000, 777, now.Add(80*time.Millisecond)))
	write(mk(50001, 4377, now.Add(120*time.Millisecond)))
	if len(out) != 4 {
		t.Fatalf("wrote %d packets, want 4", len(out))
	}
	for i := 1; i < len(out); i++ {
		if out[i].SequenceNumber != out[i-1].SequenceNumber+1 {
			t.Fatalf("sequence %d -> %d at %d", out[i-1].SequenceNumber, out[i].SequenceNumber, i)
		}
		if d := int32(out[i].Timestamp - out[i-1].Timestamp); d <= 0 || d > 4000 {
			t.Fatalf("timestamp step %d at %d", d, i)
		}
	}
}
