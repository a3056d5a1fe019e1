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
	api, err := rooms.NewAPI(rooms.APIParams{LoopbackOnly: true})
	if err != nil {
		b.t.Fatal(err)
	}
	c := auth.Claims{Role: auth.RoleResponder, Room: room, RoomPublish: true, RoomSubscribe: true}
	c.Subject = who
	tok, err := auth.Mint([]byte(secret), c, time.Hour, time.Now())
	if err != nil {
		b.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(origin.url, "http") + "/v1/rooms/" + room + "/ws"
	cl, err := rooms.Dial(ctx, rooms.ClientParams{URL: url, Token: tok, API: api, Name: who})
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
		api, err := rooms.NewAPI(rooms.APIParams{LoopbackOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		c := auth.Claims{Role: auth.RoleResponder, Room: "incident-1", RoomPublish: true, RoomSubscribe: true}
		c.Subject = "bob"
		tok, _ := auth.Mint([]byte(secret), c, time.Hour, time.Now())
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cl, err := rooms.Dial(ctx, rooms.ClientParams{URL: "ws" + strings.TrimPrefix(bobOrigin.url, "http") + "/v1/rooms/incident-1/ws", Token: tok, API: api, Name: "bob"})
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
