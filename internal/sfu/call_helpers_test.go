package sfu

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/conf"
	"fieldvideo/internal/recorder"
	rooms "fieldvideo/internal/session"
	"fieldvideo/internal/whip"
	"fieldvideo/testbench/synth"
)

// callHarness is an SFU for call tests, with a client API for participants.
type callHarness struct {
	*harness
	capi *rooms.API
}

func startCallSFU(t *testing.T, mod func(*conf.SFU)) *callHarness {
	t.Helper()
	return startCallSFUWith(t, mod, nil)
}

// startCallSFUWith is startCallSFU with a recorder.
func startCallSFUWith(t *testing.T, mod func(*conf.SFU), rec *recorder.Recorder) *callHarness {
	t.Helper()
	c := conf.DefaultSFU()
	c.HTTP.Address = "127.0.0.1:0"
	c.WebRTC.UDPAddress = "127.0.0.1:0"
	c.Log.Level = "warn"
	if mod != nil {
		mod(&c)
	}
	v, err := auth.NewVerifier(testSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	auditFile := filepath.Join(t.TempDir(), "audit.log")
	al, err := audit.Open(audit.Params{File: auditFile, KeyFile: auditFile + ".key"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Params{Conf: c, Verifier: v, Audit: al, Log: c.Log.NewLogger(testWriter{t}), Secret: testSecret, Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; al.Close() })
	capi, err := rooms.NewAPI(rooms.APIParams{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	wapi, err := whip.NewAPI(whip.APIParams{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	return &callHarness{harness: &harness{t: t, srv: srv, base: "http://" + srv.HTTPAddr(), audit: auditFile, api: wapi}, capi: capi}
}

type grant struct {
	room               string
	publish, subscribe bool
	view               []string
}

func (h *callHarness) callToken(who string, role auth.Role, g grant) string {
	h.t.Helper()
	c := auth.Claims{Role: role, Room: g.room, RoomPublish: g.publish, RoomSubscribe: g.subscribe, View: g.view}
	c.Subject = who
	tok, err := auth.Mint(testSecret, c, time.Hour, time.Now())
	if err != nil {
		h.t.Fatal(err)
	}
	return tok
}

func (h *callHarness) roomURL(room string) string {
	return "ws://" + h.srv.HTTPAddr() + "/v1/rooms/" + room + "/ws"
}

// join dials a participant into room and closes it at cleanup.
func (h *callHarness) join(room, token string, mod func(*rooms.ClientParams)) *rooms.Client {
	h.t.Helper()
	p := rooms.ClientParams{URL: h.roomURL(room), Token: token, API: h.capi, AutoSubscribe: true}
	if mod != nil {
		mod(&p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := rooms.Dial(ctx, p)
	if err != nil {
		h.t.Fatalf("join %s: %v", room, err)
	}
	h.t.Cleanup(func() { _ = c.Close() })
	return c
}

// Synthetic layers: quarter, half and full, all with a keyframe every second.
var (
	layerQ = synth.Params{FPS: 25, GOP: 25, PacketsPerFrame: 1, PayloadSize: 200, Audio: true}
	layerH = synth.Params{FPS: 25, GOP: 25, PacketsPerFrame: 2, PayloadSize: 500}
	layerF = synth.Params{FPS: 25, GOP: 25, PacketsPerFrame: 2, PayloadSize: 1000}
)

// publishSynth publishes a camera (simulcast when rids are given) and a
// microphone fed with synthetic frames until the test ends. Audio packets
// carry the given level.
func publishSynth(t *testing.T, c *rooms.Client, level int, rids ...string) (video, audio *rooms.LocalTrack) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tracks, err := c.Publish(ctx, rooms.TrackSpec{Source: rooms.SourceCamera, Codec: "H264", RIDs: rids},
		rooms.TrackSpec{Source: rooms.SourceMicrophone, Codec: "opus"})
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	video, audio = tracks[0], tracks[1]
	stop := runSynth(video, audio, level, len(rids))
	t.Cleanup(stop)
	return video, audio
}

// runSynth feeds a camera (three simulcast layers when layers is 3) and a
// microphone with synthetic frames; the returned func stops it.
func runSynth(video, audio *rooms.LocalTrack, level, layers int) (stop func()) {
	audio.Level.Store(int32(level))
	params := []synth.Params{layerF}
	if layers == 3 {
		params = []synth.Params{layerQ, layerH, layerF}
	}
	cams := make([]*synth.Camera, len(params))
	for i, p := range params {
		p.SSRC = uint32(1000 * (i + 1))
		cams[i] = synth.New(p)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		frame := time.NewTicker(40 * time.Millisecond)
		defer frame.Stop()
		sound := time.NewTicker(20 * time.Millisecond)
		defer sound.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case now := <-frame.C:
				for i, cam := range cams {
					for _, p := range cam.Next(now).Packets {
						_ = video.WriteRTP(i, p)
					}
				}
			case now := <-sound.C:
				_ = audio.WriteRTP(0, cams[0].NextAudio(now).Packets[0])
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}

// waitMsg waits for a message of type typ that match accepts.
func waitMsg[T any](t *testing.T, c *rooms.Client, typ string, d time.Duration, match func(T) bool) T {
	t.Helper()
	return waitMsgSince(t, c, typ, time.Time{}, d, match)
}

// waitMsgSince is waitMsg for messages received after since.
func waitMsgSince[T any](t *testing.T, c *rooms.Client, typ string, since time.Time, d time.Duration, match func(T) bool) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var out T
	_, err := c.WaitFor(ctx, func(m rooms.Message) bool {
		if m.Type != typ || m.At.Before(since) {
			return false
		}
		var v T
		if m.Decode(&v) != nil || !match(v) {
			return false
		}
		out = v
		return true
	})
	if err != nil {
		t.Fatalf("no %s message: %v", typ, err)
	}
	return out
}

// waitUntil polls cond until it holds or d passes.
func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func hostPort(a net.Addr) string { return a.String() }

func contains(s string, subs ...string) bool {
	for _, x := range subs {
		if !strings.Contains(s, x) {
			return false
		}
	}
	return true
}
