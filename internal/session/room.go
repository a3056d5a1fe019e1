package session

import (
	"errors"
	"fieldvideo/internal/auth"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/whip"
)

var errRoomClosed = errors.New("room closed")

// Room is one call: an actor goroutine owns its participants, its tracks
// and who subscribes to what. Requests arrive on channels with a reply
// channel; the room never waits on a participant (events are queued without
// blocking) nor does any I/O other than the audit log.
type Room struct {
	name string
	m    *Manager

	chJoin     chan joinReq
	chResume   chan resumeReq
	chLeave    chan leaveReq
	chPublish  chan publishReq
	chUnpub    chan unpublishReq
	chSub      chan subscribeReq
	chUnsub    chan unsubscribeReq
	chMute     chan muteReq
	chInfo     chan chan RoomInfo
	chStopIdle chan chan bool
	chShutdown chan chan struct{}
	chMove     chan moveReq
	done       chan struct{}

	// Owned by the room goroutine.
	participants map[string]*participant
	order        []string // join order, for listings
	tracks       map[string]*publication
	field        map[string]*publication
	subs         map[string]map[string]bool // track → subscriber ids
	speakers     []string
}

// RoomInfo is a snapshot of a room, for listings and tests.
type RoomInfo struct {
	Name          string            `json:"name"`
	Participants  []ParticipantInfo `json:"participants"`
	Tracks        []TrackInfo       `json:"tracks"`
	Subscriptions map[string]int    `json:"subscriptions"`
}

type joinReq struct {
	p     *participant
	reply chan joinReply
}

type joinReply struct {
	others []ParticipantInfo
	tracks []TrackInfo
	err    error
}

type resumeReq struct {
	session, who string
	claims       *auth.Claims // the resuming client's token
	c            *conn
	autoSub      bool
	joinID       int64
	reply        chan resumeReply
}

type resumeReply struct {
	p   *participant
	err error
}

type moveReq struct {
	url, reason string
	reply       chan int // participants told
}

type leaveReq struct {
	p      *participant
	reason string
	reply  chan struct{}
}

type publishReq struct {
	p     *participant
	pub   *publication
	reply chan error
}

type unpublishReq struct {
	id, reason string
	reply      chan struct{}
}

type subscribeReq struct {
	p     *participant
	track string
	reply chan subscribeReply
}

type subscribeReply struct {
	pub *publication
	err error
}

type unsubscribeReq struct {
	p     *participant
	track string
}

type muteReq struct {
	p     *participant
	track string
	muted bool
	reply chan error
}

func newRoom(name string, m *Manager) *Room {
	r := &Room{
		name: name, m: m,
		chJoin: make(chan joinReq), chResume: make(chan resumeReq), chLeave: make(chan leaveReq),
		chPublish: make(chan publishReq), chUnpub: make(chan unpublishReq), chSub: make(chan subscribeReq),
		chUnsub: make(chan unsubscribeReq, 64), chMute: make(chan muteReq), chInfo: make(chan chan RoomInfo),
		chStopIdle: make(chan chan bool), chShutdown: make(chan chan struct{}), chMove: make(chan moveReq), done: make(chan struct{}),
		participants: map[string]*participant{}, tracks: map[string]*publication{},
		field: map[string]*publication{}, subs: map[string]map[string]bool{},
	}
	go r.run()
	return r
}

// call sends a request to the room; false when the room has closed.
func call[T any](r *Room, ch chan T, req T) bool {
	select {
	case ch <- req:
		return true
	case <-r.done:
		return false
	}
}

func (r *Room) run() {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var ticks int
	r.refreshField()
	for {
		select {
		case req := <-r.chJoin:
			req.reply <- r.join(req.p)
		case req := <-r.chResume:
			req.reply <- r.resume(req)
		case req := <-r.chLeave:
			r.leave(req.p, req.reason)
			close(req.reply)
		case req := <-r.chPublish:
			req.reply <- r.publish(req.p, req.pub)
		case req := <-r.chUnpub:
			r.unpublish(req.id, req.reason)
			close(req.reply)
		case req := <-r.chSub:
			pub, err := r.subscribe(req.p, req.track)
			req.reply <- subscribeReply{pub, err}
		case req := <-r.chUnsub:
			delete(r.subs[req.track], req.p.id)
		case req := <-r.chMute:
			req.reply <- r.mute(req.p, req.track, req.muted)
		case reply := <-r.chInfo:
			reply <- r.info()
		case reply := <-r.chStopIdle:
			idle := len(r.participants) == 0
			reply <- idle
			if idle {
				close(r.done)
				return
			}
		case req := <-r.chMove:
			for _, p := range r.participants {
				p.move(req.url, req.reason)
			}
			req.reply <- len(r.participants)
		case reply := <-r.chShutdown:
			for _, p := range r.participants {
				p.kick("the server is shutting down")
			}
			close(r.done)
			close(reply)
			return
		case now := <-tick.C:
			ticks++
			r.updateSpeakers(now)
			if ticks%8 == 0 {
				r.refreshField()
			}
		}
	}
}

