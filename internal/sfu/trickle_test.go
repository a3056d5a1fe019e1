package sfu

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/whip"
	"fieldvideo/testbench/synth"
)

// A viewer that sends its offer before gathering and trickles its candidates
// by PATCH has them accepted and receives media; a stale ETag and an ICE
// restart are refused with reasons.
func TestTrickleICE(t *testing.T) {
	h := startSFU(t)
	h.publish("cam1", synth.Params{})
	pc, err := h.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var mu sync.Mutex
	var cands []string
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			mu.Lock()
			cands = append(cands, c.ToJSON().Candidate)
			mu.Unlock()
		}
	})
	got := make(chan struct{})
	var once sync.Once
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if _, _, err := tr.ReadRTP(); err == nil {
			once.Do(func() { close(got) })
		}
	})
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, recvonly()); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(offer.SDP, "a=candidate") {
		t.Fatal("offer already carries candidates; the test needs a bare one")
	}
	c := &whip.Client{Token: h.token(auth.RoleWall, nil, []string{"*"})}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.Offer(ctx, whip.Endpoint(h.base, "cam1", "whep"), offer.SDP)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: res.Answer}); err != nil {
		t.Fatal(err)
	}
	<-webrtc.GatheringCompletePromise(pc)
	mu.Lock()
	frag := whip.Fragment{End: true}
	for _, v := range cands {
		frag.Candidates = append(frag.Candidates, whip.Candidate{Mid: "0", Value: v})
	}
	mu.Unlock()
	ufrag, pwd := iceCreds(pc.LocalDescription().SDP)
	frag.UFrag, frag.Pwd = ufrag, pwd
	if len(frag.Candidates) == 0 {
		t.Fatal("no local candidates gathered")
	}
	if err := c.Trickle(ctx, res, frag.Marshal([]string{"0"})); err != nil {
		t.Fatalf("PATCH: %v", err)
	}
	select {
	case <-got:
	case <-ctx.Done():
		t.Fatal("no media after trickling candidates")
	}

	// A stale ETag and an ICE restart are refused with reasons.
	stale := res
	stale.ETag = `"nope"`
	if err := c.Trickle(ctx, stale, frag.Marshal([]string{"0"})); err == nil || !strings.Contains(err.Error(), "412") {
		t.Errorf("stale If-Match: %v", err)
	}
	frag.UFrag = "other"
	if err := c.Trickle(ctx, res, frag.Marshal([]string{"0"})); err == nil || !strings.Contains(err.Error(), "422") {
		t.Errorf("ICE restart: %v", err)
	}

	// A session takes at most whip.MaxCandidates by trickle.
	frag.UFrag = ufrag
	frag.Candidates = nil
	for i := range whip.MaxCandidates {
		frag.Candidates = append(frag.Candidates, whip.Candidate{Mid: "0",
			Value: fmt.Sprintf("candidate:%d 1 udp %d 127.0.0.1 %d typ host", i, 2130706431-i, 40000+i)})
	}
	if err := c.Trickle(ctx, res, frag.Marshal([]string{"0"})); err == nil || !strings.Contains(err.Error(), "400") ||
		!strings.Contains(err.Error(), fmt.Sprintf("more than %d ICE candidates", whip.MaxCandidates)) {
		t.Errorf("PATCH past %d candidates: %v", whip.MaxCandidates, err)
	}
}

func iceCreds(sdp string) (ufrag, pwd string) {
	for _, l := range strings.Split(sdp, "\r\n") {
		if v, ok := strings.CutPrefix(l, "a=ice-ufrag:"); ok && ufrag == "" {
			ufrag = v
		}
		if v, ok := strings.CutPrefix(l, "a=ice-pwd:"); ok && pwd == "" {
			pwd = v
		}
	}
	return ufrag, pwd
}
