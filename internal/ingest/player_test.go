package ingest

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/pion/rtp"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/testkit"
)

const gstLaunch = "/usr/bin/gst-launch-1.0"

// player is an RTSP client reading a source back from the server.
type player struct {
	c      *gortsplib.Client
	desc   *description.Session
	mu     sync.Mutex
	counts map[string]int // packets per codec
	nals   map[byte]int
	seqErr []string
	last   map[*description.Media]uint16
	ended  chan error
}

// play connects to rawURL over TCP, sets up every media and plays.
func play(t *testing.T, rawURL string) (*player, error) {
	t.Helper()
	u, err := base.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	p := &player{
		c:      &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Protocol: new(gortsplib.ProtocolTCP)},
		counts: map[string]int{}, nals: map[byte]int{}, last: map[*description.Media]uint16{},
		ended: make(chan error, 1),
	}
	if err := p.c.Start(); err != nil {
		t.Fatal(err)
	}
	desc, _, err := p.c.Describe(u)
	if err != nil {
		p.c.Close()
		return nil, err
	}
	p.desc = desc
	if err := p.c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		p.c.Close()
		return nil, err
	}
	p.c.OnPacketRTPAny(func(m *description.Media, f format.Format, pk *rtp.Packet) {
		p.mu.Lock()
		defer p.mu.Unlock()
		codec := codecName(f)
		p.counts[codec]++
		if last, ok := p.last[m]; ok && pk.SequenceNumber != last+1 && len(p.seqErr) < 10 {
			p.seqErr = append(p.seqErr, fmt.Sprintf("%s: %d then %d", codec, last, pk.SequenceNumber))
		}
		p.last[m] = pk.SequenceNumber
		if _, ok := f.(*format.H264); ok {
			for _, n := range h264NALTypes(pk.Payload) {
				p.nals[n]++
			}
		}
	})
	if _, err := p.c.Play(nil); err != nil {
		p.c.Close()
		return nil, err
	}
	go func() { p.ended <- p.c.Wait() }()
	t.Cleanup(p.c.Close)
	return p, nil
}

func (p *player) count(codec string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[codec]
}

func (p *player) nal(typ byte) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nals[typ]
}

func (p *player) seqErrors() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.seqErr...)
}

// TestRTSPPlayer reads a pushed source back over RTSP with a gortsplib
// client (token as password) and with ffprobe (token as query parameter),
// and checks the refusals.
func TestRTSPPlayer(t *testing.T) {
	testkit.RequireBinary(t, testkit.FFmpegPath)
	env := newTestServer(t, nil)
	pub := mint(t, testSecret, auth.Claims{Publish: []string{"yard"}})
	testkit.StartPush(t, t.Context(), testkit.PushParams{URL: env.url(pub, "yard"), Audio: testkit.AudioOpus})
	env.waitState(t, "yard", StateLive)

	view := mint(t, testSecret, auth.Claims{Role: auth.RoleWall, View: []string{"yard"}})
	start := time.Now()
	p, err := play(t, env.basicURL(view, "yard"))
	if err != nil {
		t.Fatalf("play: %v", err)
	}
	testkit.WaitFor(t, waitTimeout, "a first IDR", func() bool { return p.nal(5) > 0 })
	t.Logf("first IDR %s after the player connected (GOP replay)", time.Since(start).Round(time.Millisecond))
	if len(p.desc.Medias) != 2 {
		t.Fatalf("DESCRIBE returned %d medias, want video and audio", len(p.desc.Medias))
	}
	testkit.WaitFor(t, waitTimeout, "video and audio packets with SPS, PPS and IDR", func() bool {
		return p.count("H264") >= 100 && p.count("opus") >= 50 && p.nal(h264SPS) >= 1 && p.nal(h264PPS) >= 1 && p.nal(5) >= 1
	})
	if errs := p.seqErrors(); len(errs) > 0 {
		t.Fatalf("player saw sequence gaps: %v", errs)
	}
	if in := env.source("yard"); in.RTSPPlayers != 1 {
		t.Fatalf("source reports %d RTSP players, want 1", in.RTSPPlayers)
	}
	ev := env.waitAudit(t, audit.Event{Action: actionView, Source: "yard", Result: "ok"})
	if ev.Role != string(auth.RoleWall) {
		t.Fatalf("view audit %+v: want role wall", ev)
	}

	streams, err := testkit.Probe(t.Context(), env.url(view, "yard"), "tcp")
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	var codecs []string
	for _, s := range streams {
		codecs = append(codecs, s.CodecName)
		if s.CodecName == "h264" && (s.Width != 320 || s.Height != 240) {
			t.Fatalf("ffprobe h264 stream %+v: want 320x240", s)
		}
	}
	if strings.Join(codecs, ",") != "h264,opus" {
		t.Fatalf("ffprobe found %v, want h264 and opus", codecs)
	}

	// GStreamer decodes the video and the audio (token as password: rtspsrc keeps long
	// credentials, unlike ffmpeg), one pipeline each: gst-launch links the pads rtspsrc adds
	// at run time one at a time, and with two branches it sometimes leaves one unlinked.
	if _, err := os.Stat(gstLaunch); err == nil {
		for _, branch := range [][]string{
			{"application/x-rtp,media=video", "!", "rtph264depay", "!", "h264parse", "!", "avdec_h264", "!", "fakesink", "num-buffers=50"},
			{"application/x-rtp,media=audio", "!", "rtpopusdepay", "!", "opusdec", "!", "fakesink", "num-buffers=25"},
		} {
			args := append([]string{"-q", "rtspsrc", "location=rtsp://" + env.host + "/yard", "user-id=user", "user-pw=" + view,
				"protocols=tcp", "latency=200", "!"}, branch...)
			gst := testkit.StartEnv(t, t.Context(), []string{"GST_DEBUG=2"}, gstLaunch, args...)
			select {
			case <-gst.Done():
			case <-time.After(waitTimeout):
				t.Fatalf("GStreamer did not decode %s in time:\n%s", branch[len(branch)-1], gst.Output())
			}
			if err := gst.Err(); err != nil {
				t.Fatalf("GStreamer: %v\n%s", err, gst.Output())
			}
		}
	}

	refusals := []struct {
		name, url, status string
	}{
		{"wrong secret", env.basicURL(mint(t, []byte("another-secret-another-secret-another-secret"), auth.Claims{View: []string{"*"}}), "yard"), "401"},
		{"publish-only token", env.basicURL(pub, "yard"), "403"},
		{"unknown source", env.basicURL(mint(t, testSecret, auth.Claims{View: []string{"*"}}), "nothing"), "404"},
		{"no token", env.url("", "yard"), "401"},
	}
	for _, r := range refusals {
		t.Run(r.name, func(t *testing.T) {
			_, err := play(t, r.url)
			if err == nil || !strings.Contains(err.Error(), r.status) {
				t.Fatalf("play: %v, want status %s", err, r.status)
			}
		})
	}
	env.waitAudit(t, audit.Event{Action: actionView, Source: "nothing", Result: "denied"})
}

