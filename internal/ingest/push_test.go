package ingest

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/conf"
	"fieldvideo/internal/stream"
	"fieldvideo/internal/testkit"
	"fieldvideo/internal/unit"
)

// TestPushFFmpeg pushes a test pattern with ffmpeg over RTSP/TCP and reads
// the source's stream: units on every track, and on the video track the
// parameter sets in band before each IDR, with continuous sequence numbers.
func TestPushFFmpeg(t *testing.T) {
	testkit.RequireBinary(t, testkit.FFmpegPath)
	cases := []struct {
		name       string
		video      string
		audio      testkit.Audio
		videoCodec string
		audioCodec string
		relayable  bool
	}{
		{"h264-opus", "h264", testkit.AudioOpus, unit.CodecH264, unit.CodecOpus, true},
		{"h264-aac", "h264", testkit.AudioAAC, unit.CodecH264, unit.CodecAAC, false},
		{"h264-pcmu", "h264", testkit.AudioPCMU, unit.CodecH264, unit.CodecPCMU, true},
		{"h265-opus", "h265", testkit.AudioOpus, unit.CodecH265, unit.CodecOpus, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestServer(t, nil)
			name := "truck-" + tc.name
			tok := mint(t, testSecret, auth.Claims{Publish: []string{"truck-*"}})
			ff := testkit.StartPush(t, t.Context(), testkit.PushParams{URL: env.url(tok, name), Video: tc.video, Audio: tc.audio})
			testkit.WaitFor(t, waitTimeout, "source live", func() bool {
				if ff.Exited() {
					t.Fatalf("ffmpeg exited: %v\n%s", ff.Err(), ff.Output())
				}
				return env.source(name).State == StateLive
			})
			info := env.source(name)
			if info.Kind != KindPush || len(info.Tracks) != 2 || info.Publisher != "tester" {
				t.Fatalf("source info %+v: want a push with 2 tracks published by tester", info)
			}
			s, _ := env.srv.Stream(name)
			tracks := s.Tracks()
			vi, ai := trackIndex(tracks, tc.videoCodec), trackIndex(tracks, tc.audioCodec)
			if vi < 0 || ai < 0 {
				t.Fatalf("tracks %+v: want %s and %s", tracks, tc.videoCodec, tc.audioCodec)
			}
			if tracks[ai].Relayable() != tc.relayable || info.Tracks[ai].Relayable != tc.relayable {
				t.Fatalf("audio track relayable = %v, want %v", tracks[ai].Relayable(), tc.relayable)
			}
			if !tc.relayable && !strings.Contains(info.Tracks[ai].Note, "not relayable") {
				t.Fatalf("audio track note %q: want it to say it is not relayable to browsers", info.Tracks[ai].Note)
			}

			c := collect(t, s)
			testkit.WaitFor(t, waitTimeout, "units on both tracks and two keyframes", func() bool {
				if tc.videoCodec == unit.CodecH264 {
					return c.count(vi) >= 40 && c.count(ai) >= 20 && c.nalCount(5) >= 2 && c.nalCount(7) >= 2 && c.nalCount(8) >= 2
				}
				return c.count(vi) >= 40 && c.count(ai) >= 20
			})
			c.mu.Lock()
			defer c.mu.Unlock()
			if len(c.seqErrs) > 0 {
				t.Fatalf("sequence numbers not continuous: %v", c.seqErrs)
			}
			first := c.first[vi].Unit
			if !first.Keyframe {
				t.Fatalf("first video unit is not a keyframe")
			}
			p0 := first.Packets[0].Payload
			switch tc.videoCodec {
			case unit.CodecH264:
				if n := h264NALTypes(p0); len(n) < 2 || n[0] != h264SPS || n[1] != h264PPS {
					t.Fatalf("first video packet carries NALs %v, want SPS and PPS first", n)
				}
			case unit.CodecH265:
				if len(p0) < 2 || (p0[0]>>1)&0x3f != h265AP && (p0[0]>>1)&0x3f != h265VPS {
					t.Fatalf("first video packet is not an aggregation packet or a VPS: % x", p0[:min(len(p0), 8)])
				}
			}
			// Every unit is put on the common time baseline.
			last := c.last[vi].Unit
			if last.Capture.IsZero() || last.CaptureTrust == 0 || last.CaptureErr < 0 {
				t.Fatalf("last video unit not aligned: capture %v trust %d error %s", last.Capture, last.CaptureTrust, last.CaptureErr)
			}
			if d := last.Arrival.Sub(last.Capture); d < -time.Second || d > time.Second {
				t.Fatalf("capture time %s is %s from arrival", last.Capture, d)
			}
			if ci := env.source(name).Clock; ci == nil || ci.Trust == "unaligned" {
				t.Fatalf("source clock %+v: want an alignment", ci)
			}
			ev := env.waitAudit(t, audit.Event{Action: actionPublish, Source: name, Result: "ok"})
			if ev.Actor != "tester" || ev.Role != string(auth.RoleCamera) {
				t.Fatalf("audit event %+v: want actor tester, role camera", ev)
			}
		})
	}
}

