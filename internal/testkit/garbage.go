package testkit

import (
	"encoding/binary"
	"math/rand/v2"

	"github.com/pion/rtp"
)

// GarbageSPS and GarbagePPS are valid H.264 parameter sets (320x240
// constrained baseline) that a Garbage camera sends now and then between
// random ones, so that a recorder sees segments start and parameters change.
var (
	GarbageSPS = []byte{0x67, 0x42, 0xc0, 0x28, 0xd9, 0x00, 0x78, 0x02, 0x27, 0xe5, 0x84, 0x00,
		0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x60, 0xc9, 0x20}
	GarbagePPS = []byte{0x68, 0xce, 0x3c, 0x80}
)

// Garbage is a misbehaving camera: RTP packets for an H.264 video track
// (0, payload type 96) and an Opus audio track (1, payload type 111) with
// random payloads, often shaped like the H.264 packet types parsers look into
// (STAP-A with lying lengths, FU-A starts, parameter sets of random or valid
// content, IDR), sequence numbers that jump and repeat, and timestamps that
// jump anywhere.
type Garbage struct {
	r   *rand.Rand
	seq [2]uint16
	ts  [2]uint32
	n   int
}

// NewGarbage returns a garbage camera; the same seed gives the same packets.
func NewGarbage(seed uint64) *Garbage {
	return &Garbage{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), seq: [2]uint16{100, 200}}
}

// Next returns the next packet and the track (0 video, 1 audio) it is for.
func (g *Garbage) Next() (int, *rtp.Packet) {
	r := g.r
	k, pt := 0, uint8(96)
	if g.n%3 == 2 {
		k, pt = 1, 111
	}
	g.n++
	switch r.IntN(20) {
	case 0:
		g.seq[k] += uint16(r.IntN(40000)) // jump (loss or wrap)
	case 1:
		g.seq[k] -= uint16(r.IntN(50)) // late or repeated
	default:
		g.seq[k]++
	}
	switch r.IntN(10) {
	case 0:
		g.ts[k] = r.Uint32()
	case 1, 2, 3:
		g.ts[k] += 3000
	}
	payload := GarbagePayload(r)
	if k == 0 && r.IntN(8) == 0 {
		payload = append([]byte(nil), [][]byte{GarbageSPS, GarbagePPS}[r.IntN(2)]...)
	}
	return k, &rtp.Packet{
		Header:  rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: g.seq[k], Timestamp: g.ts[k], SSRC: uint32(k + 1), Marker: r.IntN(3) == 0},
		Payload: payload,
	}
}

// GarbagePayload returns a random payload, often shaped like the H.264
// packet types the parsers look into (STAP-A with lying lengths, FU-A,
// parameter sets of random content, IDR, empty).
func GarbagePayload(r *rand.Rand) []byte {
	n := r.IntN(1300)
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	if n == 0 {
		return b
	}
	switch r.IntN(6) {
	case 0: // STAP-A whose lengths overrun the packet
		b[0] = 0x78
		if n >= 3 {
			binary.BigEndian.PutUint16(b[1:], uint16(r.IntN(4000)))
		}
	case 1: // FU-A start of an IDR
		b[0] = 0x7c
		if n >= 2 {
			b[1] = 0x85
		}
	case 2: // SPS or PPS of random content
		b[0] = 0x67 + byte(r.IntN(2))
	case 3: // IDR
		b[0] = 0x65
	}
	return b
}