// TestRTSPPlayerAcrossReconnects: a player stays connected and sees
// continuous sequence numbers when the publisher reconnects with the same
// tracks; when the tracks change, it is disconnected and a new DESCRIBE
// returns the new tracks.
func TestRTSPPlayerAcrossReconnects(t *testing.T) {
	testkit.RequireBinary(t, testkit.FFmpegPath)
	env := newTestServer(t, nil)
	tok := mint(t, testSecret, auth.Claims{Publish: []string{"van"}, View: []string{"van"}})
	a := testkit.StartPush(t, t.Context(), testkit.PushParams{URL: env.url(tok, "van"), Audio: testkit.AudioOpus, Duration: 2 * time.Second})
	env.waitState(t, "van", StateLive)
	p, err := play(t, env.basicURL(tok, "van"))
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, waitTimeout, "first publisher to finish", a.Exited)
	env.waitState(t, "van", StateOffline)
	before := p.count("H264")

	b := testkit.StartPush(t, t.Context(), testkit.PushParams{URL: env.url(tok, "van"), Audio: testkit.AudioOpus})
	env.waitState(t, "van", StateLive)
	testkit.WaitFor(t, waitTimeout, "the player to get the second publisher's media", func() bool {
		return p.count("H264") > before+100 && p.count("opus") > 100
	})
	if errs := p.seqErrors(); len(errs) > 0 {
		t.Fatalf("player saw sequence discontinuities across the reconnection: %v", errs)
	}
	b.Stop()
	env.waitState(t, "van", StateOffline)

	testkit.StartPush(t, t.Context(), testkit.PushParams{URL: env.url(tok, "van")}) // video only
	env.waitState(t, "van", StateLive)
	select {
	case <-p.ended:
	case <-time.After(waitTimeout):
		t.Fatal("the player was not disconnected when the tracks changed")
	}
	p2, err := play(t, env.basicURL(tok, "van"))
	if err != nil {
		t.Fatal(err)
	}
	if len(p2.desc.Medias) != 1 {
		t.Fatalf("new DESCRIBE has %d medias, want 1", len(p2.desc.Medias))
	}
	testkit.WaitFor(t, waitTimeout, "video on the new player", func() bool { return p2.count("H264") > 50 })
}
