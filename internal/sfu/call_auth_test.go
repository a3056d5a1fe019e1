package sfu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/conf"
	rooms "fieldvideo/internal/session"
	"fieldvideo/internal/testkit"
)

// dialRoom opens the room's WebSocket, closed when the test ends, and sends
// first unless it is empty.
func dialRoom(t *testing.T, h *callHarness, room, first string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, h.roomURL(room), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	if first != "" {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(first)); err != nil {
			t.Fatal(err)
		}
	}
	return ws
}

// rawJoin opens the room's WebSocket, sends first and returns every message
// until the server closes the socket.
func rawJoin(t *testing.T, h *callHarness, room string, first string) []rooms.Message {
	t.Helper()
	ws := dialRoom(t, h, room, first)
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	var out []rooms.Message
	for {
		_, b, err := ws.ReadMessage()
		if err != nil {
			if _, ok := err.(*websocket.CloseError); !ok {
				t.Fatalf("the server did not close the socket after refusing: %v", err)
			}
			return out
		}
		var hd rooms.Header
		_ = json.Unmarshal(b, &hd)
		out = append(out, rooms.Message{Type: hd.Type, ID: hd.ID, Raw: b})
	}
}

func TestCallTokensRefused(t *testing.T) {
	h := startCallSFU(t, nil)
	mint := func(secret []byte, c auth.Claims, ttl time.Duration, at time.Time) string {
		tok, err := auth.Mint(secret, c, ttl, at)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	ok := auth.Claims{Role: auth.RoleResponder, Room: "r1", RoomPublish: true, RoomSubscribe: true}
	ok.Subject = "eve"
	noRoom := ok
	noRoom.Room = ""
	other := []byte("some-other-secret-some-other-secret!!")
	join := func(tok string) string { return `{"type":"join","id":1,"token":"` + tok + `"}` }
	for _, c := range []struct {
		name, room, first, code, reason string
	}{
		{"expired", "r1", join(mint(testSecret, ok, time.Minute, time.Now().Add(-time.Hour))), rooms.CodeUnauthorized, "token expired"},
		{"wrong signature", "r1", join(mint(other, ok, time.Hour, time.Now())), rooms.CodeUnauthorized, "signature does not match"},
		{"wrong room", "r2", join(mint(testSecret, ok, time.Hour, time.Now())), rooms.CodeForbidden, `may not join room "r2" (its room grant: r1)`},
		{"no room grant", "r1", join(mint(testSecret, noRoom, time.Hour, time.Now())), rooms.CodeForbidden, "its room grant: none"},
		{"no token", "r1", `{"type":"join","id":1}`, rooms.CodeBadRequest, "token is empty"},
		{"garbage token", "r1", join("not.a.token"), rooms.CodeUnauthorized, "malformed token"},
		{"not a join first", "r1", `{"type":"subscribe","id":3,"track":"x/camera"}`, rooms.CodeUnauthorized, "first message must be a join"},
		{"not JSON", "r1", `hello`, rooms.CodeBadRequest, "not a JSON object"},
	} {
		t.Run(c.name, func(t *testing.T) {
			msgs := rawJoin(t, h, c.room, c.first)
			if len(msgs) == 0 || msgs[0].Type != rooms.TypeError {
				t.Fatalf("got %v, want an error then bye", msgs)
			}
			var e rooms.ErrorMessage
			_ = msgs[0].Decode(&e)
			if e.Code != c.code || !strings.Contains(e.Reason, c.reason) {
				t.Fatalf("error %s %q; want %s containing %q", e.Code, e.Reason, c.code, c.reason)
			}
			for _, m := range msgs {
				if m.Type == rooms.TypeJoined || m.Type == rooms.TypeOffer {
					t.Fatalf("a refused client got %s", m.Raw)
				}
			}
		})
	}
	if rs := h.srv.Rooms(); len(rs) != 0 {
		t.Fatalf("refused joins left rooms behind: %+v", rs)
	}

	// Grants inside a room: publishing needs room_publish, subscribing
	// room_subscribe, a field camera its view grant.
	pub := h.join("r1", h.callToken("pub", auth.RoleCommander, grant{room: "r1", publish: true, subscribe: true}), nil)
	publishSynth(t, pub, 127)
	watcher := h.join("r1", h.callToken("wall", auth.RoleWall, grant{room: "r1", subscribe: true}), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := watcher.Publish(ctx, rooms.TrackSpec{Source: rooms.SourceCamera, Codec: "H264"})
	if e, ok := err.(*rooms.Error); !ok || e.Code != rooms.CodeForbidden || !strings.Contains(e.Reason, "no room_publish grant") {
		t.Errorf("publish without grant: %v", err)
	}
	mute := h.join("r1", h.callToken("mute", auth.RoleResponder, grant{room: "r1", publish: true}), func(p *rooms.ClientParams) { p.AutoSubscribe = false })
	err = mute.Subscribe(ctx, "pub/camera", false)
	if e, ok := err.(*rooms.Error); !ok || e.Code != rooms.CodeForbidden || !strings.Contains(e.Reason, "no room_subscribe grant") {
		t.Errorf("subscribe without grant: %v", err)
	}
	if err := watcher.Subscribe(ctx, "field:cam9/video", false); err == nil || !strings.Contains(err.Error(), "not_found") {
		t.Errorf("unknown track: %v", err)
	}
	b, _ := os.ReadFile(h.audit)
	if !contains(string(b), `"action":"join","source":"r2","via":"room"`, `"result":"denied"`) {
		t.Errorf("refused joins are not audited:\n%s", b)
	}
}

// A socket that never joins is closed at the join deadline even when it
// keeps sending frames and answering pings, so unauthenticated sockets cannot
// hold the server's connections; a participant that joined may stay quiet.
func TestUnjoinedSocketIsClosedAtTheJoinDeadline(t *testing.T) {
	const joinTimeout = time.Second
	h := startCallSFU(t, func(c *conf.SFU) { c.Calls.JoinTimeout = joinTimeout })
	member := h.join("r1", h.callToken("quiet", auth.RoleResponder, grant{room: "r1", subscribe: true}), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws := dialRoom(t, h, "r1", "")
	opened := time.Now()
	closed := make(chan error, 1)
	go func() {
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				closed <- err
				return
			}
		}
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var end error
	for end == nil {
		select {
		case end = <-closed:
		case <-tick.C:
			_ = ws.WriteMessage(websocket.BinaryMessage, []byte{0})
			_ = ws.WriteControl(websocket.PongMessage, nil, time.Now().Add(time.Second))
		case <-ctx.Done():
			t.Fatalf("a socket sending frames without joining was still open after %s (join timeout %s)", time.Since(opened).Round(time.Millisecond), joinTimeout)
		}
	}
	if time.Since(opened) < joinTimeout {
		t.Errorf("closed after %s, before the join timeout", time.Since(opened))
	}
	if rs := h.srv.Rooms(); len(rs) != 1 || len(rs[0].Participants) != 1 {
		t.Errorf("the joined participant, quiet for longer than the join timeout, left: rooms %+v", rs)
	}
	rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer rcancel()
	if err := member.Subscribe(rctx, "nobody/camera", false); err == nil || !strings.Contains(err.Error(), "not_found") {
		t.Errorf("the joined participant's socket does not answer: %v", err)
	}
}

// One token subject is in at most calls.max_rooms_per_participant rooms at
// once; joining one of them again replaces that participant; once it has
// left one, it may join another.
func TestRoomsPerParticipant(t *testing.T) {
	h := startCallSFU(t, func(c *conf.SFU) { c.Calls.MaxRoomsPerParticipant = 2 })
	tok := h.callToken("roamer", auth.RoleOperator, grant{room: "probe-*", subscribe: true})
	join := `{"type":"join","id":1,"token":"` + tok + `"}`
	a := h.join("probe-a", tok, nil)
	h.join("probe-b", tok, nil)
	msgs := rawJoin(t, h, "probe-c", join)
	var e rooms.ErrorMessage
	if len(msgs) == 0 || msgs[0].Decode(&e) != nil || e.Code != rooms.CodeForbidden || !strings.Contains(e.Reason, "max_rooms_per_participant") {
		t.Fatalf("a third room: %v (%+v); want forbidden naming calls.max_rooms_per_participant", msgs, e)
	}
	h.join("probe-b", tok, nil) // the same room again: it replaces the participant there
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "roamer out of probe-a", func() bool {
		for _, r := range h.srv.Rooms() {
			if r.Name == "probe-a" && len(r.Participants) > 0 {
				return false
			}
		}
		return true
	})
	h.join("probe-c", tok, nil)
}

// A participant flooding the server with requests that make it work is
// refused past its request budget: those requests are neither served nor
// audited one by one, and its other requests (pings) are still answered.
func TestCallRequestFloodIsRefused(t *testing.T) {
	h := startCallSFU(t, nil)
	tok := h.callToken("flood", auth.RoleResponder, grant{room: "r1", subscribe: true})
	ws := dialRoom(t, h, "r1", `{"type":"join","id":1,"token":"`+tok+`"}`)
	const n = 300
	for i := range n {
		msg := fmt.Sprintf(`{"type":"subscribe","id":%d,"track":"nobody/camera"}`, 100+i)
		if err := ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","id":9999}`)); err != nil {
		t.Fatal(err)
	}
	codes := map[string]int{}
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for pong := false; !pong; {
		_, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("after %v: %v", codes, err)
		}
		var m struct {
			Type, Code string
			ID         int64
		}
		_ = json.Unmarshal(b, &m)
		switch {
		case m.Type == rooms.TypeError:
			codes[m.Code]++
		case m.Type == rooms.TypePong && m.ID == 9999:
			pong = true
		}
	}
	served := codes[rooms.CodeNotFound]
	if codes[rooms.CodeRateLimited] == 0 || served < rooms.RequestBurst || served > n/2 {
		t.Errorf("%d subscribes answered %v; want about %d served (not_found) and the rest rate_limited", n, codes, rooms.RequestBurst)
	}
	b, _ := os.ReadFile(h.audit)
	if lines := strings.Count(string(b), `"actor":"flood"`); lines > served+2 {
		t.Errorf("%d audit lines for the flooding participant, %d requests served", lines, served)
	}
}

