package recorder

import (
	"fmt"
	"testing"
	"time"

	"github.com/pion/rtp"

	"fieldvideo/internal/unit"
)

var (
	idrSlice = []byte{0x65, 0x88, 0x80}
	pSlice   = []byte{0x41, 0x9a, 0x02}
)

// frameUnit is a unit of packets seqs (unwrapped from 1000) of one frame at ts; the
// last packet carries the marker when marker is set.
func frameUnit(ts uint32, key, marker bool, at time.Time, seqs ...uint64) *unit.Unit {
	u := &unit.Unit{Seq: seqs[0], RTPTime: uint64(ts), Keyframe: key, Arrival: at}
	for i, s := range seqs {
		pl := pSlice
		if key {
			pl = idrSlice
		}
		u.Packets = append(u.Packets, &rtp.Packet{Header: rtp.Header{SequenceNumber: uint16(s), Timestamp: ts,
			Marker: marker && i == len(seqs)-1}, Payload: pl})
	}
	return u
}

// frames describes released units as "ts:first-last" per frame.
func frames(us []*unit.Unit) string {
	s := ""
	for _, u := range us {
		s += fmt.Sprintf("%d:%d-%d ", u.RTPTime, u.Seq, u.Seq+uint64(len(u.Packets))-1)
	}
	return s
}

func TestRepairPassesWholeFramesAsTheyAre(t *testing.T) {
	r := newRepair(unit.CodecH264)
	t0 := time.Unix(1000, 0)
	for i := range 5 {
		u := frameUnit(uint32(3000*i), i == 0, true, t0, uint64(100+3*i), uint64(101+3*i), uint64(102+3*i))
		out, lost := r.push(u)
		if len(out) != 1 || out[0] != u || lost {
			t.Fatalf("frame %d: released %s (lost %v), want the unit itself", i, frames(out), lost)
		}
	}
	if allocs := testing.AllocsPerRun(100, func() {
		u := frameUnit(0, false, true, t0, r.next)
		u.Packets[0].SequenceNumber = uint16(r.next)
		r.push(u)
	}); allocs > 3 { // the test's own unit and packet
		t.Errorf("%.0f allocations per whole frame", allocs)
	}
}

func TestRepairWaitsForRetransmission(t *testing.T) {
	r := newRepair(unit.CodecH264)
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	r.push(frameUnit(0, true, true, ms(0), 10, 11))
	// frame 3000 lost its middle packet; two frames come after it.
	for _, u := range []*unit.Unit{
		frameUnit(3000, false, true, ms(33), 12, 14),
		frameUnit(6000, false, true, ms(66), 15, 16),
		frameUnit(9000, false, false, ms(99), 17),
	} {
		if out, _ := r.push(u); len(out) != 0 {
			t.Fatalf("released %s before the missing packet came", frames(out))
		}
	}
	// the retransmission: 3000 is whole, 6000 follows; 9000 has no marker and waits
	// for the packet after it.
	out, lost := r.push(frameUnit(3000, false, false, ms(300), 13))
	if got, want := frames(out), "3000:12-14 6000:15-16 "; got != want || lost {
		t.Fatalf("after the retransmission released %q (lost %v), want %q", got, lost, want)
	}
	if len(out[0].Packets) != 3 || out[0].Packets[1].SequenceNumber != 13 {
		t.Errorf("repaired frame holds %d packets", len(out[0].Packets))
	}
	if r.repaired != 1 {
		t.Errorf("repaired %d frames, want 1", r.repaired)
	}
	out, _ = r.push(frameUnit(12000, false, true, ms(330), 18))
	if got, want := frames(out), "9000:17-17 12000:18-18 "; got != want {
		t.Errorf("frames without a marker: released %q, want %q", got, want)
	}
	// a second copy of a packet already released is dropped.
	if out, _ = r.push(frameUnit(3000, false, false, ms(340), 13)); len(out) != 0 || r.dups != 1 {
		t.Errorf("duplicate: released %q, %d duplicates counted", frames(out), r.dups)
	}
}

