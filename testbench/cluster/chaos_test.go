package cluster

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"fieldvideo/internal/testkit"
	"fieldvideo/internal/whip"
)

var (
	chaosFor   = flag.Duration("chaos", 0, "run TestChaos this long (e.g. 10m); 0 skips it")
	chaosEvery = flag.Duration("chaos.every", 20*time.Second, "TestChaos: kill a random node this often")
)

// chaosViewer watches a source through any live SFU node, as a wall behind
// a load balancer does: when its node dies it views again through another.
// It counts the time it had no video.
type chaosViewer struct {
	source string
	last   atomic.Int64 // unix ns of the last video packet
	mu     sync.Mutex
	down   time.Duration // time without video beyond the allowance
	worst  time.Duration // the longest gap
	node   string        // the node viewed through now
	views  int           // WHEP sessions opened
	gaps   []string      // the long gaps: when, how long, through which node
	start  time.Time
}

// gapAllowance is a gap in video a viewer does not notice (a GOP-cache start,
// jitter); beyond it the viewer counts as down.
const gapAllowance = 500 * time.Millisecond

func (v *chaosViewer) run(ctx context.Context, b *bench, nodes func() []*sfuNode) {
	api, err := whip.NewAPI(whip.APIParams{LoopbackOnly: true})
	if err != nil {
		b.t.Error(err)
		return
	}
	v.last.Store(time.Now().UnixNano())
	for ctx.Err() == nil {
		live := nodes()
		if len(live) == 0 {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		s := live[rand.IntN(len(live))]
		vctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		w, err := whip.View(vctx, whip.ViewerParams{
			Endpoint: whip.Endpoint(s.url, v.source, "whep"), Client: &whip.Client{Token: b.wallTok}, API: api, NoAudio: true,
			OnPacket: func(kind webrtc.RTPCodecType, _ string, _ *rtp.Packet, _ time.Time) {
				if kind == webrtc.RTPCodecTypeVideo {
					v.tick()
				}
			},
		})
		cancel()
		if err != nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		v.mu.Lock()
		v.node, v.views = s.name, v.views+1
		v.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-w.Failed():
		case <-s.Done():
		}
		_ = w.Close()
	}
}

// tick notes a video packet, counting the gap since the previous one.
func (v *chaosViewer) tick() {
	now := time.Now().UnixNano()
	prev := v.last.Swap(now)
	if gap := time.Duration(now - prev); gap > gapAllowance {
		v.mu.Lock()
		v.down += gap - gapAllowance
		v.worst = max(v.worst, gap)
		if gap > 5*time.Second && !v.start.IsZero() {
			v.gaps = append(v.gaps, fmt.Sprintf("%s+%s via %s", time.Unix(0, prev).Sub(v.start).Round(100*time.Millisecond), gap.Round(100*time.Millisecond), v.node))
		}
		v.mu.Unlock()
	}
}

// downtime returns the time without video, the current gap included.
func (v *chaosViewer) downtime() time.Duration {
	v.mu.Lock()
	defer v.mu.Unlock()
	d := v.down
	if gap := time.Since(time.Unix(0, v.last.Load())); gap > gapAllowance {
		d += gap - gapAllowance
	}
	return d
}

