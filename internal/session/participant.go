package session

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor/pkg/cc"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	ratelimit "golang.org/x/time/rate"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/stream"
	"fieldvideo/internal/whip"
)

// participant is one member of a room. Its own goroutine owns its signalling
// connection (which can be replaced when the client resumes), its two peer
// connections — publish, where the client offers, and subscribe, where the
// server offers, so renegotiations never collide — its published tracks and
// its subscriptions. Pion callbacks and the room reach it through channels.
type participant struct {
	m       *Manager
	room    *Room
	id      string
	name    string
	session string
	remote  string
	claims  *auth.Claims
	log     *slog.Logger

	in      chan inbound
	connEnd chan *conn
	events  chan any
	media   chan any
	attach  chan attachReq
	kicked  chan ending
	done    chan struct{}

	// reporters are the subscriptions, for the sender reports' goroutine; set by the
	// participant goroutine when they change.
	reporters atomic.Pointer[[]whip.Reporter]

	// Owned by the participant goroutine.
	c       *conn
	autoSub bool
	// newSections: the client cannot take back a media section made inactive.
	newSections bool
	pubPC       *webrtc.PeerConnection
	subPC       *webrtc.PeerConnection
	batch       *whip.Batch // the subscribe connection's sends; nil without Params.Media
	bwe         cc.BandwidthEstimator
	twcc        bool               // the subscriber sends transport-wide feedback
	pending     map[string]pubMeta // mid → what the offer said it sends
	ups         map[string]*uptrack
	downs       map[string]*downtrack
	subPending  bool // a subscribe offer awaits its answer
	subDirty    bool // subscriptions changed meanwhile
	subRestart  bool
	subUp       bool
	pubFailed   bool
	subFailed   bool
	lostSince   time.Time
	lostReason  string
	// requests bounds the requests that make the server work (RequestRate).
	requests *ratelimit.Limiter
	// pubMade and subMade are when each connection was made, until it
	// first connects (zero then): one not up within the resume window ends
	// the participant, as a lost one does.
	pubMade, subMade time.Time
	sampledAt        time.Time
	probeUntil       time.Time
	nextProbe        time.Time
	probeBase        int
}

type inbound struct {
	c   *conn
	req Request
}

type attachReq struct {
	c       *conn
	claims  *auth.Claims
	autoSub bool
	joinID  int64
	rep     joinReply
}

type pubMeta struct {
	source string
	rids   []string
}

// Media events, from pion's goroutines and stream readers.
type (
	trackArrived struct {
		t   *webrtc.TrackRemote
		rcv *webrtc.RTPReceiver
	}
	pcState struct {
		pc    string
		state webrtc.PeerConnectionState
	}
	downEnded struct {
		dt  *downtrack
		err error
	}
)

func newParticipant(m *Manager, room *Room, c *auth.Claims, j *Join, sc *conn) *participant {
	id := participantID(c)
	name := j.Name
	if name == "" {
		name = id
	}
	p := &participant{
		m: m, room: room, id: id, name: name, session: newID(), remote: sc.remote, claims: c,
		in: make(chan inbound, 16), connEnd: make(chan *conn, 1), events: make(chan any, 1024),
		media: make(chan any, 256), attach: make(chan attachReq, 1), kicked: make(chan ending, 1),
		done: make(chan struct{}), c: sc, autoSub: j.AutoSubscribe, newSections: j.NewSections,
		pending: map[string]pubMeta{}, ups: map[string]*uptrack{}, downs: map[string]*downtrack{},
		requests: ratelimit.NewLimiter(RequestRate, RequestBurst),
	}
	p.log = m.log.With("room", room.name, "participant", id)
	return p
}

func (p *participant) info() ParticipantInfo {
	return ParticipantInfo{ID: p.id, Name: p.name, Role: string(p.claims.Role)}
}

// deliver queues a room event without blocking; a participant too slow to
// take its events is removed.
func (p *participant) deliver(msg any) {
	select {
	case p.events <- msg:
	default:
		p.kick("too many events queued: the connection is too slow")
	}
}

// ending is why a participant is removed, and where its room went when it
// moved to another node (the client joins there).
type ending struct {
	reason string
	moved  string // the room's WebSocket URL on its new home
}

// kick ends the participant with a reason; it never blocks.
func (p *participant) kick(reason string) {
	select {
	case p.kicked <- ending{reason: reason}:
	default:
	}
}

