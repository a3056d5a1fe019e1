package ingest

import (
	"bufio"
	"context"
	"io"
	"os/exec"
	"strings"
	"sync/atomic"
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

func TestContentBase(t *testing.T) {
	cases := []struct{ in, want string }{
		{"rtsp://h:8554/cam3?token=abc.def-ghi/", "rtsp://h:8554/cam3/"},
		{"rtsp://h:8554/cam3/", "rtsp://h:8554/cam3/"},
		{"rtsp://h:8554/cam3", "rtsp://h:8554/cam3/"},
		{"rtsp://user:secret@h:8554/cam3?token=x&vlcmulticast/", "rtsp://h:8554/cam3/"},
		{"rtsp://h/cam3?", "rtsp://h/cam3/"},
		{"rtsps://[::1]:322/a.b_c-d?token=x/", "rtsps://[::1]:322/a.b_c-d/"},
		{"rtsp://h/%zz?token=x/", "rtsp://h/%zz/"}, // not a URL Go parses: cut at the query
	}
	for _, tc := range cases {
		if got := contentBase(tc.in); got != tc.want {
			t.Errorf("contentBase(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestGStreamerPlaysTokenURL: GStreamer's playbin, given the token in the
// URL, decodes both the video and the audio of a source: Content-Base has
// no query, so the control URLs resolve under the source, and the grant of
// the DESCRIBE carries over to the SETUPs and the PLAY that come without
// the token.
func TestGStreamerPlaysTokenURL(t *testing.T) {
	testkit.RequireBinary(t, testkit.FFmpegPath)
	testkit.RequireBinary(t, gstLaunch)
	cases := []struct {
		name  string
		audio testkit.Audio
	}{
		{"h264-opus", testkit.AudioOpus},
		{"h264-aac", testkit.AudioAAC},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestServer(t, nil)
			pub := mint(t, testSecret, auth.Claims{Publish: []string{"cam3"}})
			testkit.StartPush(t, t.Context(), testkit.PushParams{URL: env.url(pub, "cam3"), Audio: tc.audio})
			env.waitState(t, "cam3", StateLive)
			view := mint(t, testSecret, auth.Claims{Role: auth.RoleWall, View: []string{"cam3"}})

			frames := gstDecode(t, env.url(view, "cam3"), 50)
			t.Logf("GStreamer decoded %d video frames and %d audio buffers", frames["vsink"], frames["asink"])
			for _, ev := range env.auditEvents(t) {
				if ev.Via == "rtsp" && ev.Result != "ok" {
					t.Fatalf("refusal audited while GStreamer played: %+v", ev)
				}
			}
			env.waitAudit(t, audit.Event{Action: actionView, Source: "cam3", Result: "ok"})
		})
	}
}

// gstDecode plays uri with GStreamer's playbin into two fake sinks, vsink
// and asink, until each has taken n decoded buffers, and returns how many
// each took. It fails the test when one of them does not get there: a
// stream that is not decoded, whether its SETUP failed or it never reached
// its sink, is caught.
func gstDecode(t *testing.T, uri string, n int) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, gstLaunch, "-v", "playbin", "uri="+uri,
		"video-sink=fakesink name=vsink silent=false", "audio-sink=fakesink name=asink silent=false")
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start GStreamer: %v", err)
	}
	counts := map[string]int{}
	var last []string
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, sink := range []string{"vsink", "asink"} {
			if strings.Contains(line, "last-message = chain") && strings.Contains(line, "("+sink+":sink)") {
				counts[sink]++
			}
		}
		if !strings.Contains(line, "last-message") {
			last = append(last, line)
			if len(last) > 40 {
				last = last[1:]
			}
		}
		if counts["vsink"] >= n && counts["asink"] >= n {
			cancel()
			break
		}
	}
	_, _ = io.Copy(io.Discard, stdout)
	werr := cmd.Wait()
	if counts["vsink"] < n || counts["asink"] < n {
		t.Fatalf("GStreamer decoded %d video and %d audio buffers, want %d of each (exit: %v); output:\n%s\n%s",
			counts["vsink"], counts["asink"], n, werr, strings.Join(last, "\n"), tail(stderr.String()))
	}
	return counts
}

func tail(s string) string {
	if len(s) > 4000 {
		return "…" + s[len(s)-4000:]
	}
	return s
}

