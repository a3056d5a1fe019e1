package whip

import (
	"bytes"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"fieldvideo/internal/unit"
)

// Uplink is the incoming side of the media edge, the same for a WHIP publication and a
// call participant's publication: each remote track (or simulcast layer) is read into
// units for a stream, every unit aligned on the common time baseline from the sender's
// reports (TrackClock), and the stream's keyframe requests go back to the sender as PLIs.
type Uplink struct {
	pc     *webrtc.PeerConnection
	ssrc   []atomic.Uint32
	clocks []atomic.Pointer[TrackClock]
	kf     chan int
}

// NewUplink returns the uplink of n stream tracks received on pc.
func NewUplink(pc *webrtc.PeerConnection, n int) *Uplink {
	return &Uplink{pc: pc, ssrc: make([]atomic.Uint32, n), clocks: make([]atomic.Pointer[TrackClock], n), kf: make(chan int, 8)}
}

// RequestKeyframe asks the sender of stream track i for a keyframe. It never blocks;
// the stream limits the rate (use it as stream.Params.RequestKeyframe).
func (up *Uplink) RequestKeyframe(i int) {
	select {
	case up.kf <- i:
	default:
	}
}

// SendKeyframeRequests sends the requests as PLIs until done is closed.
func (up *Uplink) SendKeyframeRequests(done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case i := <-up.kf:
			if ssrc := up.ssrc[i].Load(); ssrc != 0 {
				_ = up.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
			}
		}
	}
}

// Clock returns the clock of stream track i; nil until its first packet comes.
func (up *Uplink) Clock(i int) *TrackClock {
	if i < 0 || i >= len(up.clocks) {
		return nil
	}
	return up.clocks[i].Load()
}

// ReadParams says where a remote track's units go.
type ReadParams struct {
	Track int        // stream track index
	Desc  unit.Track // its description
	// Write takes each unit, aligned.
	Write func(*unit.Unit)
	// Packet, when set, sees each packet first and may drop it (false).
	Packet func(p *rtp.Packet, at time.Time) bool
	// Lost, when set, is told how many packets went missing from the sequence (negative
	// when a late one came after all).
	Lost func(n int64)
}

// Read reads remote track t (received by rcv) until it ends: its sender reports set the
// track's clock, its packets become units on it.
func (up *Uplink) Read(t *webrtc.TrackRemote, rcv *webrtc.RTPReceiver, p ReadParams) {
	up.ssrc[p.Track].Store(uint32(t.SSRC()))
	clk := NewTrackClock(p.Desc, rcv.GetParameters().HeaderExtensions)
	up.clocks[p.Track].Store(clk)
	go readSenderReports(t.RID(), rcv, clk)
	asm := unit.NewAssembler(p.Track, p.Desc, func(u *unit.Unit) {
		clk.Align(u)
		p.Write(u)
	})
	var lost uint64
	buf := make([]byte, 1500)
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			asm.Flush()
			return
		}
		pkt := &rtp.Packet{}
		if err := pkt.Unmarshal(bytes.Clone(buf[:n])); err != nil {
			continue
		}
		now := time.Now()
		if p.Packet != nil && !p.Packet(pkt, now) {
			continue
		}
		asm.Push(pkt, now)
		if p.Lost != nil && asm.Lost != lost {
			p.Lost(int64(asm.Lost) - int64(lost))
			lost = asm.Lost
		}
	}
}

// readSenderReports feeds a track's sender reports (of simulcast layer rid, if any) to
// its clock until the receiver ends.
func readSenderReports(rid string, rcv *webrtc.RTPReceiver, clk *TrackClock) {
	for {
		var pkts []rtcp.Packet
		var err error
		if rid != "" {
			pkts, _, err = rcv.ReadSimulcastRTCP(rid)
		} else {
			pkts, _, err = rcv.ReadRTCP()
		}
		if err != nil {
			return
		}
		for _, p := range pkts {
			if sr, ok := p.(*rtcp.SenderReport); ok {
				clk.SenderReport(sr, time.Now())
			}
		}
	}
}
