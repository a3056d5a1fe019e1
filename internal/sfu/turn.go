package sfu

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v5"

	"fieldvideo/internal/conf"
	rooms "fieldvideo/internal/session"
)

// turnServer is the embedded TURN server, for phones behind NAT. Clients get
// time-limited credentials in the TURN REST API scheme: the username is
// "<expiry unix time>:<token's issue unix time>:<token subject>" (refused
// once that subject's tokens of that time are revoked), the password the base64 HMAC-SHA1 of
// the username under a key derived from the auth secret, so every SFU node
// sharing the secret accepts them and nothing needs storing.
//
// Relays reach only public peers and the SFU's ICE port: peerPolicy refuses
// permissions and channel bindings to loopback, private and other internal
// addresses and to the server's own, so a credential cannot reach services
// on or behind the server.
type turnServer struct {
	srv    *turn.Server
	conn   net.PacketConn
	key    string
	urls   []string
	ttl    time.Duration
	policy *peerPolicy
	// revoked reports whether the tokens of subject issued at issued are
	// revoked; nil: none is.
	revoked func(subject string, issued time.Time) bool
}

// turnKey derives the TURN REST key from the auth secret, so the secret that
// signs tokens never leaves the process.
func turnKey(secret []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("fieldvideo turn rest key"))
	return hex.EncodeToString(m.Sum(nil))
}

// sfuMedia is where relays reach the SFU itself.
type sfuMedia struct {
	// Addr is the ICE UDP socket's address (webrtc.udp_address).
	Addr net.Addr
	// AdvertiseIPs are the addresses its candidates carry instead
	// (webrtc.advertise_ips).
	AdvertiseIPs []string
}

func newTURN(c conf.TURN, media sfuMedia, secret []byte, revoked func(string, time.Time) bool, log *slog.Logger) (*turnServer, error) {
	allowed, err := parsePeerRanges(c.AllowedPeerRanges)
	if err != nil {
		return nil, err
	}
	udp, err := net.ListenPacket("udp4", c.Address)
	if err != nil {
		return nil, fmt.Errorf("calls.turn.address %s: %w", c.Address, err)
	}
	local := udp.LocalAddr().(*net.UDPAddr)
	relay := net.ParseIP(c.RelayAddress)
	if relay == nil {
		relay = local.IP
	}
	listenIP := local.IP.String()
	t := &turnServer{conn: udp, key: turnKey(secret), ttl: c.CredentialTTL, urls: c.URLs, revoked: revoked}
	if len(t.urls) == 0 {
		t.urls = []string{"turn:" + net.JoinHostPort(relay.String(), strconv.Itoa(local.Port)) + "?transport=udp"}
	}
	mediaAddr, _ := media.Addr.(*net.UDPAddr)
	var advertised []net.IP
	for _, ip := range media.AdvertiseIPs {
		advertised = append(advertised, net.ParseIP(ip))
	}
	t.policy, err = newPeerPolicy(peerPolicyParams{
		Allowed: allowed, Fixed: []net.IP{relay, local.IP},
		Media: mediaAddr, MediaIPs: advertised, Interfaces: interfaceAddrs, Log: log,
	})
	if err != nil {
		udp.Close()
		return nil, err
	}
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelWarn
	t.srv, err = turn.NewServer(turn.ServerConfig{
		Realm:         c.Realm,
		AuthHandler:   t.authHandler(lf.NewLogger("turn")),
		LoggerFactory: lf,
		EventHandler:  t.policy.eventHandler(),
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn:            udp,
			RelayAddressGenerator: relayGenerator{&turn.RelayAddressGeneratorStatic{RelayAddress: relay, Address: listenIP}, t.policy},
			PermissionHandler:     t.policy.permit,
		}},
	})
	if err != nil {
		udp.Close()
		return nil, fmt.Errorf("start TURN on %s: %w", c.Address, err)
	}
	log.Info("TURN listening", "address", udp.LocalAddr().String(), "relay", relay.String(), "urls", t.urls,
		"allowed_peer_ranges", c.AllowedPeerRanges)
	return t, nil
}

