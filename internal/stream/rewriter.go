package stream

import (
	"time"

	"github.com/pion/rtp"
)

// Rewriter maps one track's deliveries onto an outgoing RTP stream with its
// own SSRC, payload type, and sequence numbers and timestamps that stay
// continuous across what the hub hides from the reader: units it dropped,
// squeezed replays and upstream reconnections. Gaps that come from upstream
// loss are kept, so the receiver can still detect them. One Rewriter per
// outgoing track, used from the reader's goroutine only.
type Rewriter struct {
	SSRC        uint32
	PayloadType uint8
	ClockRate   uint32

	started  bool
	reanchor bool // the next unit starts a new anchor
	epoch    uint32
	seqOff   uint16
	tsOff    uint32
	firstSeq uint64 // unwrapped input sequence the current anchor starts at
	lastSeq  uint16
	lastTS   uint32
	haveTS   bool
	lastAt   time.Time
	outTS    uint32 // timestamp of the unit being written
}

// Begin prepares the mapping for a delivery and reports whether its packets
// should be written. Late packets from before the current anchor are skipped.
func (w *Rewriter) Begin(d Delivery) bool {
	u := d.Unit
	if len(u.Packets) == 0 {
		return false
	}
	first := u.Packets[0].SequenceNumber
	switch {
	case !w.started:
		w.started = true
		w.seqOff = 0
		w.tsOff = 0
		w.anchor(d)
	case u.Epoch != w.epoch || w.reanchor:
		w.reanchor = false
		elapsed := u.Arrival.Sub(w.lastAt)
		ticks := uint32(1)
		if elapsed > 0 && w.ClockRate > 0 {
			ticks = max(1, uint32(elapsed.Seconds()*float64(w.ClockRate)))
		}
		w.seqOff = w.lastSeq + 1 - first
		w.tsOff = w.lastTS + ticks - uint32(d.RTPTime)
		w.anchor(d)
	case d.Flags&FlagDiscont != 0:
		w.seqOff = w.lastSeq + 1 - first
		w.anchor(d)
	case u.Seq < w.firstSeq:
		return false
	}
	w.outTS = uint32(d.RTPTime) + w.tsOff
	if u.Arrival.After(w.lastAt) {
		w.lastAt = u.Arrival
	}
	return true
}

// Reanchor makes the next Begin start a new anchor, as after an upstream
// reconnection: the outgoing sequence goes on from the last one written and
// the timestamp advances by the arrival time elapsed. A forwarder calls it
// when it switches the outgoing stream to another input (a simulcast layer
// switch), so the subscriber sees one continuous stream.
func (w *Rewriter) Reanchor() {
	w.reanchor = w.started
}

func (w *Rewriter) anchor(d Delivery) {
	w.epoch = d.Unit.Epoch
	w.firstSeq = d.Unit.Seq
	w.lastSeq = d.Unit.Packets[0].SequenceNumber + w.seqOff - 1
	w.lastAt = d.Unit.Arrival
}

// Header fills h with the outgoing header for packet p of the unit passed to
// the last Begin. h is owned by the caller and reused across packets; header
// extensions of the incoming packet are not carried (their ids belong to the
// incoming negotiation), so h.Extensions is reset to ext[:0].
func (w *Rewriter) Header(p *rtp.Packet, h *rtp.Header, ext []rtp.Extension) {
	*h = rtp.Header{
		Version:        2,
		Marker:         p.Marker,
		PayloadType:    w.PayloadType,
		SequenceNumber: p.SequenceNumber + w.seqOff,
		Timestamp:      w.outTS,
		SSRC:           w.SSRC,
		CSRC:           p.CSRC,
		Extensions:     ext[:0],
	}
	if int16(h.SequenceNumber-w.lastSeq) > 0 {
		w.lastSeq = h.SequenceNumber
	}
	if !w.haveTS || int32(h.Timestamp-w.lastTS) > 0 {
		w.lastTS, w.haveTS = h.Timestamp, true
	}
}
