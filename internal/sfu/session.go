package sfu

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/netlimit"
	"fieldvideo/internal/whip"
)

// session is a WHIP or WHEP resource: one peer connection, addressable for
// trickle ICE (PATCH) and teardown (DELETE) by its owner. It lasts as long
// as the token it was opened with (a PATCH with a newer token of the same
// owner extends it), and ends when it does not connect in time.
type session struct {
	id     string
	kind   string // whip or whep
	source string
	who    string
	role   string
	remote string
	etag   string
	pc     *webrtc.PeerConnection
	s      *Server
	// owner and tokenID name who may PATCH and DELETE the session besides
	// operators: the token's subject, or (for tokens without one) the
	// token itself.
	owner, tokenID string

	once      sync.Once
	onClose   func()
	connOnce  sync.Once
	connected chan struct{} // closed once the peer connection is up
	created   time.Time

	mu     sync.Mutex
	bound  *auth.Claims // the token the session lives by
	unbind func()
	slot   func() // gives back the session's place among those waiting to connect
	closed bool
	// trickled counts the candidates sent by PATCH
	trickled int
	deadline *time.Timer
}

func (s *Server) newSession(kind, source string, c *auth.Claims, r *http.Request, pc *webrtc.PeerConnection) *session {
	id := newID()
	return &session{id: id, kind: kind, source: source, who: c.Who(), role: string(c.Role), remote: r.RemoteAddr,
		etag: `"` + id[:16] + `"`, pc: pc, s: s, owner: c.Subject, tokenID: c.ID, bound: c, connected: make(chan struct{}), created: time.Now()}
}

func (ss *session) location() string { return "/" + ss.source + "/" + ss.kind + "/" + ss.id }

// start ties an answered session to its token and to the wait for its
// connection: slot is given back once it connects (or ends), and it is
// closed when it has not connected within the connect timeout.
func (ss *session) start(slot func()) {
	ss.mu.Lock()
	if ss.closed {
		ss.mu.Unlock()
		slot()
		return
	}
	ss.slot = slot
	ss.unbind = ss.s.p.Verifier.Bind(ss.bound, func(reason string) { ss.close(reason) })
	timeout := ss.s.p.Conf.WebRTC.ConnectTimeout
	ss.deadline = time.AfterFunc(timeout, func() {
		select {
		case <-ss.connected:
		default:
			ss.close(fmt.Sprintf("did not connect within %s of the answer (webrtc.connect_timeout)", timeout))
		}
	})
	ss.mu.Unlock()
	select {
	case <-ss.connected:
		ss.release()
	default:
	}
}

// rebind moves the session to a newer token of its owner. A token of anyone
// else (an operator acting on it) never keeps the session alive: it stays
// bound to its owner's, and ends when that one is revoked or expires.
func (ss *session) rebind(c *auth.Claims) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed || ss.unbind == nil || c.ExpiresAt == nil || ss.bound.ExpiresAt == nil || !c.ExpiresAt.After(ss.bound.ExpiresAt.Time) {
		return
	}
	if !ss.ownerIs(c) {
		return
	}
	ss.unbind()
	ss.bound = c
	ss.unbind = ss.s.p.Verifier.Bind(c, func(reason string) { ss.close(reason) })
}

// markConnected notes that the peer connection is up.
func (ss *session) markConnected() {
	ss.connOnce.Do(func() { close(ss.connected) })
	ss.release()
}

// release gives back the session's place among those waiting to connect.
func (ss *session) release() {
	ss.mu.Lock()
	slot := ss.slot
	ss.slot = nil
	ss.mu.Unlock()
	if slot != nil {
		slot()
	}
}

