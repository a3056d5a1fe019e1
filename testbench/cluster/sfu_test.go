package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"fieldvideo/internal/testkit"
	"fieldvideo/internal/whip"
)

// sfuNode is one SFU process of the cluster.
type sfuNode struct {
	*testkit.Process
	name string
	url  string
}

// startSFU runs an SFU named name joined to the cluster, without recording.
func (b *bench) startSFU(name string) *sfuNode {
	b.t.Helper()
	return b.startSFUVia(name, b.nats.URL)
}

// startSFUVia is startSFU reaching NATS at natsURL (through a Link).
func (b *bench) startSFUVia(name, natsURL string) *sfuNode {
	b.t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(b.t))
	p := b.startNode("sfu", name, natsURL, addr, "FV_SFU_HTTP_ADDRESS="+addr, "FV_SFU_WEBRTC_UDP_ADDRESS=127.0.0.1:0")
	return &sfuNode{Process: p, name: name, url: "http://" + addr}
}

// api calls the node's API with the operator token; it returns the status
// and the decoded body (nil when the node does not answer).
func (b *bench) api(method, url string, body any, out any) int {
	var rd *bytes.Reader
	if body != nil {
		j, _ := json.Marshal(body)
		rd = bytes.NewReader(j)
	} else {
		rd = bytes.NewReader(nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, url, rd)
	req.Header.Set("Authorization", "Bearer "+b.tok)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer res.Body.Close()
	if out != nil {
		_ = json.NewDecoder(res.Body).Decode(out)
	}
	return res.StatusCode
}

// live tells whether source is live on the SFU.
func (b *bench) live(s *sfuNode, source string) bool {
	var body struct {
		Sources []sourceState `json:"sources"`
	}
	if b.api(http.MethodGet, s.url+"/v1/sources", nil, &body) != http.StatusOK {
		return false
	}
	for _, src := range body.Sources {
		if src.Name == source && src.State == "live" {
			return true
		}
	}
	return false
}

// watch opens a WHEP viewer of source on the SFU and counts the video
// packets it receives.
func (b *bench) watch(s *sfuNode, source string) (*whip.Viewer, *atomic.Int64) {
	b.t.Helper()
	api, err := whip.NewAPI(whip.APIParams{LoopbackOnly: true})
	if err != nil {
		b.t.Fatal(err)
	}
	var n atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := whip.View(ctx, whip.ViewerParams{
		Endpoint: whip.Endpoint(s.url, source, "whep"), Client: &whip.Client{Token: b.wallTok}, API: api, NoAudio: true,
		OnPacket: func(kind webrtc.RTPCodecType, _ string, _ *rtp.Packet, _ time.Time) {
			if kind == webrtc.RTPCodecTypeVideo {
				n.Add(1)
			}
		},
	})
	if err != nil {
		b.t.Fatalf("WHEP %s on %s: %v", source, s.name, err)
	}
	b.t.Cleanup(func() { _ = v.Close() })
	return v, &n
}

// TestSourcesMoveWhenTheirSFUDies runs two SFU nodes and an ingest: the
// camera is published to one SFU; killing it publishes the camera to the
// other, where a viewer plays it. A draining SFU says so to the load
// balancer and gets no new source.
func TestSourcesMoveWhenTheirSFUDies(t *testing.T) {
	b := newBench(t)
	cam := testkit.StartRTSPCamera(t, testkit.RTSPCameraParams{})
	s1, s2 := b.startSFU("sfu-1"), b.startSFU("sfu-2")
	nodes := map[string]*sfuNode{"sfu-1": s1, "sfu-2": s2}

	// sfu-2 drains: /healthz tells the load balancer, and the camera goes to sfu-1.
	var st struct {
		Node     string `json:"node"`
		Draining bool   `json:"draining"`
		Nodes    []struct {
			Name, Role string
			Draining   bool
		} `json:"nodes"`
	}
	if code := b.api(http.MethodPost, s2.url+"/v1/cluster", map[string]bool{"draining": true}, &st); code != http.StatusOK || !st.Draining || st.Node != "sfu-2" {
		t.Fatalf("drain sfu-2: %d %+v", code, st)
	}
	var health struct{ Status, Reason string }
	if code := b.api(http.MethodGet, s2.url+"/healthz", nil, &health); code != http.StatusServiceUnavailable || health.Status != "draining" {
		t.Errorf("a draining node's /healthz: %d %+v; want 503 draining", code, health)
	}
	if code := b.api(http.MethodGet, s1.url+"/healthz", nil, &health); code != http.StatusOK || health.Status != "ok" {
		t.Errorf("sfu-1's /healthz: %d %+v; want 200 ok", code, health)
	}
	testkit.WaitFor(t, 10*time.Second, "every node seeing sfu-2 draining", func() bool {
		var st2 struct {
			Nodes []struct {
				Name     string `json:"name"`
				Draining bool   `json:"draining"`
			} `json:"nodes"`
		}
		b.api(http.MethodGet, s1.url+"/v1/cluster", nil, &st2)
		for _, n := range st2.Nodes {
			if n.Name == "sfu-2" {
				return n.Draining
			}
		}
		return false
	})
	b.startIngest("ingest-a", fmt.Sprintf("[{name: cam1, url: %q, transport: tcp}]", cam.URL("cam1")))
	testkit.WaitFor(t, 20*time.Second, "cam1 live on sfu-1", func() bool { return b.live(s1, "cam1") })
	if b.live(s2, "cam1") {
		t.Errorf("cam1 was published to the draining sfu-2 too")
	}
	if code := b.api(http.MethodPost, s2.url+"/v1/cluster", map[string]bool{"draining": false}, &st); code != http.StatusOK || st.Draining {
		t.Fatalf("undrain sfu-2: %d %+v", code, st)
	}
	_, got := b.watch(s1, "cam1")
	testkit.WaitFor(t, 10*time.Second, "a viewer on sfu-1 receiving cam1", func() bool { return got.Load() > 20 })

	// Kill sfu-1: the ingest publishes cam1 to sfu-2, where a viewer plays it.
	_ = s1.Signal(syscall.SIGKILL)
	<-s1.Done()
	delete(nodes, "sfu-1")
	killed := time.Now()
	testkit.WaitFor(t, 20*time.Second, "cam1 live on sfu-2", func() bool { return b.live(s2, "cam1") })
	moved := time.Since(killed)
	_, got2 := b.watch(s2, "cam1")
	testkit.WaitFor(t, 10*time.Second, "a viewer on sfu-2 receiving cam1", func() bool { return got2.Load() > 20 })
	t.Logf("SFU killed → its source live on another SFU after %s, a new viewer's video there after %s",
		moved.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
}

// sourceOn returns the source's state on the SFU: its publisher's relay
// (the node it is relayed from, "" when published there) and whether it is live.
func (b *bench) sourceOn(s *sfuNode, source string) (relay string, live bool) {
	var body struct {
		Sources []struct {
			Name  string `json:"name"`
			State string `json:"state"`
			Relay string `json:"relay"`
		} `json:"sources"`
	}
	if b.api(http.MethodGet, s.url+"/v1/sources", nil, &body) != http.StatusOK {
		return "", false
	}
	for _, src := range body.Sources {
		if src.Name == source {
			return src.Relay, src.State == "live"
		}
	}
	return "", false
}

// publisher waits until one of nodes publishes source itself (not relayed)
// and returns it, with one of the others.
func (b *bench) publisher(source string, nodes ...*sfuNode) (origin, other *sfuNode) {
	b.t.Helper()
	testkit.WaitFor(b.t, 20*time.Second, source+" published to an SFU", func() bool {
		for _, s := range nodes {
			if relay, live := b.sourceOn(s, source); live && relay == "" {
				origin = s
				return true
			}
		}
		return false
	})
	for _, s := range nodes {
		if s != origin {
			return origin, s
		}
	}
	return origin, nil
}

// TestViewerOnAnotherNodeFollowsTheSource: a viewer on one SFU node watches a
// camera published on another through a relay (one copy per node, however
// many viewers); when the node the camera is published on dies, the camera
// is published elsewhere and the viewer's video comes back by itself.
func TestViewerOnAnotherNodeFollowsTheSource(t *testing.T) {
	b := newBench(t)
	cam := testkit.StartRTSPCamera(t, testkit.RTSPCameraParams{})
	sfus := []*sfuNode{b.startSFU("sfu-1"), b.startSFU("sfu-2"), b.startSFU("sfu-3")}
	b.startIngest("ingest-a", fmt.Sprintf("[{name: cam1, url: %q, transport: tcp}]", cam.URL("cam1")))
	origin, other := b.publisher("cam1", sfus...)
	testkit.WaitFor(t, 10*time.Second, other.name+" hearing that "+origin.name+" publishes cam1", func() bool {
		var st struct {
			Nodes []struct {
				Name string `json:"name"`
				Load struct {
					Published []string `json:"published"`
				} `json:"load"`
			} `json:"nodes"`
		}
		b.api(http.MethodGet, other.url+"/v1/cluster", nil, &st)
		for _, n := range st.Nodes {
			if n.Name == origin.name && slices.Contains(n.Load.Published, "cam1") {
				return true
			}
		}
		return false
	})
	// Its tags reach the other node: the position sent to the node that
	// publishes it, its reporter (ingest, not a relay); then a newer position
	// sent to the other node (a phone's update through a balancer) reaches
	// the publishing node.
	at := time.Now().Add(-time.Second).UTC().Truncate(time.Millisecond)
	if code := b.api(http.MethodPut, origin.url+"/v1/sources/cam1/position", map[string]any{"lat": 25.033, "lon": 121.565, "at": at.Format(time.RFC3339Nano), "note": "north gate"}, nil); code/100 != 2 {
		t.Fatalf("PUT cam1's position on %s: %d", origin.name, code)
	}
	b.waitTags(other, "cam1", 25.033, "north gate")
	if code := b.api(http.MethodPut, other.url+"/v1/sources/cam1/position", map[string]any{"lat": 25.034, "lon": 121.566, "at": at.Add(time.Second).Format(time.RFC3339Nano)}, nil); code/100 != 2 {
		t.Fatalf("PUT cam1's position on %s: %d", other.name, code)
	}
	b.waitTags(origin, "cam1", 25.034, "north gate")
	// an operator behind the balancer edits the note on the other node: the
	// later edit shows on both, over the note the publisher's node holds.
	if code := b.api(http.MethodPut, other.url+"/v1/sources/cam1/position", map[string]any{"note": "north gate, ladder truck"}, nil); code/100 != 2 {
		t.Fatalf("PUT cam1's note on %s: %d", other.name, code)
	}
	b.waitTags(origin, "cam1", 25.034, "north gate, ladder truck")
	b.waitTags(other, "cam1", 25.034, "north gate, ladder truck")

	// Two viewers on the other node: one relay between the nodes.
	_, got := b.watch(other, "cam1")
	_, got2 := b.watch(other, "cam1")
	testkit.WaitFor(t, 15*time.Second, "both viewers on "+other.name+" receiving cam1 published on "+origin.name, func() bool {
		return got.Load() > 20 && got2.Load() > 20
	})
	if relay, live := b.sourceOn(other, "cam1"); !live || relay != origin.name {
		t.Errorf("cam1 on %s: relay %q live %v; want relayed from %s", other.name, relay, live, origin.name)
	}
	b.waitTags(other, "cam1", 25.034, "north gate, ladder truck")
	var srcs struct {
		Sources []struct {
			Name    string `json:"name"`
			Viewers int    `json:"viewers"`
		} `json:"sources"`
	}
	b.api(http.MethodGet, origin.url+"/v1/sources", nil, &srcs)
	for _, s := range srcs.Sources {
		if s.Name == "cam1" && s.Viewers != 1 {
			t.Errorf("%s sends cam1 to %d viewers; want 1 (the relay to %s), not one per viewer there", origin.name, s.Viewers, other.name)
		}
	}

	// Kill the node the camera is published on.
	before := got.Load()
	_ = origin.Signal(syscall.SIGKILL)
	<-origin.Done()
	killed := time.Now()
	testkit.WaitFor(t, 20*time.Second, "the viewer on "+other.name+" receiving cam1 again", func() bool {
		return got.Load() > before+20
	})
	t.Logf("node with the camera killed → a viewer on another node has video again after %s", time.Since(killed).Round(time.Millisecond))
}

// waitTags waits until s lists source at latitude lat with note, reported by
// its publisher (not a relay of another node).
func (b *bench) waitTags(s *sfuNode, source string, lat float64, note string) {
	b.t.Helper()
	var last string
	defer func() {
		if b.t.Failed() {
			b.t.Logf("%s last listed %s as %s", s.name, source, last)
		}
	}()
	testkit.WaitFor(b.t, 10*time.Second, fmt.Sprintf("%s listing %s at latitude %g with note %q", s.name, source, lat, note), func() bool {
		var body struct {
			Sources []struct {
				Name     string `json:"name"`
				Reporter string `json:"reporter"`
				Note     string `json:"note"`
				Position *struct {
					Lat float64 `json:"lat"`
				} `json:"position"`
			} `json:"sources"`
		}
		b.api(http.MethodGet, s.url+"/v1/sources", nil, &body)
		for _, in := range body.Sources {
			if in.Name == source {
				last = fmt.Sprintf("%+v", in)
				return in.Position != nil && in.Position.Lat == lat && in.Note == note && in.Reporter != "" && !strings.HasPrefix(in.Reporter, "relay@")
			}
		}
		return false
	})
}

// TestPartitionedSFUStopsTakingWorkAndRejoins cuts an SFU node off NATS: its
// /healthz turns 503 isolated (the load balancer sends new clients
// elsewhere), the others drop it and publish new sources elsewhere; when the
// link is mended it rejoins by itself.
func TestPartitionedSFUStopsTakingWorkAndRejoins(t *testing.T) {
	b := newBench(t)
	link := testkit.NewLink(t, strings.TrimPrefix(b.nats.URL, "nats://"))
	cut := b.startSFUVia("sfu-cut", "nats://"+link.Addr())
	other := b.startSFU("sfu-2")
	lists := func(s *sfuNode, name string) bool {
		var st struct {
			Nodes []struct{ Name string } `json:"nodes"`
		}
		b.api(http.MethodGet, s.url+"/v1/cluster", nil, &st)
		return slices.ContainsFunc(st.Nodes, func(n struct{ Name string }) bool { return n.Name == name })
	}
	testkit.WaitFor(t, 10*time.Second, "both nodes in the cluster", func() bool { return lists(other, cut.name) })

	link.Cut()
	var health struct{ Status, Reason string }
	testkit.WaitFor(t, 10*time.Second, "the cut-off node's /healthz saying isolated", func() bool {
		return b.api(http.MethodGet, cut.url+"/healthz", nil, &health) == http.StatusServiceUnavailable && health.Status == "isolated"
	})
	testkit.WaitFor(t, 10*time.Second, "the other node dropping it", func() bool { return !lists(other, cut.name) })
	cam := testkit.StartRTSPCamera(t, testkit.RTSPCameraParams{})
	b.startIngest("ingest-a", fmt.Sprintf("[{name: cam1, url: %q, transport: tcp}]", cam.URL("cam1")))
	testkit.WaitFor(t, 20*time.Second, "a new source published to the node still in the cluster", func() bool { return b.live(other, "cam1") })
	if b.live(cut, "cam1") {
		t.Errorf("the new source went to the cut-off node")
	}

	link.Mend()
	testkit.WaitFor(t, 15*time.Second, "the node back: /healthz ok and listed again", func() bool {
		return b.api(http.MethodGet, cut.url+"/healthz", nil, &health) == http.StatusOK && lists(other, cut.name)
	})
}

// TestViewerFollowsItsSourceToAnotherNode: a viewer watches a camera on the
// node it is published on; the ingest pulling it dies and the other ingest
// publishes it to another node (this one drains). The viewer, still attached
// to the source here, gets the video again through a relay, asking nothing.
func TestViewerFollowsItsSourceToAnotherNode(t *testing.T) {
	b := newBench(t)
	cam := testkit.StartRTSPCamera(t, testkit.RTSPCameraParams{})
	s1, s2 := b.startSFU("sfu-1"), b.startSFU("sfu-2")
	drain := func(s *sfuNode, on bool) {
		var st struct{ Draining bool }
		if code := b.api(http.MethodPost, s.url+"/v1/cluster", map[string]bool{"draining": on}, &st); code != http.StatusOK || st.Draining != on {
			t.Fatalf("drain %s %v: %d", s.name, on, code)
		}
	}
	drain(s2, true)
	list := fmt.Sprintf("[{name: cam1, url: %q, transport: tcp}]", cam.URL("cam1"))
	inA := b.startIngest("ingest-a", list)
	testkit.WaitFor(t, 20*time.Second, "cam1 published to sfu-1", func() bool {
		relay, live := b.sourceOn(s1, "cam1")
		return live && relay == ""
	})
	inB := b.startIngest("ingest-b", list)
	testkit.WaitFor(t, 20*time.Second, "ingest-b standing by", func() bool { return b.states(inB)["cam1"].State == "standby" })
	_, got := b.watch(s1, "cam1")
	testkit.WaitFor(t, 10*time.Second, "the viewer on sfu-1 receiving cam1", func() bool { return got.Load() > 20 })

	drain(s2, false)
	drain(s1, true)
	testkit.WaitFor(t, 10*time.Second, "ingest-b seeing sfu-1 draining", func() bool {
		var st struct {
			Nodes []struct {
				Name     string `json:"name"`
				Draining bool   `json:"draining"`
			} `json:"nodes"`
		}
		b.api(http.MethodGet, inB.api+"/v1/cluster", nil, &st)
		return slices.ContainsFunc(st.Nodes, func(n struct {
			Name     string `json:"name"`
			Draining bool   `json:"draining"`
		}) bool {
			return n.Name == "sfu-1" && n.Draining
		})
	})
	_ = inA.Signal(syscall.SIGKILL)
	<-inA.Done()
	killed := time.Now()
	before := got.Load()
	testkit.WaitFor(t, 20*time.Second, "cam1 published to sfu-2 by ingest-b", func() bool {
		relay, live := b.sourceOn(s2, "cam1")
		return live && relay == ""
	})
	testkit.WaitFor(t, 20*time.Second, "the viewer on sfu-1 receiving cam1 again", func() bool { return got.Load() > before+20 })
	if relay, _ := b.sourceOn(s1, "cam1"); relay != "sfu-2" {
		t.Errorf("cam1 on sfu-1 is relayed from %q; want sfu-2", relay)
	}
	t.Logf("ingest killed, its camera published to another node → the viewer attached here has video again after %s", time.Since(killed).Round(time.Millisecond))
}
