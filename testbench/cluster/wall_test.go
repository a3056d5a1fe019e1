package cluster

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"fieldvideo/internal/testkit"
)

// TestWallOnAnotherNodeRecovers opens the console's wall in Chromium on one
// SFU node while the camera is published on another; killing that node
// brings the picture back on the wall with no one touching it.
func TestWallOnAnotherNodeRecovers(t *testing.T) {
	testkit.RequireBrowser(t)
	b := newBench(t)
	cam := testkit.StartRTSPCamera(t, testkit.RTSPCameraParams{Stream: testkit.LiveStream(t, context.Background(), "pattern", false)})
	s1, s2 := b.startSFU("sfu-1"), b.startSFU("sfu-2")
	b.startIngest("ingest-a", fmt.Sprintf("[{name: cam1, url: %q, transport: tcp}]", cam.URL("cam1")))
	origin, wall := b.publisher("cam1", s1, s2)
	testkit.WaitFor(t, 10*time.Second, wall.name+" listing cam1 (published on "+origin.name+")", func() bool {
		relay, live := b.sourceOn(wall, "cam1")
		return live && relay == origin.name
	})

	p := testkit.OpenPage(t)
	p.Open(wall.url + "/?token=" + b.wallTok)
	tile := p.WaitPlaying("cam1", 10, 30*time.Second)
	t.Logf("the wall on %s plays cam1 published on %s: %dx%d", wall.name, origin.name, tile.Width, tile.Height)

	_ = origin.Signal(syscall.SIGKILL)
	<-origin.Done()
	killed := time.Now()
	p.WaitPlaying("cam1", 10, 30*time.Second)
	t.Logf("node with the camera killed → the wall on another node plays it again after %s", time.Since(killed).Round(time.Millisecond))
}

// TestWallBehindABalancerRecovers opens the wall through a load balancer
// in front of two SFU nodes (the first healthy one takes every request);
// killing the node the wall is on brings the picture back through the other,
// with no one touching it.
func TestWallBehindABalancerRecovers(t *testing.T) {
	testkit.RequireBrowser(t)
	b := newBench(t)
	cam := testkit.StartRTSPCamera(t, testkit.RTSPCameraParams{Stream: testkit.LiveStream(t, context.Background(), "pattern", false)})
	s1, s2 := b.startSFU("sfu-1"), b.startSFU("sfu-2")
	lb := testkit.StartBalancer(t, s1.url, s2.url)
	b.startIngest("ingest-a", fmt.Sprintf("[{name: cam1, url: %q, transport: tcp}]", cam.URL("cam1")))
	origin, _ := b.publisher("cam1", s1, s2)
	testkit.WaitFor(t, 10*time.Second, "sfu-1 listing cam1", func() bool {
		_, live := b.sourceOn(s1, "cam1")
		return live
	})

	p := testkit.OpenPage(t)
	p.Open(lb.URL + "/?token=" + b.wallTok)
	p.WaitPlaying("cam1", 10, 30*time.Second)
	t.Logf("the wall plays cam1 through the balancer (on sfu-1; cam1 published on %s)", origin.name)

	_ = s1.Signal(syscall.SIGKILL)
	<-s1.Done()
	killed := time.Now()
	p.WaitPlaying("cam1", 10, 30*time.Second)
	t.Logf("the wall's node killed → the wall plays again through the balancer after %s", time.Since(killed).Round(time.Millisecond))
}
