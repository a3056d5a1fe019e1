package cluster

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"fieldvideo/internal/auth"
	rooms "fieldvideo/internal/session"
	"fieldvideo/internal/testkit"
)

// callJoin joins room through the SFU at origin (the node the participant's
// page came from), following the cluster to the room's home node.
func (b *bench) callJoin(origin *sfuNode, room, who string) *rooms.Client {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := rooms.Dial(ctx, rooms.ClientParams{URL: roomWS(origin, room), Token: b.roomToken(room, who), API: b.roomAPI(), Name: who})
	if err != nil {
		b.t.Fatalf("%s joins %s through %s: %v", who, room, origin.name, err)
	}
	b.t.Cleanup(func() { _ = cl.Close() })
	return cl
}

func names(ps []rooms.ParticipantInfo) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.ID)
	}
	return out
}

// TestCallRoomHasOneHomeAndSurvivesIt: participants reaching different
// nodes meet in one room on its home node; when that node dies they rejoin
// through their own nodes and meet again on a new home.
func TestCallRoomHasOneHomeAndSurvivesIt(t *testing.T) {
	b := newBench(t)
	s1, s2, s3 := b.startSFU("sfu-1"), b.startSFU("sfu-2"), b.startSFU("sfu-3")
	testkit.WaitFor(t, 10*time.Second, "the nodes seeing each other", func() bool {
		var st struct {
			Nodes []struct{ Name string } `json:"nodes"`
		}
		b.api("GET", s2.url+"/v1/cluster", nil, &st)
		return len(st.Nodes) == 3
	})
	alice := b.callJoin(s1, "incident-1", "alice")
	var home *sfuNode
	for _, s := range []*sfuNode{s1, s2, s3} {
		if strings.Contains(alice.URL(), strings.TrimPrefix(s.url, "http://")) {
			home = s
		}
	}
	if home == nil {
		t.Fatalf("alice joined at %s, no node of the cluster", alice.URL())
	}
	// bob reaches another node than the home
	bobOrigin, carolOrigin := s2, s3
	if home == s2 {
		bobOrigin, carolOrigin = s3, s1
	}
	bob := b.callJoin(bobOrigin, "incident-1", "bob")
	if bob.URL() != alice.URL() {
		t.Errorf("bob joined at %s; want sent to the room's home %s (%s)", bob.URL(), home.name, alice.URL())
	}
	if got := names(bob.Joined().Participants); len(got) != 1 || got[0] != "alice" {
		t.Errorf("bob sees %v in the room; want alice", got)
	}

	// The home node dies: bob joins again through his own node, which becomes the home
	// (or sends him to the one that did); carol, reaching a third node, meets him there.
	_ = home.Signal(syscall.SIGKILL)
	<-home.Done()
	killed := time.Now()
	var bob2 *rooms.Client
	testkit.WaitFor(t, 20*time.Second, "bob back in the room", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cl, err := rooms.Dial(ctx, rooms.ClientParams{URL: roomWS(bobOrigin, "incident-1"), Token: b.roomToken("incident-1", "bob"), API: b.roomAPI(), Name: "bob"})
		if err != nil {
			return false
		}
		t.Cleanup(func() { _ = cl.Close() })
		bob2 = cl
		return true
	})
	t.Logf("the room's home node killed → a participant back in the call after %s (at %s)", time.Since(killed).Round(time.Millisecond), bob2.URL())
	if carolOrigin == home {
		carolOrigin = bobOrigin
	}
	carol := b.callJoin(carolOrigin, "incident-1", "carol")
	if carol.URL() != bob2.URL() {
		t.Errorf("carol joined at %s, bob at %s; want one home", carol.URL(), bob2.URL())
	}
	if got := names(carol.Joined().Participants); len(got) != 1 || got[0] != "bob" {
		t.Errorf("carol sees %v in the room; want bob", got)
	}
}