// move ends the participant because its room now lives at url (another
// node): it is told so instead of bye, and joins there.
func (p *participant) move(url, reason string) {
	select {
	case p.kicked <- ending{reason: reason, moved: url}:
	default:
	}
}

// attachConn hands a resumed connection over; false if the participant
// has ended.
func (p *participant) attachConn(a attachReq) bool {
	select {
	case <-p.done:
		return false
	default:
	}
	select {
	case p.attach <- a:
		return true
	default:
		return false
	}
}

// post hands a media event to the participant goroutine.
func (p *participant) post(ev any) {
	select {
	case p.media <- ev:
	case <-p.done:
	}
}

func (p *participant) readFrom(c *conn) {
	c.readLoop(func(r Request) bool {
		select {
		case p.in <- inbound{c, r}:
			return true
		case <-p.done:
			return false
		}
	})
	select {
	case p.connEnd <- c:
	case <-p.done:
	}
}

func (p *participant) sendJoined(id int64, resumed bool, rep joinReply) {
	others := rep.others
	if others == nil {
		others = []ParticipantInfo{}
	}
	p.c.send(Joined{
		Header: Header{Type: TypeJoined, ID: id}, Room: p.room.name, Session: p.session, Resumed: resumed,
		Participant: p.info(), Grants: Grants{Publish: p.claims.RoomPublish, Subscribe: p.claims.RoomSubscribe},
		Participants: others, Tracks: rep.tracks, ICEServers: p.m.iceServers(p.claims),
		Recorded: p.m.p.Recorder != nil && p.m.p.Conf.Record,
	})
}

