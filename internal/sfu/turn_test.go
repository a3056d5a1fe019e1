package sfu

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/turn/v5"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/conf"
	rooms "fieldvideo/internal/session"
)

// A client that may only use relays (a phone behind a NAT that lets nothing
// in) connects through the embedded TURN server with the credentials of its
// join reply.
func TestCallRelayOnlyThroughEmbeddedTURN(t *testing.T) {
	h := startCallSFU(t, func(c *conf.SFU) { c.Calls.TURN.Address = "127.0.0.1:0" })
	if h.srv.TURNAddr() == "" {
		t.Fatal("TURN server not started")
	}
	g := grant{room: "nat", publish: true, subscribe: true}
	a := h.join("nat", h.callToken("alice", auth.RoleCommander, g), nil)
	b := h.join("nat", h.callToken("bob", auth.RoleResponder, g), func(p *rooms.ClientParams) { p.RelayOnly = true })
	ice := b.Joined().ICEServers
	if len(ice) != 1 || !strings.HasPrefix(ice[0].URLs[0], "turn:127.0.0.1:") || !strings.HasSuffix(ice[0].Username, ":bob") {
		t.Fatalf("join reply ICE servers: %+v", ice)
	}
	publishSynth(t, a, 127)
	publishSynth(t, b, 127)
	waitUntil(t, "media both ways through the relay", 15*time.Second, func() bool {
		return a.Received("bob/camera").Packets > 50 && b.Received("alice/camera").Packets > 50
	})
	if n := h.srv.turn.srv.AllocationCount(); n < 2 {
		t.Fatalf("%d TURN allocations; want one per connection of the relay-only client", n)
	}
}

// Credentials are the TURN REST scheme: accepted by the TURN server until
// they expire, never past the token's expiry, and tied to the secret.
func TestTURNCredentials(t *testing.T) {
	now := time.Now()
	ts := &turnServer{key: turnKey(testSecret), ttl: time.Hour, urls: []string{"turn:x"}}
	handler := turn.LongTermTURNRESTAuthHandler(ts.key, nil)
	check := func(s rooms.ICEServer) bool {
		_, key, ok := handler(&turn.RequestAttributes{Username: s.Username, Realm: "fieldvideo", SrcAddr: &net.UDPAddr{}})
		return ok && string(key) == string(turn.GenerateAuthKey(s.Username, "fieldvideo", s.Credential))
	}
	if s := ts.credentials("bob", now.Add(24*time.Hour), now); !check(s) {
		t.Errorf("fresh credentials refused: %+v", s)
	}
	tokenEnd := now.Add(10 * time.Minute)
	if s := ts.credentials("bob", tokenEnd, now); !strings.HasPrefix(s.Username, strconv.FormatInt(tokenEnd.Unix(), 10)+":") {
		t.Errorf("credentials outlive the token: %s", s.Username)
	}
	if s := ts.credentials("bob", now.Add(-time.Minute), now); check(s) {
		t.Errorf("expired credentials accepted: %+v", s)
	}
	other := &turnServer{key: turnKey([]byte("another-secret-another-secret-another")), ttl: time.Hour}
	if s := other.credentials("bob", time.Time{}, now); check(s) {
		t.Error("credentials from another secret accepted")
	}
	if turnKey(testSecret) == string(testSecret) {
		t.Error("the TURN key is the auth secret itself")
	}
}
