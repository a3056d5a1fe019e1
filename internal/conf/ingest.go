package conf

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Ingest is the configuration of cmd/ingest.
type Ingest struct {
	Log     Log      `yaml:"log"`
	RTSP    RTSP     `yaml:"rtsp"`
	API     API      `yaml:"api"`
	Cameras []Camera `yaml:"cameras"`
	// CamerasFile keeps the cameras added, changed or disabled at run time
	// (the cameras API and the console's Cameras page), as JSON; empty keeps
	// those changes in memory only, until the process ends.
	CamerasFile string    `yaml:"cameras_file"`
	Reconnect   Reconnect `yaml:"reconnect"`
	Uplink      Uplink    `yaml:"uplink"`
	Auth        Auth      `yaml:"auth"`
	Audit       Audit     `yaml:"audit"`
	Stream      Stream    `yaml:"stream"`
	Record      Record    `yaml:"record"`
	// Cluster joins ingest to the other nodes: ingests of a cluster share
	// their cameras, each pulled by one of them at a time.
	Cluster Cluster `yaml:"cluster"`
}

// RTSP configures the RTSP server that takes pushes and serves players.
type RTSP struct {
	Address        string        `yaml:"address"`
	UDPRTPAddress  string        `yaml:"udp_rtp_address"`
	UDPRTCPAddress string        `yaml:"udp_rtcp_address"`
	ReadTimeout    time.Duration `yaml:"read_timeout"`
	// RequestTimeout: a connection that has not been granted access must
	// send each request within this time (of connecting, or of the answer
	// to its previous request), or it is closed.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// MaxConnections bounds the open RTSP connections, and
	// MaxConnectionsPerAddress those from one IP address (raise it for
	// sites whose players share one address behind NAT). A connection over
	// the per-address bound is closed as soon as it is accepted; at
	// MaxConnections a newcomer takes the place of the oldest connection
	// not yet granted access, and is closed when every one is.
	MaxConnections           int `yaml:"max_connections"`
	MaxConnectionsPerAddress int `yaml:"max_connections_per_address"`
}

// defaultRTSP returns the RTSP defaults.
func defaultRTSP() RTSP {
	return RTSP{
		Address: ":8554", UDPRTPAddress: ":8000", UDPRTCPAddress: ":8001", ReadTimeout: 10 * time.Second,
		RequestTimeout: 5 * time.Second, MaxConnections: 1000, MaxConnectionsPerAddress: 50,
	}
}

// API configures ingest's HTTP listener: health, metrics and source states.
type API struct {
	Address string `yaml:"address"`
	// MaxConnections bounds the API's open connections, and
	// MaxConnectionsPerAddress those from one IP address.
	MaxConnections           int `yaml:"max_connections"`
	MaxConnectionsPerAddress int `yaml:"max_connections_per_address"`
}

// Camera is an RTSP source that ingest pulls from.
type Camera struct {
	Name string `yaml:"name" json:"name"`
	// URL is rtsp:// or rtsps://, with the camera's user and password when
	// it asks for them.
	URL string `yaml:"url" json:"url"`
	// Transport is tcp, udp or auto (UDP first, TCP when UDP gets nothing).
	Transport string `yaml:"transport" json:"transport,omitempty"`
	// Disabled keeps the camera listed without pulling it.
	Disabled bool `yaml:"disabled,omitempty" json:"disabled,omitempty"`
	// Position is where the camera stands; nil when unknown.
	Position *Position `yaml:"position,omitempty" json:"position,omitempty"`
	// Label describes the camera for people ("North gate, facing the car
	// park").
	Label string `yaml:"label,omitempty" json:"label,omitempty"`
}

// Position is a WGS 84 latitude and longitude in degrees.
type Position struct {
	Lat float64 `yaml:"lat" json:"lat"`
	Lon float64 `yaml:"lon" json:"lon"`
}

// Limits of a camera's settings.
const (
	MaxCameraURL   = 2048
	MaxCameraLabel = 200 // characters
)

// Check reports the first setting of c that cannot work, naming the field
// and the fix. It never quotes the URL, which may hold a password.
func (c Camera) Check() error {
	if !SourceName.MatchString(c.Name) {
		return fmt.Errorf("name %q: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", c.Name)
	}
	if CallTrackName(c.Name) {
		return fmt.Errorf("name %q has the form of a call's recording (<room>.<participant>.%s); choose a name that does not end so", c.Name, strings.Join(CallTracks, "|"))
	}
	if len(c.URL) > MaxCameraURL {
		return fmt.Errorf("url is %d bytes; use at most %d", len(c.URL), MaxCameraURL)
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "rtsp" && u.Scheme != "rtsps") || u.Host == "" {
		return fmt.Errorf("url is not an rtsp:// or rtsps:// URL; write it as rtsp://host:port/path")
	}
	switch c.Transport {
	case "", "auto", "tcp", "udp":
	default:
		return fmt.Errorf("transport %q: use tcp, udp or auto", c.Transport)
	}
	if p := c.Position; p != nil {
		if math.IsNaN(p.Lat) || p.Lat < -90 || p.Lat > 90 {
			return fmt.Errorf("position.lat %v: use degrees from -90 to 90 (north positive)", p.Lat)
		}
		if math.IsNaN(p.Lon) || p.Lon < -180 || p.Lon > 180 {
			return fmt.Errorf("position.lon %v: use degrees from -180 to 180 (east positive)", p.Lon)
		}
	}
	if n := utf8.RuneCountInString(c.Label); n > MaxCameraLabel || !utf8.ValidString(c.Label) {
		return fmt.Errorf("label: use at most %d characters of UTF-8 text (have %d)", MaxCameraLabel, n)
	}
	for _, r := range c.Label {
		if unicode.IsControl(r) {
			return fmt.Errorf("label: use one line of text without control characters")
		}
	}
	return nil
}