// run serves the participant until it leaves or is removed.
func (p *participant) run(joinID int64, rep joinReply) {
	// The participant lasts as long as its token: it is removed when the
	// token expires or is revoked (a resume or a renew with a newer token
	// extends it).
	bound := p.claims
	unbind := p.m.p.Verifier.Bind(bound, p.kick)
	defer func() { unbind() }()
	go p.readFrom(p.c)
	p.sendJoined(joinID, false, rep)
	for _, t := range rep.tracks {
		p.onEvent(autoSubscribe{t})
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	p.sampledAt = time.Now()
	for {
		select {
		case in := <-p.in:
			if in.c != p.c {
				continue
			}
			if m, ok := in.req.(*Renew); ok {
				c, err := p.renew(m)
				if err != nil {
					p.c.send(errorMessage(m.ID, err))
					continue
				}
				if later(c, bound) {
					unbind()
					bound = c
					unbind = p.m.p.Verifier.Bind(bound, p.kick)
				}
				r := Renewed{Header: Header{Type: TypeRenewed, ID: m.ID}}
				if bound.ExpiresAt != nil {
					r.Expires = &bound.ExpiresAt.Time
				}
				p.c.send(r)
				continue
			}
			if !p.handle(in.req) {
				return
			}
		case c := <-p.connEnd:
			if c != p.c {
				continue
			}
			if c.normal {
				p.end("left (closed the connection)")
				return
			}
			p.setLost("signalling connection lost")
		case a := <-p.attach:
			p.c.close()
			p.c, p.autoSub = a.c, a.autoSub
			if a.claims != nil && later(a.claims, bound) {
				unbind()
				bound = a.claims
				unbind = p.m.p.Verifier.Bind(bound, p.kick)
			}
			go p.readFrom(a.c)
			p.sendJoined(a.joinID, true, a.rep)
			if p.subPending && p.subPC != nil && p.subPC.LocalDescription() != nil {
				p.c.send(Offer{Header: Header{Type: TypeOffer}, PC: PCSubscribe, SDP: p.subPC.LocalDescription().SDP})
			}
			p.checkLost()
			p.log.Info("resumed")
		case msg := <-p.events:
			p.onEvent(msg)
		case ev := <-p.media:
			p.onMedia(ev)
		case e := <-p.kicked:
			p.finish(e)
			return
		case now := <-tick.C:
			p.allocate(now)
			if !p.lostSince.IsZero() && now.Sub(p.lostSince) > p.m.p.Conf.ResumeWindow {
				p.end(p.lostReason + fmt.Sprintf("; not back within %s", p.m.p.Conf.ResumeWindow))
				return
			}
			if why := p.neverUp(now); why != "" {
				p.end(why)
				return
			}
		}
	}
}

func (p *participant) setLost(reason string) {
	if p.lostSince.IsZero() {
		p.lostSince, p.lostReason = time.Now(), reason
		p.log.Info("connection lost; waiting for the client to resume", "reason", reason)
	}
}

// neverUp says which media connection has not connected within the resume
// window of being made (an offer never answered, a path that never
// worked), or "".
func (p *participant) neverUp(now time.Time) string {
	w := p.m.p.Conf.ResumeWindow
	for _, c := range []struct {
		made time.Time
		pc   string
	}{{p.pubMade, PCPublish}, {p.subMade, PCSubscribe}} {
		if !c.made.IsZero() && now.Sub(c.made) > w {
			return fmt.Sprintf("media connection (%s) not up within %s of its offer (calls.resume_window)", c.pc, w)
		}
	}
	return ""
}

// checkLost clears the lost state once signalling and media are back.
func (p *participant) checkLost() {
	select {
	case <-p.c.done:
		return
	default:
	}
	if !p.pubFailed && !p.subFailed {
		p.lostSince = time.Time{}
	}
}

// RequestRate and RequestBurst bound the requests that make the server
// work (offers, subscriptions, mutes, ICE restarts) one participant may
// send: past them a request is refused with CodeRateLimited, not served (nor
// audited), so one token cannot keep a core busy or fill the audit log.
const (
	RequestRate  = 10
	RequestBurst = 40
)

// handle serves one client request; false ends the participant.
func (p *participant) handle(r Request) bool {
	switch r.(type) {
	case *Offer, *Subscribe, *Unsubscribe, *Mute, *RestartICE:
		if !p.requests.Allow() {
			p.c.send(errorMessage(r.RequestID(), errorf(CodeRateLimited,
				"more than %d requests a second (offers, subscriptions, mutes, ICE restarts); slow down and send it again", RequestRate)))
			return true
		}
	}
	var err error
	switch m := r.(type) {
	case *Join:
		err = errorf(CodeConflict, "already joined room %q; open a new connection to join another room", p.room.name)
	case *Offer:
		err = p.onOffer(m)
	case *Answer:
		err = p.onAnswer(m)
	case *Candidate:
		err = p.onCandidate(m)
	case *Subscribe:
		err = p.subscribe(m.ID, m.Track, m.Pinned)
	case *Unsubscribe:
		if p.downs[m.Track] == nil {
			err = errorf(CodeNotFound, "you are not subscribed to %q", m.Track)
		} else {
			p.unsubscribe(m.ID, m.Track, "unsubscribed")
		}
	case *Mute:
		reply := make(chan error, 1)
		if call(p.room, p.room.chMute, muteReq{p: p, track: m.Track, muted: m.Muted, reply: reply}) {
			err = <-reply
		}
	case *RestartICE:
		if p.subPC == nil {
			err = errorf(CodeConflict, "there is no subscribe connection to restart yet")
		} else {
			p.negotiate(true)
		}
	case *Leave:
		p.end("left")
		return false
	case *Ping:
		p.c.send(Header{Type: TypePong, ID: m.ID})
	}
	if err != nil {
		p.c.send(errorMessage(r.RequestID(), err))
	}
	return true
}

func (p *participant) onCandidate(m *Candidate) error {
	pc := p.pubPC
	if m.PC == PCSubscribe {
		pc = p.subPC
	}
	if pc == nil {
		return errorf(CodeConflict, "no %s connection yet: send its offer or answer first", m.PC)
	}
	if m.Candidate == "" {
		return nil
	}
	// The candidate is checked, not used: the client's own connectivity
	// checks tell its addresses (whip.WithoutCandidates).
	if _, err := ice.UnmarshalCandidate(m.Candidate); err != nil {
		return errorf(CodeBadRequest, "candidate %q: %v", m.Candidate, err)
	}
	return nil
}

func (p *participant) onAnswer(m *Answer) error {
	if !p.subPending {
		return errorf(CodeConflict, "no subscribe offer is waiting for an answer")
	}
	p.subPending = false
	if err := p.subPC.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: whip.WithoutCandidates(m.SDP)}); err != nil {
		p.subDirty = true
		return errorf(CodeBadRequest, "subscribe answer rejected: %v", err)
	}
	p.twcc = strings.Contains(m.SDP, sdp.TransportCCURI)
	p.startDowns()
	if p.subDirty {
		restart := p.subRestart
		p.subDirty, p.subRestart = false, false
		p.negotiate(restart)
	}
	return nil
}