// credentials returns the TURN server with credentials for who (of a token
// issued at issued), valid until the earlier of the configured lifetime and
// notAfter (the token's expiry).
func (t *turnServer) credentials(who string, issued, notAfter time.Time, now time.Time) rooms.ICEServer {
	exp := now.Add(t.ttl)
	if !notAfter.IsZero() && notAfter.Before(exp) {
		exp = notAfter
	}
	user := strconv.FormatInt(exp.Unix(), 10) + ":" + strconv.FormatInt(issued.Unix(), 10) + ":" + who
	m := hmac.New(sha1.New, []byte(t.key))
	m.Write([]byte(user))
	return rooms.ICEServer{URLs: t.urls, Username: user, Credential: base64.StdEncoding.EncodeToString(m.Sum(nil))}
}

// authHandler checks credentials as the TURN REST scheme does (the HMAC and
// the expiry), then refuses those of a revoked token.
func (t *turnServer) authHandler(log logging.LeveledLogger) turn.AuthHandler {
	rest := turn.LongTermTURNRESTAuthHandler(t.key, log)
	return func(ra *turn.RequestAttributes) (string, []byte, bool) {
		user, key, ok := rest(ra)
		if !ok || t.revoked == nil {
			return user, key, ok
		}
		_, tail, _ := strings.Cut(ra.Username, ":")
		issued, who, found := strings.Cut(tail, ":")
		at, err := strconv.ParseInt(issued, 10, 64)
		if !found || err != nil || t.revoked(who, time.Unix(at, 0)) {
			return "", nil, false
		}
		return user, key, ok
	}
}

// Addr returns the TURN server's UDP address.
func (t *turnServer) Addr() string { return t.conn.LocalAddr().String() }

func (t *turnServer) close() { _ = t.srv.Close() }

// deniedPeerRanges are the peer ranges a relay refuses unless
// calls.turn.allowed_peer_ranges lets them through, with the reason logged.
// More specific ranges come first.
var deniedPeerRanges = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.0.0.0/24"), "reserved"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("198.18.0.0/15"), "reserved"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible (deprecated)"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64"},
	{netip.MustParsePrefix("100::/64"), "discard-only"},
	{netip.MustParsePrefix("fc00::/7"), "private"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fec0::/10"), "site-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

var (
	nat64Prefix = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour   = netip.MustParsePrefix("2002::/16")
)

// embeddedIPv4 returns the IPv4 address that an IPv6 address in the NAT64
// well-known prefix (RFC 6052) or the 6to4 prefix (RFC 3056) is translated
// or tunnelled to.
func embeddedIPv4(a netip.Addr) (netip.Addr, string, bool) {
	b := a.As16()
	switch {
	case nat64Prefix.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), "NAT64", true
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), "6to4", true
	}
	return netip.Addr{}, "", false
}

// peerRefusal says why a relay must not reach peer ("" when it may): the
// range of deniedPeerRanges it is in, directly, IPv4-mapped or embedded in a
// NAT64 or 6to4 address, or that it is one of the server's own addresses.
// An address in allowed is never refused.
func peerRefusal(peer netip.Addr, allowed []netip.Prefix, own func(netip.Addr) bool) string {
	if !peer.IsValid() {
		return "not an IP address"
	}
	peer = peer.WithZone("").Unmap()
	if inPrefixes(peer, allowed) {
		return ""
	}
	if v4, form, ok := embeddedIPv4(peer); ok {
		if inPrefixes(v4, allowed) {
			return ""
		}
		if r := peerRefusal(v4, nil, own); r != "" {
			return form + " form of " + r
		}
	}
	for _, d := range deniedPeerRanges {
		if d.prefix.Contains(peer) {
			return d.reason
		}
	}
	if own != nil && own(peer) {
		return "this server's own address"
	}
	return ""
}