// Reconnect bounds the exponential backoff between attempts to reach a
// camera or the SFU.
type Reconnect struct {
	Min time.Duration `yaml:"min"`
	Max time.Duration `yaml:"max"`
}

// Uplink configures publishing every live source to the SFU by WHIP.
type Uplink struct {
	// URL is the SFU's base URL; sources go to URL/<source>/whip. Empty
	// disables the uplink.
	URL string `yaml:"url"`
	// Token is sent as the bearer token; empty mints one from auth's secret.
	Token string `yaml:"token"`
}

// SourceName is the pattern source names follow: they appear in URLs and
// object keys.
var SourceName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// CallTracks are the last parts of the names a call's recordings take:
// <room>.<participant>.<track>.
var CallTracks = []string{"camera", "microphone", "screen", "screen_audio"}

// CallTrackName tells whether name has the form of a call participant's recorded track,
// <room>.<participant>.<camera|microphone|screen|screen_audio>. Such names are the
// calls' own: no camera, push or WHIP publisher may take one, or its recording would
// mix with (and play back as) a participant's.
func CallTrackName(name string) bool {
	i := strings.LastIndexByte(name, '.')
	return i > 0 && strings.Contains(name[:i], ".") && slices.Contains(CallTracks, name[i+1:])
}

// CheckPublishedName reports what is wrong with name as the name of a source that is
// not a call's: its characters, or the form of a call's recording.
func CheckPublishedName(name string) error {
	if !SourceName.MatchString(name) {
		return fmt.Errorf("source name %q: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	if CallTrackName(name) {
		return fmt.Errorf("source name %q has the form of a call's recording (<room>.<participant>.%s); choose a name that does not end so", name, strings.Join(CallTracks, "|"))
	}
	return nil
}

// DefaultIngest returns the built-in defaults; configs/ingest.yml equals them.
func DefaultIngest() Ingest {
	return Ingest{
		Log:         defaultLog(),
		RTSP:        defaultRTSP(),
		API:         API{Address: ":9997", MaxConnections: 512, MaxConnectionsPerAddress: 128},
		Cameras:     []Camera{},
		CamerasFile: "data/cameras.json",
		Reconnect:   Reconnect{Min: time.Second, Max: 30 * time.Second},
		Uplink:      Uplink{URL: "http://127.0.0.1:8889"},
		Auth:        defaultAuth(),
		Audit:       defaultAudit("data/audit-ingest.log"),
		Stream:      defaultStream(),
		Record:      defaultRecord("data/spool-ingest"),
		Cluster:     defaultCluster(),
	}
}

// Validate reports the first setting that cannot work, saying how to fix it.
func (c Ingest) Validate() error {
	if err := c.Log.validate(); err != nil {
		return err
	}
	for _, a := range []struct{ key, v string }{
		{"rtsp.address", c.RTSP.Address}, {"api.address", c.API.Address},
	} {
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			return fmt.Errorf("%s %q: %w (use host:port)", a.key, a.v, err)
		}
	}
	if (c.RTSP.UDPRTPAddress == "") != (c.RTSP.UDPRTCPAddress == "") {
		return fmt.Errorf("rtsp: set both udp_rtp_address and udp_rtcp_address, or neither (TCP only)")
	}
	if c.RTSP.ReadTimeout <= 0 {
		return fmt.Errorf("rtsp.read_timeout must be positive")
	}
	if a := c.API; a.MaxConnections <= 0 || a.MaxConnectionsPerAddress <= 0 || a.MaxConnectionsPerAddress > a.MaxConnections {
		return fmt.Errorf("api: need 0 < max_connections_per_address <= max_connections (have %d and %d)", a.MaxConnectionsPerAddress, a.MaxConnections)
	}
	if c.RTSP.RequestTimeout <= 0 {
		return fmt.Errorf("rtsp.request_timeout must be positive (e.g. 5s): silent connections must be closed")
	}
	if c.RTSP.MaxConnections <= 0 || c.RTSP.MaxConnectionsPerAddress <= 0 || c.RTSP.MaxConnectionsPerAddress > c.RTSP.MaxConnections {
		return fmt.Errorf("rtsp: need 0 < max_connections_per_address <= max_connections (have %d and %d)",
			c.RTSP.MaxConnectionsPerAddress, c.RTSP.MaxConnections)
	}
	seen := map[string]bool{}
	for i, cam := range c.Cameras {
		if err := cam.Check(); err != nil {
			if !SourceName.MatchString(cam.Name) {
				return fmt.Errorf("cameras[%d].%w", i, err)
			}
			return fmt.Errorf("cameras[%d] (%s): %w", i, cam.Name, err)
		}
		if seen[cam.Name] {
			return fmt.Errorf("cameras[%d].name %q is used twice", i, cam.Name)
		}
		seen[cam.Name] = true
	}
	if c.Reconnect.Min <= 0 || c.Reconnect.Max < c.Reconnect.Min {
		return fmt.Errorf("reconnect: need 0 < min <= max (have min %s, max %s)", c.Reconnect.Min, c.Reconnect.Max)
	}
	if c.Uplink.URL != "" {
		u, err := url.Parse(c.Uplink.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("uplink.url %q: use the SFU's http(s):// base URL, or empty to disable", c.Uplink.URL)
		}
	}
	if err := c.Auth.validate(); err != nil {
		return err
	}
	if err := c.Audit.validate(); err != nil {
		return err
	}
	if err := c.Record.validate(); err != nil {
		return err
	}
	if err := c.Cluster.validate(); err != nil {
		return err
	}
	return c.Stream.validate()
}
