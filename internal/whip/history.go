package whip

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	tsync "fieldvideo/internal/sync"
	"fieldvideo/internal/unit"
)

// historySize is how many sent packets a track can retransmit: about two
// seconds of a 4 Mb/s camera.
const historySize = 1024

// Retransmission rules. A NACK is answered for a packet at most once per round trip
// (the first answer may still be on its way), at most resendTries times (a receiver that
// keeps asking cannot take it: its SRTP replay window may have passed it), not for
// packets older than a player can still use, and within a budget: a track may resend
// one byte for every resendShare it sent, with at most resendDepth bytes of credit
// saved up (a lost keyframe's worth). Retransmission then cannot outgrow what is sent,
// so a viewer's NACKs never feed an overload. What is refused is counted by reason.
const (
	resendMaxAge = time.Second
	resendTries  = 5
	resendShare  = 4
	resendDepth  = 96 << 10
	// until a receiver report measures it; never assumed shorter than minRTT.
	defaultRTT = 100 * time.Millisecond
	minRTT     = 10 * time.Millisecond
)

// sentRef is one sent packet: which packet of which unit, the sequence number
// and timestamp it went out with, and when it was sent and last sent again (in
// milliseconds of the Unix clock, modulo 2³²: only differences of seconds are
// taken). 32 bytes: a viewer's history is a thousand of them.
type sentRef struct {
	u       *unit.Unit
	ts      uint32
	at      uint32 // ms
	resent  uint32 // ms; meaningful once tries > 0
	seq     uint16
	pkt     uint16
	size    uint16
	tries   uint8 // times sent again
	present bool
}

// millis is the Unix time ns in the milliseconds sentRef keeps.
func millis(ns int64) uint32 { return uint32(ns / int64(time.Millisecond)) }

// ResendCounters count what tracks did with the packets NACKs asked for; safe for
// concurrent use. A History counts its own, and also into Also when set (every call
// subscription into one set for the metrics).
type ResendCounters struct{ n [outcomes]atomic.Uint64 }

// What became of a packet a NACK asked for.
type outcome int

const (
	resent outcome = iota
	gone
	tooOld
	repeat
	tries
	overBudget
	outcomes
)

// Stats returns the counts so far.
func (c *ResendCounters) Stats() ResendStats {
	return ResendStats{Sent: c.n[resent].Load(), Gone: c.n[gone].Load(), TooOld: c.n[tooOld].Load(),
		Repeat: c.n[repeat].Load(), Tries: c.n[tries].Load(), OverBudget: c.n[overBudget].Load()}
}

// ResendStats count what a track did with the packets NACKs asked for.
type ResendStats struct {
	Sent uint64 // sent again
	// refused: no longer in the history, older than a player can use, asked again
	// within a round trip of the last answer, sent again resendTries times already,
	// or beyond the budget.
	Gone, TooOld, Repeat, Tries, OverBudget uint64
}

// Add returns the sums of s and o.
func (s ResendStats) Add(o ResendStats) ResendStats {
	return ResendStats{Sent: s.Sent + o.Sent, Gone: s.Gone + o.Gone, TooOld: s.TooOld + o.TooOld,
		Repeat: s.Repeat + o.Repeat, Tries: s.Tries + o.Tries, OverBudget: s.OverBudget + o.OverBudget}
}

// History answers NACKs from the units the stream already holds: a track
// remembers references to what it sent instead of copying every packet, so
// a thousand viewers of a camera share one copy of its recent packets. WHEP
// viewers (LocalTrack) and call subscribers keep one each. The zero value is ready.
type History struct {
	mu     sync.Mutex
	ring   *[historySize]sentRef // allocated at the first packet: exactly 32 KiB
	credit int64                 // bytes sent, less resendShare × bytes resent, at most resendShare × resendDepth
	primed bool

	rtt atomic.Int64 // ns; 0 not measured yet
	own ResendCounters
	// Also, when set, counts too what this history does; set before the first use.
	Also *ResendCounters

	// Owned by the goroutine that resends.
	rmu sync.Mutex
	out OutHeader
}

// Remember notes that packet pkt of unit u went out at (unix ns) with header hdr;
// called by the goroutine that writes.
func (h *History) Remember(u *unit.Unit, pkt int, hdr *rtp.Header, at int64) {
	size := int64(len(u.Packets[pkt].Payload))
	h.mu.Lock()
	if h.ring == nil {
		h.ring = new([historySize]sentRef)
	}
	h.ring[hdr.SequenceNumber%historySize] = sentRef{u: u, pkt: uint16(pkt), seq: hdr.SequenceNumber, ts: hdr.Timestamp,
		size: uint16(min(size, 1<<16-1)), at: millis(at), present: true}
	if !h.primed {
		h.credit, h.primed = resendShare*resendDepth, true
	}
	h.credit = min(h.credit+size, resendShare*resendDepth)
	h.mu.Unlock()
}

