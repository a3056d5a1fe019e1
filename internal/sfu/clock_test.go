package sfu

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"fieldvideo/internal/auth"
	tsync "fieldvideo/internal/sync"
	"fieldvideo/internal/whip"
	"fieldvideo/testbench/synth"
)

// The capture time a publisher aligned reaches viewers in abs-capture-time on
// every packet, and the source list reports the alignment.
func TestCaptureTimeReachesViewers(t *testing.T) {
	h := startSFU(t)
	h.publish("cam1", synth.Params{Audio: true})
	var mu sync.Mutex
	var diffs []time.Duration
	var missing int
	var v *whip.Viewer
	ready := make(chan struct{})
	on := func(kind webrtc.RTPCodecType, _ string, p *rtp.Packet, _ time.Time) {
		<-ready
		id := v.HeaderExtensionID(tsync.AbsCaptureTimeURI)
		mu.Lock()
		defer mu.Unlock()
		act, err := tsync.UnmarshalAbsCaptureTime(p.GetExtension(id))
		if id == 0 || err != nil {
			missing++
			return
		}
		if sent, ok := synth.Stamp(p.Payload); ok {
			diffs = append(diffs, act.Time(sent).Sub(sent))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	v, err = whip.View(ctx, whip.ViewerParams{Endpoint: whip.Endpoint(h.base, "cam1", "whep"),
		Client: &whip.Client{Token: h.token(auth.RoleWall, nil, []string{"*"})}, API: h.api, OnPacket: on})
	close(ready)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	h.waitFor("100 stamped packets", func() bool { mu.Lock(); defer mu.Unlock(); return len(diffs) >= 100 })
	mu.Lock()
	for _, d := range diffs {
		if d < -time.Microsecond || d > time.Microsecond {
			t.Fatalf("abs-capture-time differs from the publisher's capture time by %s", d)
		}
	}
	if missing > 0 {
		t.Errorf("%d packets without abs-capture-time", missing)
	}
	mu.Unlock()

	src := h.srv.Sources()[0]
	if src.Clock == nil || src.Clock.Trust != "refclk" || !src.Clock.Upstream || src.Clock.ErrorMS != 1 || !src.Clock.Converged {
		t.Fatalf("source clock %+v", src.Clock)
	}
	for _, tr := range src.Tracks {
		if tr.Clock == nil {
			t.Errorf("track %s has no clock", tr.Kind)
		}
	}
}