func TestRepairGivesUpAndWaitsForKeyframe(t *testing.T) {
	r := newRepair(unit.CodecH264)
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	r.push(frameUnit(0, true, true, ms(0), 20))
	// 21 never comes.
	seq, ts := uint64(22), uint32(6000)
	var released []*unit.Unit
	lostAt := -1
	for i := 1; i <= 40; i++ {
		key := i == 36
		out, lost := r.push(frameUnit(ts, key, true, ms(33*i), seq))
		released = append(released, out...)
		if lost && lostAt < 0 {
			lostAt = 33 * i
		}
		seq++
		ts += 3000
	}
	if lostAt < int(repairWait/time.Millisecond) || lostAt > int(repairWait/time.Millisecond)+66 {
		t.Errorf("gap given up at %d ms, want after %s", lostAt, repairWait)
	}
	if len(released) == 0 || !released[0].Keyframe || released[0].Seq != 22+35 {
		t.Fatalf("after the loss released %q, want the keyframe and what follows it", frames(released))
	}
	if len(released) != 5 || r.dropped == 0 {
		t.Errorf("released %d frames, dropped %d", len(released), r.dropped)
	}
}

func TestRepairPaddingAndFlush(t *testing.T) {
	r := newRepair(unit.CodecH264)
	t0 := time.Unix(1000, 0)
	r.push(frameUnit(0, true, true, t0, 50))
	pad := frameUnit(0, false, false, t0, 51, 52)
	for _, p := range pad.Packets {
		p.Payload = nil
	}
	if out, _ := r.push(pad); len(out) != 0 {
		t.Errorf("padding released as %q", frames(out))
	}
	u := frameUnit(3000, false, false, t0, 53)
	if out, _ := r.push(u); len(out) != 0 {
		t.Errorf("a frame without marker released before the next: %q", frames(out))
	}
	if out := r.flush(); len(out) != 1 || out[0] != u {
		t.Errorf("flush released %q, want the last frame", frames(out))
	}
}

// FuzzRepair pushes packets a lossy, reordering network could deliver: released
// frames hold consecutive packets of one timestamp, in sequence order across frames.
// Each 4-byte record is one unit: a sequence step (signed), a count of packets, flags
// (bit 0 new timestamp, 1 marker, 2 keyframe, 3 padding) and an arrival step in ms.
func FuzzRepair(f *testing.F) {
	f.Add([]byte("\x01\x02\x07\x21\x01\x02\x03\x21\x02\x01\x03\x21\xff\x01\x02\x10\x03\x02\x03\xff"))
	f.Add([]byte("\x01\x01\x07\x00\x05\x01\x0b\x01\x01\x01\x01\x80\x01\x03\x03\xff\xfe\x01\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := newRepair(unit.CodecH264)
		at, seq, ts := time.Unix(1000, 0), uint64(1<<16), uint32(0)
		last := uint64(0)
		check := func(out []*unit.Unit) {
			for _, u := range out {
				if u.Seq <= last && last != 0 {
					t.Fatalf("frame at %d released after %d", u.Seq, last)
				}
				for i, p := range u.Packets {
					if seqOf(u, p) != u.Seq+uint64(i) || p.Timestamp != u.Packets[0].Timestamp {
						t.Fatalf("frame %d: packet %d is %d at ts %d", u.Seq, i, p.SequenceNumber, p.Timestamp)
					}
				}
				last = u.Seq + uint64(len(u.Packets)) - 1
			}
		}
		for ; len(b) >= 4; b = b[4:] {
			seq = uint64(int64(seq) + int64(int8(b[0])))
			if b[2]&1 != 0 {
				ts += 3000
			}
			at = at.Add(time.Duration(b[3]) * time.Millisecond)
			seqs := make([]uint64, 1+int(b[1]%4))
			for i := range seqs {
				seqs[i] = seq + uint64(i)
			}
			u := frameUnit(ts, b[2]&4 != 0, b[2]&2 != 0, at, seqs...)
			if b[2]&8 != 0 {
				for _, p := range u.Packets {
					p.Payload = nil
				}
			}
			out, _ := r.push(u)
			check(out)
		}
		check(r.flush())
		if len(r.held) != 0 {
			t.Fatalf("%d packets held after flush", len(r.held))
		}
	})
}
