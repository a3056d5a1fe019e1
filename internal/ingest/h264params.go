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
	// seqMarkHistory is how many injection points are remembered to number
	// late (reordered) packets from before an injection correctly.
	seqMarkHistory = 8
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

// paramInjector keeps the current parameter sets of one H.264 or H.265 track
// (from the SDP and from in-band updates) and, on a keyframe unit that lacks
// them, prepends one aggregation packet (H.264 STAP-A, H.265 AP) carrying
// them with the keyframe's timestamp. It renumbers the track's packets so
// that output sequence numbers stay continuous: each injection shifts later
// packets by one, and gaps from real loss stay gaps.
//
// It is used from the track's packet goroutine only. Units it returns share
// the aggregation payload, which is never modified once built.
type paramInjector struct {
	h265          bool
	vps, sps, pps []byte
	agg           []byte // aggregation payload; nil until a complete set is known

	marks  [seqMarkHistory]uint64 // unwrapped first sequence numbers of injected units
	nmarks uint64                 // total injections; also the current offset

	// Injected counts the aggregation packets added.
	Injected uint64
}

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
// that lacks them, and renumbers u's packets. It modifies u and its packet
// headers (never payloads), and returns u.
func (j *paramInjector) Process(u *unit.Unit) *unit.Unit {
	if len(u.Packets) == 0 {
		return u
	}
	var have int
	for _, p := range u.Packets {
		if p != nil {
			have |= j.scan(p.Payload)
		}
	}
	if u.Keyframe && j.agg != nil && have != j.complete() && j.canMark(u.Seq) {
		j.inject(u)
		return u
	}
	j.renumber(u)
	return u
}

func (j *paramInjector) complete() int {
	if j.h265 {
		return haveVPS | haveSPS | havePPS
	}
	return haveSPS | havePPS
}

// canMark reports whether an injection can be recorded at unwrapped sequence
// seq: only past the latest injection, so marks stay ordered.
func (j *paramInjector) canMark(seq uint64) bool {
	return j.nmarks == 0 || seq > j.marks[(j.nmarks-1)%seqMarkHistory]
}

// offsetFor returns how far packets with unwrapped sequence seq are shifted:
// the number of injections at or before seq. Packets older than the
// remembered history are numbered as if they came just before it.
func (j *paramInjector) offsetFor(seq uint64) uint64 {
	n := j.nmarks
	kept := min(n, seqMarkHistory)
	for i := uint64(0); i < kept; i++ {
		if j.marks[(n-1-i)%seqMarkHistory] <= seq {
			return n - i
		}
	}
	return n - kept
}

func (j *paramInjector) renumber(u *unit.Unit) {
	if j.nmarks == 0 {
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

func (j *paramInjector) inject(u *unit.Unit) {
	first := u.Packets[0]
	if first == nil {
		j.renumber(u)
		return
	}
	before := j.nmarks
	agg := &rtp.Packet{
		Header: rtp.Header{
			Version:        2,
			PayloadType:    first.PayloadType,
			SequenceNumber: first.SequenceNumber + uint16(before),
			Timestamp:      first.Timestamp,
			SSRC:           first.SSRC,
		},
		Payload: j.agg,
	}
	j.marks[j.nmarks%seqMarkHistory] = u.Seq
	j.nmarks++
	j.Injected++
	j.renumber(u) // u.Seq moves past the aggregation packet
	pkts := make([]*rtp.Packet, 0, len(u.Packets)+1)
	pkts = append(pkts, agg)
	u.Packets = append(pkts, u.Packets...)
	u.Seq-- // the unit now starts at the aggregation packet
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
