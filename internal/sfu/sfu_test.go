package sfu

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/unit"
	"fieldvideo/internal/whip"
	"fieldvideo/testbench/synth"
)

// checkContinuous fails unless the packets start at a keyframe with the
// parameter sets and no sequence number is missing. Order is not checked:
// on a loaded machine a packet lost on loopback comes back by NACK, late.
func checkContinuous(t *testing.T, ps []*rtp.Packet) {
	t.Helper()
	if len(ps) == 0 {
		t.Fatal("no video received")
	}
	var u unit.Unwrapper
	u.Bits = 16
	seqs := make([]uint64, len(ps))
	first := 0
	for i, p := range ps {
		seqs[i] = u.Unwrap(uint64(p.SequenceNumber))
		if seqs[i] < seqs[first] {
			first = i
		}
	}
	if nal := ps[first].Payload[0] & 0x1f; nal != 24 {
		t.Fatalf("first video packet is NAL type %d, want a STAP-A with SPS and PPS", nal)
	}
	slices.Sort(seqs)
	seqs = slices.Compact(seqs)
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Fatalf("sequence numbers %d to %d are missing", seqs[i-1]+1, seqs[i]-1)
		}
	}
}

func TestPublishAndView(t *testing.T) {
	h := startSFU(t)
	h.publish("cam1", synth.Params{Audio: true, FPS: 25, GOP: 50})
	var rec received
	start := time.Now()
	v := h.view("cam1", h.token(auth.RoleWall, nil, []string{"*"}), &rec)
	h.waitFor("video and audio", func() bool { n, a := rec.counts(); return n > 200 && a > 20 })
	checkContinuous(t, rec.packets())
	// each frame's packets went out together (and arrived whole and in order above)
	if st := h.srv.media.Stats(); st.Segmentation && st.Sends >= st.Datagrams*3/4 {
		t.Errorf("media socket: %d datagrams in %d sends; a frame's packets should go in one", st.Datagrams, st.Sends)
	} else {
		t.Logf("media socket: %+v", st)
	}
	rec.mu.Lock()
	ttff := rec.first.Sub(start)
	rec.mu.Unlock()
	t.Logf("time to first video packet %s (keyframe interval 2 s)", ttff)
	if ttff > 1500*time.Millisecond {
		t.Errorf("first frame after %s: the cached GOP should start the viewer at once", ttff)
	}

	var list struct{ Sources []SourceInfo }
	if code := h.getJSON("/v1/sources", h.token(auth.RoleWall, nil, []string{"cam*"}), &list); code != 200 {
		t.Fatalf("sources: %d", code)
	}
	if len(list.Sources) != 1 || list.Sources[0].Viewers != 1 || len(list.Sources[0].Tracks) != 2 || list.Sources[0].Packets == 0 {
		t.Fatalf("sources: %+v", list.Sources)
	}
	if code := h.getJSON("/v1/sources", h.token(auth.RoleWall, nil, []string{"other"}), &list); code != 200 || len(list.Sources) != 0 {
		t.Fatalf("source list not filtered by grant: %+v", list.Sources)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	h.waitFor("viewer gone", func() bool { return h.srv.Sources()[0].Viewers == 0 })

	b, err := os.ReadFile(h.audit)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"action":"publish"`, `"action":"view"`, `"action":"stop"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("audit log lacks %s:\n%s", want, b)
		}
	}
}