// close ends the session once: closes the peer connection, runs the kind's
// cleanup and writes the audit record.
func (ss *session) close(reason string) {
	ss.once.Do(func() {
		ss.mu.Lock()
		ss.closed = true
		unbind, deadline := ss.unbind, ss.deadline
		ss.mu.Unlock()
		if unbind != nil {
			unbind()
		}
		if deadline != nil {
			deadline.Stop()
		}
		ss.release()
		ss.s.mu.Lock()
		if ss.s.sessions[ss.id] == ss {
			delete(ss.s.sessions, ss.id)
		}
		ss.s.mu.Unlock()
		_ = ss.pc.Close()
		if ss.onClose != nil {
			ss.onClose()
		}
		action := "stop"
		if ss.kind == "whip" {
			action = "unpublish"
		}
		_ = ss.s.p.Audit.Write(audit.Event{Actor: ss.who, Role: ss.role, Action: action, Source: ss.source,
			Via: ss.kind, Remote: ss.remote, Session: ss.id, Reason: reason})
		ss.s.log.Info("session closed", "kind", ss.kind, "source", ss.source, "session", ss.id, "reason", reason)
	})
}

// watch closes the session when its peer connection fails or closes.
func (ss *session) watch() {
	ss.pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateConnected:
			ss.markConnected()
		case webrtc.PeerConnectionStateFailed:
			go ss.close("connection failed")
		case webrtc.PeerConnectionStateClosed:
			go ss.close("connection closed")
		}
	})
}

// trickle counts n candidates sent by PATCH, or reports false when they
// would be more than whip.MaxCandidates.
func (ss *session) trickle(n int) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.trickled+n > whip.MaxCandidates {
		return false
	}
	ss.trickled += n
	return true
}

// ownedBy reports whether c may act on the session: its owner, or an
// operator.
func (ss *session) ownedBy(c *auth.Claims) bool { return c.CanOperate() || ss.ownerIs(c) }

// ownerIs reports whether c is a token of the session's owner.
func (ss *session) ownerIs(c *auth.Claims) bool {
	return (ss.owner != "" && c.Subject == ss.owner) || (ss.owner == "" && ss.tokenID != "" && c.ID == ss.tokenID)
}

// admit takes a place for a new session among those waiting to connect, or
// refuses with 503 when too many wait: in all, from the remote's address, or
// with tokens of the request's subject (none is counted for a request
// without a valid token, which its negotiation refuses). The returned
// function gives the place back.
func (s *Server) admit(r *http.Request) (func(), error) {
	ip := "addr " + netlimit.AddrKey(r.RemoteAddr)
	who := ""
	if c, err := s.p.Verifier.Verify(auth.FromRequest(r)); err == nil {
		who = "subject " + c.Subject
		if c.Subject == "" {
			who = "token " + c.ID
		}
	}
	w := s.p.Conf.WebRTC
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.pendingTotal >= w.MaxPendingSessions:
		return nil, whip.Errorf(http.StatusServiceUnavailable, "%d sessions are waiting to connect (webrtc.max_pending_sessions); retry in a few seconds", s.pendingTotal)
	case s.pending[ip] >= w.MaxPendingPerAddress:
		return nil, whip.Errorf(http.StatusServiceUnavailable, "%d sessions from %s are waiting to connect (webrtc.max_pending_per_address); retry in a few seconds", s.pending[ip], ip[len("addr "):])
	case who != "" && s.pending[who] >= w.MaxPendingPerSubject:
		return nil, whip.Errorf(http.StatusServiceUnavailable, "%d sessions of this token's holder are waiting to connect (webrtc.max_pending_per_subject); connect those first, or retry in a few seconds", s.pending[who])
	}
	s.pendingTotal++
	keys := []string{ip}
	if who != "" {
		keys = append(keys, who)
	}
	for _, k := range keys {
		s.pending[k]++
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			s.pendingTotal--
			for _, k := range keys {
				if s.pending[k]--; s.pending[k] <= 0 {
					delete(s.pending, k)
				}
			}
			s.mu.Unlock()
		})
	}, nil
}

func (s *Server) lookup(r *http.Request, kind string) (*session, error) {
	s.mu.Lock()
	ss := s.sessions[r.PathValue("id")]
	s.mu.Unlock()
	if ss == nil || ss.kind != kind || ss.source != r.PathValue("source") {
		return nil, whip.Errorf(http.StatusNotFound, "no such %s session; it ended or never existed", kind)
	}
	return ss, nil
}

