package ingest

import (
	"bytes"
	"testing"

	"github.com/pion/rtp"

	"fieldvideo/internal/unit"
)

// reassemble rebuilds the NAL units of H.264 payloads (single NAL, STAP-A,
// FU-A).
func reassemble264(t *testing.T, ps []*rtp.Packet) [][]byte {
	t.Helper()
	var nals [][]byte
	var fu []byte
	for _, p := range ps {
		b := p.Payload
		switch b[0] & 0x1f {
		case h264FUA:
			if b[1]&0x80 != 0 {
				fu = []byte{b[0]&0xe0 | b[1]&0x1f}
			}
			fu = append(fu, b[2:]...)
			if b[1]&0x40 != 0 {
				nals = append(nals, fu)
				fu = nil
			}
		case h264STAPA:
			for r := b[1:]; len(r) > 2; {
				n := int(r[0])<<8 | int(r[1])
				nals = append(nals, r[2:2+n])
				r = r[2+n:]
			}
		default:
			nals = append(nals, b)
		}
	}
	return nals
}

func big(typ byte, n int) []byte {
	b := make([]byte, n)
	b[0] = typ
	for i := 1; i < n; i++ {
		b[i] = byte(i)
	}
	return b
}

func TestSplitOversizedH264(t *testing.T) {
	j := newParamInjector(unit.CodecH264, nil, testSPS, testPPS)
	idr := big(0x65, 3000)
	slice := big(0x41, 1500)
	fuaStart := append([]byte{0x7c, 0x81}, big(0, 1700)[1:]...) // FU-A start of an IDR, too long
	stap := []byte{0x78}
	for _, n := range [][]byte{testSPS, testPPS, big(0x06, 1400)} {
		stap = append(stap, byte(len(n)>>8), byte(len(n)))
		stap = append(stap, n...)
	}
	us := assemble(j, unit.CodecH264, []*rtp.Packet{
		pkt(100, 0, true, idr...),
		pkt(101, 3000, false, slice...), pkt(102, 3000, true, 0x41, 1, 2),
		pkt(103, 6000, false, stap...), pkt(104, 6000, true, fuaStart...),
	})
	if len(us) != 3 {
		t.Fatalf("%d units", len(us))
	}
	var all []*rtp.Packet
	for _, u := range us {
		all = append(all, u.Packets...)
		if uint16(u.Seq) != u.Packets[0].SequenceNumber {
			t.Fatalf("unit seq %d, first packet %d", u.Seq, u.Packets[0].SequenceNumber)
		}
		last := u.Packets[len(u.Packets)-1]
		for _, p := range u.Packets[:len(u.Packets)-1] {
			if p.Marker {
				t.Fatal("marker bit before the end of a frame")
			}
		}
		if !last.Marker {
			t.Fatal("frame's last packet lost its marker bit")
		}
	}
	for i, p := range all {
		if len(p.Payload) > MaxPayload {
			t.Errorf("packet %d has %d bytes of payload", i, len(p.Payload))
		}
		if i > 0 && p.SequenceNumber != all[i-1].SequenceNumber+1 {
			t.Fatalf("sequence jumps from %d to %d", all[i-1].SequenceNumber, p.SequenceNumber)
		}
	}
	nals := reassemble264(t, us[0].Packets)
	// The keyframe gets its parameter sets injected, then the IDR in pieces.
	if len(nals) != 3 || !bytes.Equal(nals[2], idr) {
		t.Fatalf("keyframe reassembles to %d NAL units", len(nals))
	}
	if got := reassemble264(t, us[1].Packets); len(got) != 2 || !bytes.Equal(got[0], slice) {
		t.Fatal("split slice does not reassemble")
	}
	if j.Split != 4 || j.Injected != 1 {
		t.Errorf("split %d injected %d", j.Split, j.Injected)
	}
	// A later unit keeps the shift.
	next := assemble(j, unit.CodecH264, []*rtp.Packet{pkt(105, 9000, true, 0x41, 9)})
	if got := next[0].Packets[0].SequenceNumber; got != all[len(all)-1].SequenceNumber+1 {
		t.Fatalf("next unit starts at %d after %d", got, all[len(all)-1].SequenceNumber)
	}
}

func TestSplitOversizedH265(t *testing.T) {
	j := newParamInjector(unit.CodecH265, testVPS265, testSPS265, testPPS265)
	nal := big(19<<1, 2600) // IDR_W_RADL
	nal[1] = 1
	us := assemble(j, unit.CodecH265, []*rtp.Packet{pkt(7, 0, true, nal...)})
	ps := us[0].Packets
	if len(ps) != 4 { // AP with the parameter sets, then three FUs
		t.Fatalf("%d packets", len(ps))
	}
	var got []byte
	for i, p := range ps[1:] {
		if len(p.Payload) > MaxPayload || (p.Payload[0]>>1)&0x3f != h265FU {
			t.Fatalf("fragment %d: %d bytes, type %d", i, len(p.Payload), (p.Payload[0]>>1)&0x3f)
		}
		if i == 0 {
			got = []byte{p.Payload[0]&0x81 | (p.Payload[2]&0x3f)<<1, p.Payload[1]}
		}
		got = append(got, p.Payload[3:]...)
	}
	if !bytes.Equal(got, nal) {
		t.Fatal("H.265 fragments do not reassemble to the NAL unit")
	}
}

// FuzzFragment splits arbitrary H.264 and H.265 payloads: no piece is larger
// than MaxPayload, and the input is left as it was.
func FuzzFragment(f *testing.F) {
	f.Fuzz(func(t *testing.T, h265 bool, b []byte) {
		in := bytes.Clone(b)
		split := fragmentH264
		if h265 {
			split = fragmentH265
		}
		for _, piece := range split(b) {
			if len(piece) > MaxPayload {
				t.Fatalf("piece of %d bytes, more than %d", len(piece), MaxPayload)
			}
		}
		if !bytes.Equal(in, b) {
			t.Fatal("the input was modified")
		}
	})
}