func TestAccessAndBadInput(t *testing.T) {
	h := startSFU(t)
	h.publish("cam1", synth.Params{})
	viewer := h.token(auth.RoleWall, nil, []string{"*"})
	offer := validOffer(t, h)
	expired, _ := auth.Mint(testSecret, auth.Claims{Role: auth.RoleWall, View: []string{"*"}}, time.Minute, time.Now().Add(-time.Hour))
	for _, c := range []struct {
		name, path, token, ctype, body string
		status                         int
		reason                         string
	}{
		{"no token", "/cam1/whep", "", whip.ContentTypeSDP, offer, 401, "no token"},
		{"expired", "/cam1/whep", expired, whip.ContentTypeSDP, offer, 401, "expired"},
		{"wrong grant", "/cam1/whep", h.token(auth.RoleWall, nil, []string{"cam2"}), whip.ContentTypeSDP, offer, 403, "may not view"},
		{"view token publishing", "/cam9/whip", viewer, whip.ContentTypeSDP, offer, 403, "may not publish"},
		{"unknown source", "/nope/whep", viewer, whip.ContentTypeSDP, offer, 404, "not being published"},
		{"malformed sdp", "/cam1/whep", viewer, whip.ContentTypeSDP, "v=0\r\nbroken", 400, "malformed SDP"},
		{"wrong content type", "/cam1/whep", viewer, "text/plain", offer, 415, "application/sdp"},
		{"second publisher", "/cam1/whip", h.token(auth.RoleCamera, []string{"*"}, nil), whip.ContentTypeSDP, offer, 409, "already being published"},
		{"bad name", "/a%20b/whip", h.token(auth.RoleCamera, []string{"*"}, nil), whip.ContentTypeSDP, offer, 400, "source name"},
		{"a call's recording name", "/incident-1.commander.camera/whip", h.token(auth.RoleCamera, []string{"*"}, nil), whip.ContentTypeSDP, offer, 400, "form of a call's recording"},
		{"wrong codec", "/cam1/whep", viewer, whip.ContentTypeSDP, strings.ReplaceAll(offer, "H264", "H261"), 406, "can be sent"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", h.base+c.path, strings.NewReader(c.body))
			req.Header.Set("Content-Type", c.ctype)
			if c.token != "" {
				req.Header.Set("Authorization", "Bearer "+c.token)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != c.status || !strings.Contains(string(body), c.reason) {
				t.Fatalf("got %d %q, want %d mentioning %q", res.StatusCode, body, c.status, c.reason)
			}
		})
	}
	// The source kept flowing through all of it.
	var rec received
	h.view("cam1", viewer, &rec)
	h.waitFor("video after bad requests", func() bool { n, _ := rec.counts(); return n > 50 })

	if code := h.getJSON("/metrics", viewer, nil); code != 403 {
		t.Errorf("metrics with a wall token: %d, want 403", code)
	}
	if code := h.getJSON("/healthz", "", nil); code != 200 {
		t.Errorf("healthz: %d", code)
	}
}

// validOffer returns a WHEP offer (video+audio) made by a real pion peer.
func validOffer(t *testing.T, h *harness) string {
	pc, err := h.api.NewPeerConnection(webrtcConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for _, k := range []string{"video", "audio"} {
		if _, err := pc.AddTransceiverFromKind(kindOf(k), recvonly()); err != nil {
			t.Fatal(err)
		}
	}
	o, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return o.SDP
}

func TestViewerCarriesOnAcrossPublisherRestart(t *testing.T) {
	h := startSFU(t)
	_, stop := h.publish("cam1", synth.Params{FPS: 50, GOP: 25})
	var rec received
	h.view("cam1", h.token(auth.RoleWall, nil, []string{"*"}), &rec)
	h.waitFor("video", func() bool { n, _ := rec.counts(); return n > 100 })
	stop()
	h.waitFor("source offline", func() bool { return h.state("cam1") == "offline" })
	before, _ := rec.counts()
	h.publish("cam1", synth.Params{FPS: 50, GOP: 25, SSRC: 99})
	h.waitFor("video from the new publisher", func() bool { n, _ := rec.counts(); return n > before+100 })
	checkContinuous(t, rec.packets())
}

func TestSlowViewerDoesNotDisturbOthers(t *testing.T) {
	h := startSFU(t)
	h.publish("cam1", synth.Params{FPS: 50, PacketsPerFrame: 8})
	tok := h.token(auth.RoleWall, nil, []string{"*"})
	slow := received{block: make(chan struct{})}
	defer close(slow.block)
	h.view("cam1", tok, &slow)
	var fast received
	h.view("cam1", tok, &fast)
	h.waitFor("fast viewer to get 1000 packets", func() bool { n, _ := fast.counts(); return n > 1000 })
	checkContinuous(t, fast.packets())
}

func TestMetrics(t *testing.T) {
	h := startSFU(t)
	h.publish("cam1", synth.Params{})
	var rec received
	h.view("cam1", h.token(auth.RoleWall, nil, []string{"*"}), &rec)
	h.waitFor("video", func() bool { n, _ := rec.counts(); return n > 20 })
	req, _ := http.NewRequestWithContext(context.Background(), "GET", h.base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+h.token(auth.RoleOperator, nil, nil))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	want := map[string]bool{`fv_source_clock_trust{source="cam1",track="video0",trust="refclk"} 1`: false, `fv_source_up{source="cam1"} 1`: false, `fv_source_viewers{source="cam1"} 1`: false, "fv_viewer_dropped_units_total{": false, `fv_source_packets_total{source="cam1"}`: false, "fv_media_sends_total ": false}
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		for k := range want {
			if strings.HasPrefix(sc.Text(), k) {
				want[k] = true
			}
		}
	}
	for k, ok := range want {
		if !ok {
			t.Errorf("metrics lack %s", k)
		}
	}
}
