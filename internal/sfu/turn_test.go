package sfu

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/turn/v5"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/conf"
	rooms "fieldvideo/internal/session"
)

// A client that may only use relays (a phone behind a NAT that lets nothing
// in) connects through the embedded TURN server with the credentials of its
// join reply. The relay reaches the SFU's ICE port on this server's own
// (here loopback) address with the default calls.turn.allowed_peer_ranges.
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
	revokedAt := now.Add(-time.Minute) // bob's tokens issued before this are revoked
	ts := &turnServer{key: turnKey(testSecret), ttl: time.Hour, urls: []string{"turn:x"},
		revoked: func(sub string, issued time.Time) bool { return sub == "bob" && !issued.After(revokedAt) }}
	handler := ts.authHandler(nil)
	check := func(s rooms.ICEServer) bool {
		_, key, ok := handler(&turn.RequestAttributes{Username: s.Username, Realm: "fieldvideo", SrcAddr: &net.UDPAddr{}})
		return ok && string(key) == string(turn.GenerateAuthKey(s.Username, "fieldvideo", s.Credential))
	}
	if s := ts.credentials("bob", now, now.Add(24*time.Hour), now); !check(s) {
		t.Errorf("fresh credentials refused: %+v", s)
	}
	tokenEnd := now.Add(10 * time.Minute)
	if s := ts.credentials("bob", now, tokenEnd, now); !strings.HasPrefix(s.Username, strconv.FormatInt(tokenEnd.Unix(), 10)+":") {
		t.Errorf("credentials outlive the token: %s", s.Username)
	}
	if s := ts.credentials("bob", now, now.Add(-time.Minute), now); check(s) {
		t.Errorf("expired credentials accepted: %+v", s)
	}
	if s := ts.credentials("bob", now.Add(-time.Hour), now.Add(time.Hour), now); check(s) {
		t.Errorf("credentials of a revoked token accepted: %+v", s)
	}
	if s := ts.credentials("bob:x", now.Add(-time.Hour), now.Add(time.Hour), now); !check(s) {
		t.Errorf("credentials of another subject refused: %+v", s)
	}
	other := &turnServer{key: turnKey([]byte("another-secret-another-secret-another")), ttl: time.Hour}
	if s := other.credentials("bob", now, time.Time{}, now); check(s) {
		t.Error("credentials from another secret accepted")
	}
	if turnKey(testSecret) == string(testSecret) {
		t.Error("the TURN key is the auth secret itself")
	}
}

// A participant's TURN credentials relay only to public peers and the SFU's
// ICE port: a UDP echo service on the server's loopback is out of reach
// unless calls.turn.allowed_peer_ranges lists loopback. The SFU listens on
// 127.0.0.1 too, so a permission for that address is granted, but only the
// SFU's ICE port is reachable there; other internal addresses get no
// permission at all.
func TestTURNRelayToLoopbackPeer(t *testing.T) {
	for _, c := range []struct {
		name    string
		allowed []string
		relays  bool
	}{
		{"refused by default", nil, false},
		{"allowed by allowed_peer_ranges", []string{"127.0.0.0/8"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			echo, echoed := startUDPEcho(t)
			h := startCallSFU(t, func(s *conf.SFU) {
				s.Calls.TURN.Address = "127.0.0.1:0"
				s.Calls.TURN.AllowedPeerRanges = c.allowed
			})
			g := grant{room: "probe", publish: true, subscribe: true}
			ice := h.join("probe", h.callToken("mallory", auth.RoleResponder, g), nil).Joined().ICEServers
			if len(ice) != 1 {
				t.Fatalf("join reply ICE servers: %+v", ice)
			}
			relay := turnRelay(t, h.srv.TURNAddr(), ice[0])

			for _, peer := range []string{"127.0.0.2", "10.0.0.1", "169.254.169.254", "192.168.1.1"} {
				err := relay.client.CreatePermission(&net.UDPAddr{IP: net.ParseIP(peer), Port: 9})
				allowed := c.relays && strings.HasPrefix(peer, "127.")
				switch {
				case allowed && err != nil:
					t.Errorf("CreatePermission to %s: %v", peer, err)
				case !allowed && (err == nil || !strings.Contains(err.Error(), "403")):
					t.Errorf("CreatePermission to %s: %v; want 403 Forbidden", peer, err)
				}
			}

			if _, err := relay.conn.WriteTo([]byte("ping"), echo); err != nil {
				t.Fatalf("relayed send to %s: %v", echo, err)
			}
			buf := make([]byte, 64)
			wait := 5 * time.Second
			if !c.relays {
				wait = time.Second
			}
			_ = relay.conn.SetReadDeadline(time.Now().Add(wait))
			n, from, err := relay.conn.ReadFrom(buf)
			switch {
			case c.relays && (err != nil || string(buf[:n]) != "ping" || from.String() != echo.String()):
				t.Fatalf("echo through the relay: %q from %v, %v", buf[:n], from, err)
			case !c.relays && err == nil:
				t.Fatalf("the relay reached the loopback echo service: %q from %v", buf[:n], from)
			case !c.relays && echoed.Load() != 0:
				t.Fatalf("the echo service got %d packets through the relay", echoed.Load())
			}
		})
	}
}

