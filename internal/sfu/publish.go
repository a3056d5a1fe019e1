package sfu

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/pion/webrtc/v4"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/conf"
	"fieldvideo/internal/stream"
	"fieldvideo/internal/unit"
	"fieldvideo/internal/whip"
)

// publisher is the WHIP session currently feeding a source.
type publisher struct {
	ss     *session
	src    *source
	who    string
	tracks []unit.Track
	mids   map[string]int // media section id → track index
	up     *whip.Uplink
	// stopRecording ends the recording of this publisher's session; nil
	// when it is not recorded here.
	stopRecording func()
	// relay names the node a relay publisher views the source on; empty
	// for a WHIP publisher.
	relay string
}

// sameOwner reports whether c is the token of this publisher's owner: the
// same subject (or, for tokens without one, the same token).
func (p *publisher) sameOwner(c *auth.Claims) bool {
	if p == nil {
		return false
	}
	if p.ss.owner != "" {
		return c.Subject == p.ss.owner
	}
	return p.ss.tokenID != "" && c.ID == p.ss.tokenID
}

// silentAfter is how long a publisher may go unheard before another may
// take its source: ICE's disconnected timeout.
const silentAfter = 3 * time.Second

// silent tells whether the publisher's peer stopped answering: its ICE
// connection is disconnected (nothing heard from it for silentAfter) or
// failed, or it has not connected within silentAfter (a publisher whose
// media cannot get through, asking again and again, must not hold the
// source). Another camera publisher may then take the source over (a
// camera's other ingest after this one died on another host), rather than
// wait until the session fails (yieldsTo).
func (p *publisher) silent() bool {
	switch p.ss.pc.ICEConnectionState() {
	case webrtc.ICEConnectionStateDisconnected, webrtc.ICEConnectionStateFailed:
		return true
	}
	select {
	case <-p.ss.connected:
		return false
	default:
		return time.Since(p.ss.created) >= silentAfter
	}
}

// yieldsTo tells whether another publisher, with token c, may take the source over
// from this one: only when this one fell silent, and both publish for a site rather
// than a person (camera tokens: a camera's ingests on two hosts, encoders). A
// responder's report or a commander's camera is theirs alone: another with a grant
// matching its name waits until its session ends.
func (p *publisher) yieldsTo(c *auth.Claims) bool {
	return p.ss.role == string(auth.RoleCamera) && c.Role == auth.RoleCamera && p.silent()
}

// publish answers a WHIP offer: POST /{source}/whip.
func (s *Server) publish(r *http.Request, name string, ev *audit.Event) (*session, string, error) {
	c, err := s.authorize(r, "whip", name)
	if c != nil {
		ev.Actor, ev.Role = c.Who(), string(c.Role)
	}
	if err != nil {
		return nil, "", err
	}
	if err := conf.CheckPublishedName(name); err != nil {
		return nil, "", whip.Errorf(http.StatusBadRequest, "%v", err)
	}
	body, err := whip.ReadBody(r, whip.ContentTypeSDP)
	if err != nil {
		return nil, "", err
	}
	offer, err := whip.ParseOffer(body)
	if err != nil {
		return nil, "", err
	}
	s.mu.Lock()
	if src := s.sources[name]; src != nil && src.live() && src.pub.Load().relay == "" && !src.pub.Load().sameOwner(c) && !src.pub.Load().yieldsTo(c) {
		since, who := src.since, src.pub.Load().who
		s.mu.Unlock()
		return nil, "", whip.Errorf(http.StatusConflict, "source %q is already being published by %s (since %s); it must DELETE its session first (a new session of the same publisher replaces its old one)", name, who, since.Format(time.RFC3339))
	}
	s.mu.Unlock()

	pc, err := s.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, "", err
	}
	ss := s.newSession("whip", name, c, r, pc)
	ev.Session = ss.id
	answer, p, err := s.negotiatePublish(r.Context(), pc, offer.MediaDescriptions, body)
	if err != nil {
		pc.Close()
		return nil, "", err
	}
	p.ss, p.who = ss, c.Who()

	// A publisher that comes back (ingest restarted, a phone reconnected)
	// replaces its own stale session at once, as it does a relay of the
	// source from another node; anyone else waits for it to end, or to fall
	// silent.
	for {
		s.mu.Lock()
		src := s.sources[name]
		if src == nil || !src.live() {
			s.mu.Unlock()
			break
		}
		old := src.pub.Load()
		s.mu.Unlock()
		if old.relay != "" {
			old.ss.close("the source is published here now")
			continue
		}
		switch {
		case old.sameOwner(c):
			old.ss.close("replaced by a new session of the same publisher")
		case old.yieldsTo(c):
			old.ss.close("its publisher fell silent; taken over by " + c.Who())
		default:
			pc.Close()
			return nil, "", whip.Errorf(http.StatusConflict, "source %q was published by %s meanwhile", name, old.who)
		}
	}
	s.mu.Lock()
	src := s.sources[name]
	if src != nil && src.live() {
		s.mu.Unlock()
		pc.Close()
		return nil, "", whip.Errorf(http.StatusConflict, "source %q was published by someone else meanwhile", name)
	}
	src = s.attach(src, name, p)
	s.sessions[ss.id] = ss
	st := src.stream
	s.mu.Unlock()

	if s.p.Recorder != nil && !c.Recorded {
		stop, err := s.p.Recorder.Record(name, st)
		if err != nil {
			s.log.Error("cannot record source", "source", name, "err", err)
		} else {
			p.stopRecording = stop
		}
	}

	done := make(chan struct{})
	ss.onClose = func() {
		close(done)
		if p.stopRecording != nil {
			p.stopRecording()
		}
		s.mu.Lock()
		var gone []*stream.Stream
		if src.pub.CompareAndSwap(p, nil) {
			st.DropCache()
			src.since = time.Now()
			src.person = ""
			if p.relay == "" && auth.Role(p.ss.role) != auth.RoleCamera {
				src.person = p.who
				gone = s.pruneLocked(p.who)
			}
		}
		s.mu.Unlock()
		for _, st := range gone {
			st.Close() // viewers still waiting for a pruned source end
		}
	}
	pc.OnTrack(func(t *webrtc.TrackRemote, rcv *webrtc.RTPReceiver) { p.read(t, rcv) })
	ss.watch()
	go p.up.SendKeyframeRequests(done)
	s.log.Info("publishing", "source", name, "who", c.Who(), "tracks", len(p.tracks), "session", ss.id)
	return ss, answer, nil
}

