package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/testkit"
	"fieldvideo/internal/whip"
)

// startCamera runs the demo camera server as an IP camera at addr.
func startCamera(t *testing.T, addr string) *testkit.Process {
	p := testkit.Start(t, context.Background(), bin+"/democam", "-listen", addr, "-cameras", "2")
	testkit.WaitFor(t, 10*time.Second, "camera to listen", func() bool {
		if p.Exited() {
			t.Fatalf("democam exited: %v\n%s", p.Err(), p.Output())
		}
		return strings.Contains(p.Output(), "demo cameras ready")
	})
	return p
}

// A camera that is killed and restarted comes back on the wall by itself.
func TestPulledCameraComesBackOnTheWall(t *testing.T) {
	camAddr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	cam := startCamera(t, camAddr)
	_, sfu := startSFU(t, "127.0.0.1:0")
	cameras := fmt.Sprintf(`[{name: cam1, url: "rtsp://%s/cam1", transport: tcp}, {name: cam2, url: "rtsp://%s/cam2", transport: tcp}]`, camAddr, camAddr)
	in := startIngest(t, sfu, cameras)
	wall := token(t, auth.RoleWall, nil, []string{"*"})
	operator := token(t, auth.RoleOperator, nil, []string{"*"})
	waitState(t, sfu, wall, "cam1", "live", 20*time.Second)
	waitState(t, sfu, wall, "cam2", "live", 20*time.Second)

	page := testkit.OpenPage(t)
	page.Open(sfu + "/?token=" + wall)
	for _, name := range []string{"cam1", "cam2"} {
		if tile := page.WaitPlaying(name, 10, 20*time.Second); tile.Width != 640 || tile.Height != 360 {
			t.Fatalf("%s plays at %dx%d, want 640x360", name, tile.Width, tile.Height)
		}
	}

	cam.Signal(sigkill)
	<-cam.Done()
	reason := waitState(t, "http://"+in.listen["api"], operator, "cam1", "failed", 20*time.Second)
	t.Logf("ingest reports cam1 failed: %s", reason)
	if reason == "" {
		t.Error("failed state without a reason")
	}
	waitState(t, sfu, wall, "cam1", "offline", 20*time.Second)

	startCamera(t, camAddr)
	waitState(t, sfu, wall, "cam1", "live", 30*time.Second)
	for _, name := range []string{"cam1", "cam2"} {
		tile := page.WaitPlaying(name, 25, 30*time.Second)
		t.Logf("%s plays again: %dx%d, %d new frames", name, tile.Width, tile.Height, tile.Frames)
	}
}

// Ingest publishes again by itself after the SFU restarts.
func TestIngestRepublishesAfterSFURestart(t *testing.T) {
	camAddr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	startCamera(t, camAddr)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	sfuProc, sfu := startSFU(t, httpAddr)
	startIngest(t, sfu, fmt.Sprintf(`[{name: cam1, url: "rtsp://%s/cam1"}]`, camAddr))
	wall := token(t, auth.RoleWall, nil, []string{"*"})
	waitState(t, sfu, wall, "cam1", "live", 20*time.Second)

	sfuProc.kill()
	start := time.Now()
	_, sfu = startSFU(t, httpAddr)
	waitState(t, sfu, wall, "cam1", "live", 30*time.Second)
	t.Logf("cam1 live on the restarted SFU after %s", time.Since(start).Round(time.Millisecond))

	api, err := whip.NewAPI(whip.APIParams{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	w := &h264Watch{nals: map[byte]int{}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := whip.View(ctx, whip.ViewerParams{Endpoint: whip.Endpoint(sfu, "cam1", "whep"), Client: &whip.Client{Token: wall}, API: api, OnPacket: w.on})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	testkit.WaitFor(t, 15*time.Second, "a keyframe from the restarted SFU", func() bool {
		nals, _, _, _, _ := w.snapshot()
		return nals[5] > 0 && nals[7] > 0
	})
}