// A participant whose media connection never comes up (its subscribe offer
// never answered) is ended after the resume window, as a lost one is.
func TestCallConnectionNeverUpEnds(t *testing.T) {
	const window = 2 * time.Second
	h := startCallSFU(t, func(c *conf.SFU) { c.Calls.ResumeWindow = window })
	pub := h.join("r1", h.callToken("pub", auth.RoleCommander, grant{room: "r1", publish: true, subscribe: true}), nil)
	publishSynth(t, pub, 127)
	tok := h.callToken("mute", auth.RoleResponder, grant{room: "r1", subscribe: true})
	ws := dialRoom(t, h, "r1", `{"type":"join","id":1,"token":"`+tok+`","auto_subscribe":true}`)
	var offered, joinedAt time.Time
	var bye string
	_ = ws.SetReadDeadline(time.Now().Add(15 * time.Second))
	for bye == "" {
		_, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("the socket ended without a bye: %v", err)
		}
		var m struct{ Type, PC, Reason string }
		_ = json.Unmarshal(b, &m)
		switch {
		case m.Type == rooms.TypeJoined:
			joinedAt = time.Now()
		case m.Type == rooms.TypeOffer && offered.IsZero():
			offered = time.Now()
		case m.Type == rooms.TypeBye:
			bye = m.Reason
		}
	}
	if joinedAt.IsZero() || offered.IsZero() {
		t.Fatalf("joined at %v, offered at %v", joinedAt, offered)
	}
	if !strings.Contains(bye, "not up within") || time.Since(offered) < window {
		t.Errorf("ended %s after the offer with %q; want it after the %s resume window, naming it", time.Since(offered), bye, window)
	}
	if rs := h.srv.Rooms(); len(rs) != 1 || len(rs[0].Participants) != 1 {
		t.Errorf("rooms %+v; want only the publisher left", rs)
	}
}