// startUDPEcho starts a UDP echo service on loopback; echoed counts the
// packets it answered.
func startUDPEcho(t *testing.T) (*net.UDPAddr, *atomic.Int64) {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var echoed atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			echoed.Add(1)
			_, _ = conn.WriteTo(buf[:n], from)
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	return conn.LocalAddr().(*net.UDPAddr), &echoed
}

// testRelay is a TURN client with an allocation.
type testRelay struct {
	client *turn.Client
	conn   net.PacketConn
}

// turnRelay allocates a relay on the TURN server at addr with the
// credentials of s.
func turnRelay(t *testing.T, addr string, s rooms.ICEServer) testRelay {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	client, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: addr, TURNServerAddr: addr, Conn: conn,
		Username: s.Username, Password: s.Credential, Realm: "fieldvideo",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Listen(); err != nil {
		t.Fatal(err)
	}
	relayConn, err := client.Allocate()
	if err != nil {
		t.Fatalf("TURN allocate with the join reply's credentials: %v", err)
	}
	t.Cleanup(func() { relayConn.Close(); client.Close(); conn.Close() })
	return testRelay{client: client, conn: relayConn}
}

// The peer classifier refuses internal addresses in every form, and an
// allowed range overrides it.
func TestPeerRefusal(t *testing.T) {
	own := func(a netip.Addr) bool {
		return a == netip.MustParseAddr("203.0.113.7") || a == netip.MustParseAddr("2001:db8::7")
	}
	loop := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for _, c := range []struct {
		peer    string
		allowed []netip.Prefix
		want    string
	}{
		{"8.8.8.8", nil, ""},
		{"2606:4700::1111", nil, ""},
		{"127.0.0.1", nil, "loopback"},
		{"127.255.0.9", nil, "loopback"},
		{"0.0.0.0", nil, "unspecified"},
		{"0.1.2.3", nil, "unspecified"},
		{"10.1.2.3", nil, "private"},
		{"172.16.0.1", nil, "private"},
		{"172.31.255.254", nil, "private"},
		{"172.32.0.1", nil, ""},
		{"192.168.1.1", nil, "private"},
		{"100.64.0.1", nil, "carrier-grade NAT"},
		{"100.128.0.1", nil, ""},
		{"169.254.169.254", nil, "link-local"},
		{"224.0.0.251", nil, "multicast"},
		{"239.255.255.250", nil, "multicast"},
		{"255.255.255.255", nil, "broadcast"},
		{"240.0.0.1", nil, "reserved"},
		{"::", nil, "unspecified"},
		{"::1", nil, "loopback"},
		{"fe80::1", nil, "link-local"},
		{"fd12:3456::1", nil, "private"},
		{"fc00::1", nil, "private"},
		{"ff02::1", nil, "multicast"},
		{"::127.0.0.1", nil, "IPv4-compatible (deprecated)"},
		{"::ffff:127.0.0.1", nil, "loopback"},
		{"::ffff:10.0.0.1", nil, "private"},
		{"::ffff:169.254.169.254", nil, "link-local"},
		{"::ffff:8.8.8.8", nil, ""},
		{"64:ff9b::7f00:1", nil, "NAT64 form of loopback"},
		{"64:ff9b::a9fe:a9fe", nil, "NAT64 form of link-local"},
		{"64:ff9b::808:808", nil, ""},
		{"64:ff9b:1::1", nil, "local-use NAT64"},
		{"2002:c0a8:101::1", nil, "6to4 form of private"},
		{"203.0.113.7", nil, "this server's own address"},
		{"::ffff:203.0.113.7", nil, "this server's own address"},
		{"64:ff9b::cb00:7107", nil, "NAT64 form of this server's own address"},
		{"2001:db8::7", nil, "this server's own address"},
		{"127.0.0.1", loop, ""},
		{"::ffff:127.0.0.1", loop, ""},
		{"::1", loop, ""},
		{"64:ff9b::7f00:1", loop, ""},
		{"10.0.0.1", loop, "private"},
		{"203.0.113.7", []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}, ""},
	} {
		t.Run(c.peer, func(t *testing.T) {
			if got := peerRefusal(netip.MustParseAddr(c.peer), c.allowed, own); got != c.want {
				t.Errorf("peerRefusal(%s, %v) = %q, want %q", c.peer, c.allowed, got, c.want)
			}
		})
	}
	if got := peerRefusal(netip.Addr{}, nil, own); got == "" {
		t.Error("an invalid address is not refused")
	}
}

