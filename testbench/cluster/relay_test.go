package cluster

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"fieldvideo/internal/metrics"
	tsync "fieldvideo/internal/sync"
	"fieldvideo/internal/testkit"
	"fieldvideo/internal/whip"
)

var relayFor = flag.Duration("relay.measure", 0, "run TestRelayOverhead, measuring this long (e.g. 20s); 0 skips it")

// ageViewer views a source and keeps each video packet's age: its arrival
// less its frame's capture time (abs-capture-time, set once at ingest).
type ageViewer struct {
	mu   sync.Mutex
	ages []float64 // ms
	on   bool
}

func (b *bench) ageView(s *sfuNode, source string) (*ageViewer, *whip.Viewer) {
	b.t.Helper()
	api, err := whip.NewAPI(whip.APIParams{LoopbackOnly: true})
	if err != nil {
		b.t.Fatal(err)
	}
	av := &ageViewer{}
	var w *whip.Viewer
	var once sync.Once
	var id uint8
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w, err = whip.View(ctx, whip.ViewerParams{
		Endpoint: whip.Endpoint(s.url, source, "whep"), Client: &whip.Client{Token: b.wallTok}, API: api, NoAudio: true,
		OnPacket: func(kind webrtc.RTPCodecType, _ string, p *rtp.Packet, at time.Time) {
			if kind != webrtc.RTPCodecTypeVideo {
				return
			}
			once.Do(func() { id = w.HeaderExtensionID(tsync.AbsCaptureTimeURI) })
			ext := p.GetExtension(id)
			if id == 0 || ext == nil {
				return
			}
			act, err := tsync.UnmarshalAbsCaptureTime(ext)
			if err != nil {
				return
			}
			av.mu.Lock()
			if av.on {
				av.ages = append(av.ages, float64(at.Sub(act.Time(at)).Microseconds())/1000)
			}
			av.mu.Unlock()
		},
	})
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() { _ = w.Close() })
	return av, w
}

func (av *ageViewer) measure(on bool) {
	av.mu.Lock()
	av.on = on
	av.mu.Unlock()
}

func (av *ageViewer) quantiles() (p50, p99 float64, n int) {
	av.mu.Lock()
	defer av.mu.Unlock()
	a := slices.Clone(av.ages)
	slices.Sort(a)
	if len(a) == 0 {
		return 0, 0, 0
	}
	return a[len(a)/2], a[len(a)*99/100], len(a)
}

// cpuOf returns the CPU time the process has used.
func cpuOf(t *testing.T, pid int) time.Duration {
	user, system, err := metrics.ProcessCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	return user + system
}

// TestRelayOverhead measures what a relay between two SFU nodes costs: the
// age of the video a viewer gets on the node the camera is published on and
// on another node (relayed), and the other node's CPU with and without the
// relay. Run it with -relay.measure=20s; it prints the figures.
func TestRelayOverhead(t *testing.T) {
	if *relayFor == 0 {
		t.Skip("run with -relay.measure=20s")
	}
	b := newBench(t)
	cam := testkit.StartRTSPCamera(t, testkit.RTSPCameraParams{})
	s1, s2 := b.startSFU("sfu-1"), b.startSFU("sfu-2")
	b.startIngest("ingest-a", fmt.Sprintf("[{name: cam1, url: %q, transport: tcp}]", cam.URL("cam1")))
	origin, other := b.publisher("cam1", s1, s2)
	// the other node idle, then relaying to one viewer
	c0 := cpuOf(t, other.Pid())
	time.Sleep(*relayFor)
	idle := cpuOf(t, other.Pid()) - c0
	testkit.WaitFor(t, 10*time.Second, other.name+" hearing of cam1", func() bool {
		_, live := b.sourceOn(other, "cam1")
		return live
	})
	direct, _ := b.ageView(origin, "cam1")
	relayed, _ := b.ageView(other, "cam1")
	time.Sleep(2 * time.Second)
	direct.measure(true)
	relayed.measure(true)
	c1 := cpuOf(t, other.Pid())
	time.Sleep(*relayFor)
	busy := cpuOf(t, other.Pid()) - c1
	direct.measure(false)
	relayed.measure(false)
	d50, d99, dn := direct.quantiles()
	r50, r99, rn := relayed.quantiles()
	if dn == 0 || rn == 0 {
		t.Fatalf("no video packets measured (direct %d, relayed %d)", dn, rn)
	}
	pps := float64(rn) / relayFor.Seconds()
	t.Logf("video age on the origin node p50 %.2f ms p99 %.2f ms (%d packets); relayed through another node p50 %.2f ms p99 %.2f ms (%d): a relay adds %.2f ms p50, %.2f ms p99",
		d50, d99, dn, r50, r99, rn, r50-d50, r99-d99)
	t.Logf("CPU of the relaying node: %.3f cores idle, %.3f cores relaying one source (%.0f video packets/s) to one viewer: %.0f µs per packet relayed, its fixed per-second work included",
		idle.Seconds()/relayFor.Seconds(), busy.Seconds()/relayFor.Seconds(), pps, float64((busy-idle).Microseconds())/float64(rn))
}
