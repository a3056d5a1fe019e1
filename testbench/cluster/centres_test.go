package cluster

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"fieldvideo/internal/testkit"
)

// TestCentreLost runs two operations centres, each with its NATS server, an
// ingest and an SFU, plus a third site's NATS server that keeps the quorum
// of the cluster's buckets (kept on all three). Both ingests list centre A's
// cameras; A pulls them. Losing centre A — its NATS server, ingest and SFU
// at once — brings its cameras back through centre B, on B's wall.
func TestCentreLost(t *testing.T) {
	b := newBenchOn(t, true)
	b.replicas = 3
	sites := testkit.StartNATSSites(t, "centre-a", "centre-b", "witness")
	cams := []*testkit.RTSPCamera{testkit.StartRTSPCamera(t, testkit.RTSPCameraParams{}), testkit.StartRTSPCamera(t, testkit.RTSPCameraParams{})}
	list := "["
	for i, c := range cams {
		list += fmt.Sprintf("{name: cam%d, url: %q, transport: tcp},", i+1, c.URL(fmt.Sprintf("cam%d", i+1)))
	}
	list += "]"
	sfuA := b.startSFUVia("sfu-a", sites[0].URL)
	inA := b.startIngestVia("ingest-a", list, sites[0].URL)
	testkit.WaitFor(t, 30*time.Second, "centre A pulling its cameras", func() bool {
		s := b.states(inA)
		return s["cam1"].State == "live" && s["cam2"].State == "live"
	})
	sfuB := b.startSFUVia("sfu-b", sites[1].URL)
	inB := b.startIngestVia("ingest-b", list, sites[1].URL)
	testkit.WaitFor(t, 30*time.Second, "centre B standing by for them", func() bool {
		s := b.states(inB)
		return s["cam1"].State == "standby" && s["cam2"].State == "standby"
	})
	testkit.WaitFor(t, 20*time.Second, "centre B's SFU listing the cameras", func() bool {
		return b.live(sfuB, "cam1") && b.live(sfuB, "cam2")
	})
	_, got := b.watch(sfuB, "cam1")
	testkit.WaitFor(t, 15*time.Second, "a viewer at centre B receiving cam1", func() bool { return got.Load() > 20 })

	// Centre A is lost.
	_ = inA.Signal(syscall.SIGKILL)
	_ = sfuA.Signal(syscall.SIGKILL)
	sites[0].Stop()
	<-inA.Done()
	<-sfuA.Done()
	lost := time.Now()
	testkit.WaitFor(t, 30*time.Second, "centre B pulling centre A's cameras", func() bool {
		s := b.states(inB)
		return s["cam1"].State == "live" && s["cam2"].State == "live"
	})
	pulled := time.Since(lost)
	before := got.Load()
	testkit.WaitFor(t, 20*time.Second, "the viewer at centre B receiving cam1 again", func() bool { return got.Load() > before+20 })
	t.Logf("centre A lost → its cameras pulled at centre B after %s, a viewer there has video again after %s",
		pulled.Round(time.Millisecond), time.Since(lost).Round(time.Millisecond))
	for i, c := range cams {
		if m := c.MostPlaying(); m != 1 {
			t.Errorf("cam%d was pulled by %d ingests at once; want 1", i+1, m)
		}
	}
}
