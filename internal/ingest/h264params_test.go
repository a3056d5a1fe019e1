package ingest

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"
	"time"

	"github.com/pion/rtp"

	"fieldvideo/internal/unit"
)

var (
	testSPS = []byte{0x67, 0x42, 0xc0, 0x28, 0xd9, 0x00, 0x78, 0x02, 0x27, 0xe5, 0x84, 0x00,
		0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x60, 0xc9, 0x20}
	testPPS    = []byte{0x68, 0xce, 0x3c, 0x80}
	testVPS265 = []byte{0x40, 0x01, 0x0c, 0x01, 0xff, 0xff}
	testSPS265 = []byte{0x42, 0x01, 0x01, 0x01, 0x60, 0x00}
	testPPS265 = []byte{0x44, 0x01, 0xc1, 0x72, 0xb4}
)

// h264NALTypes lists the NAL unit types an H.264 RTP payload carries (the
// inner type of a starting FU-A).
func h264NALTypes(p []byte) []byte {
	if len(p) < 1 {
		return nil
	}
	switch typ := p[0] & 0x1f; typ {
	case h264STAPA:
		var out []byte
		for b := p[1:]; len(b) >= 3; {
			n := int(b[0])<<8 | int(b[1])
			if n == 0 || len(b) < 2+n {
				break
			}
			out = append(out, b[2]&0x1f)
			b = b[2+n:]
		}
		return out
	case 28:
		if len(p) >= 2 && p[1]&0x80 != 0 {
			return []byte{p[1] & 0x1f}
		}
		return nil
	default:
		return []byte{typ}
	}
}

func pkt(seq uint16, ts uint32, marker bool, payload ...byte) *rtp.Packet {
	return &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: ts, SSRC: 7, Marker: marker}, Payload: payload}
}

// assemble runs packets through an assembler and the injector, returning the
// units in order.
func assemble(j *paramInjector, codec string, pkts []*rtp.Packet) []*unit.Unit {
	var out []*unit.Unit
	a := unit.NewAssembler(0, unit.Track{Kind: unit.KindVideo, Codec: codec, ClockRate: 90000}, func(u *unit.Unit) {
		out = append(out, j.Process(u))
	})
	now := time.Now()
	for _, p := range pkts {
		a.Push(p, now)
	}
	a.Flush()
	return out
}

func outSeqs(us []*unit.Unit) []uint16 {
	var s []uint16
	for _, u := range us {
		for _, p := range u.Packets {
			s = append(s, p.SequenceNumber)
		}
	}
	return s
}

