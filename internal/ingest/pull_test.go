package ingest

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"fieldvideo/internal/conf"
	"fieldvideo/internal/stream"
	"fieldvideo/internal/testkit"
	"fieldvideo/internal/unit"
)

// Credentials of the test camera.
const (
	camUser = "admin"
	camPass = "s3cret-camera-pw"
)

// startCamera starts the test camera (testkit.RTSPCamera) with the credentials above at addr,
// serving RTP over UDP on the given ports too when they are set.
func startCamera(t *testing.T, addr string, udpRTP, udpRTCP int) *testkit.RTSPCamera {
	t.Helper()
	return testkit.StartRTSPCamera(t, testkit.RTSPCameraParams{User: camUser, Pass: camPass, Addr: addr, UDPRTPPort: udpRTP, UDPRTCPPort: udpRTCP})
}

// lockedBuffer collects log output from many goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestPullCamera pulls the test camera over TCP and UDP, loses it, and gets
// it back on the same port by itself.
func TestPullCamera(t *testing.T) {
	for _, transport := range []string{"tcp", "udp"} {
		t.Run(transport, func(t *testing.T) {
			var rtpPort, rtcpPort int
			if transport == "udp" {
				rtpPort, rtcpPort = testkit.FreeUDPPortPair(t)
			}
			cam := startCamera(t, "127.0.0.1:0", rtpPort, rtcpPort)
			camAddr := cam.Addr()
			var hooks struct {
				sync.Mutex
				live, offline int
			}
			logs := &lockedBuffer{}
			env := newTestServer(t, func(p *Params) {
				p.Cameras = []conf.Camera{{
					Name: "gate", Transport: transport,
					URL: fmt.Sprintf("rtsp://%s:%s@%s/stream", camUser, camPass, camAddr),
				}}
				p.Logger = slog.New(slog.NewTextHandler(logs, nil))
				p.OnLive = func(string, *stream.Stream) { hooks.Lock(); hooks.live++; hooks.Unlock() }
				p.OnOffline = func(string) { hooks.Lock(); hooks.offline++; hooks.Unlock() }
			})
			in := env.waitState(t, "gate", StateLive)
			if in.Kind != KindPull || len(in.Tracks) != 1 || in.Tracks[0].Codec != unit.CodecH264 {
				t.Fatalf("source %+v: want a pulled camera with one H264 track", in)
			}
			if in.Transport != strings.ToUpper(transport) {
				t.Fatalf("source transport %q, want %s", in.Transport, transport)
			}
			s, _ := env.srv.Stream("gate")
			c := collect(t, s)
			testkit.WaitFor(t, waitTimeout, "units with in-band SPS/PPS", func() bool {
				return c.count(0) >= 60 && c.nalCount(h264SPS) >= 2 && c.nalCount(h264PPS) >= 2 && c.nalCount(5) >= 2
			})

			cam.Close()
			in = env.waitState(t, "gate", StateFailed)
			if in.Reason == "" || in.Failures < 1 {
				t.Fatalf("failed source %+v: want a reason and a failure count", in)
			}
			t.Logf("reason after the camera stopped: %s", in.Reason)

			cam2 := startCamera(t, camAddr, rtpPort, rtcpPort)
			defer cam2.Close()
			env.waitState(t, "gate", StateLive)
			before := c.count(0)
			testkit.WaitFor(t, waitTimeout, "units to flow again", func() bool {
				return c.count(0) >= before+50
			})
			c.mu.Lock()
			if c.ended != nil {
				t.Errorf("the reader ended on reconnection: %v", c.ended)
			}
			c.mu.Unlock()
			testkit.WaitFor(t, waitTimeout, "hooks live, offline, live", func() bool {
				hooks.Lock()
				defer hooks.Unlock()
				return hooks.live == 2 && hooks.offline == 1
			})
			in = env.source("gate")
			for _, text := range []string{in.URL, in.Reason, logs.String()} {
				if strings.Contains(text, camPass) {
					t.Fatalf("the camera password leaked: %s", text)
				}
			}
			if !strings.Contains(in.URL, ":"+RedactMark+"@") {
				t.Fatalf("source URL %q: want the password redacted", in.URL)
			}
		})
	}
}

// TestPullUnreachable: a camera nobody answers for is failed with a readable
// reason, and retried with growing, capped delays.
func TestPullUnreachable(t *testing.T) {
	port := testkit.FreePort(t)
	logs := &lockedBuffer{}
	env := newTestServer(t, func(p *Params) {
		p.Cameras = []conf.Camera{{Name: "dark", URL: fmt.Sprintf("rtsp://admin:hunter2-secret@127.0.0.1:%d/x", port), Transport: "tcp"}}
		p.Reconnect = conf.Reconnect{Min: 20 * time.Millisecond, Max: 160 * time.Millisecond}
		p.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	backoffs := map[int]int64{}
	testkit.WaitFor(t, waitTimeout, "six failed attempts", func() bool {
		in := env.source("dark")
		if in.State == StateFailed {
			backoffs[in.Failures] = in.BackoffMS
		}
		return in.Failures >= 6
	})
	in := env.source("dark")
	if !strings.Contains(in.Reason, "connection refused") {
		t.Fatalf("reason %q: want it to say the connection was refused", in.Reason)
	}
	var prev int64
	for n := 1; n <= 6; n++ {
		b, ok := backoffs[n]
		if !ok {
			continue
		}
		if b > 160 {
			t.Fatalf("backoff %d ms after failure %d exceeds the 160 ms cap", b, n)
		}
		if n <= 3 && b <= prev {
			t.Fatalf("backoffs %v: want them to grow before the cap", backoffs)
		}
		prev = b
	}
	if len(backoffs) < 3 {
		t.Fatalf("observed only %d attempts: %v", len(backoffs), backoffs)
	}
	for _, text := range []string{in.URL, in.Reason, logs.String()} {
		if strings.Contains(text, "hunter2-secret") {
			t.Fatalf("the camera password leaked: %s", text)
		}
	}
	t.Logf("backoff per failure (ms): %v", backoffs)
}

// TestPullDeadCamera: a camera that keeps the session but stops sending is
// detected by the read timeout, and picked up again when it recovers.
func TestPullDeadCamera(t *testing.T) {
	cam := startCamera(t, "127.0.0.1:0", 0, 0)
	env := newTestServer(t, func(p *Params) {
		p.RTSP.ReadTimeout = time.Second
		p.Cameras = []conf.Camera{{Name: "mast", Transport: "tcp", URL: fmt.Sprintf("rtsp://%s:%s@%s/stream", camUser, camPass, cam.Addr())}}
	})
	env.waitState(t, "mast", StateLive)
	cam.Pause(true)
	start := time.Now()
	in := env.waitState(t, "mast", StateFailed)
	if !strings.Contains(strings.ToLower(in.Reason), "timeout") {
		t.Fatalf("reason %q: want it to mention the timeout", in.Reason)
	}
	t.Logf("dead camera detected after %s: %s", time.Since(start).Round(10*time.Millisecond), in.Reason)
	cam.Pause(false)
	env.waitState(t, "mast", StateLive)
}
