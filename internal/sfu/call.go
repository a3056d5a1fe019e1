package sfu

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/conf"
	rooms "fieldvideo/internal/session"
	"fieldvideo/internal/whip"
)

// startCalls sets up two-way calls: the room manager on the SFU's shared
// ICE port, and the embedded TURN server when configured.
func (s *Server) startCalls() error {
	c := s.p.Conf
	api, err := rooms.NewAPI(rooms.APIParams{
		UDPMux: s.mux, Loopback: c.WebRTC.Loopback, LoopbackOnly: isLoopback(s.media.LocalAddr()),
		AdvertiseIPs: c.WebRTC.AdvertiseIPs, StartBitrate: c.Calls.StartBitrate,
		MinBitrate: c.Calls.MinBitrate, MaxBitrate: c.Calls.MaxBitrate, Server: true,
	})
	if err != nil {
		return err
	}
	if c.Calls.TURN.Address != "" {
		secret := s.p.Secret
		if secret == nil {
			if secret, err = auth.LoadSecret(c.Auth.Secret, c.Auth.SecretFile); err != nil {
				return err
			}
		}
		media := sfuMedia{Addr: s.media.LocalAddr(), AdvertiseIPs: c.WebRTC.AdvertiseIPs}
		if s.turn, err = newTURN(c.Calls.TURN, media, secret, s.turnRevoked, s.log); err != nil {
			return err
		}
	}
	rp := rooms.Params{
		Conf: c.Calls, Stream: c.Stream, API: api, Media: s.media, Verifier: s.p.Verifier, Audit: s.p.Audit, Log: s.p.Log,
		Fields: fieldDirectory{s}, ICEServers: s.callICEServers, AllowOrigin: c.HTTP.AllowOrigin,
		Place: s.p.PlaceRoom, Closed: s.p.RoomClosed, Unplaced: s.p.RoomUnplaced,
	}
	if s.p.Recorder != nil {
		rp.Recorder = s.p.Recorder
	}
	s.calls, err = rooms.New(rp)
	if err != nil && s.turn != nil {
		s.turn.close()
	}
	return err
}

// callICEServers returns the configured STUN/TURN servers and, with the
// embedded TURN server, credentials derived from the participant's token.
func (s *Server) callICEServers(c *auth.Claims) []rooms.ICEServer {
	var out []rooms.ICEServer
	for _, is := range s.p.Conf.WebRTC.ICEServers {
		out = append(out, rooms.ICEServer{URLs: is.URLs, Username: is.Username, Credential: is.Credential})
	}
	if s.turn != nil {
		var exp, iat time.Time
		if c.ExpiresAt != nil {
			exp = c.ExpiresAt.Time
		}
		if c.IssuedAt != nil {
			iat = c.IssuedAt.Time
		}
		out = append(out, s.turn.credentials(c.Subject, iat, exp, time.Now()))
	}
	return out
}

// turnRevoked reports whether the tokens of subject issued at issued are
// revoked, for the TURN server's credentials.
func (s *Server) turnRevoked(subject string, issued time.Time) bool {
	rl := s.p.Verifier.Revocations()
	if rl == nil {
		return false
	}
	c := &auth.Claims{}
	c.Subject, c.IssuedAt = subject, jwt.NewNumericDate(issued)
	_, revoked := rl.Revoked(c)
	return revoked
}

// TURNAddr returns the embedded TURN server's address, or "" when off.
func (s *Server) TURNAddr() string {
	if s.turn == nil {
		return ""
	}
	return s.turn.Addr()
}

// Rooms returns a snapshot of the call rooms.
func (s *Server) Rooms() []rooms.RoomInfo { return s.calls.Rooms() }

// handleRoom serves a room's signalling WebSocket: GET /v1/rooms/{room}/ws.
// The token comes in the first message (browsers cannot set headers on
// WebSockets), so the upgrade itself needs none.
func (s *Server) handleRoom(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("room")
	if !conf.SourceName.MatchString(name) {
		whip.WriteError(w, whip.Errorf(http.StatusBadRequest, "room name %q: use 1-64 letters, digits, '.', '_' or '-'", name))
		return
	}
	s.calls.ServeRoom(w, r, name)
}

// handleRooms lists the rooms to operators: GET /v1/rooms.
func (s *Server) handleRooms(w http.ResponseWriter, r *http.Request) {
	s.cors(w)
	w.Header().Set("Content-Type", "application/json")
	list := s.calls.Rooms()
	if list == nil {
		list = []rooms.RoomInfo{}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"rooms": list})
}

// fieldDirectory offers the SFU's live sources to rooms as field cameras.
type fieldDirectory struct{ s *Server }

func (d fieldDirectory) FieldSources() []rooms.FieldSource {
	d.s.mu.Lock()
	defer d.s.mu.Unlock()
	out := make([]rooms.FieldSource, 0, len(d.s.sources))
	for name, src := range d.s.sources {
		if src.live() && src.stream != nil {
			out = append(out, rooms.FieldSource{Name: name, Stream: src.stream})
		}
	}
	return out
}

// HostsRoom tells whether the call room called name is open here.
func (s *Server) HostsRoom(name string) bool { return s.calls.Hosts(name) }

// MoveRoom sends the participants of the room called name here to url,
// its WebSocket on the node that is its home now; it returns how many.
func (s *Server) MoveRoom(name, url, reason string) int { return s.calls.Move(name, url, reason) }