// broadcast queues a message for every participant but skip.
func (r *Room) broadcast(msg any, skip string) {
	for id, p := range r.participants {
		if id != skip {
			p.deliver(msg)
		}
	}
}

func (r *Room) join(p *participant) joinReply {
	if old := r.participants[p.id]; old != nil {
		// The same person joined again (another device, or a reload that
		// did not resume): the newer one takes over.
		r.leave(old, "joined again from another connection")
		old.kick("you joined this room again from another connection")
	}
	if len(r.participants) >= r.m.p.Conf.MaxParticipants {
		return joinReply{err: errorf(CodeRoomFull, "room %q is full (%d participants); ask an operator to raise calls.max_participants", r.name, len(r.participants))}
	}
	var rep joinReply
	for _, id := range r.order {
		rep.others = append(rep.others, r.participants[id].info())
	}
	rep.tracks = r.visibleTracks(p)
	r.participants[p.id] = p
	r.order = append(r.order, p.id)
	r.broadcast(ParticipantEvent{Header: Header{Type: TypeParticipantJoin}, Participant: p.info()}, p.id)
	return rep
}

func (r *Room) resume(req resumeReq) resumeReply {
	for _, p := range r.participants {
		if p.session == req.session {
			if p.id != req.who {
				return resumeReply{err: errorf(CodeForbidden, "session %s belongs to another participant", req.session)}
			}
			rep := joinReply{tracks: r.visibleTracks(p)}
			for _, id := range r.order {
				if id != p.id {
					rep.others = append(rep.others, r.participants[id].info())
				}
			}
			if !p.attachConn(attachReq{c: req.c, claims: req.claims, autoSub: req.autoSub, joinID: req.joinID, rep: rep}) {
				break
			}
			return resumeReply{p: p}
		}
	}
	return resumeReply{err: errorf(CodeNotFound, "session %q is not in room %q any more (it ended or the resume window passed); join without resume", req.session, r.name)}
}

