// Package session holds two-way video calls: rooms (one actor goroutine
// each), their participants, the JSON signalling protocol over WebSocket
// (PROTOCOL.md), and the media of calls: published tracks become stream hubs
// like WHIP sources, subscriptions are stream readers that pick a simulcast
// layer per subscriber from its bandwidth estimate, with role priority.
package session

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/conf"
	"fieldvideo/internal/stream"
	"fieldvideo/internal/whip"
)

// FieldSource is a live source of the SFU (a field camera published by
// WHIP) that rooms offer for subscription.
type FieldSource struct {
	Name   string
	Stream *stream.Stream
}

// FieldDirectory lists the live field sources.
type FieldDirectory interface {
	FieldSources() []FieldSource
}

// Params configures a Manager.
type Params struct {
	Conf   conf.Calls
	Stream conf.Stream
	API    *API
	// Media, when set, is the shared media socket API's mux uses: each unit a
	// subscriber is sent goes out in one send (whip.BatchConn).
	Media    *whip.BatchConn
	Verifier *auth.Verifier
	Audit    *audit.Log
	Log      *slog.Logger
	// Fields lists field cameras; nil offers none.
	Fields FieldDirectory
	// ICEServers returns the STUN/TURN servers for a participant's client,
	// with credentials derived from its token; nil gives none.
	ICEServers func(c *auth.Claims) []ICEServer
	// Recorder, when set, records what participants publish (if
	// Conf.Record).
	Recorder Recorder
	// AllowOrigin is the browser origin allowed to open the WebSocket; "*"
	// or empty allows any (the token is what authorizes).
	AllowOrigin string
	// Place, when set (a cluster), says where a room lives before a
	// participant joins it: "" here (the node now hosts it), or the room's
	// WebSocket URL on the node that does (the participant is sent there
	// with CodeElsewhere); an error (the cluster cannot be asked) has the
	// room open here all the same, and Unplaced told, so that the caller
	// settles its home once the cluster answers (claims it, or Move). Closed
	// is told when a room here has ended.
	Place    func(room string) (string, error)
	Closed   func(room string)
	Unplaced func(room string)
}

// Manager owns the rooms: one goroutine maps names to room actors, creating
// a room at its first join and ending it when the last participant left.
type Manager struct {
	p        Params
	log      *slog.Logger
	upgrader websocket.Upgrader

	chGet   chan getReq
	chIdle  chan *Room
	chList  chan chan []*Room
	stop    chan struct{} // closed by Close
	done    chan struct{} // closed when Run has shut every room down
	once    sync.Once
	started atomic.Bool
	wg      sync.WaitGroup
	// resend counts what every subscription did with its subscriber's NACKs.
	resend whip.ResendCounters

	// members counts, by participant id and room, the participants in it
	// (a second join of one id briefly makes two), for
	// calls.max_rooms_per_participant.
	membersMu sync.Mutex
	members   map[string]map[string]int
}

// enter counts a participant id into room, unless that takes it over
// calls.max_rooms_per_participant rooms; exit counts it out.
func (m *Manager) enter(id, room string) bool {
	m.membersMu.Lock()
	defer m.membersMu.Unlock()
	rs := m.members[id]
	if rs[room] == 0 && len(rs) >= m.p.Conf.MaxRoomsPerParticipant {
		return false
	}
	if rs == nil {
		if m.members == nil {
			m.members = map[string]map[string]int{}
		}
		rs = map[string]int{}
		m.members[id] = rs
	}
	rs[room]++
	return true
}

func (m *Manager) exit(id, room string) {
	m.membersMu.Lock()
	defer m.membersMu.Unlock()
	rs := m.members[id]
	if rs[room]--; rs[room] <= 0 {
		delete(rs, room)
	}
	if len(rs) == 0 {
		delete(m.members, id)
	}
}

type getReq struct {
	name  string
	reply chan *Room
}