// TestSplitCallMergesAfterThePartitionHeals: the room's home is cut off
// from NATS; its participants go on talking there, and a participant
// reaching it then still gets in (the edge never waits for the cluster),
// while the other node becomes the room's home for those reaching it. Once
// the link is mended the cut-off node moves its participants to the room's
// home, and joining again through their own node they meet the others: one
// call, not two.
func TestSplitCallMergesAfterThePartitionHeals(t *testing.T) {
	b := newBench(t)
	l1 := testkit.NewLink(t, strings.TrimPrefix(b.nats.URL, "nats://"))
	l2 := testkit.NewLink(t, strings.TrimPrefix(b.nats.URL, "nats://"))
	s1, s2 := b.startSFUVia("sfu-1", "nats://"+l1.Addr()), b.startSFUVia("sfu-2", "nats://"+l2.Addr())
	links := map[*sfuNode]*testkit.Link{s1: l1, s2: l2}
	testkit.WaitFor(t, 10*time.Second, "the nodes seeing each other", func() bool {
		var st struct {
			Nodes []struct{ Name string } `json:"nodes"`
		}
		b.api("GET", s1.url+"/v1/cluster", nil, &st)
		return len(st.Nodes) == 2
	})
	const room = "incident-7"
	alice := b.callJoin(s1, room, "alice")
	cut, other := s1, s2
	if !strings.Contains(alice.URL(), strings.TrimPrefix(s1.url, "http://")) {
		cut, other = s2, s1
	}

	links[cut].Cut()
	var health struct{ Status string }
	testkit.WaitFor(t, 10*time.Second, "the home cut off: /healthz isolated", func() bool {
		return b.api("GET", cut.url+"/healthz", nil, &health) == 503 && health.Status == "isolated"
	})
	// carol reaches the cut-off node: she gets in, beside alice.
	carol := b.callJoin(cut, room, "carol")
	if carol.URL() != alice.URL() {
		t.Errorf("carol joined at %s during the partition; want the cut-off node %s", carol.URL(), alice.URL())
	}
	if got := names(carol.Joined().Participants); len(got) != 1 || got[0] != "alice" {
		t.Errorf("carol sees %v in the cut-off room; want alice", got)
	}
	// bob reaches the other node once it has dropped the silent one (before
	// that it sends him there): the claim lapsed, the room lives there too, for him.
	testkit.WaitFor(t, 10*time.Second, "the other node dropping the cut-off one", func() bool {
		var st struct {
			Nodes []struct{ Name string } `json:"nodes"`
		}
		return b.api("GET", other.url+"/v1/cluster", nil, &st) == 200 && len(st.Nodes) == 1
	})
	var bob *rooms.Client
	testkit.WaitFor(t, 20*time.Second, "bob in the room on the other side", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cl, err := rooms.Dial(ctx, rooms.ClientParams{URL: roomWS(other, room), Token: b.roomToken(room, "bob"), API: b.roomAPI(), Name: "bob"})
		if err != nil {
			return false
		}
		t.Cleanup(func() { _ = cl.Close() })
		bob = cl
		return true
	})
	if !strings.Contains(bob.URL(), strings.TrimPrefix(other.url, "http://")) {
		t.Fatalf("bob joined at %s; want %s, the side still in the cluster", bob.URL(), other.name)
	}

	// healed: alice and carol are told the room lives on the other node now.
	links[cut].Mend()
	healed := time.Now()
	for _, c := range []*rooms.Client{alice, carol} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		m, err := c.WaitFor(ctx, func(m rooms.Message) bool { return m.Type == rooms.TypeMoved || m.Type == rooms.TypeBye })
		cancel()
		if err != nil {
			t.Fatalf("%s: no word of the room's new home after the partition healed: %v", c.Joined().Participant.ID, err)
		}
		var mv rooms.Moved
		_ = m.Decode(&mv)
		if m.Type != rooms.TypeMoved || mv.URL != roomWS(other, room) {
			t.Fatalf("%s got %s %s; want moved to %s", c.Joined().Participant.ID, m.Type, m.Raw, roomWS(other, room))
		}
	}
	t.Logf("partition healed → the cut-off node's participants sent to the room's home after %s", time.Since(healed).Round(time.Millisecond))
	// alice joins again through her own node and meets bob: one call.
	alice2 := b.callJoin(cut, room, "alice")
	if alice2.URL() != bob.URL() {
		t.Errorf("alice joined again at %s, bob is at %s; want one home", alice2.URL(), bob.URL())
	}
	if got := names(alice2.Joined().Participants); len(got) != 1 || got[0] != "bob" {
		t.Errorf("alice sees %v in the room after it healed; want bob", got)
	}
}

func roomWS(s *sfuNode, room string) string {
	return "ws" + strings.TrimPrefix(s.url, "http") + "/v1/rooms/" + room + "/ws"
}

func (b *bench) roomAPI() *rooms.API {
	b.t.Helper()
	api, err := rooms.NewAPI(rooms.APIParams{LoopbackOnly: true})
	if err != nil {
		b.t.Fatal(err)
	}
	return api
}

func (b *bench) roomToken(room, who string) string {
	b.t.Helper()
	c := auth.Claims{Role: auth.RoleResponder, Room: room, RoomPublish: true, RoomSubscribe: true}
	c.Subject = who
	tok, err := auth.Mint([]byte(secret), c, time.Hour, time.Now())
	if err != nil {
		b.t.Fatal(err)
	}
	return tok
}