func TestParamInjectorH264(t *testing.T) {
	idr := []byte{0x65, 0x88, 0x84}
	nonIDR := []byte{0x41, 0x9a, 0x02}
	stap := func(nals ...[]byte) []byte {
		b := []byte{0x78}
		for _, n := range nals {
			b = binary.BigEndian.AppendUint16(b, uint16(len(n)))
			b = append(b, n...)
		}
		return b
	}
	tests := []struct {
		name     string
		sdpSPS   []byte
		sdpPPS   []byte
		pkts     []*rtp.Packet
		wantSeqs []uint16
		wantNALs [][]byte // per output packet
		injected uint64
	}{
		{
			name: "keyframe without in-band params gets a STAP-A", sdpSPS: testSPS, sdpPPS: testPPS,
			pkts:     []*rtp.Packet{pkt(100, 0, true, idr...), pkt(101, 3000, true, nonIDR...), pkt(102, 6000, true, idr...)},
			wantSeqs: []uint16{100, 101, 102, 103, 104},
			wantNALs: [][]byte{{7, 8}, {5}, {1}, {7, 8}, {5}},
			injected: 2,
		},
		{
			name: "keyframe with in-band params is left alone", sdpSPS: testSPS, sdpPPS: testPPS,
			pkts:     []*rtp.Packet{pkt(100, 0, true, stap(testSPS, testPPS, idr)...), pkt(101, 3000, true, nonIDR...)},
			wantSeqs: []uint16{100, 101},
			wantNALs: [][]byte{{7, 8, 5}, {1}},
		},
		{
			name: "params learnt in band are injected later",
			pkts: []*rtp.Packet{
				pkt(10, 0, false, testSPS...), pkt(11, 0, false, testPPS...), pkt(12, 0, true, idr...),
				pkt(13, 3000, true, idr...),
			},
			wantSeqs: []uint16{10, 11, 12, 13, 14},
			wantNALs: [][]byte{{7}, {8}, {5}, {7, 8}, {5}},
			injected: 1,
		},
		{
			name:     "no params known: nothing to inject",
			pkts:     []*rtp.Packet{pkt(1, 0, true, idr...), pkt(2, 3000, true, idr...)},
			wantSeqs: []uint16{1, 2},
			wantNALs: [][]byte{{5}, {5}},
		},
		{
			name: "loss gaps stay gaps across injection", sdpSPS: testSPS, sdpPPS: testPPS,
			pkts:     []*rtp.Packet{pkt(65534, 0, true, nonIDR...), pkt(1, 3000, true, idr...), pkt(5, 6000, true, nonIDR...)},
			wantSeqs: []uint16{65534, 1, 2, 6},
			wantNALs: [][]byte{{1}, {7, 8}, {5}, {1}},
			injected: 1,
		},
		{
			name: "late packet from before an injection keeps its old offset", sdpSPS: testSPS, sdpPPS: testPPS,
			pkts: []*rtp.Packet{
				pkt(100, 0, true, idr...),       // injected: 100 stap, 101 idr
				pkt(102, 3000, true, nonIDR...), // 103
				pkt(104, 6000, false, idr...),   // keyframe: 105 stap, 106
				pkt(105, 6000, true, idr...),    // 107
				pkt(103, 3001, true, nonIDR...), // late, before the second injection: 104
				pkt(106, 9000, true, nonIDR...), // 108
			},
			wantSeqs: []uint16{100, 101, 103, 105, 106, 107, 104, 108},
			injected: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j := newParamInjector(unit.CodecH264, nil, tc.sdpSPS, tc.sdpPPS)
			us := assemble(j, unit.CodecH264, tc.pkts)
			got := outSeqs(us)
			if !equalU16(got, tc.wantSeqs) {
				t.Fatalf("output sequence numbers %v, want %v", got, tc.wantSeqs)
			}
			if tc.wantNALs != nil {
				i := 0
				for _, u := range us {
					for _, p := range u.Packets {
						if n := h264NALTypes(p.Payload); !bytes.Equal(n, tc.wantNALs[i]) {
							t.Errorf("packet %d carries NALs %v, want %v", i, n, tc.wantNALs[i])
						}
						i++
					}
				}
			}
			if j.Injected != tc.injected {
				t.Errorf("injected %d, want %d", j.Injected, tc.injected)
			}
			for _, u := range us {
				if len(u.Packets) > 0 && uint16(u.Seq) != u.Packets[0].SequenceNumber {
					t.Errorf("unit Seq %d does not match its first packet %d", u.Seq, u.Packets[0].SequenceNumber)
				}
				if u.Keyframe && len(u.Packets) > 0 && u.Packets[0].Timestamp != u.Packets[len(u.Packets)-1].Timestamp {
					t.Errorf("injected packet has a different timestamp")
				}
			}
		})
	}
}

func TestParamInjectorH265(t *testing.T) {
	idr := []byte{19 << 1, 0x01, 0xaf, 0x00} // IDR_W_RADL
	trail := []byte{1 << 1, 0x01, 0xd0}
	j := newParamInjector(unit.CodecH265, testVPS265, testSPS265, testPPS265)
	us := assemble(j, unit.CodecH265, []*rtp.Packet{pkt(7, 0, true, idr...), pkt(8, 3000, true, trail...)})
	if got := outSeqs(us); !equalU16(got, []uint16{7, 8, 9}) {
		t.Fatalf("output sequence numbers %v, want 7 8 9", got)
	}
	ap := us[0].Packets[0].Payload
	if typ := (ap[0] >> 1) & 0x3f; typ != h265AP {
		t.Fatalf("first packet is NAL type %d, want an aggregation packet (48)", typ)
	}
	var types []byte
	for b := ap[2:]; len(b) >= 2; {
		n := int(b[0])<<8 | int(b[1])
		types = append(types, (b[2]>>1)&0x3f)
		b = b[2+n:]
	}
	if !bytes.Equal(types, []byte{h265VPS, h265SPS, h265PPS}) {
		t.Fatalf("aggregation packet carries %v, want VPS SPS PPS", types)
	}
}