// Field cameras published by WHIP appear in rooms as tracks for those whose
// token may view them, and can be pinned.
func TestCallFieldCamera(t *testing.T) {
	h := startCallSFU(t, nil)
	h.publish("cam3", layerF)
	viewer := h.join("r1", h.callToken("eoc", auth.RoleOperator, grant{room: "r1", subscribe: true, view: []string{"cam*"}}), nil)
	blind := h.join("r1", h.callToken("resp", auth.RoleResponder, grant{room: "r1", subscribe: true, view: []string{"other"}}), nil)
	hasField := func(ts []rooms.TrackInfo) bool {
		for _, tr := range ts {
			if tr.ID == "field:cam3/video" && tr.Source == rooms.SourceField {
				return true
			}
		}
		return false
	}
	if !hasField(viewer.Joined().Tracks) || hasField(blind.Joined().Tracks) {
		t.Fatalf("field tracks: viewer %+v, blind %+v", viewer.Joined().Tracks, blind.Joined().Tracks)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := viewer.Subscribe(ctx, "field:cam3/video", true); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "field camera video", 10*time.Second, func() bool { return viewer.Received("field:cam3/video").Packets > 50 })
	err := blind.Subscribe(ctx, "field:cam3/video", false)
	if e, ok := err.(*rooms.Error); !ok || e.Code != rooms.CodeForbidden {
		t.Fatalf("field camera without view grant: %v", err)
	}
	b, _ := os.ReadFile(h.audit)
	if !contains(string(b), `"actor":"eoc","role":"operator","action":"view","source":"cam3","via":"room"`) {
		t.Errorf("watching a field camera is not audited:\n%s", b)
	}
}

