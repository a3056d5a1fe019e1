package sfu

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"fieldvideo/internal/auth"
	rooms "fieldvideo/internal/session"
	"fieldvideo/internal/testkit"
)

// A phone moving between cells loses its path and its signalling socket at
// once; it resumes the session on a new socket and restarts ICE over the new
// path, and the call goes on without the others seeing it leave.
func TestCallICERestartAfterNetworkChange(t *testing.T) {
	h := startCallSFU(t, nil)
	g := grant{room: "move", publish: true, subscribe: true}
	a := h.join("move", h.callToken("alice", auth.RoleCommander, g), nil)
	cell1 := testkit.NewShim(t, h.srv.UDPAddr())
	var cells atomic.Pointer[testkit.Shim]
	cells.Store(cell1)
	b := h.join("move", h.callToken("bob", auth.RoleResponder, g), func(p *rooms.ClientParams) {
		p.RemoteSDP = rooms.RewriteCandidates(h.srv.UDPAddr(), cell1.Addr())
		p.LocalSDP = func(s string) string { return cells.Load().ClientSDP(s) }
	})
	publishSynth(t, a, 127)
	publishSynth(t, b, 127)
	waitUntil(t, "media both ways", 15*time.Second, func() bool {
		return a.Received("bob/camera").Packets > 50 && b.Received("alice/camera").Packets > 50
	})

	// The old cell is gone: nothing passes any more.
	cell1.Close()
	cut := time.Now()
	cell2 := testkit.NewShim(t, h.srv.UDPAddr())
	cells.Store(cell2)
	b.SetRemoteSDP(rooms.RewriteCandidates(h.srv.UDPAddr(), cell2.Addr()))

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := b.Reconnect(ctx); err != nil {
		t.Fatalf("resume: %v", err)
	}
	if j := b.Joined(); !j.Resumed || len(j.Participants) != 1 {
		t.Fatalf("resume reply: %+v", j)
	}
	if err := b.RestartICE(ctx); err != nil {
		t.Fatalf("ICE restart: %v", err)
	}
	gotA, gotB := a.Received("bob/camera").Packets, b.Received("alice/camera").Packets
	waitUntil(t, "media both ways after the restart", 15*time.Second, func() bool {
		return a.Received("bob/camera").Packets > gotA+100 && b.Received("alice/camera").Packets > gotB+100 &&
			b.Received("alice/microphone").Last.After(cut)
	})
	t.Logf("media back %s after the path was cut", time.Since(cut).Round(time.Millisecond))
	for _, m := range a.Messages() {
		if m.Type == rooms.TypeParticipantLeft {
			t.Fatalf("alice saw bob leave during the network change: %s", m.Raw)
		}
	}
	if rs := h.srv.Rooms(); len(rs) != 1 || len(rs[0].Participants) != 2 {
		t.Fatalf("rooms after the change: %+v", rs)
	}
}
