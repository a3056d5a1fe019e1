package stream

import (
	"testing"
	"time"

	"github.com/pion/rtp"
)

type outPkt struct {
	seq uint16
	ts  uint32
}

func write(w *Rewriter, d Delivery) []outPkt {
	var h rtp.Header
	if !w.Begin(d) {
		return nil
	}
	var out []outPkt
	for _, p := range d.Unit.Packets {
		w.Header(p, &h, nil)
		if h.SSRC != w.SSRC || h.PayloadType != w.PayloadType || h.Extension || len(h.Extensions) != 0 {
			panic("header not rewritten")
		}
		out = append(out, outPkt{h.SequenceNumber, h.Timestamp})
	}
	return out
}

func TestRewriterKeepsUpstreamGapsAndHidesDrops(t *testing.T) {
	w := &Rewriter{SSRC: 7, PayloadType: 96, ClockRate: 90000}
	a := frame(100, 1000, true, 2)  // seq 100,101
	b := frame(103, 4000, false, 1) // 102 lost upstream: gap kept
	c := frame(200, 9000, true, 1)  // after hub drops: continuous
	c.Epoch = 0
	got := write(w, Delivery{Unit: a, RTPTime: a.RTPTime})
	got = append(got, write(w, Delivery{Unit: b, RTPTime: b.RTPTime})...)
	got = append(got, write(w, Delivery{Unit: c, RTPTime: c.RTPTime, Flags: FlagDiscont})...)
	want := []outPkt{{100, 1000}, {101, 1000}, {103, 4000}, {104, 9000}}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("packet %d: got %+v want %+v (all %v)", i, got[i], want[i], got)
		}
	}
}

func TestRewriterReanchorsOnNewEpoch(t *testing.T) {
	w := &Rewriter{SSRC: 7, PayloadType: 96, ClockRate: 90000}
	t0 := time.Now()
	a := frame(500, 50000, true, 1)
	a.Arrival = t0
	b := frame(7, 123, true, 1) // new publisher: unrelated seq and ts
	b.Arrival = t0.Add(time.Second)
	b.Epoch = 1
	got := write(w, Delivery{Unit: a, RTPTime: a.RTPTime})
	got = append(got, write(w, Delivery{Unit: b, RTPTime: b.RTPTime})...)
	if got[1].seq != 501 {
		t.Errorf("seq after new epoch %d, want 501", got[1].seq)
	}
	if d := got[1].ts - got[0].ts; d < 89000 || d > 91000 {
		t.Errorf("timestamp advanced %d ticks across a 1 s reconnection, want about 90000", d)
	}
}

func TestRewriterSkipsLatePacketsFromBeforeAnchor(t *testing.T) {
	w := &Rewriter{SSRC: 7, PayloadType: 96, ClockRate: 90000}
	a := frame(100, 1000, true, 1)
	late := frame(90, 500, false, 1)
	write(w, Delivery{Unit: a, RTPTime: a.RTPTime})
	if got := write(w, Delivery{Unit: late, RTPTime: late.RTPTime}); got != nil {
		t.Fatalf("late packet from before the anchor was written: %v", got)
	}
}
