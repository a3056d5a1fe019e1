package conf

import (
	"fmt"
	"net"
	"net/url"
	"time"
)

// SFU is the configuration of cmd/sfu.
type SFU struct {
	Log    Log    `yaml:"log"`
	HTTP   HTTP   `yaml:"http"`
	WebRTC WebRTC `yaml:"webrtc"`
	Auth   Auth   `yaml:"auth"`
	Audit  Audit  `yaml:"audit"`
	Stream Stream `yaml:"stream"`
	Calls  Calls  `yaml:"calls"`
	Record Record `yaml:"record"`
	// IngestAPI lists the base URLs of the ingest APIs (api.address of each
	// ingest, e.g. http://127.0.0.1:9997) whose cameras the console's
	// Cameras page manages through this SFU; empty leaves the page without
	// cameras.
	IngestAPI []string `yaml:"ingest_api"`
	// Console is what the web console's pages are told (the map's tiles).
	Console Console `yaml:"console"`
	// Cluster joins the SFU to the other nodes; empty runs it alone.
	Cluster Cluster `yaml:"cluster"`
}

// HTTP configures the SFU's HTTP(S) listener.
type HTTP struct {
	Address string `yaml:"address"`
	// TLSCert and TLSKey enable HTTPS when both are set.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// AllowOrigin is sent as Access-Control-Allow-Origin on API, WHIP and WHEP
	// responses, so players on other origins can use them.
	AllowOrigin string `yaml:"allow_origin"`
	// MaxConnections bounds the open HTTP connections, and
	// MaxConnectionsPerAddress those from one IP address (raise it when
	// many browsers share an address behind NAT).
	MaxConnections           int `yaml:"max_connections"`
	MaxConnectionsPerAddress int `yaml:"max_connections_per_address"`
}

// WebRTC configures ICE.
type WebRTC struct {
	// UDPAddress is the one UDP port all peer connections share (ICE UDP mux).
	UDPAddress string `yaml:"udp_address"`
	// AdvertiseIPs replace the host candidates' addresses, for a server behind
	// 1:1 NAT; empty announces the local addresses.
	AdvertiseIPs []string `yaml:"advertise_ips"`
	// Loopback offers loopback candidates (single-machine setups and tests).
	Loopback bool `yaml:"loopback"`
	// ICEServers are passed to clients (WHIP/WHEP Link headers and the console).
	ICEServers []ICEServer `yaml:"ice_servers"`
	// A WHIP or WHEP session that is not connected within ConnectTimeout of
	// its answer is closed. At most MaxPendingSessions sessions wait to
	// connect at once, MaxPendingPerAddress of them from one IP address (an
	// IPv6 /64) and MaxPendingPerSubject of them with tokens of one subject;
	// more are refused with 503 and Retry-After.
	ConnectTimeout       time.Duration `yaml:"connect_timeout"`
	MaxPendingSessions   int           `yaml:"max_pending_sessions"`
	MaxPendingPerAddress int           `yaml:"max_pending_per_address"`
	MaxPendingPerSubject int           `yaml:"max_pending_per_subject"`
}

// ICEServer is a STUN or TURN server offered to clients.
type ICEServer struct {
	URLs       []string `yaml:"urls"`
	Username   string   `yaml:"username"`
	Credential string   `yaml:"credential"`
}

// DefaultSFU returns the built-in defaults; configs/sfu.yml equals them.
func DefaultSFU() SFU {
	return SFU{
		Log:  defaultLog(),
		HTTP: HTTP{Address: ":8889", AllowOrigin: "*", MaxConnections: 4096, MaxConnectionsPerAddress: 512},
		WebRTC: WebRTC{UDPAddress: ":8189", AdvertiseIPs: []string{}, Loopback: true, ICEServers: []ICEServer{},
			ConnectTimeout: 15 * time.Second, MaxPendingSessions: 256, MaxPendingPerAddress: 64, MaxPendingPerSubject: 64},
		Auth:      defaultAuth(),
		Audit:     defaultAudit("data/audit-sfu.log"),
		Stream:    defaultStream(),
		Calls:     defaultCalls(),
		Record:    defaultRecord("data/spool-sfu"),
		IngestAPI: []string{},
		Console:   defaultConsole(),
		Cluster:   defaultCluster(),
	}
}

// Validate reports the first setting that cannot work, saying how to fix it.
func (c SFU) Validate() error {
	if err := c.Log.validate(); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(c.HTTP.Address); err != nil {
		return fmt.Errorf("http.address %q: %w (use host:port, e.g. :8889)", c.HTTP.Address, err)
	}
	if h := c.HTTP; h.MaxConnections <= 0 || h.MaxConnectionsPerAddress <= 0 || h.MaxConnectionsPerAddress > h.MaxConnections {
		return fmt.Errorf("http: need 0 < max_connections_per_address <= max_connections (have %d and %d)", h.MaxConnectionsPerAddress, h.MaxConnections)
	}
	if (c.HTTP.TLSCert == "") != (c.HTTP.TLSKey == "") {
		return fmt.Errorf("http: set both tls_cert and tls_key, or neither")
	}
	if _, _, err := net.SplitHostPort(c.WebRTC.UDPAddress); err != nil {
		return fmt.Errorf("webrtc.udp_address %q: %w (use host:port, e.g. :8189)", c.WebRTC.UDPAddress, err)
	}
	for _, ip := range c.WebRTC.AdvertiseIPs {
		if net.ParseIP(ip) == nil {
			return fmt.Errorf("webrtc.advertise_ips: %q is not an IP address", ip)
		}
	}
	if w := c.WebRTC; w.ConnectTimeout < time.Second || w.MaxPendingSessions <= 0 || w.MaxPendingPerAddress <= 0 || w.MaxPendingPerAddress > w.MaxPendingSessions ||
		w.MaxPendingPerSubject <= 0 || w.MaxPendingPerSubject > w.MaxPendingSessions {
		return fmt.Errorf("webrtc: need connect_timeout >= 1s, 0 < max_pending_per_address <= max_pending_sessions and 0 < max_pending_per_subject <= max_pending_sessions (have %s, %d, %d and %d)",
			w.ConnectTimeout, w.MaxPendingPerAddress, w.MaxPendingPerSubject, w.MaxPendingSessions)
	}
	if err := c.Auth.validate(); err != nil {
		return err
	}
	if err := c.Audit.validate(); err != nil {
		return err
	}
	if err := c.Stream.validate(); err != nil {
		return err
	}
	if err := c.Record.validate(); err != nil {
		return err
	}
	if err := validateIngestAPI(c.IngestAPI); err != nil {
		return err
	}
	if err := c.Console.validate(); err != nil {
		return err
	}
	if err := c.Cluster.validate(); err != nil {
		return err
	}
	return c.Calls.validate()
}

// validateIngestAPI checks the ingest API base URLs: http(s), a host, no
// credentials, query or fragment, each once.
func validateIngestAPI(urls []string) error {
	seen := map[string]bool{}
	for i, s := range urls {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("ingest_api[%d] %q: use the base URL of an ingest's API, such as http://127.0.0.1:9997 (no credentials: the caller's token is passed on)", i, s)
		}
		if seen[s] {
			return fmt.Errorf("ingest_api[%d] %q is listed twice", i, s)
		}
		seen[s] = true
	}
	return nil
}
