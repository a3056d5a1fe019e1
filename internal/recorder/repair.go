package recorder

import (
	"time"

	"github.com/pion/rtp"

	"fieldvideo/internal/stream"
	"fieldvideo/internal/unit"
)

const (
	// repairWait: a video track's frames wait this long behind a missing packet for
	// its retransmission (the publisher answers the SFU's NACKs) before the gap is
	// given up; repairPackets bounds how many packets wait.
	repairWait    = time.Second
	repairPackets = 2048
)

// repair puts a video track's frames back together before they are recorded. The
// relay forwards packets as they come, so a frame that lost a packet on the way
// arrives incomplete and its retransmission comes later on its own. Recording such
// a frame breaks the picture until the next keyframe. repair holds frames behind a
// missing packet until it arrives, and releases whole frames in sequence order;
// when a gap is given up (repairWait, or repairPackets waiting), the frames that
// depend on what was lost are dropped up to the next keyframe.
//
// When nothing is missing a unit passes through as it is, without a copy.
type repair struct {
	codec   string
	started bool
	next    uint64 // unwrapped sequence number the next frame starts at
	held    []heldPacket
	broken  bool // a gap was given up: frames are dropped until a keyframe
	out     []*unit.Unit
	// Counters: frames made whole from retransmissions, frames dropped after a
	// gap given up, late duplicates.
	repaired, dropped, dups uint64
}

type heldPacket struct {
	seq uint64
	p   *rtp.Packet
	u   *unit.Unit // the unit the packet came in
}

func newRepair(codec string) *repair { return &repair{codec: codec} }

// seqOf is the unwrapped sequence number of packet p of unit u.
func seqOf(u *unit.Unit, p *rtp.Packet) uint64 {
	return u.Seq + uint64(p.SequenceNumber-u.Packets[0].SequenceNumber)
}

// reset forgets what is held: the track starts again at the next unit.
func (r *repair) reset() {
	clear(r.held)
	r.held, r.started, r.broken = r.held[:0], false, false
}

// push takes a unit and returns the whole frames now ready, in order (owned by the
// repair until the next call), and whether a gap was given up (the caller asks the
// source for a keyframe).
func (r *repair) push(u *unit.Unit) (ready []*unit.Unit, lost bool) {
	r.out = r.out[:0]
	if len(u.Packets) == 0 {
		return r.out, false
	}
	if !r.started {
		r.started, r.next = true, u.Seq
	}
	if len(r.held) == 0 && r.whole(u) {
		r.next = seqOf(u, u.Packets[len(u.Packets)-1]) + 1
		r.release(u, u.Keyframe)
		return r.out, false
	}
	for _, p := range u.Packets {
		r.hold(seqOf(u, p), p, u)
	}
	r.drain()
	for {
		gap := r.run()
		if gap == len(r.held) {
			break
		}
		if len(r.held) <= repairPackets && u.Arrival.Sub(r.gapSince(gap)) < repairWait {
			break
		}
		// Give the gap up: the pieces of a frame before it go, and the track goes
		// on from the packet after it, dropping what depends on the loss.
		clear(r.held[:gap])
		r.held = append(r.held[:0], r.held[gap:]...)
		r.next, r.broken, lost = r.held[0].seq, true, true
		r.drain()
	}
	return r.out, lost
}

// flush releases the frames that are whole and drops the rest, at the end of
// the track's run. A last frame without a marker is taken as whole when nothing is
// missing before it.
func (r *repair) flush() []*unit.Unit {
	r.out = r.out[:0]
	r.drain()
	if n := r.run(); n > 0 && n == len(r.held) {
		r.emit(n - 1)
	}
	clear(r.held)
	r.held = r.held[:0]
	return r.out
}

// whole reports whether u is a whole frame that starts where the last one ended.
func (r *repair) whole(u *unit.Unit) bool {
	if u.Seq != r.next || !u.Packets[len(u.Packets)-1].Marker {
		return false
	}
	for i, p := range u.Packets {
		if p.SequenceNumber != u.Packets[0].SequenceNumber+uint16(i) {
			return false
		}
	}
	return true
}

// hold keeps a packet in sequence order; a packet from before next (a
// retransmission that came after its frame was released or given up) or one held
// already is dropped.
func (r *repair) hold(seq uint64, p *rtp.Packet, u *unit.Unit) {
	if seq < r.next {
		r.dups++
		return
	}
	i := len(r.held)
	for i > 0 && r.held[i-1].seq > seq {
		i--
	}
	if i > 0 && r.held[i-1].seq == seq {
		r.dups++
		return
	}
	r.held = append(r.held, heldPacket{})
	copy(r.held[i+1:], r.held[i:])
	r.held[i] = heldPacket{seq: seq, p: p, u: u}
}

