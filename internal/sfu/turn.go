package sfu

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v5"

	"fieldvideo/internal/conf"
	rooms "fieldvideo/internal/session"
)

// turnServer is the embedded TURN server, for phones behind NAT. Clients get
// time-limited credentials in the TURN REST API scheme: the username is
// "<expiry unix time>:<token subject>", the password the base64 HMAC-SHA1 of
// the username under a key derived from the auth secret, so every SFU node
// sharing the secret accepts them and nothing needs storing.
type turnServer struct {
	srv  *turn.Server
	conn net.PacketConn
	key  string
	urls []string
	ttl  time.Duration
}

// turnKey derives the TURN REST key from the auth secret, so the secret that
// signs tokens never leaves the process.
func turnKey(secret []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("fieldvideo turn rest key"))
	return hex.EncodeToString(m.Sum(nil))
}

func newTURN(c conf.TURN, secret []byte, log *slog.Logger) (*turnServer, error) {
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
	t := &turnServer{conn: udp, key: turnKey(secret), ttl: c.CredentialTTL, urls: c.URLs}
	if len(t.urls) == 0 {
		t.urls = []string{"turn:" + net.JoinHostPort(relay.String(), strconv.Itoa(local.Port)) + "?transport=udp"}
	}
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelWarn
	t.srv, err = turn.NewServer(turn.ServerConfig{
		Realm:         c.Realm,
		AuthHandler:   turn.LongTermTURNRESTAuthHandler(t.key, lf.NewLogger("turn")),
		LoggerFactory: lf,
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn:            udp,
			RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{RelayAddress: relay, Address: listenIP},
		}},
	})
	if err != nil {
		udp.Close()
		return nil, fmt.Errorf("start TURN on %s: %w", c.Address, err)
	}
	log.Info("TURN listening", "address", udp.LocalAddr().String(), "relay", relay.String(), "urls", t.urls)
	return t, nil
}

// credentials returns the TURN server with credentials for who, valid until
// the earlier of the configured lifetime and notAfter (the token's expiry).
func (t *turnServer) credentials(who string, notAfter time.Time, now time.Time) rooms.ICEServer {
	exp := now.Add(t.ttl)
	if !notAfter.IsZero() && notAfter.Before(exp) {
		exp = notAfter
	}
	user := strconv.FormatInt(exp.Unix(), 10) + ":" + who
	m := hmac.New(sha1.New, []byte(t.key))
	m.Write([]byte(user))
	return rooms.ICEServer{URLs: t.urls, Username: user, Credential: base64.StdEncoding.EncodeToString(m.Sum(nil))}
}

// Addr returns the TURN server's UDP address.
func (t *turnServer) Addr() string { return t.conn.LocalAddr().String() }

func (t *turnServer) close() { _ = t.srv.Close() }
