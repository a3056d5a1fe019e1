package unit

import (
	"time"

	"github.com/pion/rtp"
)

// MaxFramePackets bounds how many packets one video unit may hold. A source
// that never sets the marker bit nor changes timestamps cannot grow a frame
// past it.
const MaxFramePackets = 4096

// MaxFrameBytes bounds the payload bytes of one video unit, as mediacommon
// bounds an H.264 access unit (h264.MaxAccessUnitSize): a frame that would
// hold more is dropped whole, with the rest of its packets, so that what an
// assembler holds stays below it whatever a source sends.
const MaxFrameBytes = 8 << 20

// Assembler groups the RTP packets of one track into units: one unit per
// video frame (closed by the marker bit or a timestamp change, so frames in
// decode order with B-frames group correctly), one unit per audio packet. It unwraps sequence numbers and timestamps to 64 bits and
// counts packets lost upstream. A frame of more than MaxFramePackets
// packets is emitted in pieces; one of more than MaxFrameBytes is dropped
// and counted (Oversized). It is not safe for concurrent use.
type Assembler struct {
	track int
	kind  Kind
	codec string
	emit  func(*Unit)

	seq          Unwrapper
	ts           Unwrapper
	pending      *Unit
	pendingBytes int    // payload bytes of pending
	dropTS       uint64 // unwrapped RTP time of the frame dropped last
	dropped      bool   // dropTS is set: late packets of that frame are dropped
	dropping     bool   // no later frame began: its packets are dropped too
	highest      uint64 // highest unwrapped sequence number seen
	started      bool

	// Lost counts packets missing from the sequence; Late counts packets that
	// arrived after a later one.
	Lost uint64
	Late uint64
	// Oversized counts the video frames dropped for holding more than
	// MaxFrameBytes, and OversizedPackets the packets dropped with them.
	Oversized        uint64
	OversizedPackets uint64
	// OnOversized, when set, is called each time a frame is dropped for
	// holding more than MaxFrameBytes, with its unwrapped RTP time and the
	// packets and bytes it held then (the packet that crossed the bound
	// included). Its later packets are dropped without a call.
	OnOversized func(rtpTime uint64, packets, bytes int)
}

// NewAssembler returns an assembler for track index track with description t.
// emit receives each completed unit; it must not retain the assembler.
func NewAssembler(track int, t Track, emit func(*Unit)) *Assembler {
	return &Assembler{track: track, kind: t.Kind, codec: t.Codec, emit: emit, seq: Unwrapper{Bits: 16}, ts: Unwrapper{Bits: 32}}
}

// Push adds one packet that arrived at now. The packet must not be modified
// afterwards.
func (a *Assembler) Push(p *rtp.Packet, now time.Time) {
	seq := a.seq.Unwrap(uint64(p.SequenceNumber))
	ts := a.ts.Unwrap(uint64(p.Timestamp))
	late := false
	switch {
	case !a.started:
		a.started, a.highest = true, seq
	case seq > a.highest:
		a.Lost += seq - a.highest - 1
		a.highest = seq
	default:
		late = true
		a.Late++
		if a.Lost > 0 {
			a.Lost--
		}
	}

	if a.kind != KindVideo {
		a.emit(&Unit{Track: a.track, Packets: []*rtp.Packet{p}, Seq: seq, RTPTime: ts, Arrival: now, CaptureErr: -1})
		return
	}

	if a.dropped && ts == a.dropTS && (a.dropping || late) {
		a.OversizedPackets++
		return
	}
	if !late {
		a.dropping = false
	}
	if late && (a.pending == nil || a.pending.RTPTime != ts) {
		// A packet of a frame already emitted (a retransmission): forward it
		// on its own without breaking the frame being assembled.
		a.emit(&Unit{Track: a.track, Packets: []*rtp.Packet{p}, Seq: seq, RTPTime: ts, Arrival: now, CaptureErr: -1})
		return
	}
	if a.pending != nil && (a.pending.RTPTime != ts || len(a.pending.Packets) >= MaxFramePackets) {
		a.Flush()
	}
	if a.pendingBytes+len(p.Payload) > MaxFrameBytes {
		a.drop(ts, len(p.Payload))
		return
	}
	if a.pending == nil {
		a.pending = &Unit{Track: a.track, Packets: make([]*rtp.Packet, 0, 8), Seq: seq, RTPTime: ts, Arrival: now, CaptureErr: -1}
	}
	u := a.pending
	u.Packets = append(u.Packets, p)
	a.pendingBytes += len(p.Payload)
	if seq < u.Seq {
		u.Seq = seq
	}
	if !u.Keyframe && IsKeyframe(a.codec, p.Payload) {
		u.Keyframe = true
	}
	if p.Marker {
		a.Flush()
	}
}

// Flush emits the frame being assembled, if any.
func (a *Assembler) Flush() {
	u := a.pending
	if u == nil {
		return
	}
	a.pending, a.pendingBytes = nil, 0
	sortBySeq(u.Packets)
	a.emit(u)
}

// drop drops the frame at RTP time ts, which a packet of size bytes would
// take past MaxFrameBytes: what it holds, that packet, and its packets to
// come.
func (a *Assembler) drop(ts uint64, size int) {
	packets, bytes := 1, a.pendingBytes+size
	if a.pending != nil {
		packets += len(a.pending.Packets)
		clear(a.pending.Packets)
	}
	a.pending, a.pendingBytes = nil, 0
	a.dropped, a.dropping, a.dropTS = true, true, ts
	a.Oversized++
	a.OversizedPackets += uint64(packets)
	if a.OnOversized != nil {
		a.OnOversized(ts, packets, bytes)
	}
}

// sortBySeq orders a frame's packets by sequence number (insertion sort:
// frames are short and almost always in order already).
func sortBySeq(ps []*rtp.Packet) {
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && int16(ps[j].SequenceNumber-ps[j-1].SequenceNumber) < 0; j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
}

// Unwrapper extends a wrapping counter of Bits bits (RTP sequence numbers:
// 16, timestamps: 32) to 64 bits, taking each value as the nearest one to the
// previous. The first value maps to itself plus 2^Bits, so values slightly
// older than the first stay positive.
type Unwrapper struct {
	Bits    uint
	started bool
	last    uint64
}

// Unwrap returns the unwrapped value of v.
func (w *Unwrapper) Unwrap(v uint64) uint64 {
	size := uint64(1) << w.Bits
	mask := size - 1
	v &= mask
	if !w.started {
		w.started = true
		w.last = v + size
		return w.last
	}
	delta := (v - w.last) & mask
	var out uint64
	if delta < size/2 {
		out = w.last + delta
	} else {
		out = w.last - (size - delta)
	}
	if out > w.last {
		w.last = out
	}
	return out
}