// run is how many held packets follow next without a gap.
func (r *repair) run() int {
	n := 0
	for n < len(r.held) && r.held[n].seq == r.next+uint64(n) {
		n++
	}
	return n
}

// gapSince is when the gap before held[i] showed: the earliest arrival after it.
func (r *repair) gapSince(i int) time.Time {
	t := r.held[i].u.Arrival
	for _, h := range r.held[i+1:] {
		if h.u.Arrival.Before(t) {
			t = h.u.Arrival
		}
	}
	return t
}

// drain releases the whole frames at the head of what is held: packets of one
// timestamp from next on, closed by a marker or by the next timestamp's packet.
func (r *repair) drain() {
	for len(r.held) > 0 && r.held[0].seq == r.next {
		ts, end := r.held[0].p.Timestamp, -1
		for i := 0; i < len(r.held) && r.held[i].seq == r.next+uint64(i); i++ {
			if r.held[i].p.Timestamp != ts {
				end = i - 1
				break
			}
			if r.held[i].p.Marker {
				end = i
				break
			}
		}
		if end < 0 {
			return
		}
		r.emit(end)
	}
}

// emit releases held[0..end] as one frame.
func (r *repair) emit(end int) {
	first := r.held[0].u
	one := first.Seq == r.held[0].seq && len(first.Packets) == end+1
	key, media := false, false
	for _, h := range r.held[:end+1] {
		one = one && h.u == first
		key = key || (len(h.p.Payload) > 0 && unit.IsKeyframe(r.codec, h.p.Payload))
		media = media || len(h.p.Payload) > 0
	}
	var u *unit.Unit
	switch {
	case !media: // padding (a bandwidth probe) fills sequence numbers only
	case one:
		u = first
	default:
		c := *first
		c.Packets = make([]*rtp.Packet, end+1)
		for i, h := range r.held[:end+1] {
			c.Packets[i] = h.p
		}
		c.Seq, c.Keyframe = r.held[0].seq, key
		u = &c
		r.repaired++
	}
	r.next = r.held[end].seq + 1
	clear(r.held[:end+1])
	r.held = append(r.held[:0], r.held[end+1:]...)
	if u != nil {
		r.release(u, key)
	}
}

// release passes a whole frame on, unless it depends on a gap given up.
func (r *repair) release(u *unit.Unit, key bool) {
	if r.broken && !key {
		r.dropped++
		return
	}
	r.broken = false
	r.out = append(r.out, u)
}

// repaired passes unit u of a recorded track through its track's repair (video
// only) and records the frames it releases. A gap given up on the recorded layer
// asks the source for a keyframe at once.
func (s *segmenter) repaired(u *unit.Unit, flags stream.Flags) {
	if len(s.repairs) != len(s.tracks) {
		s.repairs = make([]*repair, len(s.tracks))
	}
	tr := s.tracks[u.Track]
	if tr.kind != unit.KindVideo {
		s.record(u, flags)
		return
	}
	r := s.repairs[u.Track]
	if r == nil {
		r = newRepair(tr.codecName)
		s.repairs[u.Track] = r
	}
	if flags&stream.FlagDiscont != 0 {
		r.reset() // the stream dropped units for this reader: nothing more will come of them
	}
	repaired, dropped := r.repaired, r.dropped
	ready, lost := r.push(u)
	s.st.repaired.Add(r.repaired - repaired)
	s.st.waitKey.Add(r.dropped - dropped)
	if lost {
		s.st.gapsGivenUp.Add(1)
		if s.cfg.keyframe != nil && (s.pick == nil || u.Track == tr.index) {
			s.cfg.keyframe(u.Track)
		}
	}
	for _, x := range ready {
		s.record(x, flags)
	}
}

// flushRepairs records what the repairs hold that is whole, at the end of a run.
func (s *segmenter) flushRepairs() {
	for _, r := range s.repairs {
		if r == nil {
			continue
		}
		for _, x := range r.flush() {
			if x.Track < len(s.tracks) && s.tracks[x.Track] != nil {
				s.record(x, 0)
			}
		}
	}
	s.repairs = s.repairs[:0]
}

// record takes a whole unit: through the layer pick for a simulcast publication.
func (s *segmenter) record(u *unit.Unit, flags stream.Flags) {
	if s.pick == nil {
		s.take(u, flags)
		return
	}
	for _, x := range s.pickLayer(u) {
		s.take(x, flags)
	}
}