// The permission handler refuses by the classifier and logs each refusal
// with the peer and the allocation's user, at most refusalLogBurst per
// window, then how many went unlogged. It lists the host's addresses again
// when the list is ownAddrsMaxAge old.
func TestPeerPolicyLogsRefusals(t *testing.T) {
	var buf syncBuffer
	now := time.Now()
	addrs := []netip.Addr{netip.MustParseAddr("198.51.100.4")}
	ifaces := func() ([]netip.Addr, error) { return addrs, nil }
	p, err := newPeerPolicy(peerPolicyParams{Fixed: []net.IP{net.ParseIP("203.0.113.7")}, Interfaces: ifaces,
		Log: slog.New(slog.NewTextHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	p.now = func() time.Time { return now }
	client := &net.UDPAddr{IP: net.ParseIP("192.0.2.10"), Port: 40000}
	p.eventHandler().OnAllocationCreated(client, nil, "UDP", "bob", "fieldvideo", nil, 0)

	for _, c := range []struct {
		peer string
		ok   bool
	}{
		{"8.8.8.8", true},
		{"127.0.0.1", false},
		{"198.51.100.4", false},
		{"203.0.113.7", false},
	} {
		if got := p.permit(client, net.ParseIP(c.peer)); got != c.ok {
			t.Errorf("permit(%s) = %v, want %v", c.peer, got, c.ok)
		}
	}
	out := buf.String()
	if !contains(out, "peer=127.0.0.1", "reason=loopback", "user=bob", "client=192.0.2.10:40000", "allowed_peer_ranges") {
		t.Errorf("refusal log lacks peer, reason, user, client or the way out:\n%s", out)
	}
	if !strings.Contains(out, "peer=198.51.100.4") || !strings.Contains(out, "peer=203.0.113.7") {
		t.Errorf("refusals of the server's own addresses not logged:\n%s", out)
	}

	for range 2 * refusalLogBurst {
		p.permit(client, net.ParseIP("10.0.0.1"))
	}
	if n := strings.Count(buf.String(), "\n"); n != refusalLogBurst {
		t.Errorf("%d refusals logged in one window; want at most %d", n, refusalLogBurst)
	}
	now = now.Add(refusalLogWindow)
	p.permit(client, net.ParseIP("10.0.0.1"))
	if !strings.Contains(buf.String(), "unlogged_refusals=13") {
		t.Errorf("the next window's first refusal does not count the unlogged ones:\n%s", buf.String())
	}

	p.eventHandler().OnAllocationDeleted(client, nil, "UDP", "bob", "fieldvideo")
	if len(p.users) != 0 {
		t.Errorf("users after the allocation ended: %v", p.users)
	}

	q, err := newPeerPolicy(peerPolicyParams{Interfaces: ifaces, Log: slog.New(slog.NewTextHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	listed := time.Now()
	q.now = func() time.Time { return listed }
	addrs = []netip.Addr{netip.MustParseAddr("198.51.100.5")}
	if !q.permit(client, net.ParseIP("198.51.100.5")) {
		t.Error("a new interface address refused before the list is due for renewal")
	}
	listed = listed.Add(ownAddrsMaxAge)
	if q.permit(client, net.ParseIP("198.51.100.5")) {
		t.Error("a new interface address still relayed to after the list was renewed")
	}
}

// The SFU's media addresses get permissions, but relays carry packets to and
// from them at the ICE port only: the addresses its candidates advertise,
// and the socket's own address, or every address of this host when it
// listens on all.
func TestPeerPolicyMediaPort(t *testing.T) {
	ifaces := func() ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("198.51.100.4")}, nil
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	client := &net.UDPAddr{IP: net.ParseIP("192.0.2.10"), Port: 40000}
	for _, c := range []struct {
		name      string
		media     string
		advertise []string
		allowed   []netip.Prefix
		peer      string
		permit    bool
		relayable []int // ports of peer a relay carries, of 8189, 22 and 53
	}{
		{"all interfaces: public own address", "0.0.0.0:8189", nil, nil, "198.51.100.4", true, []int{8189}},
		{"all interfaces: private own address", "0.0.0.0:8189", nil, nil, "10.0.0.5", true, []int{8189}},
		{"all interfaces: loopback", "[::]:8189", nil, nil, "127.0.0.1", true, []int{8189}},
		{"all interfaces: relay address", "0.0.0.0:8189", nil, nil, "203.0.113.7", true, []int{8189}},
		{"all interfaces: other private", "0.0.0.0:8189", nil, nil, "10.0.0.6", false, nil},
		{"all interfaces: public peer", "0.0.0.0:8189", nil, nil, "8.8.8.8", true, []int{8189, 22, 53}},
		{"advertised (1:1 NAT)", "10.0.0.5:8189", []string{"203.0.113.9"}, nil, "203.0.113.9", true, []int{8189}},
		{"one address: it", "127.0.0.1:8189", nil, nil, "127.0.0.1", true, []int{8189}},
		{"one address: other loopback", "127.0.0.1:8189", nil, nil, "127.0.0.2", false, nil},
		{"one address: other own", "127.0.0.1:8189", nil, nil, "198.51.100.4", false, nil},
		{"one address: allowed range", "127.0.0.1:8189", nil, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, "10.0.0.5", true, []int{8189, 22, 53}},
		{"no media address", "", nil, nil, "198.51.100.4", false, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			pp := peerPolicyParams{Allowed: c.allowed, Fixed: []net.IP{net.ParseIP("203.0.113.7")}, Interfaces: ifaces, Log: log}
			if c.media != "" {
				pp.Media = net.UDPAddrFromAddrPort(netip.MustParseAddrPort(c.media))
			}
			for _, a := range c.advertise {
				pp.MediaIPs = append(pp.MediaIPs, net.ParseIP(a))
			}
			p, err := newPeerPolicy(pp)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.permit(client, net.ParseIP(c.peer)); got != c.permit {
				t.Errorf("permit(%s) = %v, want %v", c.peer, got, c.permit)
			}
			for _, port := range []int{8189, 22, 53} {
				want := slices.Contains(c.relayable, port)
				if got := p.relayable(&net.UDPAddr{IP: net.ParseIP(c.peer), Port: port}); got != want {
					t.Errorf("relayable(%s:%d) = %v, want %v", c.peer, port, got, want)
				}
			}
		})
	}
}

// An allowed range that is not CIDR is a configuration error naming it.
func TestTURNAllowedPeerRangesValidation(t *testing.T) {
	for _, c := range []struct {
		ranges []string
		bad    string
	}{
		{[]string{"127.0.0.0/8", "::1/128"}, ""},
		{[]string{"127.0.0.1"}, "127.0.0.1"},
		{[]string{"10.0.0.0/8", "10.0.0.0/33"}, "10.0.0.0/33"},
		{[]string{"loopback"}, "loopback"},
	} {
		t.Run(strings.Join(c.ranges, ","), func(t *testing.T) {
			s := conf.DefaultSFU()
			s.Calls.TURN.Address = "127.0.0.1:0"
			s.Calls.TURN.AllowedPeerRanges = c.ranges
			err := s.Validate()
			if c.bad == "" && err != nil {
				t.Fatalf("valid ranges refused: %v", err)
			}
			if c.bad != "" && (err == nil || !contains(err.Error(), "allowed_peer_ranges", strconv.Quote(c.bad))) {
				t.Fatalf("got %v, want an error naming calls.turn.allowed_peer_ranges and %q", err, c.bad)
			}
			if _, err := parsePeerRanges(c.ranges); (err == nil) != (c.bad == "") {
				t.Fatalf("parsePeerRanges(%v): %v", c.ranges, err)
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
