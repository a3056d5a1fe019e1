package sfu

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/stream"
	"fieldvideo/internal/unit"
	"fieldvideo/internal/whip"
)

// A node of a cluster serves viewers of a source published on another SFU
// node by relaying it: one WHEP session from the node that has the source,
// fed into a local source as a publisher's would be, however many viewers
// watch it here. The relay follows the source when it moves to another node
// (its node died, ingest published it elsewhere), with the local viewers
// staying attached, and ends when no one has watched it for relayIdle.

const (
	// relayIdle: a relay nobody watches ends after this long.
	relayIdle = 10 * time.Second
	// relayWait bounds a viewer's wait for a new relay to have the source.
	relayWait = 5 * time.Second
)

// sourceRelay pulls one source from another node.
type sourceRelay struct {
	name  string
	ready chan struct{} // closed when the source first has the relay's tracks
	once  sync.Once
	done  chan struct{}
}

// errRelayIdle ends a relay's session when nobody watches it.
var errRelayIdle = errors.New("nobody watches the source here")

// awaitRelay makes sure the source called name is relayed from the node
// that publishes it and waits (up to relayWait) until it is live here. It
// reports false when no node of the cluster publishes it.
func (s *Server) awaitRelay(ctx context.Context, name string) bool {
	if s.p.Locate == nil {
		return false
	}
	s.mu.Lock()
	r := s.relays[name]
	if r == nil {
		if node, _ := s.p.Locate(name, ""); node == "" {
			s.mu.Unlock()
			return false
		}
		r = &sourceRelay{name: name, ready: make(chan struct{}), done: make(chan struct{})}
		s.relays[name] = r
		go s.runRelay(r)
	}
	s.mu.Unlock()
	t := time.NewTimer(relayWait)
	defer t.Stop()
	select {
	case <-r.ready:
		return true
	case <-r.done:
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// withRemote adds to list the sources c may view that other nodes publish
// and that are not live here, with the tags the other nodes hold of them: a
// viewer gets them relayed.
func (s *Server) withRemote(list []SourceInfo, c *auth.Claims, tags map[string]SourceTags) []SourceInfo {
	if s.p.Remote == nil {
		return list
	}
	here := map[string]bool{}
	for _, in := range list {
		if in.State == "live" {
			here[in.Name] = true
		}
	}
	for name, node := range s.p.Remote() {
		if here[name] || !(c.CanView(name) || c.CanOperate()) {
			continue
		}
		in := SourceInfo{Name: name, State: "live", Relay: node, Tracks: []TrackInfo{}}
		if i := slices.IndexFunc(list, func(in SourceInfo) bool { return in.Name == name }); i >= 0 {
			// offline here: what it said here still counts (the other nodes' tags are in it).
			old := list[i]
			in.Reporter, in.Kind, in.Incident, in.Note, in.Position, in.labelled = old.Reporter, old.Kind, old.Incident, old.Note, old.Position, old.labelled
			list = slices.Delete(list, i, i+1)
		}
		addTags(&in, tags[name])
		list = append(list, in)
	}
	return list
}

// keepRelayed relays, every half second, each source here that has viewers
// but no publisher, or one whose connection is down (ICE disconnected, not
// yet failed), when another node publishes it: its publisher (an ingest)
// died and another published it elsewhere, and the viewers here stay
// attached to the source, asking nothing new.
func (s *Server) keepRelayed(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.done:
			return
		case <-t.C:
		}
		var remote map[string]string
		s.mu.Lock()
		var orphans []string
		var stale []*publisher
		for name, src := range s.sources {
			if len(src.viewers) == 0 || s.relays[name] != nil {
				continue
			}
			p := src.pub.Load()
			switch {
			case p == nil:
				orphans = append(orphans, name)
			case p.relay == "" && p.ss.pc.ConnectionState() == webrtc.PeerConnectionStateDisconnected:
				if remote == nil {
					remote = s.p.Remote()
				}
				if remote[name] != "" {
					stale = append(stale, p)
					orphans = append(orphans, name)
				}
			}
		}
		s.mu.Unlock()
		for _, p := range stale {
			p.ss.close("its publisher is out of reach and another node publishes the source")
		}
		for _, name := range orphans {
			go s.awaitRelay(ctx, name)
		}
	}
}