func TestParamInjectorIgnoresOversizedParams(t *testing.T) {
	huge := append([]byte{0x67}, make([]byte, maxParamSetSize+10)...)
	j := newParamInjector(unit.CodecH264, nil, huge, testPPS)
	if j.agg != nil {
		t.Fatal("an oversized SPS was accepted")
	}
	us := assemble(j, unit.CodecH264, []*rtp.Packet{pkt(1, 0, true, 0x65, 0)})
	if len(us[0].Packets) != 1 {
		t.Fatalf("injected without a usable SPS")
	}
}

func equalU16(a, b []uint16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// FuzzParamInjector feeds arbitrary packets through the assembler and the
// injector. Data: byte 0 picks the codec; then records of [flags, len, payload]
// where flags carries the marker bit, a timestamp step and a sequence skip.
// It checks that nothing panics, payloads are not modified, and in-order
// input without skips comes out with continuous sequence numbers. Seed corpus
// in testdata/fuzz/FuzzParamInjector.
func FuzzParamInjector(f *testing.F) {
	f.Fuzz(checkInjector)
}

// checkInjector is the body of FuzzParamInjector.
func checkInjector(t *testing.T, data []byte) {
	{
		if len(data) < 1 {
			return
		}
		codec := unit.CodecH264
		if data[0]&1 == 1 {
			codec = unit.CodecH265
		}
		var j *paramInjector
		if codec == unit.CodecH264 {
			j = newParamInjector(codec, nil, testSPS, testPPS)
		} else {
			j = newParamInjector(codec, testVPS265, testSPS265, testPPS265)
		}
		var in []*rtp.Packet
		var orig [][]byte
		seq, ts := uint16(65530), uint32(0)
		skipped := false
		for b := data[1:]; len(b) >= 2; {
			flags, n := b[0], int(b[1])
			b = b[2:]
			if n > len(b) {
				n = len(b)
			}
			payload := b[:n:n]
			b = b[n:]
			if flags&0x04 != 0 {
				seq += uint16(flags>>4) + 1 // loss
				skipped = true
			}
			if flags&0x02 != 0 {
				ts += 3000
			}
			in = append(in, pkt(seq, ts, flags&0x01 != 0, payload...))
			orig = append(orig, bytes.Clone(payload))
			seq++
		}
		us := assemble(j, codec, in)
		for i, p := range in {
			if !bytes.Equal(p.Payload, orig[i]) {
				t.Fatalf("payload of packet %d was modified", i)
			}
		}
		for _, u := range us {
			for _, p := range u.Packets {
				if len(p.Payload) > MaxPayload && !slices.ContainsFunc(orig, func(o []byte) bool { return bytes.Equal(o, p.Payload) }) {
					t.Fatalf("a packet of %d bytes was made", len(p.Payload))
				}
			}
		}
		if !skipped {
			got := outSeqs(us)
			for i := 1; i < len(got); i++ {
				if got[i] != got[i-1]+1 {
					t.Fatalf("sequence numbers not continuous: %v", got)
				}
			}
		}
		for _, u := range us {
			if len(u.Packets) > 0 && uint16(u.Seq) != u.Packets[0].SequenceNumber {
				t.Fatalf("unit Seq %d does not match its first packet %d", u.Seq, u.Packets[0].SequenceNumber)
			}
		}
	}
}

// BenchmarkParamInjector measures the per-unit cost of a non-keyframe unit
// after an injection happened (the steady state): no allocation.
func BenchmarkParamInjector(b *testing.B) {
	j := newParamInjector(unit.CodecH264, nil, testSPS, testPPS)
	j.Process(&unit.Unit{Seq: 1 << 16, Keyframe: true, Packets: []*rtp.Packet{pkt(0, 0, true, 0x65, 0)}})
	ps := []*rtp.Packet{pkt(1, 3000, false, 0x7c, 0x81, 0), pkt(2, 3000, false, 0x7c, 0x01, 0), pkt(3, 3000, true, 0x7c, 0x41, 0)}
	u := &unit.Unit{Seq: 1<<16 + 1, Packets: ps}
	b.ReportAllocs()
	for b.Loop() {
		u.Seq = 1<<16 + 1
		for i, p := range ps {
			p.SequenceNumber = uint16(i + 1)
		}
		j.Process(u)
	}
}