// authorize checks that the request's token may act on a session of kind
// for its source.
func (s *Server) authorize(r *http.Request, kind, source string) (*auth.Claims, error) {
	c, err := s.p.Verifier.Verify(auth.FromRequest(r))
	if err != nil {
		return nil, whip.Errorf(http.StatusUnauthorized, "%v", err)
	}
	ok := c.CanView(source)
	if kind == "whip" {
		ok = c.CanPublish(source)
	}
	if !ok {
		verb := map[string]string{"whip": "publish", "whep": "view"}[kind]
		return c, whip.Errorf(http.StatusForbidden, "token of %s (role %s) may not %s source %q", c.Who(), c.Role, verb, source)
	}
	return c, nil
}

// owned finds the session a PATCH or DELETE names and checks that the
// request's token is its owner's (or an operator's).
func (s *Server) owned(r *http.Request, kind string) (*session, *auth.Claims, error) {
	c, err := s.p.Verifier.Verify(auth.FromRequest(r))
	if err != nil {
		return nil, nil, whip.Errorf(http.StatusUnauthorized, "%v", err)
	}
	ss, err := s.lookup(r, kind)
	if err != nil {
		return nil, c, err
	}
	if !ss.ownedBy(c) {
		return nil, c, whip.Errorf(http.StatusForbidden, "%s session %s belongs to another subject than %s; only its owner or an operator may change or end it", kind, ss.id, c.Who())
	}
	if !c.CanOperate() {
		if _, err := s.authorize(r, kind, ss.source); err != nil {
			return nil, c, err
		}
	}
	if ev := audit.Annotate(r); ev != nil {
		ev.Source, ev.Via, ev.Session = ss.source, kind, ss.id
	}
	return ss, c, nil
}

// handlePatch applies trickle-ICE candidates to a session.
func (s *Server) handlePatch(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.cors(w)
		if ev := audit.Annotate(r); ev != nil {
			ev.Action = "trickle"
		}
		ss, c, err := s.owned(r, kind)
		if err != nil {
			whip.WriteError(w, err)
			return
		}
		ss.rebind(c)
		if m := r.Header.Get("If-Match"); m != "" && m != "*" && m != ss.etag {
			whip.WriteError(w, whip.Errorf(http.StatusPreconditionFailed, "If-Match %s does not match the session's ICE session %s", m, ss.etag))
			return
		}
		body, err := whip.ReadBody(r, whip.ContentTypeTrickle)
		if err != nil {
			whip.WriteError(w, err)
			return
		}
		frag, err := whip.ParseFragment(body)
		if err != nil {
			whip.WriteError(w, err)
			return
		}
		if frag.UFrag != "" && !strings.Contains(remoteSDP(ss.pc), "a=ice-ufrag:"+frag.UFrag+"\r\n") {
			whip.WriteError(w, whip.Errorf(http.StatusUnprocessableEntity, "ICE restart is not supported on this resource; DELETE it and POST a new offer"))
			return
		}
		if !ss.trickle(len(frag.Candidates)) {
			whip.WriteError(w, whip.Errorf(http.StatusBadRequest, "more than %d ICE candidates sent to this session; a peer has a few dozen at most", whip.MaxCandidates))
			return
		}
		// The candidates are checked and counted, not used: the peer's own
		// connectivity checks tell its addresses (whip.WithoutCandidates).
		for _, c := range frag.Candidates {
			if _, err := ice.UnmarshalCandidate(c.Value); err != nil {
				whip.WriteError(w, whip.Errorf(http.StatusBadRequest, "candidate %q: %v", c.Value, err))
				return
			}
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func remoteSDP(pc *webrtc.PeerConnection) string {
	if d := pc.RemoteDescription(); d != nil {
		return d.SDP
	}
	return ""
}

// handleDelete ends a session.
func (s *Server) handleDelete(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.cors(w)
		if ev := audit.Annotate(r); ev != nil {
			ev.Action = "end"
		}
		ss, c, err := s.owned(r, kind)
		if err != nil {
			whip.WriteError(w, err)
			return
		}
		ss.close("ended by " + c.Who() + " (DELETE)")
		w.WriteHeader(http.StatusOK)
	}
}
