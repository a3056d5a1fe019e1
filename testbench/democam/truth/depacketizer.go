package truth

import (
	"fmt"
)

// RTP H.264 packet types (RFC 6184 5.2).
const (
	stapA = 24
	fuA   = 28
)

// maxNALUSize bounds a NAL unit reassembled from FU-A fragments.
const maxNALUSize = 4 << 20

// Depacketizer recovers the NAL units of an H.264 RTP stream (RFC 6184, packetization mode
// 1): single NAL unit packets, STAP-A aggregates and FU-A fragments. A fragmented NAL unit
// that misses a fragment (a sequence number gap) is dropped. The zero value is ready.
type Depacketizer struct {
	fu      []byte // the NAL unit being reassembled; nil when none
	lastSeq uint16
}

// Push takes the sequence number and payload of the next RTP packet and returns the NAL
// units it completes. They may share memory with payload. An error says what is wrong with
// the packet; the depacketizer carries on with the next one.
func (d *Depacketizer) Push(seq uint16, payload []byte) ([][]byte, error) {
	inOrder := seq == d.lastSeq+1
	d.lastSeq = seq
	if len(payload) == 0 {
		return nil, fmt.Errorf("RTP packet %d has an empty H.264 payload", seq)
	}
	if payload[0]&0x80 != 0 {
		return nil, fmt.Errorf("RTP packet %d: the H.264 payload header has the forbidden_zero_bit set", seq)
	}
	switch typ := payload[0] & 0x1f; {
	case typ >= 1 && typ <= 23:
		d.fu = nil
		return [][]byte{payload}, nil
	case typ == stapA:
		d.fu = nil
		return splitSTAPA(seq, payload[1:])
	case typ == fuA:
		return d.fragment(seq, payload, inOrder)
	default:
		d.fu = nil
		return nil, fmt.Errorf("RTP packet %d has H.264 packet type %d, which packetization mode 1 does not use "+
			"(expected 1-23, STAP-A or FU-A)", seq, typ)
	}
}

func splitSTAPA(seq uint16, b []byte) ([][]byte, error) {
	var nalus [][]byte
	for len(b) > 0 {
		if len(b) < 2 {
			return nalus, fmt.Errorf("RTP packet %d: STAP-A ends with %d stray byte", seq, len(b))
		}
		n := int(b[0])<<8 | int(b[1])
		b = b[2:]
		if n == 0 || n > len(b) {
			return nalus, fmt.Errorf("RTP packet %d: STAP-A unit %d says %d bytes, but %d remain", seq, len(nalus), n, len(b))
		}
		if b[0]&0x80 != 0 {
			return nalus, fmt.Errorf("RTP packet %d: STAP-A unit %d has the forbidden_zero_bit set", seq, len(nalus))
		}
		nalus = append(nalus, b[:n])
		b = b[n:]
	}
	if len(nalus) == 0 {
		return nil, fmt.Errorf("RTP packet %d: STAP-A carries no NAL unit", seq)
	}
	return nalus, nil
}

func (d *Depacketizer) fragment(seq uint16, payload []byte, inOrder bool) ([][]byte, error) {
	if len(payload) < 2 {
		d.fu = nil
		return nil, fmt.Errorf("RTP packet %d: FU-A without its FU header", seq)
	}
	start, end := payload[1]&0x80 != 0, payload[1]&0x40 != 0
	if start {
		d.fu = append(make([]byte, 0, 2*len(payload)), payload[0]&0xe0|payload[1]&0x1f)
	} else if d.fu == nil || !inOrder {
		// the start or a middle fragment went missing: wait for the next start.
		d.fu = nil
		return nil, nil
	}
	if len(d.fu)+len(payload)-2 > maxNALUSize {
		d.fu = nil
		return nil, fmt.Errorf("RTP packet %d: FU-A fragments add up to more than %d bytes", seq, maxNALUSize)
	}
	d.fu = append(d.fu, payload[2:]...)
	if !end {
		return nil, nil
	}
	nalu := d.fu
	d.fu = nil
	return [][]byte{nalu}, nil
}
