package sfu

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"

	"fieldvideo/internal/auth"
	rooms "fieldvideo/internal/session"
)

// seqCheck records the sequence numbers of one received track and counts
// jumps, to check that forwarding keeps the outgoing stream continuous.
type seqCheck struct {
	mu    sync.Mutex
	last  map[string]uint16
	jumps map[string]int
}

func (s *seqCheck) on(track string, p *rtp.Packet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		s.last, s.jumps = map[string]uint16{}, map[string]int{}
	}
	if prev, ok := s.last[track]; ok && p.SequenceNumber != prev+1 {
		s.jumps[track]++
	}
	s.last[track] = p.SequenceNumber
}

func TestCallTwoParticipants(t *testing.T) {
	h := startCallSFU(t, nil)
	g := grant{room: "incident-7", publish: true, subscribe: true}
	var seqA, seqB seqCheck
	a := h.join("incident-7", h.callToken("alice", auth.RoleCommander, g), func(p *rooms.ClientParams) { p.OnPacket = seqA.on })
	b := h.join("incident-7", h.callToken("bob", auth.RoleOperator, g), func(p *rooms.ClientParams) { p.OnPacket = seqB.on })

	if j := b.Joined(); len(j.Participants) != 1 || j.Participants[0].ID != "alice" || !j.Grants.Publish {
		t.Fatalf("bob's join reply: %+v", j)
	}
	waitMsg(t, a, rooms.TypeParticipantJoin, 5*time.Second, func(e rooms.ParticipantEvent) bool { return e.Participant.ID == "bob" })

	publishSynth(t, a, 20) // alice talks
	publishSynth(t, b, 127)
	waitUntil(t, "media both ways", 15*time.Second, func() bool {
		return a.Received("bob/camera").Packets > 100 && a.Received("bob/microphone").Packets > 50 &&
			b.Received("alice/camera").Packets > 100 && b.Received("alice/microphone").Packets > 50
	})
	for _, s := range []*seqCheck{&seqA, &seqB} {
		s.mu.Lock()
		for track, n := range s.jumps {
			if n > 0 {
				t.Errorf("%s: sequence jumped %d times", track, n)
			}
		}
		s.mu.Unlock()
	}

	// Active speaker: alice's microphone carries a loud level, bob's silence.
	sp := waitMsg(t, b, rooms.TypeSpeakers, 5*time.Second, func(e rooms.SpeakersEvent) bool { return len(e.Speakers) > 0 })
	if sp.Speakers[0].Participant != "alice" || len(sp.Speakers) != 1 {
		t.Errorf("speakers: %+v, want alice alone", sp.Speakers)
	}

	// Mute and unmute reach the other side.
	if err := a.Mute("alice/microphone", true); err != nil {
		t.Fatal(err)
	}
	waitMsg(t, b, rooms.TypeTrackMuted, 5*time.Second, func(e rooms.TrackEvent) bool { return e.Track.ID == "alice/microphone" && e.Track.Muted })
	if err := a.Mute("alice/microphone", false); err != nil {
		t.Fatal(err)
	}
	waitMsg(t, b, rooms.TypeTrackMuted, 5*time.Second, func(e rooms.TrackEvent) bool { return e.Track.ID == "alice/microphone" && !e.Track.Muted })
	// Muting someone else's track is refused.
	if err := b.Mute("alice/camera", true); err != nil {
		t.Fatal(err)
	}
	waitMsg(t, b, rooms.TypeError, 5*time.Second, func(e rooms.ErrorMessage) bool { return e.Code == rooms.CodeNotFound })

	// Leaving: alice sees bob go, and his tracks end.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	waitMsg(t, a, rooms.TypeParticipantLeft, 5*time.Second, func(e rooms.ParticipantEvent) bool { return e.Participant.ID == "bob" && e.Reason == "left" })
	waitMsg(t, a, rooms.TypeUnsubscribed, 5*time.Second, func(e rooms.SubscriptionEvent) bool { return e.Track == "bob/camera" })
	waitUntil(t, "room with alice alone", 5*time.Second, func() bool {
		rs := h.srv.Rooms()
		return len(rs) == 1 && len(rs[0].Participants) == 1 && rs[0].Subscriptions["alice/camera"] == 0
	})

	b2, err := os.ReadFile(h.audit)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"actor":"bob","role":"operator","action":"join"`, `"action":"publish","source":"incident-7/alice/camera","via":"room"`,
		`"actor":"bob","role":"operator","action":"subscribe","source":"incident-7/alice/microphone"`, `"actor":"bob","role":"operator","action":"leave"`} {
		if !contains(string(b2), want) {
			t.Errorf("audit log lacks %s:\n%s", want, b2)
		}
	}
}

// Subscribing and unsubscribing again and again: every new subscription plays. The Go
// client joins with new_sections (pion cannot take back a media section made inactive),
// so each gets its own; browsers reuse them (TestCallFieldCamera in web/console).
func TestCallResubscribe(t *testing.T) {
	h := startCallSFU(t, nil)
	h.publish("cam3", layerQ)
	g := grant{room: "re", publish: true, subscribe: true}
	a := h.join("re", h.callToken("alice", auth.RoleOperator, g), nil)
	publishSynth(t, a, 20)
	g.view = []string{"cam3"}
	b := h.join("re", h.callToken("bob", auth.RoleCommander, g), func(p *rooms.ClientParams) { p.AutoSubscribe = false })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tracks := []string{"alice/camera", "alice/microphone", "field:cam3/video"}
	waitUntil(t, "alice's tracks published", 10*time.Second, func() bool {
		n := 0
		for _, m := range b.Messages() {
			var e rooms.TrackEvent
			if m.Type == rooms.TypeTrackPublished && m.Decode(&e) == nil && strings.HasPrefix(e.Track.ID, "alice/") {
				n++
			}
		}
		return n == 2
	})
	for round := range 3 {
		for _, tr := range tracks {
			if err := b.Subscribe(ctx, tr, false); err != nil {
				t.Fatalf("round %d: subscribe %s: %v", round, tr, err)
			}
		}
		for _, tr := range tracks {
			before := b.Received(tr).Packets
			waitUntil(t, fmt.Sprintf("round %d: %s playing", round, tr), 15*time.Second, func() bool { return b.Received(tr).Packets > before+20 })
		}
		for _, tr := range tracks {
			if err := b.Unsubscribe(ctx, tr); err != nil {
				t.Fatalf("round %d: unsubscribe %s: %v", round, tr, err)
			}
		}
	}
}