// take decides whether the packet with sequence number seq is sent again at now, and
// if so returns it and charges the budget.
func (h *History) take(seq uint16, now int64) (sentRef, bool) {
	rtt := h.rtt.Load()
	if rtt == 0 {
		rtt = int64(defaultRTT)
	}
	rtt = max(rtt, int64(minRTT)) / int64(time.Millisecond)
	ms := millis(now)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ring == nil {
		h.count(gone, 1)
		return sentRef{}, false
	}
	r := &h.ring[seq%historySize]
	switch {
	case !r.present || r.seq != seq:
		h.count(gone, 1)
	case ms-r.at > uint32(resendMaxAge/time.Millisecond):
		h.count(tooOld, 1)
	case r.tries > 0 && int64(ms-r.resent) < rtt:
		h.count(repeat, 1)
	case r.tries >= resendTries:
		h.count(tries, 1)
	case h.credit < resendShare*int64(r.size):
		h.count(overBudget, 1)
	default:
		h.credit -= resendShare * int64(r.size)
		r.resent = ms
		r.tries++
		return *r, true
	}
	return sentRef{}, false
}

// count adds n to the history's counts of o, and to Also's.
func (h *History) count(o outcome, n uint64) {
	h.own.n[o].Add(n)
	if h.Also != nil {
		h.Also.n[o].Add(n)
	}
}

// ReceiverReport takes the round trip from a receiver report about SSRC ssrc: the time
// since the sender report it names (our reports carry the wall clock), less the delay
// the receiver held it.
func (h *History) ReceiverReport(rr *rtcp.ReceiverReport, ssrc uint32, now time.Time) {
	for _, r := range rr.Reports {
		if r.SSRC != ssrc || r.LastSenderReport == 0 {
			continue
		}
		mid := uint32(tsync.UnixNanoToNTP(now.UnixNano()) >> 16)
		units := mid - r.LastSenderReport - r.Delay // 1/65536 s
		if units < 1<<30 {
			h.rtt.Store(int64(units) * int64(time.Second) / 65536)
		}
	}
}

// Stats returns the counts so far.
func (h *History) Stats() ResendStats { return h.own.Stats() }

// Resend sends again the packets a NACK names that the rules allow, with the
// header they first went out with, and returns how many it sent.
func (t *LocalTrack) Resend(n *rtcp.TransportLayerNack) (int, error) {
	b := t.bound.Load()
	if b == nil || t.hist == nil || n.MediaSSRC != b.ssrc {
		return 0, nil
	}
	return t.hist.Resend(n, b.ssrc, b.pt, b.stamp, b.w)
}

// Resend sends again on w the packets a NACK names that the rules allow, with the
// header they first went out with (SSRC ssrc, payload type pt, the capture stamps
// negotiated as stamp says), and returns how many it sent.
func (h *History) Resend(n *rtcp.TransportLayerNack, ssrc uint32, pt uint8, stamp CaptureStamp, w webrtc.TrackLocalWriter) (int, error) {
	h.rmu.Lock()
	defer h.rmu.Unlock()
	now := time.Now().UnixNano()
	sent := 0
	var err error
	for _, pair := range n.Nacks {
		pair.Range(func(seq uint16) bool {
			r, ok := h.take(seq, now)
			if !ok {
				return true
			}
			p := r.u.Packets[r.pkt]
			h.out.Unit(stamp, r.u)
			if _, err = w.WriteRTP(h.out.Again(p, ssrc, pt, r.seq, r.ts), p.Payload); err != nil {
				return false
			}
			sent++
			return true
		})
		if err != nil {
			break
		}
	}
	h.count(resent, uint64(sent))
	return sent, err
}

// Outgoing is where an outgoing track's packets go, and the history of them (nil when its
// NACKs are not answered, as for audio).
type Outgoing struct {
	SSRC  uint32
	PT    uint8
	Stamp CaptureStamp
	W     webrtc.TrackLocalWriter
	Hist  *History
}

// Feedback does what a receiver's RTCP about an outgoing track asks, the same for WHEP
// viewers and call subscribers: NACKs are answered from the history, receiver reports give
// it the round trip, keyframe requests call keyframe; anything else goes to other (nil:
// dropped).
func Feedback(pkts []rtcp.Packet, s Outgoing, keyframe func(), other func(rtcp.Packet)) {
	for _, p := range pkts {
		switch p := p.(type) {
		case *rtcp.TransportLayerNack:
			if s.Hist != nil && p.MediaSSRC == s.SSRC {
				_, _ = s.Hist.Resend(p, s.SSRC, s.PT, s.Stamp, s.W)
			}
		case *rtcp.ReceiverReport:
			if s.Hist != nil {
				s.Hist.ReceiverReport(p, s.SSRC, time.Now())
			}
		case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
			keyframe()
		default:
			if other != nil {
				other(p)
			}
		}
	}
}

// ServeRTCP reads a sender's RTCP until it ends and does what it asks (see Feedback);
// what Feedback does not handle goes to other (nil: dropped).
func (t *LocalTrack) ServeRTCP(s *webrtc.RTPSender, keyframe func(), other func(rtcp.Packet)) {
	for {
		pkts, _, err := s.ReadRTCP()
		if err != nil {
			return
		}
		var sent Outgoing
		if b := t.bound.Load(); b != nil {
			sent = Outgoing{SSRC: b.ssrc, PT: b.pt, Stamp: b.stamp, W: b.w, Hist: t.hist}
		}
		Feedback(pkts, sent, keyframe, other)
	}
}