func inPrefixes(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parsePeerRanges parses calls.turn.allowed_peer_ranges.
func parsePeerRanges(ranges []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(ranges))
	for _, r := range ranges {
		p, err := netip.ParsePrefix(r)
		if err != nil {
			return nil, fmt.Errorf("calls.turn.allowed_peer_ranges: %q is not a CIDR range; write e.g. 10.20.0.0/16 or fd00:1::/64 (/32 or /128 for one address)", r)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// interfaceAddrs returns the addresses of the host's network interfaces.
func interfaceAddrs() ([]netip.Addr, error) {
	as, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	out := make([]netip.Addr, 0, len(as))
	for _, a := range as {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out, nil
}

// ownAddrsMaxAge is how long peerPolicy trusts its list of the host's
// interface addresses before listing them again.
const ownAddrsMaxAge = 30 * time.Second

// refusalLogBurst refusals are logged per refusalLogWindow; the rest are
// counted and the count logged with the next refusal that is.
const (
	refusalLogBurst  = 10
	refusalLogWindow = time.Minute
)

// peerPolicyParams configures a peerPolicy.
type peerPolicyParams struct {
	// Allowed are the ranges relays may reach although peerRefusal would
	// refuse them (calls.turn.allowed_peer_ranges).
	Allowed []netip.Prefix
	// Fixed are this server's addresses that need not be on an interface:
	// the TURN relay and listen addresses, webrtc.advertise_ips (1:1 NAT).
	Fixed []net.IP
	// Media is the SFU's ICE UDP address, and MediaIPs the addresses its
	// candidates carry instead of the socket's (webrtc.advertise_ips).
	Media    *net.UDPAddr
	MediaIPs []net.IP
	// Interfaces lists the host's interface addresses.
	Interfaces func() ([]netip.Addr, error)
	Log        *slog.Logger
}

// peerPolicy decides which peers the TURN server relays to, and logs the
// refusals with the user the allocation belongs to.
//
// Relay-only clients reach the SFU through the relay, at its ICE UDP port
// on this server's own addresses. TURN permissions cover a whole IP, so
// permit grants the SFU's media addresses, and relayConn carries only
// packets to and from the ICE port at them: other ports on this server
// stay out of reach.
type peerPolicy struct {
	allowed    []netip.Prefix
	fixed      []netip.Addr
	mediaPort  int
	mediaIP    netip.Addr // the ICE socket's address; unspecified when it listens on all
	mediaIPs   []netip.Addr
	interfaces func() ([]netip.Addr, error)
	log        *slog.Logger
	now        func() time.Time

	mu sync.Mutex // guards the fields below
	// own is the host's interface addresses, listed at ownAt.
	own   map[netip.Addr]bool
	ownAt time.Time
	// users maps an allocation's client address to its credential's user.
	users map[string]string
	// logFrom starts the current log window; logged refusals were logged in
	// it and suppressed were not.
	logFrom            time.Time
	logged, suppressed int
}

func newPeerPolicy(pp peerPolicyParams) (*peerPolicy, error) {
	p := &peerPolicy{allowed: pp.Allowed, interfaces: pp.Interfaces, log: pp.Log, now: time.Now, users: map[string]string{}}
	p.fixed = addrsOf(pp.Fixed)
	p.mediaIPs = addrsOf(pp.MediaIPs)
	p.fixed = append(p.fixed, p.mediaIPs...)
	if pp.Media != nil {
		p.mediaPort = pp.Media.Port
		if a, ok := netip.AddrFromSlice(pp.Media.IP); ok && !a.Unmap().IsUnspecified() {
			p.mediaIP = a.Unmap()
		}
	}
	if err := p.listOwn(p.now()); err != nil {
		return nil, fmt.Errorf("TURN: list this host's addresses, which relays must not reach: %w", err)
	}
	return p, nil
}

// addrsOf converts ips, leaving out unspecified ones.
func addrsOf(ips []net.IP) []netip.Addr {
	var out []netip.Addr
	for _, ip := range ips {
		if a, ok := netip.AddrFromSlice(ip); ok && !a.Unmap().IsUnspecified() {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// eventHandler tracks which user each allocation belongs to.
func (p *peerPolicy) eventHandler() turn.EventHandler {
	return turn.EventHandler{
		OnAllocationCreated: func(src, _ net.Addr, _, user, _ string, _ net.Addr, _ int) {
			p.mu.Lock()
			p.users[src.String()] = user
			p.mu.Unlock()
		},
		OnAllocationDeleted: func(src, _ net.Addr, _, _, _ string) {
			p.mu.Lock()
			delete(p.users, src.String())
			p.mu.Unlock()
		},
	}
}

// permit is the TURN server's PermissionHandler: it grants a client's
// CreatePermission or ChannelBind to peer unless peerRefusal refuses it
// and peer is not one of the SFU's media addresses.
func (p *peerPolicy) permit(client net.Addr, peer net.IP) bool {
	a, _ := netip.AddrFromSlice(peer)
	reason := peerRefusal(a, p.allowed, p.isOwn)
	if reason == "" || p.isMedia(a.Unmap()) {
		return true
	}
	p.mu.Lock()
	user := p.users[client.String()]
	p.mu.Unlock()
	p.logRefusal("TURN refused to relay to a peer; list its range in calls.turn.allowed_peer_ranges if it must be reachable",
		"peer", peer.String(), "reason", reason, "user", user, "client", client.String())
	return false
}

// relayable reports whether a relay may send to or receive from addr: a
// peer peerRefusal lets through, or the SFU's ICE port.
func (p *peerPolicy) relayable(addr net.Addr) bool {
	u, ok := addr.(*net.UDPAddr)
	if !ok {
		return false
	}
	a, _ := netip.AddrFromSlice(u.IP)
	a = a.Unmap()
	if u.Port == p.mediaPort && p.isMedia(a) {
		return true
	}
	return peerRefusal(a, p.allowed, p.isOwn) == ""
}

// isMedia reports whether a is an address the SFU's ICE candidates carry.
func (p *peerPolicy) isMedia(a netip.Addr) bool {
	if p.mediaPort == 0 {
		return false
	}
	for _, m := range p.mediaIPs {
		if m == a {
			return true
		}
	}
	if p.mediaIP.IsValid() {
		return a == p.mediaIP
	}
	return p.isOwn(a)
}

// logRefusal logs a refusal, at most refusalLogBurst per refusalLogWindow;
// the first one logged in a window counts those that were not.
func (p *peerPolicy) logRefusal(msg string, attrs ...any) {
	p.mu.Lock()
	now := p.now()
	if now.Sub(p.logFrom) >= refusalLogWindow {
		p.logFrom, p.logged = now, 0
	}
	log := p.logged < refusalLogBurst
	suppressed := 0
	if log {
		p.logged++
		suppressed, p.suppressed = p.suppressed, 0
	} else {
		p.suppressed++
	}
	p.mu.Unlock()
	if !log {
		return
	}
	if suppressed > 0 {
		attrs = append(attrs, "unlogged_refusals", suppressed)
	}
	p.log.Warn(msg, attrs...)
}

// isOwn reports whether a is one of the server's addresses. The host's
// interface addresses are listed again once the list is ownAddrsMaxAge old;
// when that fails the previous list stays in use.
func (p *peerPolicy) isOwn(a netip.Addr) bool {
	for _, f := range p.fixed {
		if f == a {
			return true
		}
	}
	p.mu.Lock()
	var err error
	listedAt := p.ownAt
	if now := p.now(); now.Sub(p.ownAt) >= ownAddrsMaxAge {
		if err = p.listOwn(now); err != nil {
			p.ownAt = now
		}
	}
	own := p.own[a]
	p.mu.Unlock()
	if err != nil {
		p.log.Warn("TURN cannot list the host's addresses; relays keep refusing those listed before", "listed_at", listedAt, "error", err)
	}
	return own
}

// listOwn lists the host's interface addresses into own; p.mu is held.
func (p *peerPolicy) listOwn(now time.Time) error {
	as, err := p.interfaces()
	if err != nil {
		return err
	}
	p.own, p.ownAt = make(map[netip.Addr]bool, len(as)), now
	for _, o := range as {
		p.own[o.Unmap()] = true
	}
	return nil
}

// relayGenerator allocates UDP relay sockets that carry only what the
// policy lets through (relayConn). It offers no TCP relays (RFC 6062):
// their Connect would reach any port of a permitted address.
type relayGenerator struct {
	*turn.RelayAddressGeneratorStatic
	policy *peerPolicy
}

func (g relayGenerator) AllocatePacketConn(c turn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	conn, addr, err := g.RelayAddressGeneratorStatic.AllocatePacketConn(c)
	if err != nil {
		return nil, nil, err
	}
	return &relayConn{PacketConn: conn, policy: g.policy, user: c.UserID}, addr, nil
}

func (g relayGenerator) AllocateListener(turn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	return nil, nil, errNoTCPRelay
}

func (g relayGenerator) AllocateConn(turn.AllocateConnConfig) (net.Conn, error) {
	return nil, errNoTCPRelay
}

var errNoTCPRelay = errors.New("this TURN server relays UDP only; request a UDP allocation")

// relayConn is an allocation's relay socket. It drops packets to and from
// addresses peerPolicy.relayable refuses: the ports of the SFU's media
// addresses other than its ICE port.
type relayConn struct {
	net.PacketConn
	policy *peerPolicy
	user   string
}

func (c *relayConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if !c.policy.relayable(addr) {
		c.policy.logRefusal("TURN dropped a relayed packet to this server: it is reachable at the SFU's ICE port only",
			"peer", addr.String(), "user", c.user)
		return len(b), nil
	}
	return c.PacketConn.WriteTo(b, addr)
}

func (c *relayConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(b)
		if err != nil || c.policy.relayable(addr) {
			return n, addr, err
		}
	}
}
