package sfu

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/testkit"
	"fieldvideo/internal/whip"
	"fieldvideo/testbench/synth"
)

// TestViewersWithOtherPayloadTypes: WHEP players number their codecs as they
// like (Firefox: H.264 126, Opus 109; pion's defaults: H.264 at 102 as
// 42001f and 106 as 42e01f). The answer uses the viewer's own numbers, and
// the media arrives with them.
func TestViewersWithOtherPayloadTypes(t *testing.T) {
	h := startSFU(t)
	h.publish("cam1", synth.Params{Audio: true, FPS: 25, GOP: 50})
	tok := h.token(auth.RoleWall, nil, []string{"cam1"})
	h264 := func(pt webrtc.PayloadType, profile string) webrtc.RTPCodecParameters {
		return webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=" + profile}, PayloadType: pt}
	}
	opus := func(pt webrtc.PayloadType) webrtc.RTPCodecParameters {
		return webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
			SDPFmtpLine: "minptime=10;useinbandfec=1"}, PayloadType: pt}
	}
	for _, c := range []struct {
		name         string
		codecs       []webrtc.RTPCodecParameters // nil: pion's defaults
		video, audio webrtc.PayloadType
	}{
		{"pion defaults", nil, 106, 111},
		{"firefox numbering", []webrtc.RTPCodecParameters{h264(126, "42e01f"), opus(109)}, 126, 109},
		{"constrained baseline only", []webrtc.RTPCodecParameters{h264(127, "42001f"), opus(111)}, 127, 111},
	} {
		t.Run(c.name, func(t *testing.T) {
			api := foreignAPI(t, c.codecs)
			got := foreignView(t, api, whip.Endpoint(h.base, "cam1", "whep"), tok)
			defer func() {
				if t.Failed() {
					got.mu.Lock()
					t.Logf("packets by payload type: %v", got.n)
					got.mu.Unlock()
				}
			}()
			testkit.WaitFor(t, 10*time.Second, "video and audio with the viewer's payload types", func() bool {
				return got.count(c.video) > 50 && got.count(c.audio) > 10
			})
			if other := got.others(c.video, c.audio); other != "" {
				// what arrived under numbers the viewer never offered
				t.Errorf("packets with payload types the viewer did not expect: %s", other)
			}
		})
	}
}

// foreignAPI returns a pion API with codecs numbered as given (nil: pion's
// defaults), on loopback only.
func foreignAPI(t *testing.T, codecs []webrtc.RTPCodecParameters) *webrtc.API {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if codecs == nil {
		if err := me.RegisterDefaultCodecs(); err != nil {
			t.Fatal(err)
		}
	}
	for _, cp := range codecs {
		kind := webrtc.RTPCodecTypeVideo
		if strings.HasPrefix(cp.MimeType, "audio/") {
			kind = webrtc.RTPCodecTypeAudio
		}
		if err := me.RegisterCodec(cp, kind); err != nil {
			t.Fatal(err)
		}
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(whip.SettingEngine(whip.ICEParams{LoopbackOnly: true})))
}

// ptCounts counts a foreign viewer's packets by payload type.
type ptCounts struct {
	mu sync.Mutex
	n  map[webrtc.PayloadType]int
}

func (p *ptCounts) add(pt webrtc.PayloadType) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n[pt]++
}

func (p *ptCounts) count(pt webrtc.PayloadType) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n[pt]
}

func (p *ptCounts) others(want ...webrtc.PayloadType) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for pt, n := range p.n {
		if !slices.Contains(want, pt) {
			out = append(out, fmt.Sprintf("%d packets of payload type %d", n, pt))
		}
	}
	return strings.Join(out, ", ")
}

// foreignView plays endpoint with a peer connection of api (not this
// project's client): a recvonly offer of one video and one audio section,
// sent by WHEP as any player would.
func foreignView(t *testing.T, api *webrtc.API, endpoint, token string) *ptCounts {
	t.Helper()
	return foreignViewEdited(t, api, endpoint, token, nil)
}