// New returns a manager; Run serves it.
func New(p Params) (*Manager, error) {
	if p.API == nil || p.Verifier == nil || p.Audit == nil {
		return nil, errors.New("session: API, Verifier and Audit are required")
	}
	if p.Log == nil {
		p.Log = slog.Default()
	}
	m := &Manager{
		p: p, log: p.Log.With("component", "rooms"),
		chGet: make(chan getReq), chIdle: make(chan *Room, 64), chList: make(chan chan []*Room),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	m.upgrader = websocket.Upgrader{
		ReadBufferSize: 16 << 10, WriteBufferSize: 16 << 10,
		CheckOrigin: func(r *http.Request) bool {
			o := r.Header.Get("Origin")
			return p.AllowOrigin == "" || p.AllowOrigin == "*" || o == "" || o == p.AllowOrigin
		},
	}
	return m, nil
}

// Run owns the room table until ctx is done or Close is called.
func (m *Manager) Run(ctx context.Context) {
	m.started.Store(true)
	rooms := map[string]*Room{}
	defer func() {
		for _, r := range rooms {
			reply := make(chan struct{})
			if call(r, r.chShutdown, reply) {
				<-reply
			}
		}
		close(m.done)
	}()
	for {
		select {
		case <-ctx.Done():
			m.once.Do(func() { close(m.stop) })
			return
		case <-m.stop:
			return
		case req := <-m.chGet:
			r := rooms[req.name]
			if r == nil {
				r = newRoom(req.name, m)
				rooms[req.name] = r
				m.log.Info("room opened", "room", req.name)
			}
			req.reply <- r
		case r := <-m.chIdle:
			if rooms[r.name] != r {
				continue
			}
			reply := make(chan bool, 1)
			if call(r, r.chStopIdle, reply) && <-reply {
				delete(rooms, r.name)
				m.log.Info("room closed", "room", r.name)
				if m.p.Closed != nil {
					m.p.Closed(r.name)
				}
			}
		case reply := <-m.chList:
			list := make([]*Room, 0, len(rooms))
			for _, r := range rooms {
				list = append(list, r)
			}
			reply <- list
		}
	}
}

// Close ends every participant (each gets a bye) and every room, and waits
// for their goroutines.
func (m *Manager) Close() {
	m.once.Do(func() { close(m.stop) })
	if m.started.Load() {
		<-m.done
	}
	m.wg.Wait()
}

func (m *Manager) rooms() []*Room {
	reply := make(chan []*Room, 1)
	select {
	case m.chList <- reply:
		return <-reply
	case <-m.stop:
		return nil
	}
}

// room returns the room called name, creating it.
func (m *Manager) room(name string) (*Room, error) {
	reply := make(chan *Room, 1)
	select {
	case m.chGet <- getReq{name, reply}:
		return <-reply, nil
	case <-m.stop:
		return nil, errorf(CodeInternal, "the server is shutting down; join again in a moment")
	}
}

// roomIdle tells the manager a room has no participant left; called from
// the room's goroutine, never blocks.
func (m *Manager) roomIdle(r *Room) {
	select {
	case m.chIdle <- r:
	default:
	}
}

// Rooms returns a snapshot of every room, sorted by name.
func (m *Manager) Rooms() []RoomInfo {
	var out []RoomInfo
	for _, r := range m.rooms() {
		ch := make(chan RoomInfo, 1)
		if call(r, r.chInfo, ch) {
			out = append(out, <-ch)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Hosts tells whether a room called name is open here.
func (m *Manager) Hosts(name string) bool {
	return m.find(name) != nil
}

func (m *Manager) find(name string) *Room {
	for _, r := range m.rooms() {
		if r.name == name {
			return r
		}
	}
	return nil
}

// Move ends every participant of the room called name here with a moved
// message naming url, the room's WebSocket on the node that is its home now
// (after a partition, another node became it): their clients join there.
// It returns how many participants were told.
func (m *Manager) Move(name, url, reason string) int {
	r := m.find(name)
	if r == nil {
		return 0
	}
	reply := make(chan int, 1)
	if !call(r, r.chMove, moveReq{url: url, reason: reason, reply: reply}) {
		return 0
	}
	n := <-reply
	m.log.Warn("room moved to its home on another node", "room", name, "url", url, "participants", n)
	return n
}

// Resends returns what the rooms' subscriptions did with their subscribers' NACKs, so far.
func (m *Manager) Resends() whip.ResendStats { return m.resend.Stats() }

func (m *Manager) audit(e audit.Event) error {
	e.Via = "room"
	return m.p.Audit.Write(e)
}

// ServeRoom upgrades the request to the signalling WebSocket of room name
// and serves it. The first message must be a join carrying the token.
func (m *Manager) ServeRoom(w http.ResponseWriter, r *http.Request, name string) {
	ws, err := m.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	c := newConn(ws, r.RemoteAddr)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.handshake(c, name)
	}()
}

// handshake reads the join and hands the connection to a participant.
func (m *Manager) handshake(c *conn, name string) {
	ev := audit.Event{Action: "join", Source: name, Remote: c.remote}
	refuse := func(id int64, err error) {
		msg := errorMessage(id, err)
		ev.Result, ev.Reason = "denied", msg.Reason
		m.audit(ev)
		c.send(msg)
		c.send(Bye{Header: Header{Type: TypeBye}, Reason: msg.Reason})
		c.close()
	}
	c.awaitJoin(time.Now().Add(m.p.Conf.JoinTimeout))
	b, err := c.read()
	if err != nil {
		refuse(0, errorf(CodeBadRequest, "no join message within %s", m.p.Conf.JoinTimeout))
		return
	}
	req, err := ParseRequest(b)
	if err != nil {
		refuse(0, errorf(CodeBadRequest, "%v", err))
		return
	}
	j, ok := req.(*Join)
	if !ok {
		refuse(req.RequestID(), errorf(CodeUnauthorized, "the first message must be a join with the token; nothing else is accepted before it"))
		return
	}
	claims, err := m.p.Verifier.Verify(j.Token)
	if err != nil {
		refuse(j.ID, errorf(CodeUnauthorized, "%v", err))
		return
	}
	ev.Actor, ev.Role = participantID(claims), string(claims.Role)
	if !claims.CanJoin(name) {
		grant := claims.Room
		if grant == "" {
			grant = "none"
		}
		refuse(j.ID, errorf(CodeForbidden, "token of %s (role %s) may not join room %q (its room grant: %s); ask for a token for this room", claims.Who(), claims.Role, name, grant))
		return
	}
	c.joined()
	_ = c.extend()
	if m.p.Place != nil {
		url, err := m.p.Place(name)
		switch {
		case err != nil:
			// the cluster cannot say where the room lives (this node is cut
			// off): the call is held here, as the edge never waits for the
			// cluster, and settled once it answers
			m.log.Warn("room held here without the cluster's word", "room", name, "error", err)
			if m.p.Unplaced != nil {
				m.p.Unplaced(name)
			}
		case url != "":
			e := errorf(CodeElsewhere, "room %q lives on another node; join it at %s", name, url)
			e.URL = url
			refuse(j.ID, e)
			return
		}
	}
	// A new participant counts into the room now; it counts itself out when
	// it ends, or here when it does not get in.
	counted := false
	if j.Resume == "" {
		if !m.enter(participantID(claims), name) {
			refuse(j.ID, errorf(CodeForbidden, "%s is in %d rooms already, the most one participant may be in (calls.max_rooms_per_participant); leave one first",
				claims.Who(), m.p.Conf.MaxRoomsPerParticipant))
			return
		}
		counted = true
		defer func() {
			if counted {
				m.exit(participantID(claims), name)
			}
		}()
	}
	for attempt := 0; attempt < 3; attempt++ {
		room, err := m.room(name)
		if err != nil {
			refuse(j.ID, err)
			return
		}
		if j.Resume != "" {
			reply := make(chan resumeReply, 1)
			if !call(room, room.chResume, resumeReq{session: j.Resume, who: participantID(claims), claims: claims, c: c, autoSub: j.AutoSubscribe, joinID: j.ID, reply: reply}) {
				continue
			}
			rep := <-reply
			if rep.err != nil {
				refuse(j.ID, rep.err)
				return
			}
			ev.Action, ev.Session = "resume", j.Resume
			m.audit(ev)
			return
		}
		p := newParticipant(m, room, claims, j, c)
		reply := make(chan joinReply, 1)
		if !call(room, room.chJoin, joinReq{p: p, reply: reply}) {
			continue
		}
		rep := <-reply
		if rep.err != nil {
			refuse(j.ID, rep.err)
			return
		}
		ev.Session = p.session
		if err := m.audit(ev); err != nil {
			p.kick(err.Error())
		}
		m.log.Info("joined", "room", name, "participant", p.id, "role", claims.Role)
		counted = false
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			p.run(j.ID, rep)
		}()
		return
	}
	refuse(j.ID, errorf(CodeInternal, "room %q kept closing while joining; try again", name))
}

// participantID is the participant's id in rooms: the token subject.
func participantID(c *auth.Claims) string { return c.Who() }

func newID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (m *Manager) iceServers(c *auth.Claims) []ICEServer {
	if m.p.ICEServers == nil {
		return []ICEServer{}
	}
	if s := m.p.ICEServers(c); s != nil {
		return s
	}
	return []ICEServer{}
}
