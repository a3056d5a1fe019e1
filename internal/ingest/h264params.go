package ingest

import (
	"bytes"

	"github.com/pion/rtp"

	"fieldvideo/internal/unit"
)

// Limits on parameter sets kept for injection. Real SPS/PPS/VPS are tens of
// bytes; anything larger is garbage or hostile, and an aggregation packet
// must fit in one RTP packet.
const (
	maxParamSetSize  = 512
	maxAggregateSize = 1200
	// seqEventHistory is how many renumbering events (injections, split
	// packets) are remembered to number late (reordered) packets correctly.
	seqEventHistory = 64
)

// NAL unit types used here (H.264: RFC 6184, H.265: RFC 7798).
const (
	h264SPS   = 7
	h264PPS   = 8
	h264STAPA = 24

	h265VPS = 32
	h265SPS = 33
	h265PPS = 34
	h265AP  = 48
)

// Which parameter sets a unit carries.
const (
	haveVPS = 1 << iota
	haveSPS
	havePPS
)

// paramInjector shapes one H.264 or H.265 track's packets for WebRTC. It
// keeps the current parameter sets (from the SDP and from in-band updates)
// and, on a keyframe unit that lacks them, prepends one aggregation packet
// (H.264 STAP-A, H.265 AP) carrying them with the keyframe's timestamp; and
// it splits packets whose payload exceeds MaxPayload into fragmentation units,
// so that nothing sent on needs more than a path's MTU. It renumbers the
// track's packets so that output sequence numbers stay continuous: every
// packet added shifts later packets by one, and gaps from real loss stay
// gaps.
//
// It is used from the track's packet goroutine only. Units it returns share
// the aggregation payload, which is never modified once built.
type paramInjector struct {
	h265          bool
	vps, sps, pps []byte
	agg           []byte // aggregation payload; nil until a complete set is known

	// events log where packets were added: before unwrapped input sequence
	// number seq, the output is shifted by total from there on.
	events  [seqEventHistory]seqEvent
	nevents uint64
	total   uint64 // current shift
	next    uint64 // unwrapped input sequence number after the last unit; 0 before any

	// Injected counts the aggregation packets added; Split the packets cut
	// into fragments.
	Injected, Split uint64
}

type seqEvent struct {
	seq   uint64 // unwrapped input sequence number the shift starts at
	total uint64 // shift from seq on
	delta uint64 // packets added at seq
}

// MaxPayload bounds the RTP payload of the packets ingest sends on: with
// headers, extensions and SRTP they fit a 1280-byte IPv6 minimum MTU.
const MaxPayload = 1200

// newParamInjector returns an injector for codec (unit.CodecH264 or
// unit.CodecH265) primed with the parameter sets from the SDP; any of them
// may be nil.
func newParamInjector(codec string, vps, sps, pps []byte) *paramInjector {
	j := &paramInjector{h265: codec == unit.CodecH265}
	if j.h265 {
		j.setParam(h265VPS, vps)
		j.setParam(h265SPS, sps)
		j.setParam(h265PPS, pps)
	} else {
		j.setParam(h264SPS, sps)
		j.setParam(h264PPS, pps)
	}
	return j
}

// Process updates the parameter sets from u, injects them before a keyframe
// that lacks them, splits oversized packets, and renumbers u's packets. It
// modifies u and its packet headers (never payloads), and returns u.
func (j *paramInjector) Process(u *unit.Unit) *unit.Unit {
	if len(u.Packets) == 0 {
		return u
	}
	var have int
	split := false
	for _, p := range u.Packets {
		if p != nil {
			have |= j.scan(p.Payload)
			split = split || len(p.Payload) > MaxPayload
		}
	}
	first, last := u.Packets[0], u.Packets[len(u.Packets)-1]
	late := first == nil || last == nil || u.Seq < j.next
	if !late {
		j.next = u.Seq + uint64(int64(int16(last.SequenceNumber-first.SequenceNumber))) + 1
	}
	inject := u.Keyframe && j.agg != nil && have != j.complete()
	if late || (!inject && !split) {
		// Late units (retransmissions) are numbered as they were, never grown.
		j.renumber(u)
		return u
	}
	out := make([]*rtp.Packet, 0, len(u.Packets)+1)
	if inject {
		out = append(out, &rtp.Packet{
			Header: rtp.Header{
				Version:        2,
				PayloadType:    first.PayloadType,
				SequenceNumber: first.SequenceNumber + uint16(j.total),
				Timestamp:      first.Timestamp,
				SSRC:           first.SSRC,
			},
			Payload: j.agg,
		})
		j.addEvent(u.Seq, 1)
		j.Injected++
	}
	base := first.SequenceNumber
	for _, p := range u.Packets {
		if p == nil {
			continue
		}
		seq := u.Seq + uint64(int64(int16(p.SequenceNumber-base)))
		shift := uint16(j.offsetFor(seq))
		frags := j.fragment(p)
		if frags == nil {
			p.SequenceNumber += shift
			out = append(out, p)
			continue
		}
		for i, f := range frags {
			f.SequenceNumber = p.SequenceNumber + shift + uint16(i)
		}
		out = append(out, frags...)
		j.addEvent(seq+1, uint64(len(frags)-1))
		j.Split++
	}
	u.Packets = out
	u.Seq += j.offsetFor(u.Seq)
	if inject {
		u.Seq-- // the unit starts at the aggregation packet
	}
	return u
}

func (j *paramInjector) complete() int {
	if j.h265 {
		return haveVPS | haveSPS | havePPS
	}
	return haveSPS | havePPS
}