// TestCallRenew: a participant that hands a newer token of its own (a renewed sign-in) stays
// past the expiry of the token it joined with; one that does not is removed then; a token of
// someone else, or an invalid one, renews nothing.
func TestCallRenew(t *testing.T) {
	h := startCallSFU(t, nil)
	mint := func(who string, ttl time.Duration) string {
		c := auth.Claims{Role: auth.RoleResponder, Room: "r1", RoomPublish: true, RoomSubscribe: true}
		c.Subject = who
		tok, err := auth.Mint(testSecret, c, ttl, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	// eve's first token expires a second before mallory's: when mallory is removed, eve's
	// first token has been out for a second.
	eve := h.join("r1", mint("eve", 2*time.Second), nil)
	mallory := h.join("r1", mint("mallory", 3*time.Second), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	for _, c := range []struct{ name, token, code, reason string }{
		{"someone else's token", mint("mallory", time.Hour), rooms.CodeForbidden, "renews its own participant only"},
		{"an invalid token", "not.a.token", rooms.CodeUnauthorized, "new token is refused"},
	} {
		var e *rooms.Error
		if _, err := eve.Renew(ctx, c.token); !errors.As(err, &e) || e.Code != c.code || !strings.Contains(e.Reason, c.reason) {
			t.Errorf("renew with %s: %v; want %s containing %q", c.name, err, c.code, c.reason)
		}
	}
	r, err := eve.Renew(ctx, mint("eve", time.Hour))
	if err != nil {
		t.Fatalf("renew with eve's own newer token: %v", err)
	}
	if r.Expires == nil || time.Until(*r.Expires) < 50*time.Minute {
		t.Fatalf("renewed until %v, want about an hour from now", r.Expires)
	}

	wait, cancelWait := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancelWait()
	m, err := mallory.WaitFor(wait, func(m rooms.Message) bool { return m.Type == rooms.TypeBye })
	if err != nil {
		t.Fatalf("mallory, who did not renew, was not removed at expiry: %v", err)
	}
	if !strings.Contains(string(m.Raw), "expired") {
		t.Errorf("mallory's goodbye %s, want it to say the token expired", m.Raw)
	}
	for _, m := range eve.Messages() {
		if m.Type == rooms.TypeBye {
			t.Fatalf("eve renewed and was removed anyway: %s", m.Raw)
		}
	}
	if _, err := eve.Renew(ctx, mint("eve", 2*time.Hour)); err != nil {
		t.Fatalf("eve is not served after her first token's expiry: %v", err)
	}
	var renews int
	for _, e := range h.auditLines() {
		if e.Action == "renew" && e.Actor == "eve" {
			renews++
		}
	}
	if renews != 4 {
		t.Errorf("%d renews of eve in the audit trail, want 4 (2 refused, 2 accepted)", renews)
	}
}
