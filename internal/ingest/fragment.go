package ingest

import "github.com/pion/rtp"

// NAL unit types of fragmentation units.
const (
	h264FUA = 28
	h265FU  = 49
)

// fragment splits a packet whose payload exceeds MaxPayload into packets
// that fit: a single NAL unit or an over-long fragmentation unit becomes
// fragmentation units (H.264 FU-A, H.265 FU), an aggregation packet becomes
// its NAL units, each fragmented as needed. It returns nil when p fits or is
// of a kind it leaves alone (malformed, STAP-B, MTAP, PACI). The new packets
// copy p's header; only the last keeps p's marker bit.
func (j *paramInjector) fragment(p *rtp.Packet) []*rtp.Packet {
	if len(p.Payload) <= MaxPayload {
		return nil
	}
	var payloads [][]byte
	if j.h265 {
		payloads = fragmentH265(p.Payload)
	} else {
		payloads = fragmentH264(p.Payload)
	}
	if len(payloads) < 2 {
		return nil
	}
	out := make([]*rtp.Packet, len(payloads))
	for i, pl := range payloads {
		h := p.Header
		h.Marker = p.Marker && i == len(payloads)-1
		h.Extension, h.Extensions = false, nil
		h.Padding, h.PaddingSize = false, 0
		out[i] = &rtp.Packet{Header: h, Payload: pl}
	}
	return out
}

func fragmentH264(b []byte) [][]byte {
	if len(b) < 2 || b[0]&0x80 != 0 {
		return nil
	}
	switch typ := b[0] & 0x1f; {
	case typ >= 1 && typ <= 23:
		// FU indicator: F, NRI of the unit, type 28; FU header: S/E, type.
		return fus([]byte{b[0]&0xe0 | h264FUA}, typ, b[1:], true, true)
	case typ == h264FUA:
		return fus(b[:1], b[1]&0x1f, b[2:], b[1]&0x80 != 0, b[1]&0x40 != 0)
	case typ == h264STAPA:
		return splitAggregate(b[1:], 1, fragmentH264)
	}
	return nil
}

func fragmentH265(b []byte) [][]byte {
	if len(b) < 3 || b[0]&0x80 != 0 {
		return nil
	}
	switch typ := (b[0] >> 1) & 0x3f; {
	case typ < 48:
		// Payload header: the unit's F, layer id and temporal id, type 49.
		return fus([]byte{b[0]&0x81 | h265FU<<1, b[1]}, typ, b[2:], true, true)
	case typ == h265FU:
		return fus(b[:2], b[2]&0x3f, b[3:], b[2]&0x80 != 0, b[2]&0x40 != 0)
	case typ == h265AP:
		return splitAggregate(b[2:], 2, fragmentH265)
	}
	return nil
}

// splitAggregate sends the NAL units of an aggregation packet's body
// (16-bit size, unit; repeated) each on its own, fragmenting those larger
// than MaxPayload with fragment. A unit shorter than minNAL bytes (its
// header) or a size that runs past the body makes the packet invalid: nil.
func splitAggregate(body []byte, minNAL int, fragment func([]byte) [][]byte) [][]byte {
	var out [][]byte
	for rest := body; len(rest) > 0; {
		if len(rest) < 2+minNAL {
			return nil
		}
		n := int(rest[0])<<8 | int(rest[1])
		if n < minNAL || len(rest) < 2+n {
			return nil
		}
		nal := rest[2 : 2+n]
		if len(nal) <= MaxPayload {
			out = append(out, nal)
		} else if f := fragment(nal); f != nil {
			out = append(out, f...)
		} else {
			return nil
		}
		rest = rest[2+n:]
	}
	return out
}

// fus cuts data into fragmentation units that each start with prefix and an
// FU header of type typ; start and end say whether data begins or ends the
// NAL unit.
func fus(prefix []byte, typ byte, data []byte, start, end bool) [][]byte {
	room := MaxPayload - len(prefix) - 1
	if len(data) == 0 {
		return nil
	}
	var out [][]byte
	for len(data) > 0 {
		n := min(room, len(data))
		hdr := typ
		if start && len(out) == 0 {
			hdr |= 0x80
		}
		if end && n == len(data) {
			hdr |= 0x40
		}
		pl := make([]byte, 0, len(prefix)+1+n)
		pl = append(pl, prefix...)
		pl = append(pl, hdr)
		pl = append(pl, data[:n]...)
		out = append(out, pl)
		data = data[n:]
	}
	return out
}
