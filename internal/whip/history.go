package whip

import (
	"sync"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"fieldvideo/internal/unit"
)

// historySize is how many sent packets a track can retransmit: about two
// seconds of a 4 Mb/s camera.
const historySize = 1024

// sentRef is one sent packet: which packet of which unit, and the sequence
// number and timestamp it went out with.
type sentRef struct {
	u   *unit.Unit
	pkt uint16
	seq uint16
	ts  uint32
}

// history answers NACKs from the units the stream already holds: a track
// remembers references to what it sent instead of copying every packet, so
// a thousand viewers of a camera share one copy of its recent packets.
type history struct {
	mu   sync.Mutex
	ring [historySize]sentRef

	// Owned by the goroutine that resends.
	rmu sync.Mutex
	out outHeader
}

func (h *history) remember(u *unit.Unit, pkt int, hdr *rtp.Header) {
	h.mu.Lock()
	h.ring[hdr.SequenceNumber%historySize] = sentRef{u: u, pkt: uint16(pkt), seq: hdr.SequenceNumber, ts: hdr.Timestamp}
	h.mu.Unlock()
}

func (h *history) lookup(seq uint16) (sentRef, bool) {
	h.mu.Lock()
	r := h.ring[seq%historySize]
	h.mu.Unlock()
	return r, r.u != nil && r.seq == seq
}

// Resend sends again the packets a NACK names that are still in the
// history, with the header they first went out with, and returns how many
// it sent.
func (t *LocalTrack) Resend(n *rtcp.TransportLayerNack) (int, error) {
	b := t.bound.Load()
	if b == nil || n.MediaSSRC != b.ssrc {
		return 0, nil
	}
	h := &t.hist
	h.rmu.Lock()
	defer h.rmu.Unlock()
	sent := 0
	for _, pair := range n.Nacks {
		for _, seq := range pair.PacketList() {
			r, ok := h.lookup(seq)
			if !ok {
				continue
			}
			p := r.u.Packets[r.pkt]
			h.out.fill(b, r.u, p, r.seq, r.ts)
			if _, err := b.w.WriteRTP(&h.out.hdr, p.Payload); err != nil {
				return sent, err
			}
			sent++
		}
	}
	t.retransmits.Add(uint64(sent))
	return sent, nil
}

// ServeRTCP reads a sender's RTCP until it ends: NACKs are answered from
// the history, keyframe requests call keyframe.
func (t *LocalTrack) ServeRTCP(s *webrtc.RTPSender, keyframe func()) {
	for {
		pkts, _, err := s.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.TransportLayerNack:
				_, _ = t.Resend(p)
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				keyframe()
			}
		}
	}
}