// negotiatePublish answers the offer with one codec per media section, the
// best of ours that the offer has, and returns the source's tracks.
func (s *Server) negotiatePublish(ctx context.Context, pc *webrtc.PeerConnection, medias []*sdpMedia, offer []byte) (string, *publisher, error) {
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: whip.WithoutCandidates(string(offer))}); err != nil {
		return "", nil, whip.Errorf(http.StatusBadRequest, "offer rejected: %v", err)
	}
	p := &publisher{mids: map[string]int{}}
	var rejected []string
	for _, tr := range pc.GetTransceivers() {
		m := mediaByMid(medias, tr.Mid())
		if m == nil {
			continue
		}
		offered := whip.Offered(m)
		c, ok := whip.Preferred(tr.Kind(), offered)
		if !ok || m.MediaName.Media != tr.Kind().String() {
			rejected = append(rejected, fmt.Sprintf("%s %v", tr.Kind(), offered))
			_ = tr.Stop()
			continue
		}
		// Answer with the offer's own payload type for the codec: ours may
		// name another profile in a browser's offer.
		pref := c
		pref.PayloadType = 0
		if err := tr.SetCodecPreferences([]webrtc.RTPCodecParameters{pref}); err != nil {
			return "", nil, err
		}
		p.mids[tr.Mid()] = len(p.tracks)
		p.tracks = append(p.tracks, whip.TrackFor(tr.Kind(), c))
	}
	if len(p.tracks) == 0 {
		return "", nil, whip.Errorf(http.StatusNotAcceptable, "no media section has a codec we take (offered: %v); video: %v, audio: %v",
			rejected, whip.Supported(webrtc.RTPCodecTypeVideo), whip.Supported(webrtc.RTPCodecTypeAudio))
	}
	p.up = whip.NewUplink(pc, len(p.tracks))
	answer, err := answer(ctx, pc)
	return answer, p, err
}

// read turns one remote track's packets into units on the source's stream.
func (p *publisher) read(t *webrtc.TrackRemote, rcv *webrtc.RTPReceiver) {
	idx, ok := -1, false
	for _, tr := range p.ss.pc.GetTransceivers() {
		if tr.Receiver() == rcv {
			idx, ok = p.mids[tr.Mid()]
			break
		}
	}
	if !ok {
		return
	}
	st := p.src.stream
	p.up.Read(t, rcv, whip.ReadParams{
		Track: idx, Desc: p.tracks[idx],
		Write: func(u *unit.Unit) {
			if p.src.pub.Load() == p { // a replaced publisher's last packets are dropped
				st.Write(u)
			}
		},
		Lost: func(n int64) { p.src.lost.Add(n) },
	})
}
