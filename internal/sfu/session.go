package sfu

import (
	"net/http"
	"strings"
	"sync"

	"github.com/pion/webrtc/v4"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/whip"
)

// session is a WHIP or WHEP resource: one peer connection, addressable for
// trickle ICE (PATCH) and teardown (DELETE).
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

	once    sync.Once
	onClose func()
}

func (s *Server) newSession(kind, source string, c *auth.Claims, r *http.Request, pc *webrtc.PeerConnection) *session {
	id := newID()
	return &session{id: id, kind: kind, source: source, who: c.Who(), role: string(c.Role), remote: r.RemoteAddr,
		etag: `"` + id[:16] + `"`, pc: pc, s: s}
}

func (ss *session) location() string { return "/" + ss.source + "/" + ss.kind + "/" + ss.id }

// close ends the session once: closes the peer connection, runs the kind's
// cleanup and writes the audit record.
func (ss *session) close(reason string) {
	ss.once.Do(func() {
		ss.s.mu.Lock()
		delete(ss.s.sessions, ss.id)
		ss.s.mu.Unlock()
		_ = ss.pc.Close()
		if ss.onClose != nil {
			ss.onClose()
		}
		action := "stop"
		if ss.kind == "whip" {
			action = "unpublish"
		}
		ss.s.p.Audit.Write(audit.Event{Actor: ss.who, Role: ss.role, Action: action, Source: ss.source,
			Via: ss.kind, Remote: ss.remote, Session: ss.id, Reason: reason})
		ss.s.log.Info("session closed", "kind", ss.kind, "source", ss.source, "session", ss.id, "reason", reason)
	})
}

// watch closes the session when its peer connection fails or closes.
func (ss *session) watch() {
	ss.pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateFailed:
			go ss.close("connection failed")
		case webrtc.PeerConnectionStateClosed:
			go ss.close("connection closed")
		}
	})
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

// handlePatch applies trickle-ICE candidates to a session.
func (s *Server) handlePatch(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.cors(w)
		if _, err := s.authorize(r, kind, r.PathValue("source")); err != nil {
			whip.WriteError(w, err)
			return
		}
		ss, err := s.lookup(r, kind)
		if err != nil {
			whip.WriteError(w, err)
			return
		}
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
		for _, c := range frag.Candidates {
			init := webrtc.ICECandidateInit{Candidate: c.Value}
			if c.Mid != "" {
				mid := c.Mid
				init.SDPMid = &mid
			} else {
				idx := c.Index
				init.SDPMLineIndex = &idx
			}
			if err := ss.pc.AddICECandidate(init); err != nil {
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
		if _, err := s.authorize(r, kind, r.PathValue("source")); err != nil {
			whip.WriteError(w, err)
			return
		}
		ss, err := s.lookup(r, kind)
		if err != nil {
			whip.WriteError(w, err)
			return
		}
		ss.close("ended by the client (DELETE)")
		w.WriteHeader(http.StatusOK)
	}
}