// TestPushRefused checks each reason to refuse a push, with its RTSP status
// and audit event.
func TestPushRefused(t *testing.T) {
	testkit.RequireBinary(t, testkit.FFmpegPath)
	env := newTestServer(t, func(p *Params) {
		p.Cameras = []conf.Camera{{Name: "cam1", URL: "rtsp://127.0.0.1:1/none", Transport: "tcp"}}
	})
	other := []byte("another-secret-another-secret-another-secret")
	cases := []struct {
		name, source, token string
		status              string
		reason              string // in the audit event
	}{
		{"no token", "nt", "", "401", "no token"},
		{"wrong secret", "ws", mint(t, other, auth.Claims{Publish: []string{"*"}}), "401", "signature"},
		{"garbage token", "gt", "not-a-jwt", "401", "malformed"},
		{"view-only token", "vo", mint(t, testSecret, auth.Claims{View: []string{"*"}}), "403", "does not allow to publish"},
		{"grant for another source", "ga", mint(t, testSecret, auth.Claims{Publish: []string{"other"}}), "403", "does not allow to publish"},
		{"invalid name", "-bad", mint(t, testSecret, auth.Claims{Publish: []string{"*"}}), "400", "not a valid source name"},
		{"a call's recording name", "room.alice.microphone", mint(t, testSecret, auth.Claims{Publish: []string{"*"}}), "400", "form of a call's recording"},
		{"pulled camera name", "cam1", mint(t, testSecret, auth.Claims{Publish: []string{"*"}}), "405", "pulled camera"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ff := testkit.StartPush(t, t.Context(), testkit.PushParams{URL: env.url(tc.token, tc.source)})
			out := exitedWith(t, ff)
			if !strings.Contains(out, tc.status) {
				t.Fatalf("ffmpeg output does not show status %s:\n%s", tc.status, out)
			}
			ev := env.waitAudit(t, audit.Event{Action: actionPublish, Source: tc.source, Result: "denied"})
			if !strings.Contains(ev.Reason, tc.reason) {
				t.Fatalf("audit reason %q, want it to mention %q", ev.Reason, tc.reason)
			}
			if tc.source != "cam1" {
				if _, ok := env.srv.Source(tc.source); ok {
					t.Fatalf("a refused push created source %s", tc.source)
				}
			}
		})
	}
}

// TestSecondPublisherRefused: a second push to a live source is refused
// while the first keeps flowing.
func TestSecondPublisherRefused(t *testing.T) {
	testkit.RequireBinary(t, testkit.FFmpegPath)
	env := newTestServer(t, nil)
	tok := mint(t, testSecret, auth.Claims{Publish: []string{"busy"}})
	first := testkit.StartPush(t, t.Context(), testkit.PushParams{URL: env.url(tok, "busy"), Audio: testkit.AudioOpus})
	before := env.waitState(t, "busy", StateLive)

	second := testkit.StartPush(t, t.Context(), testkit.PushParams{URL: env.url(tok, "busy")})
	out := exitedWith(t, second)
	if !strings.Contains(out, "455") {
		t.Fatalf("second ffmpeg output does not show status 455:\n%s", out)
	}
	ev := env.waitAudit(t, audit.Event{Action: actionPublish, Source: "busy", Result: "denied"})
	if !strings.Contains(ev.Reason, "already being published") {
		t.Fatalf("audit reason %q", ev.Reason)
	}
	afterRefusal := env.source("busy").Packets
	testkit.WaitFor(t, waitTimeout, "the first publisher to keep flowing", func() bool {
		in := env.source("busy")
		return in.State == StateLive && in.Packets > afterRefusal+100
	})
	if in := env.source("busy"); in.Remote != before.Remote || in.Since != before.Since {
		t.Fatalf("the first publisher was disturbed: before %+v, after %+v", before, in)
	}
	if first.Exited() {
		t.Fatalf("first ffmpeg exited: %s", first.Output())
	}
}

