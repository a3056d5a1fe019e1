package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"fieldvideo/internal/conf"
	"fieldvideo/internal/stream"
	"fieldvideo/internal/whip"
)

// uplinks publishes every live source to the SFU by WHIP: one publisher per
// source, started when the source goes live and stopped (its session deleted
// on the SFU) when it goes offline.
type uplinks struct {
	base      string
	client    *whip.Client
	api       *webrtc.API
	reconnect conf.Reconnect
	queue     int
	log       *slog.Logger

	mu  sync.Mutex
	run map[string]*uplink
	wg  sync.WaitGroup
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
	pub, err := whip.NewPublisher(whip.PublisherParams{
		Endpoint: whip.Endpoint(u.base, name, "whip"), Client: u.client, API: u.api, Stream: st,
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