// TestRTSPRequestsAudited: every request that grants or refuses access is
// audited with its method and the token's subject; session ends too.
func TestRTSPRequestsAudited(t *testing.T) {
	testkit.RequireBinary(t, testkit.FFmpegPath)
	env := newTestServer(t, nil)
	far := time.Now().Add(time.Hour)
	pub, _ := mintFor(t, "phone-12", auth.Claims{Publish: []string{"cam"}}, far)
	view, _ := mintFor(t, "wall-3", auth.Claims{Role: auth.RoleWall, View: []string{"cam"}}, far)
	ff := testkit.StartPush(t, t.Context(), testkit.PushParams{URL: env.url(pub, "cam"), Audio: testkit.AudioOpus})
	env.waitState(t, "cam", StateLive)
	p, err := play(t, env.basicURL(view, "cam"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := play(t, env.basicURL(pub, "cam")); err == nil {
		t.Fatal("a publish-only token could play")
	}
	if _, err := play(t, env.url(view+"x", "cam")); err == nil {
		t.Fatal("a forged token could play")
	}
	// ffprobe cuts user:password at 127 bytes: the refusal says so and what to do
	if _, err := testkit.Probe(t.Context(), env.basicURL(view, "cam"), "tcp"); err == nil || !strings.Contains(err.Error(), "?token=") {
		t.Errorf("ffprobe with the token as a password: %v; want a refusal that points to ?token=", err)
	}
	p.c.Close()
	<-p.ended
	ff.Stop()
	env.waitState(t, "cam", StateOffline)

	cases := []struct {
		name                          string
		method, action, actor, result string
		status                        int
		min                           int
	}{
		{"ANNOUNCE granted", "ANNOUNCE", actionPublish, "phone-12", "ok", 0, 1},
		{"RECORD granted", "RECORD", actionPublish, "phone-12", "ok", 0, 1},
		{"DESCRIBE granted", "DESCRIBE", actionView, "wall-3", "ok", 0, 1},
		{"SETUP granted, per track", "SETUP", actionView, "wall-3", "ok", 0, 2},
		{"PLAY granted", "PLAY", actionView, "wall-3", "ok", 0, 1},
		{"DESCRIBE without the grant", "DESCRIBE", actionView, "phone-12", "denied", 403, 1},
		{"DESCRIBE with a forged token", "DESCRIBE", actionView, "anonymous", "denied", 401, 1},
		{"player left", "", actionStop, "wall-3", "ok", 0, 1},
		{"publisher left", "", actionUnpublish, "phone-12", "ok", 0, 1},
	}
	var events []audit.Event
	testkit.WaitFor(t, waitTimeout, "the publisher's unpublish event", func() bool {
		events = env.auditEvents(t)
		for _, ev := range events {
			if ev.Action == actionUnpublish {
				return true
			}
		}
		return false
	})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
			for _, ev := range events {
				if ev.Via == "rtsp" && ev.Method == tc.method && ev.Action == tc.action && ev.Actor == tc.actor &&
					ev.Result == tc.result && ev.Status == tc.status && ev.Source == "cam" && ev.Remote != "" {
					n++
				}
			}
			if n < tc.min {
				t.Fatalf("%d events %s %s by %s (%s, status %d), want at least %d; trail:\n%s",
					n, tc.method, tc.action, tc.actor, tc.result, tc.status, tc.min, eventList(events))
			}
		})
	}
}

func eventList(evs []audit.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		if ev.Via == "rtsp" {
			b.WriteString(ev.Method + " " + ev.Action + " " + ev.Actor + " " + ev.Result + " " + ev.Reason + "\n")
		}
	}
	return b.String()
}

// playTunnelled plays rawURL with gortsplib's client over an RTSP tunnel
// (HTTP or WebSocket) and counts the RTP packets it receives.
func playTunnelled(t *testing.T, rawURL string, tunnel gortsplib.Tunnel) (*gortsplib.Client, *atomic.Int64) {
	t.Helper()
	u, err := base.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	c := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Tunnel: tunnel}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	desc, _, err := c.Describe(u)
	if err != nil {
		t.Fatalf("DESCRIBE over the %v tunnel: %v", tunnel, err)
	}
	if err := c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		t.Fatal(err)
	}
	packets := new(atomic.Int64)
	c.OnPacketRTPAny(func(*description.Media, format.Format, *rtp.Packet) { packets.Add(1) })
	if _, err := c.Play(nil); err != nil {
		t.Fatal(err)
	}
	return c, packets
}

// TestHTTPTunnelPlayer: a player over RTSP-over-HTTP is granted access on
// the tunnel, so the request timeout stops applying to it, as on a plain
// connection.
func TestHTTPTunnelPlayer(t *testing.T) {
	testkit.RequireBinary(t, testkit.FFmpegPath)
	const timeout = time.Second
	env := newTestServer(t, func(p *Params) { p.RTSP.RequestTimeout = timeout })
	tok := mint(t, testSecret, auth.Claims{Publish: []string{"cam"}, View: []string{"cam"}})
	testkit.StartPush(t, t.Context(), testkit.PushParams{URL: env.url(tok, "cam")})
	env.waitState(t, "cam", StateLive)

	c, packets := playTunnelled(t, env.basicURL(tok, "cam"), gortsplib.TunnelHTTP)
	ended := make(chan error, 1)
	go func() { ended <- c.Wait() }()
	testkit.WaitFor(t, waitTimeout, "video over the tunnel", func() bool { return packets.Load() > 10 })
	select {
	case err := <-ended:
		t.Fatalf("the tunnelled player was disconnected: %v", err)
	case <-time.After(3 * timeout):
	}
	n := packets.Load()
	testkit.WaitFor(t, waitTimeout, "more video, past the request timeout", func() bool { return packets.Load() > n+25 })
}