// runRelay keeps the source relayed while anyone watches it here.
func (s *Server) runRelay(r *sourceRelay) {
	defer close(r.done)
	defer func() {
		s.mu.Lock()
		if s.relays[r.name] == r {
			delete(s.relays, r.name)
		}
		s.mu.Unlock()
	}()
	backoff := 100 * time.Millisecond
	watched := time.Now()
	lost := ""
	for {
		if s.publishedHere(r.name) {
			return // a publisher here took the source: no relay needed
		}
		if node, base := s.p.Locate(r.name, lost); base != "" {
			start := time.Now()
			err := s.relayOnce(r, node, base)
			if errors.Is(err, errRelayIdle) {
				return
			}
			s.log.Warn("relay ended; following the source", "source", r.name, "from", node, "reason", err)
			lost = node
			if time.Since(start) > 10*time.Second {
				backoff = 100 * time.Millisecond
			}
		}
		if s.viewersOf(r.name) > 0 {
			watched = time.Now()
		} else if time.Since(watched) > relayIdle {
			return
		}
		select {
		case <-s.done:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// publishedHere tells whether a publisher (not a relay) feeds the source
// called name here.
func (s *Server) publishedHere(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	src := s.sources[name]
	if src == nil {
		return false
	}
	p := src.pub.Load()
	return p != nil && p.relay == ""
}

// viewersOf counts the viewers of the source called name here.
func (s *Server) viewersOf(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if src := s.sources[name]; src != nil {
		return len(src.viewers)
	}
	return 0
}

// relayOnce views the source on the node at base and publishes it here
// until that session ends: the node is lost, the source left it, a
// publisher took the name here, or nobody watches.
func (s *Server) relayOnce(r *sourceRelay, node, base string) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	pc, err := s.relayAPI.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return err
	}
	lost := make(chan struct{})
	var lostOnce sync.Once
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed, webrtc.PeerConnectionStateDisconnected:
			lostOnce.Do(func() { close(lost) })
		}
	})
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			pc.Close()
			return err
		}
	}
	offer, err := pc.CreateOffer(nil)
	if err == nil {
		gathered := webrtc.GatheringCompletePromise(pc)
		if err = pc.SetLocalDescription(offer); err == nil {
			<-gathered
		}
	}
	if err != nil {
		pc.Close()
		return err
	}
	client := &whip.Client{TokenSource: s.p.RelayToken}
	octx, ocancel := context.WithTimeout(ctx, 5*time.Second)
	res, err := client.Offer(octx, whip.Endpoint(base, r.name, "whep"), pc.LocalDescription().SDP)
	ocancel()
	if err != nil {
		pc.Close()
		return fmt.Errorf("WHEP offer to %s: %w", node, err)
	}
	defer func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = client.Delete(dctx, res)
		dcancel()
	}()
	p, err := s.relayPublisher(pc, res.Answer)
	if err != nil {
		pc.Close()
		return fmt.Errorf("answer of %s: %w", node, err)
	}
	ss := &session{id: newID(), kind: "relay", source: r.name, who: "relay from " + node, role: "relay", remote: base,
		pc: pc, s: s, connected: make(chan struct{})}
	p.ss, p.who, p.relay = ss, ss.who, node
	src, err := s.attachRelay(r.name, p)
	if err != nil {
		ss.close(err.Error())
		return err
	}
	done := make(chan struct{})
	ss.onClose = func() {
		close(done)
		s.mu.Lock()
		defer s.mu.Unlock()
		if src.pub.CompareAndSwap(p, nil) {
			src.since = time.Now()
		}
	}
	pc.OnTrack(func(t *webrtc.TrackRemote, rcv *webrtc.RTPReceiver) { p.read(t, rcv) })
	go p.up.SendKeyframeRequests(done)
	r.once.Do(func() { close(r.ready) })
	s.log.Info("relaying", "source", r.name, "from", node, "tracks", len(p.tracks))

	check := time.NewTicker(time.Second)
	defer check.Stop()
	watched := time.Now()
	for {
		select {
		case <-lost:
			ss.close("the node relayed from is lost")
			return fmt.Errorf("connection to %s lost", node)
		case <-done:
			return errors.New("the relay session was closed")
		case <-ctx.Done():
			ss.close("shutting down")
			return ctx.Err()
		case <-check.C:
		}
		if src.pub.Load() != p {
			ss.close("replaced by a publisher here")
			return errors.New("a publisher took the source here")
		}
		// the origin lost its publisher and another node has the source now
		// (its ingest died and another published it elsewhere): follow it
		if remote := s.p.Remote(); remote[r.name] != "" && remote[r.name] != node && !s.p.Publishes(node, r.name) {
			ss.close("the source moved to " + remote[r.name])
			return fmt.Errorf("the source moved to %s", remote[r.name])
		}
		if s.viewersOf(r.name) > 0 {
			watched = time.Now()
		} else if time.Since(watched) > relayIdle {
			ss.close("nobody watches")
			return errRelayIdle
		}
	}
}