// foreignViewEdited is foreignView with the offer passed through edit.
func foreignViewEdited(t *testing.T, api *webrtc.API, endpoint, token string, edit func(string) string) *ptCounts {
	t.Helper()
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	got := &ptCounts{n: map[webrtc.PayloadType]int{}}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			got.add(webrtc.PayloadType(p.PayloadType))
		}
	})
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	offerAnswerEdited(t, pc, endpoint, token, edit)
	return got
}

// offerAnswer offers pc's media by WHIP or WHEP at endpoint with token, all
// candidates in the offer, and sets the answer.
func offerAnswer(t *testing.T, pc *webrtc.PeerConnection, endpoint, token string) {
	t.Helper()
	offerAnswerEdited(t, pc, endpoint, token, nil)
}

// offerAnswerEdited is offerAnswer with the offer's SDP passed through edit
// (when not nil) before it is sent.
func offerAnswerEdited(t *testing.T, pc *webrtc.PeerConnection, endpoint, token string, edit func(string) string) {
	t.Helper()
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sdp := pc.LocalDescription().SDP
	if edit != nil {
		sdp = edit(sdp)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader([]byte(sdp)))
	req.Header.Set("Content-Type", "application/sdp")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	answer, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("POST %s: %s: %s", endpoint, res.Status, answer)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(answer)}); err != nil {
		t.Fatalf("the answer is refused: %v\n%s", err, answer)
	}
}

// TestPublishersWithOtherPayloadTypes: a WHIP publisher numbering its codecs
// its own way (pion's defaults; Firefox's H.264 126 and Opus 109) is
// answered in its numbers, and what it sends reaches a viewer.
func TestPublishersWithOtherPayloadTypes(t *testing.T) {
	h264 := webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, PayloadType: 126}
	opus := webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
		SDPFmtpLine: "minptime=10;useinbandfec=1"}, PayloadType: 109}
	for _, c := range []struct {
		name   string
		codecs []webrtc.RTPCodecParameters // nil: pion's defaults
	}{
		{"pion defaults", nil},
		{"firefox numbering", []webrtc.RTPCodecParameters{h264, opus}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := startSFU(t)
			api := foreignAPI(t, c.codecs)
			foreignPublish(t, api, whip.Endpoint(h.base, "cam1", "whip"), h.token(auth.RoleCamera, []string{"cam1"}, nil), h264.RTPCodecCapability, opus.RTPCodecCapability)
			h.waitFor("cam1 live", func() bool { return h.state("cam1") == "live" })
			var rec received
			h.view("cam1", h.token(auth.RoleWall, nil, []string{"cam1"}), &rec)
			testkit.WaitFor(t, 10*time.Second, "the foreign publisher's video and audio at a viewer", func() bool {
				v, a := rec.counts()
				return v > 100 && a > 20
			})
		})
	}
}

// foreignPublish publishes synthetic H.264 and Opus by WHIP from a peer
// connection of api (not this project's client), as another encoder would,
// until the test ends.
func foreignPublish(t *testing.T, api *webrtc.API, endpoint, token string, video, audio webrtc.RTPCodecCapability) {
	t.Helper()
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	vt, err := webrtc.NewTrackLocalStaticRTP(video, "video", "cam")
	if err != nil {
		t.Fatal(err)
	}
	at, err := webrtc.NewTrackLocalStaticRTP(audio, "audio", "cam")
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range []webrtc.TrackLocal{vt, at} {
		if _, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			t.Fatal(err)
		}
	}
	offerAnswer(t, pc, endpoint, token)
	cam := synth.New(synth.Params{Audio: true, FPS: 25, GOP: 25})
	done := make(chan struct{})
	stopped := make(chan struct{})
	t.Cleanup(func() {
		close(done)
		<-stopped
		pc.Close()
	})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case now := <-tick.C:
				for _, p := range cam.NextAudio(now).Packets {
					_ = at.WriteRTP(p)
				}
				if i%2 == 0 {
					for _, p := range cam.Next(now).Packets {
						_ = vt.WriteRTP(p)
					}
				}
			}
		}
	}()
}
