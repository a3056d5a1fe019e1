package main

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"fieldvideo/internal/cluster"
	"fieldvideo/internal/conf"
	"fieldvideo/internal/stream"
	"fieldvideo/internal/whip"
)

// uplinks publishes every live source to the SFU by WHIP: one publisher per
// source, started when the source goes live and stopped (its session deleted
// on the SFU) when it goes offline. In a cluster each source goes to the
// SFU node place chooses, and to another when that one fails.
type uplinks struct {
	base      string
	cluster   *cluster.Cluster // nil: base only
	client    *whip.Client
	api       *webrtc.API
	reconnect conf.Reconnect
	queue     int
	log       *slog.Logger

	mu     sync.Mutex
	run    map[string]*uplink
	placed map[string][]time.Time // recent placements by SFU node
	wg     sync.WaitGroup
}

type uplink struct {
	pub    *whip.Publisher
	cancel context.CancelFunc
	done   chan struct{}
}

func (u *uplinks) live(name string, st *stream.Stream) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.run == nil {
		u.run = map[string]*uplink{}
	}
	if old := u.run[name]; old != nil {
		old.cancel()
	}
	var place func(string) string
	if u.cluster != nil {
		place = func(failed string) string { return u.place(name, failed) }
	}
	endpoint := ""
	if u.base != "" {
		endpoint = whip.Endpoint(u.base, name, "whip")
	}
	pub, err := whip.NewPublisher(whip.PublisherParams{
		Endpoint: endpoint, Place: place, Client: u.client, API: u.api, Stream: st,
		QueueSize: u.queue, MinBackoff: u.reconnect.Min, MaxBackoff: u.reconnect.Max, Log: u.log.With("source", name),
	})
	if err != nil {
		u.log.Error("cannot publish source to the SFU", "source", name, "err", err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &uplink{pub: pub, cancel: cancel, done: make(chan struct{})}
	u.run[name] = l
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		defer close(l.done)
		pub.Run(ctx)
	}()
}

// placeWindow is how long a placement counts against its node: until the
// node's heartbeats show the source.
const placeWindow = 3 * time.Second

// place chooses the SFU node that source name is published to: among the
// cluster's SFU nodes taking work and below their max_sources, the least
// loaded (sources, counting those
// this ingest placed there too recently to be in the node's heartbeat; then
// CPU and viewers), another than the one whose attempt failed when there is
// another. It returns the WHIP URL, or "" when the cluster lists no SFU
// (uplink.url is used then).
func (u *uplinks) place(name, failed string) string {
	now := time.Now()
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.placed == nil {
		u.placed = map[string][]time.Time{}
	}
	best, bestScore := "", 0.0
	var bestNode string
	for _, n := range u.cluster.Nodes() {
		if n.Role != "sfu" || n.Draining || n.URL == "" {
			continue
		}
		recent := u.placed[n.Name][:0]
		for _, at := range u.placed[n.Name] {
			if now.Sub(at) < placeWindow {
				recent = append(recent, at)
			}
		}
		u.placed[n.Name] = recent
		if n.Load.MaxSources > 0 && n.Load.Sources+len(recent) >= n.Load.MaxSources {
			continue // full
		}
		ep := whip.Endpoint(n.URL, name, "whip")
		score := float64(n.Load.Sources+len(recent)) + 4*n.Load.CPU + float64(n.Load.Viewers)/50
		if ep == failed {
			score += 1e6
		}
		if best == "" || score < bestScore {
			best, bestScore, bestNode = ep, score, n.Name
		}
	}
	if best != "" {
		u.placed[bestNode] = append(u.placed[bestNode], now)
	}
	return best
}

func (u *uplinks) offline(name string) {
	u.mu.Lock()
	l := u.run[name]
	delete(u.run, name)
	u.mu.Unlock()
	if l != nil {
		l.cancel()
		<-l.done
	}
}

// forgetTimeout bounds asking an SFU to drop a removed camera's source.
const forgetTimeout = 10 * time.Second

// forget asks the SFU (every SFU node of a cluster) to take source name off
// its list once the camera is removed for good; its uplink has ended by then.
func (u *uplinks) forget(name string) {
	var bases []string
	if u.base != "" {
		bases = append(bases, u.base)
	}
	if u.cluster != nil {
		for _, n := range u.cluster.Nodes() {
			if n.Role == "sfu" && n.URL != "" && !slices.Contains(bases, n.URL) {
				bases = append(bases, n.URL)
			}
		}
	}
	for _, b := range bases {
		ctx, cancel := context.WithTimeout(context.Background(), forgetTimeout)
		if err := u.client.Forget(ctx, b, name); err != nil {
			u.log.Warn("the SFU still lists a removed camera", "source", name, "sfu", b, "err", err)
		}
		cancel()
	}
}

// states returns each uplink's state by source name.
func (u *uplinks) states() map[string]whip.PublisherState {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make(map[string]whip.PublisherState, len(u.run))
	for name, l := range u.run {
		out[name] = l.pub.State()
	}
	return out
}

// close stops every publisher and waits for their sessions to end.
func (u *uplinks) close(timeout time.Duration) {
	u.mu.Lock()
	for _, l := range u.run {
		l.cancel()
	}
	u.mu.Unlock()
	done := make(chan struct{})
	go func() { u.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
	}
}