// TestPublisherReconnects: a publisher that leaves makes the source offline
// (OnOffline), and a new push restarts the same stream (OnLive again, next
// epoch). The hooks call back into the server without deadlocking.
func TestPublisherReconnects(t *testing.T) {
	testkit.RequireBinary(t, testkit.FFmpegPath)
	var mu sync.Mutex
	var events []string
	var env *testEnv
	var envReady = make(chan struct{})
	env = newTestServer(t, func(p *Params) {
		p.OnLive = func(name string, s *stream.Stream) {
			<-envReady
			in, _ := env.srv.Source(name) // calls back into the package
			mu.Lock()
			events = append(events, "live:"+name+":"+string(in.State)+":"+strconv.Itoa(len(s.Tracks())))
			mu.Unlock()
		}
		p.OnOffline = func(name string) {
			<-envReady
			_ = env.srv.Sources()
			mu.Lock()
			events = append(events, "offline:"+name)
			mu.Unlock()
		}
	})
	close(envReady)
	tok := mint(t, testSecret, auth.Claims{Publish: []string{"phone"}})
	ff := testkit.StartPush(t, t.Context(), testkit.PushParams{URL: env.url(tok, "phone"), Audio: testkit.AudioOpus, Duration: 1500 * time.Millisecond})
	env.waitState(t, "phone", StateLive)
	s1, _ := env.srv.Stream("phone")
	epoch1 := s1.Epoch()
	testkit.WaitFor(t, waitTimeout, "ffmpeg to finish", ff.Exited)
	in := env.waitState(t, "phone", StateOffline)
	if !strings.Contains(in.Reason, "publisher left") || in.Publisher != "" {
		t.Fatalf("offline source %+v: want reason 'publisher left' and no publisher", in)
	}
	env.waitAudit(t, audit.Event{Action: actionUnpublish, Source: "phone", Result: "ok"})

	testkit.StartPush(t, t.Context(), testkit.PushParams{URL: env.url(tok, "phone"), Audio: testkit.AudioOpus})
	env.waitState(t, "phone", StateLive)
	s2, _ := env.srv.Stream("phone")
	if s2 != s1 || s2.Epoch() <= epoch1 {
		t.Fatalf("reconnect did not restart the same stream (same %v, epoch %d then %d)", s1 == s2, epoch1, s2.Epoch())
	}
	testkit.WaitFor(t, waitTimeout, "live, offline, live hooks", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(events) >= 3
	})
	mu.Lock()
	defer mu.Unlock()
	want := []string{"live:phone:", "offline:phone", "live:phone:"}
	for i, w := range want {
		if !strings.HasPrefix(events[i], w) {
			t.Fatalf("hook calls %v, want %v...", events, want)
		}
	}
	if !strings.HasSuffix(events[0], ":2") {
		t.Fatalf("OnLive saw %q: want the 2 tracks set before the call", events[0])
	}
}

// TestPushUDP pushes with ffmpeg over RTSP/UDP to a server with UDP ports.
func TestPushUDP(t *testing.T) {
	testkit.RequireBinary(t, testkit.FFmpegPath)
	rtpPort, rtcpPort := testkit.FreeUDPPortPair(t)
	env := newTestServer(t, func(p *Params) {
		p.RTSP.UDPRTPAddress = "127.0.0.1:" + strconv.Itoa(rtpPort)
		p.RTSP.UDPRTCPAddress = "127.0.0.1:" + strconv.Itoa(rtcpPort)
	})
	tok := mint(t, testSecret, auth.Claims{Publish: []string{"drone"}})
	testkit.StartPush(t, t.Context(), testkit.PushParams{URL: env.url(tok, "drone"), Transport: "udp", Audio: testkit.AudioOpus})
	in := env.waitState(t, "drone", StateLive)
	if in.Transport != "UDP" {
		t.Fatalf("transport %q, want UDP", in.Transport)
	}
	s, _ := env.srv.Stream("drone")
	c := collect(t, s)
	testkit.WaitFor(t, waitTimeout, "units with in-band SPS/PPS over UDP", func() bool {
		return c.count(0) >= 40 && c.count(1) >= 20 && c.nalCount(h264SPS) >= 1 && c.nalCount(5) >= 1
	})
}