// autoSubscribe is a track present at join, for auto-subscription.
type autoSubscribe struct{ track TrackInfo }

func (p *participant) onEvent(msg any) {
	if a, ok := msg.(autoSubscribe); ok {
		msg = TrackEvent{Header: Header{Type: TypeTrackPublished}, Track: a.track}
	} else {
		p.c.send(msg)
	}
	ev, ok := msg.(TrackEvent)
	if !ok {
		return
	}
	switch ev.Type {
	case TypeTrackUnpublished:
		if p.downs[ev.Track.ID] != nil {
			p.unsubscribe(0, ev.Track.ID, ev.Reason)
		}
	case TypeTrackPublished:
		if p.autoSub && p.claims.RoomSubscribe && ev.Track.Participant != p.id && ev.Track.Source != SourceField {
			if err := p.subscribe(0, ev.Track.ID, false); err != nil {
				p.c.send(errorMessage(0, err))
			}
		}
	}
}

func (p *participant) onMedia(ev any) {
	switch ev := ev.(type) {
	case trackArrived:
		p.onTrack(ev.t, ev.rcv)
	case pcState:
		failed := ev.state == webrtc.PeerConnectionStateFailed
		up := ev.state == webrtc.PeerConnectionStateConnected
		if ev.pc == PCPublish {
			p.pubFailed = failed
			if up {
				p.pubMade = time.Time{}
			}
		} else {
			if up {
				p.subMade = time.Time{}
			}
			p.subFailed = failed
			if ev.state == webrtc.PeerConnectionStateConnected {
				p.subUp = true
				p.startDowns()
			}
		}
		if failed {
			p.setLost("media connection (" + ev.pc + ") failed")
		} else if ev.state == webrtc.PeerConnectionStateConnected {
			p.checkLost()
		}
	case downEnded:
		if p.downs[ev.dt.pub.info.ID] == ev.dt {
			reason := "the track ended"
			if errors.Is(ev.err, stream.ErrTracksChanged) {
				reason = "the source changed its tracks; subscribe again"
			}
			p.unsubscribe(0, ev.dt.pub.info.ID, reason)
		}
	}
}

// end removes the participant: it leaves the room (its tracks are
// unpublished, which ends their subscribers' readers), its subscriptions
// stop, its connections close.
func (p *participant) end(reason string) { p.finish(ending{reason: reason}) }

func (p *participant) finish(e ending) {
	reason := e.reason
	close(p.done)
	defer p.m.exit(p.id, p.room.name)
	reply := make(chan struct{})
	if call(p.room, p.room.chLeave, leaveReq{p: p, reason: reason, reply: reply}) {
		<-reply
	}
	for _, dt := range p.downs {
		dt.stop()
	}
	for _, up := range p.ups {
		up.close()
	}
	for _, pc := range []*webrtc.PeerConnection{p.pubPC, p.subPC} {
		if pc != nil {
			_ = pc.Close()
		}
	}
	if e.moved != "" {
		p.c.send(Moved{Header: Header{Type: TypeMoved}, URL: e.moved, Reason: reason})
	} else {
		p.c.send(Bye{Header: Header{Type: TypeBye}, Reason: reason})
	}
	p.c.close()
	p.log.Info("left", "reason", reason, "moved_to", e.moved)
}

// newPC creates one of the participant's peer connections.
func (p *participant) newPC(name string) (*webrtc.PeerConnection, cc.BandwidthEstimator, error) {
	pc, bwe, err := p.m.p.API.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, nil, errorf(CodeInternal, "cannot create the %s connection: %v", name, err)
	}
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) { p.post(pcState{pc: name, state: s}) })
	return pc, bwe, nil
}

// localDescription sets d as the local description and waits for ICE
// gathering, so the SDP sent carries every candidate of the server.
func localDescription(pc *webrtc.PeerConnection, d webrtc.SessionDescription) (string, error) {
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(d); err != nil {
		return "", err
	}
	select {
	case <-gathered:
	case <-time.After(5 * time.Second):
		return "", errors.New("ICE gathering did not finish within 5 s")
	}
	return pc.LocalDescription().SDP, nil
}