// visibleTracks lists the tracks p may see: every participant's, and the
// field cameras its token may view.
func (r *Room) visibleTracks(p *participant) []TrackInfo {
	var out []TrackInfo
	for _, pub := range r.tracks {
		out = append(out, pub.snapshot())
	}
	for _, pub := range r.field {
		if p.claims.CanView(fieldName(pub.info.Participant)) {
			out = append(out, pub.snapshot())
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	if out == nil {
		out = []TrackInfo{}
	}
	return out
}

func (r *Room) leave(p *participant, reason string) {
	if r.participants[p.id] != p {
		return
	}
	for id, pub := range r.tracks {
		if pub.info.Participant == p.id {
			r.unpublish(id, "the participant left")
		}
	}
	for _, s := range r.subs {
		delete(s, p.id)
	}
	delete(r.participants, p.id)
	r.order = slices.DeleteFunc(r.order, func(id string) bool { return id == p.id })
	r.broadcast(ParticipantEvent{Header: Header{Type: TypeParticipantLeft}, Participant: p.info(), Reason: reason}, "")
	r.m.audit(audit.Event{Actor: p.id, Role: string(p.claims.Role), Action: "leave", Source: r.name, Remote: p.remote, Session: p.session, Reason: reason})
	if len(r.participants) == 0 {
		r.m.roomIdle(r)
	}
}

func (r *Room) publish(p *participant, pub *publication) error {
	if r.participants[p.id] != p {
		return errorf(CodeConflict, "you are no longer in room %q", r.name)
	}
	if r.tracks[pub.info.ID] != nil {
		return errorf(CodeConflict, "you already publish a %s track (%s); unpublish it first", pub.info.Source, pub.info.ID)
	}
	r.tracks[pub.info.ID] = pub
	r.broadcast(TrackEvent{Header: Header{Type: TypeTrackPublished}, Track: pub.snapshot()}, "")
	r.m.audit(audit.Event{Actor: p.id, Role: string(p.claims.Role), Action: "publish", Source: r.name + "/" + pub.info.ID, Remote: p.remote, Session: p.session})
	return nil
}

func (r *Room) unpublish(id, reason string) {
	pub := r.tracks[id]
	if pub == nil {
		return
	}
	delete(r.tracks, id)
	delete(r.subs, id)
	r.broadcast(TrackEvent{Header: Header{Type: TypeTrackUnpublished}, Track: pub.snapshot(), Reason: reason}, "")
	if p := r.participants[pub.info.Participant]; p != nil {
		r.m.audit(audit.Event{Actor: p.id, Role: string(p.claims.Role), Action: "unpublish", Source: r.name + "/" + id, Remote: p.remote, Session: p.session, Reason: reason})
	}
}

func (r *Room) subscribe(p *participant, id string) (*publication, error) {
	if r.participants[p.id] != p {
		return nil, errorf(CodeConflict, "you are no longer in room %q", r.name)
	}
	pub := r.tracks[id]
	action, src := "subscribe", r.name+"/"+id
	if fp := r.field[id]; pub == nil && fp != nil {
		pub, action, src = fp, "view", fieldName(fp.info.Participant)
		if !p.claims.CanView(src) {
			err := errorf(CodeForbidden, "token of %s may not view field camera %q (its view grant does not match)", p.id, src)
			r.m.audit(audit.Event{Actor: p.id, Role: string(p.claims.Role), Action: action, Source: src, Remote: p.remote, Session: p.session, Result: "denied", Reason: err.Reason})
			return nil, err
		}
	}
	if pub == nil {
		return nil, errorf(CodeNotFound, "no track %q in room %q; it ended or never existed (see track_published events)", id, r.name)
	}
	if r.subs[id] == nil {
		r.subs[id] = map[string]bool{}
	}
	r.subs[id][p.id] = true
	r.m.audit(audit.Event{Actor: p.id, Role: string(p.claims.Role), Action: action, Source: src, Remote: p.remote, Session: p.session})
	return pub, nil
}

func fieldName(participant string) string { return strings.TrimPrefix(participant, "field:") }

func (r *Room) mute(p *participant, id string, muted bool) error {
	pub := r.tracks[id]
	if pub == nil || pub.info.Participant != p.id {
		return errorf(CodeNotFound, "you publish no track %q", id)
	}
	if pub.muted.Swap(muted) != muted {
		r.broadcast(TrackEvent{Header: Header{Type: TypeTrackMuted}, Track: pub.snapshot()}, "")
	}
	return nil
}

func (r *Room) info() RoomInfo {
	in := RoomInfo{Name: r.name, Participants: []ParticipantInfo{}, Tracks: []TrackInfo{}, Subscriptions: map[string]int{}}
	for _, id := range r.order {
		in.Participants = append(in.Participants, r.participants[id].info())
	}
	for _, pub := range r.tracks {
		in.Tracks = append(in.Tracks, pub.snapshot())
	}
	sort.Slice(in.Tracks, func(i, j int) bool { return in.Tracks[i].ID < in.Tracks[j].ID })
	for id, s := range r.subs {
		in.Subscriptions[id] = len(s)
	}
	return in
}

// speakerThreshold is the smoothed level (0..1) above which a participant
// counts as speaking: speech at -50 dBov and louder.
const speakerThreshold = 0.6

// updateSpeakers sends the active speakers, loudest first, when the set or
// its order changes.
func (r *Room) updateSpeakers(now time.Time) {
	var list []Speaker
	for _, pub := range r.tracks {
		if pub.up == nil || pub.info.Source != SourceMicrophone || pub.muted.Load() {
			continue
		}
		if l := pub.up.loudness(now); l >= speakerThreshold {
			list = append(list, Speaker{Participant: pub.info.Participant, Level: float64(int(l*100)) / 100})
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Level > list[j].Level })
	ids := make([]string, len(list))
	for i, s := range list {
		ids[i] = s.Participant
	}
	if slices.Equal(ids, r.speakers) {
		return
	}
	r.speakers = ids
	if list == nil {
		list = []Speaker{}
	}
	r.broadcast(SpeakersEvent{Header: Header{Type: TypeSpeakers}, Speakers: list}, "")
}

// refreshField updates the field cameras from the SFU's sources and tells
// each participant about those its token may view.
func (r *Room) refreshField() {
	if r.m.p.Fields == nil {
		return
	}
	seen := map[string]bool{}
	for _, fs := range r.m.p.Fields.FieldSources() {
		for _, pub := range fieldPublications(fs) {
			seen[pub.info.ID] = true
			if old := r.field[pub.info.ID]; old != nil && old.stream == fs.Stream && old.info.Codec == pub.info.Codec {
				continue
			}
			r.field[pub.info.ID] = pub
			r.tellViewers(fs.Name, TrackEvent{Header: Header{Type: TypeTrackPublished}, Track: pub.snapshot()})
		}
	}
	for id, pub := range r.field {
		if !seen[id] {
			delete(r.field, id)
			r.tellViewers(fieldName(pub.info.Participant),
				TrackEvent{Header: Header{Type: TypeTrackUnpublished}, Track: pub.snapshot(), Reason: "the field camera went offline"})
		}
	}
}

func (r *Room) tellViewers(source string, msg any) {
	for _, p := range r.participants {
		if p.claims.CanView(source) {
			p.deliver(msg)
		}
	}
}

// fieldPublications turns a field camera's relayable tracks into room
// tracks: field:<name>/video, field:<name>/audio (a second track of a kind
// gets its index appended).
func fieldPublications(fs FieldSource) []*publication {
	var out []*publication
	seen := map[string]bool{}
	for i, t := range fs.Stream.Tracks() {
		c, ok := codecFor(t)
		if !ok || !t.Relayable() {
			continue
		}
		name := t.Kind.String()
		if seen[name] {
			name += strconv.Itoa(i)
		}
		seen[name] = true
		owner := "field:" + fs.Name
		out = append(out, &publication{
			info: TrackInfo{ID: owner + "/" + name, Participant: owner, Source: SourceField, Kind: t.Kind.String(),
				Codec: whip.CodecName(c.MimeType), Layers: []string{""}},
			stream: fs.Stream, layers: []int{i}, muted: &atomic.Bool{},
		})
	}
	return out
}