// relayPublisher applies the other node's answer and returns the tracks it
// sends, as a publisher of them.
func (s *Server) relayPublisher(pc *webrtc.PeerConnection, answer string) (*publisher, error) {
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return nil, err
	}
	parsed, err := whip.ParseOffer([]byte(answer))
	if err != nil {
		return nil, err
	}
	p := &publisher{mids: map[string]int{}}
	for _, tr := range pc.GetTransceivers() {
		m := mediaByMid(parsed.MediaDescriptions, tr.Mid())
		if m == nil || m.MediaName.Port.Value == 0 {
			continue
		}
		c, ok := whip.Preferred(tr.Kind(), whip.Offered(m))
		if !ok {
			continue
		}
		p.mids[tr.Mid()] = len(p.tracks)
		p.tracks = append(p.tracks, whip.TrackFor(tr.Kind(), c))
	}
	if len(p.tracks) == 0 {
		return nil, errors.New("no track it sends is one we take")
	}
	p.up = whip.NewUplink(pc, len(p.tracks))
	return p, nil
}

// attachRelay makes p the source's publisher, unless someone publishes it
// here: a publisher whose connection is down (its ingest died; ICE has not
// failed yet) gives way.
func (s *Server) attachRelay(name string, p *publisher) (*source, error) {
	s.mu.Lock()
	src := s.sources[name]
	if src != nil && src.live() {
		old := src.pub.Load()
		s.mu.Unlock()
		if old.relay != "" || old.ss.pc.ConnectionState() == webrtc.PeerConnectionStateConnected {
			return nil, fmt.Errorf("source %q is published here", name)
		}
		old.ss.close("its publisher is out of reach and another node publishes the source")
		s.mu.Lock()
		src = s.sources[name]
		if src != nil && src.live() {
			s.mu.Unlock()
			return nil, fmt.Errorf("source %q was published here meanwhile", name)
		}
	}
	defer s.mu.Unlock()
	return s.attach(src, name, p), nil
}

// attach makes p the publisher of the source called name (src, or a new
// one when nil) and returns the source. Called with s.mu held.
func (s *Server) attach(src *source, name string, p *publisher) *source {
	if src == nil {
		src = &source{name: name, viewers: map[*viewer]struct{}{}}
		s.sources[name] = src
	}
	s.feed(src, p.tracks)
	p.src = src
	src.pub.Store(p)
	src.since = time.Now()
	return src
}

// feed gives src a stream of tracks: a new one, or its own restarted (its
// viewers stay attached). Called with s.mu held.
func (s *Server) feed(src *source, tracks []unit.Track) {
	if src.stream == nil {
		src.stream = stream.New(stream.Params{
			Name: src.name, Tracks: tracks, GOPCacheUnits: s.p.Conf.Stream.GOPCacheUnits,
			GOPCacheBytes: s.p.Conf.Stream.GOPCacheBytes, KeyframeInterval: s.p.Conf.Stream.KeyframeInterval,
			RequestKeyframe: src.requestKeyframe,
		})
		return
	}
	src.stream.Restart(tracks)
}