// TestChaos runs three SFU nodes and two ingests sharing two cameras, with
// viewers that view through any live node, and kills a random node (SFU or
// ingest) every -chaos.every, restarting it a few seconds later, for -chaos.
// It reports the viewers' availability: the share of time they had video.
// Run it with make chaos.
func TestChaos(t *testing.T) {
	if *chaosFor == 0 {
		t.Skip("run with -chaos=10m (make chaos)")
	}
	b := newBench(t)
	cams := []*testkit.RTSPCamera{testkit.StartRTSPCamera(t, testkit.RTSPCameraParams{}), testkit.StartRTSPCamera(t, testkit.RTSPCameraParams{})}
	list := "["
	for i, c := range cams {
		list += fmt.Sprintf("{name: cam%d, url: %q, transport: tcp},", i+1, c.URL(fmt.Sprintf("cam%d", i+1)))
	}
	list += "]"

	var mu sync.Mutex
	var all []*testkit.Process // every process started, for their logs
	sfus := map[string]*sfuNode{}
	ingests := map[string]*ingest{}
	for _, n := range []string{"sfu-1", "sfu-2", "sfu-3"} {
		sfus[n] = b.startSFU(n)
		all = append(all, sfus[n].Process)
	}
	for _, n := range []string{"ingest-a", "ingest-b"} {
		ingests[n] = b.startIngest(n, list)
		all = append(all, ingests[n].Process)
	}
	live := func() []*sfuNode {
		mu.Lock()
		defer mu.Unlock()
		var out []*sfuNode
		for _, s := range sfus {
			if !s.Exited() {
				out = append(out, s)
			}
		}
		return out
	}
	testkit.WaitFor(t, 30*time.Second, "both cameras live", func() bool {
		for _, s := range live() {
			if b.live(s, "cam1") && b.live(s, "cam2") {
				return true
			}
		}
		return false
	})

	ctx, cancel := context.WithCancel(context.Background())
	var viewers []*chaosViewer
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		v := &chaosViewer{source: fmt.Sprintf("cam%d", i%2+1)}
		viewers = append(viewers, v)
		wg.Add(1)
		go func() { defer wg.Done(); v.run(ctx, b, live) }()
	}
	testkit.WaitFor(t, 30*time.Second, "every viewer receiving video", func() bool {
		for _, v := range viewers {
			if time.Since(time.Unix(0, v.last.Load())) > gapAllowance/2 {
				return false
			}
		}
		return true
	})
	start := time.Now()
	for _, v := range viewers {
		v.mu.Lock()
		v.down, v.start = 0, start // the run counts from here
		v.mu.Unlock()
	}
	kills := 0
	for time.Since(start) < *chaosFor {
		time.Sleep(*chaosEvery)
		names := []string{"sfu-1", "sfu-2", "sfu-3", "ingest-a", "ingest-b"}
		name := names[rand.IntN(len(names))]
		mu.Lock()
		if s := sfus[name]; s != nil {
			_ = s.Signal(syscall.SIGKILL)
			<-s.Done()
		} else {
			_ = ingests[name].Signal(syscall.SIGKILL)
			<-ingests[name].Done()
		}
		mu.Unlock()
		kills++
		t.Logf("%s: killed %s", time.Since(start).Round(100*time.Millisecond), name)
		time.Sleep(3 * time.Second)
		mu.Lock()
		if _, ok := sfus[name]; ok {
			sfus[name] = b.startSFU(name)
			all = append(all, sfus[name].Process)
		} else {
			ingests[name] = b.startIngest(name, list)
			all = append(all, ingests[name].Process)
		}
		mu.Unlock()
	}
	time.Sleep(*chaosEvery) // the last kill gets its time to recover, as every other did
	total := time.Since(start)
	var down time.Duration
	for i, v := range viewers {
		d := v.downtime()
		down += d
		v.mu.Lock()
		t.Logf("viewer %d of %s: %s without video, longest gap %s, %d sessions, now through %s; gaps over 5 s: %v", i, v.source, d.Round(time.Millisecond), v.worst.Round(time.Millisecond), v.views, v.node, v.gaps)
		v.mu.Unlock()
	}
	cancel()
	wg.Wait()
	avail := 1 - float64(down)/float64(total*time.Duration(len(viewers)))
	t.Logf("chaos: %s, %d nodes killed, %d viewers: availability %.4f%% (viewer-visible downtime %s in all, %s per kill per viewer)",
		total.Round(time.Second), kills, len(viewers), 100*avail, down.Round(time.Millisecond),
		(down / time.Duration(max(1, kills*len(viewers)))).Round(time.Millisecond))
	if avail < 0.9 || testing.Verbose() {
		for _, p := range all {
			for _, line := range strings.Split(p.Output(), "\n") {
				if strings.Contains(line, "relay") || strings.Contains(line, "publishing") || strings.Contains(line, "lease") || strings.Contains(line, "camera") {
					t.Log(line)
				}
			}
		}
	}
	if avail < 0.9 {
		t.Errorf("availability %.2f%%: the viewers were without video for %s of %s", 100*avail, down, total*time.Duration(len(viewers)))
	}
}
