package conf

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Calls configures two-way video calls: rooms, their bandwidth estimation
// and the embedded TURN server.
type Calls struct {
	// MaxParticipants caps the participants of one room.
	MaxParticipants int `yaml:"max_participants"`
	// MaxRoomsPerParticipant caps the rooms one participant (a token
	// subject) is in at once.
	MaxRoomsPerParticipant int `yaml:"max_rooms_per_participant"`
	// JoinTimeout is how long a new WebSocket may take to send its join.
	JoinTimeout time.Duration `yaml:"join_timeout"`
	// ResumeWindow is how long a participant whose signalling or media path
	// broke stays in the room, waiting for it to come back (a phone moving
	// between cells) before it is reported as gone.
	ResumeWindow time.Duration `yaml:"resume_window"`
	// StartBitrate, MinBitrate and MaxBitrate bound the bandwidth estimate of
	// each subscriber's downlink, in bits per second.
	StartBitrate int `yaml:"start_bitrate"`
	MinBitrate   int `yaml:"min_bitrate"`
	MaxBitrate   int `yaml:"max_bitrate"`
	// Record keeps what participants publish (each camera's best simulcast
	// layer, microphone and screen) when the SFU records (record.enabled),
	// as sources named <room>.<participant>.<camera|microphone|screen>.
	Record bool `yaml:"record"`
	TURN   TURN `yaml:"turn"`
}

// TURN configures the embedded TURN server for clients behind NAT. It is off
// while Address is empty.
type TURN struct {
	// Address is the UDP address to listen on, e.g. :3478.
	Address string `yaml:"address"`
	// Realm is the TURN realm announced to clients.
	Realm string `yaml:"realm"`
	// RelayAddress is the IP address relayed media is sent from and that
	// clients are told; required when Address listens on all interfaces.
	RelayAddress string `yaml:"relay_address"`
	// URLs are the TURN URLs given to clients; empty derives
	// turn:<relay address>:<port>?transport=udp.
	URLs []string `yaml:"urls"`
	// CredentialTTL bounds the lifetime of the credentials handed out (they
	// never outlive the token they were derived from).
	CredentialTTL time.Duration `yaml:"credential_ttl"`
	// AllowedPeerRanges are CIDR ranges relays may reach although they are
	// refused by default: loopback, link-local, private (RFC 1918, fc00::/7),
	// carrier-grade NAT, multicast, broadcast, unspecified and reserved
	// addresses, their IPv4-mapped and NAT64 forms, and the server's own
	// addresses. Empty relays to public addresses and to the SFU's own ICE
	// port (webrtc.udp_address) only.
	AllowedPeerRanges []string `yaml:"allowed_peer_ranges"`
}

func defaultCalls() Calls {
	return Calls{
		MaxParticipants:        50,
		MaxRoomsPerParticipant: 8,
		JoinTimeout:            10 * time.Second,
		ResumeWindow:           20 * time.Second,
		StartBitrate:           800_000,
		MinBitrate:             100_000,
		MaxBitrate:             20_000_000,
		Record:                 true,
		TURN:                   TURN{Realm: "fieldvideo", URLs: []string{}, CredentialTTL: 12 * time.Hour, AllowedPeerRanges: []string{}},
	}
}

func (c Calls) validate() error {
	if c.MaxParticipants < 2 {
		return fmt.Errorf("calls.max_participants %d: a call needs at least 2", c.MaxParticipants)
	}
	if c.MaxRoomsPerParticipant < 1 {
		return fmt.Errorf("calls.max_rooms_per_participant %d: allow at least 1", c.MaxRoomsPerParticipant)
	}
	if c.JoinTimeout <= 0 || c.ResumeWindow <= 0 {
		return fmt.Errorf("calls.join_timeout and calls.resume_window must be positive durations, e.g. 10s")
	}
	if c.MinBitrate < 30_000 || c.StartBitrate < c.MinBitrate || c.MaxBitrate < c.StartBitrate {
		return fmt.Errorf("calls bitrates: need 30000 <= min_bitrate (%d) <= start_bitrate (%d) <= max_bitrate (%d), in bits per second",
			c.MinBitrate, c.StartBitrate, c.MaxBitrate)
	}
	return c.TURN.validate()
}

func (t TURN) validate() error {
	for _, r := range t.AllowedPeerRanges {
		if _, err := netip.ParsePrefix(r); err != nil {
			return fmt.Errorf("calls.turn.allowed_peer_ranges: %q is not a CIDR range; write e.g. 10.20.0.0/16 or fd00:1::/64 (/32 or /128 for one address)", r)
		}
	}
	if t.Address == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(t.Address)
	if err != nil {
		return fmt.Errorf("calls.turn.address %q: %w (use host:port, e.g. :3478, or empty to turn TURN off)", t.Address, err)
	}
	if t.Realm == "" {
		return fmt.Errorf("calls.turn.realm is empty; use e.g. fieldvideo")
	}
	if t.CredentialTTL <= 0 {
		return fmt.Errorf("calls.turn.credential_ttl must be a positive duration, e.g. 12h")
	}
	if t.RelayAddress != "" && net.ParseIP(t.RelayAddress) == nil {
		return fmt.Errorf("calls.turn.relay_address %q is not an IP address", t.RelayAddress)
	}
	if ip := net.ParseIP(host); t.RelayAddress == "" && (host == "" || ip == nil || ip.IsUnspecified()) {
		return fmt.Errorf("calls.turn.address %q listens on every interface: set calls.turn.relay_address to the IP clients reach it at", t.Address)
	}
	for _, u := range t.URLs {
		if !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") {
			return fmt.Errorf("calls.turn.urls: %q is not a turn: or turns: URL", u)
		}
	}
	return nil
}
