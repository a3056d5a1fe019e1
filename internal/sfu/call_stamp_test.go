package sfu

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"fieldvideo/internal/auth"
	rooms "fieldvideo/internal/session"
	tsync "fieldvideo/internal/sync"
	"fieldvideo/internal/testkit"
)

// stampWatch records, for one received track, whether each packet carried abs-capture-time,
// and the sequence numbers.
type stampWatch struct {
	c        atomic.Pointer[rooms.Client]
	mu       sync.Mutex
	track    string
	stamped  int
	bare     int
	captures []time.Time
	seqs     []uint16
}

func (w *stampWatch) on(track string, p *rtp.Packet) {
	if track != w.track {
		return
	}
	c := w.c.Load()
	if c == nil {
		return // the join has not returned yet: the first packets are not judged
	}
	id := c.HeaderExtensionID(tsync.AbsCaptureTimeURI)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seqs = append(w.seqs, p.SequenceNumber)
	b := []byte(nil)
	if id != 0 {
		b = p.GetExtension(id)
	}
	act, err := tsync.UnmarshalAbsCaptureTime(b)
	if err != nil {
		w.bare++
		return
	}
	w.stamped++
	w.captures = append(w.captures, act.Time(time.Now()))
}

// A call subscriber on a link that loses one packet in twenty gets every frame's capture
// time on the common baseline (abs-capture-time, as WHEP viewers do), sender reports, and
// gap-free video: the SFU answers its NACKs from the subscription's history.
func TestCallSubscriberGetsCaptureTimes(t *testing.T) {
	h := startCallSFU(t, nil)
	g := grant{room: "stamps", publish: true, subscribe: true}
	a := h.join("stamps", h.callToken("alice", auth.RoleCommander, g), nil)
	publishSynth(t, a, 20)

	link := testkit.NewShim(t, h.srv.UDPAddr())
	link.LoseDown(20)
	w := &stampWatch{track: "alice/camera"}
	var srs sync.Map // SSRC → a sender report came
	b := h.join("stamps", h.callToken("bob", auth.RoleOperator, g), func(p *rooms.ClientParams) {
		p.RemoteSDP = rooms.RewriteCandidates(h.srv.UDPAddr(), link.Addr())
		p.LocalSDP = link.ClientSDP
		p.OnPacket = w.on
		p.OnRTCP = func(pkts []rtcp.Packet) {
			for _, pk := range pkts {
				if sr, ok := pk.(*rtcp.SenderReport); ok {
					srs.Store(sr.SSRC, true)
				}
			}
		}
	})
	w.c.Store(b)
	waitUntil(t, "500 video packets over the lossy link", 30*time.Second, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.stamped+w.bare > 500
	})
	link.LoseDown(0)
	waitUntil(t, "200 more after the losses stopped", 15*time.Second, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.stamped+w.bare > 700
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.bare > 0 {
		t.Errorf("%d of %d video packets without abs-capture-time", w.bare, w.stamped+w.bare)
	}
	now := time.Now()
	for _, c := range w.captures[len(w.captures)-50:] {
		if d := now.Sub(c); d < 0 || d > 5*time.Second {
			t.Fatalf("a capture time %s from now; want the recent past", d)
		}
	}
	// sequence numbers that never arrived (order aside).
	seen := map[uint16]bool{}
	for _, s := range w.seqs {
		seen[s] = true
	}
	first, last := w.seqs[0], w.seqs[len(w.seqs)-1]
	missing := 0
	for s := first; s != last-40; s++ { // the last NACK round may still be on its way
		if !seen[s] {
			missing++
		}
	}
	t.Logf("%d packets, %d stamped; %d lost on the link, %d not repaired", len(w.seqs), w.stamped, link.LostDown(), missing)
	if missing > 0 {
		t.Errorf("%d video packets lost on the link were never repaired", missing)
	}
	// (the link loses audio as well, which is not retransmitted.)
	resent, refused := h.metricSum("fv_call_packets_retransmitted_total"), h.metricSum("fv_call_nacked_packets_refused_total")
	t.Logf("the SFU counts %.0f retransmissions to call subscribers and %.0f refused", resent, refused)
	if resent == 0 {
		t.Error("the SFU counts no retransmission to call subscribers")
	}
	n := 0
	srs.Range(func(any, any) bool { n++; return true })
	if n == 0 {
		t.Error("no sender report reached the subscriber")
	}
}