func (j *paramInjector) addEvent(seq, delta uint64) {
	if delta == 0 {
		return
	}
	j.total += delta
	j.events[j.nevents%seqEventHistory] = seqEvent{seq: seq, total: j.total, delta: delta}
	j.nevents++
}

// offsetFor returns how far the packet with unwrapped input sequence number
// seq is shifted. Packets older than the remembered history are numbered as
// if they came just before it.
func (j *paramInjector) offsetFor(seq uint64) uint64 {
	kept := min(j.nevents, seqEventHistory)
	var e seqEvent
	for i := uint64(0); i < kept; i++ {
		e = j.events[(j.nevents-1-i)%seqEventHistory]
		if e.seq <= seq {
			return e.total
		}
	}
	if kept == 0 {
		return 0
	}
	return e.total - e.delta
}

func (j *paramInjector) renumber(u *unit.Unit) {
	if j.nevents == 0 {
		return
	}
	first := u.Packets[0]
	if first == nil {
		return
	}
	base := first.SequenceNumber
	for _, p := range u.Packets {
		if p == nil {
			continue
		}
		seq := u.Seq + uint64(int64(int16(p.SequenceNumber-base)))
		p.SequenceNumber += uint16(j.offsetFor(seq))
	}
	u.Seq += j.offsetFor(u.Seq)
}

// scan reports which parameter sets payload carries and records new ones.
// It never panics on malformed payloads.
func (j *paramInjector) scan(p []byte) int {
	if j.h265 {
		return j.scanH265(p)
	}
	return j.scanH264(p)
}

func (j *paramInjector) scanH264(p []byte) int {
	if len(p) < 1 {
		return 0
	}
	switch typ := p[0] & 0x1f; {
	case typ >= 1 && typ <= 23:
		return j.nal(typ, p)
	case typ == h264STAPA:
		have := 0
		for b := p[1:]; len(b) >= 3; {
			n := int(b[0])<<8 | int(b[1])
			if n == 0 || len(b) < 2+n {
				break
			}
			nal := b[2 : 2+n]
			have |= j.nal(nal[0]&0x1f, nal)
			b = b[2+n:]
		}
		return have
	}
	return 0
}

func (j *paramInjector) scanH265(p []byte) int {
	if len(p) < 2 {
		return 0
	}
	switch typ := (p[0] >> 1) & 0x3f; {
	case typ < h265AP:
		return j.nal(typ, p)
	case typ == h265AP:
		have := 0
		for b := p[2:]; len(b) >= 4; {
			n := int(b[0])<<8 | int(b[1])
			if n < 2 || len(b) < 2+n {
				break
			}
			nal := b[2 : 2+n]
			have |= j.nal((nal[0]>>1)&0x3f, nal)
			b = b[2+n:]
		}
		return have
	}
	return 0
}

// nal handles one complete NAL unit of type typ.
func (j *paramInjector) nal(typ byte, nal []byte) int {
	var bit int
	switch {
	case j.h265 && typ == h265VPS:
		bit = haveVPS
	case j.h265 && typ == h265SPS, !j.h265 && typ == h264SPS:
		bit = haveSPS
	case j.h265 && typ == h265PPS, !j.h265 && typ == h264PPS:
		bit = havePPS
	default:
		return 0
	}
	j.setParam(typ, nal)
	return bit
}

// setParam stores a parameter set when it is new, and rebuilds the
// aggregation payload. Malformed or oversized sets are ignored.
func (j *paramInjector) setParam(typ byte, nal []byte) {
	if len(nal) > maxParamSetSize || len(nal) < 2 {
		return
	}
	var dst *[]byte
	switch {
	case j.h265 && typ == h265VPS && (nal[0]>>1)&0x3f == h265VPS:
		dst = &j.vps
	case j.h265 && typ == h265SPS && (nal[0]>>1)&0x3f == h265SPS:
		dst = &j.sps
	case j.h265 && typ == h265PPS && (nal[0]>>1)&0x3f == h265PPS:
		dst = &j.pps
	case !j.h265 && typ == h264SPS && nal[0]&0x1f == h264SPS:
		dst = &j.sps
	case !j.h265 && typ == h264PPS && nal[0]&0x1f == h264PPS:
		dst = &j.pps
	default:
		return
	}
	if bytes.Equal(*dst, nal) {
		return
	}
	*dst = bytes.Clone(nal)
	j.agg = j.buildAggregate()
}

// buildAggregate returns a new aggregation payload for the current sets, or
// nil when a set is missing or the packet would be too large.
func (j *paramInjector) buildAggregate() []byte {
	var nals [][]byte
	var hdr []byte
	if j.h265 {
		if j.vps == nil || j.sps == nil || j.pps == nil {
			return nil
		}
		nals = [][]byte{j.vps, j.sps, j.pps}
		// F=0, type 48, the VPS's layer id and temporal id.
		hdr = []byte{h265AP<<1 | j.vps[0]&0x01, j.vps[1]}
	} else {
		if j.sps == nil || j.pps == nil {
			return nil
		}
		nals = [][]byte{j.sps, j.pps}
		// F=0, the highest NRI of the aggregated units, type 24.
		hdr = []byte{max(j.sps[0]&0x60, j.pps[0]&0x60) | h264STAPA}
	}
	size := len(hdr)
	for _, n := range nals {
		size += 2 + len(n)
	}
	if size > maxAggregateSize {
		return nil
	}
	out := make([]byte, 0, size)
	out = append(out, hdr...)
	for _, n := range nals {
		out = append(out, byte(len(n)>>8), byte(len(n)))
		out = append(out, n...)
	}
	return out
}
