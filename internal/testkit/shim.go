package testkit

import (
	"net"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Shim is a UDP relay on loopback standing for a client's mobile link: the client sends
// to it as if it were the server, and each direction can be limited to a rate with a
// short drop-tail queue, as a congested cell does, and lose RTP packets. Each client
// address gets its own upstream socket, so the server sees one remote address per client
// connection.
type Shim struct {
	front    net.PacketConn
	target   *net.UDPAddr
	up, down shimLink

	mu    sync.Mutex
	peers map[string]net.PacketConn
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

// shimLink is one direction of the link.
type shimLink struct {
	rate   atomic.Int64 // bytes per second; 0 unlimited
	hold   atomic.Int64 // unix ns: packets wait until then, as in a jitter spike
	lose   atomic.Int64 // drop one in this many RTP packets; 0 none
	rtpN   atomic.Int64
	lost   atomic.Int64
	queue  chan shimPacket
	queued atomic.Int64
}

type shimPacket struct {
	b    []byte
	to   net.Addr
	conn net.PacketConn
}

// NewShim starts a shim in front of the UDP address target; it closes when the test ends.
func NewShim(t testing.TB, target string) *Shim {
	t.Helper()
	front, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ua, err := net.ResolveUDPAddr("udp4", target)
	if err != nil {
		t.Fatal(err)
	}
	s := &Shim{front: front, target: ua, peers: map[string]net.PacketConn{}, done: make(chan struct{})}
	s.up.queue = make(chan shimPacket, 4096)
	s.down.queue = make(chan shimPacket, 4096)
	s.wg.Add(3)
	go s.uplink()
	go s.pace(&s.up)
	go s.pace(&s.down)
	t.Cleanup(s.Close)
	return s
}

// Addr is where clients send.
func (s *Shim) Addr() string { return s.front.LocalAddr().String() }

// LimitDown sets the downlink (server → client) rate in bits per second; 0 lifts the limit.
func (s *Shim) LimitDown(bps int) { s.down.rate.Store(int64(bps / 8)) }

// LimitUp sets the uplink (client → server) rate in bits per second; 0 lifts the limit.
func (s *Shim) LimitUp(bps int) { s.up.rate.Store(int64(bps / 8)) }

// LoseDown drops one in n downlink RTP packets (RTCP, STUN and DTLS pass); 0 stops the loss.
func (s *Shim) LoseDown(n int) { s.down.lose.Store(int64(n)) }

// LoseUp drops one in n uplink RTP packets (RTCP, STUN and DTLS pass); 0 stops the loss.
func (s *Shim) LoseUp(n int) { s.up.lose.Store(int64(n)) }

// LostUp returns how many uplink RTP packets the shim dropped on purpose.
func (s *Shim) LostUp() int64 { return s.up.lost.Load() }

// HoldUp holds every uplink packet for d from now, then lets them all go in order, as a
// cell does in a jitter spike (a handover, a scheduling gap).
func (s *Shim) HoldUp(d time.Duration) { s.up.hold.Store(time.Now().Add(d).UnixNano()) }

// LostDown returns how many downlink RTP packets the shim dropped on purpose.
func (s *Shim) LostDown() int64 { return s.down.lost.Load() }

// Close cuts the link, as when a phone leaves a cell.
func (s *Shim) Close() {
	s.once.Do(func() {
		close(s.done)
		s.front.Close()
		s.mu.Lock()
		for _, c := range s.peers {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
}

// send passes a datagram into one direction of the link.
func (s *Shim) send(l *shimLink, b []byte, to net.Addr, conn net.PacketConn) {
	isRTP := len(b) >= 12 && b[0]>>6 == 2 && (b[1] < 192 || b[1] > 223)
	if n := l.lose.Load(); n > 0 && isRTP && l.rtpN.Add(1)%n == 0 {
		l.lost.Add(1)
		return
	}
	rate := l.rate.Load()
	held := l.hold.Load() > time.Now().UnixNano() || l.queued.Load() > 0
	if rate == 0 && !held {
		_, _ = conn.WriteTo(b, to)
		return
	}
	// A queue of at most 150 ms at the link rate; beyond, drop.
	if rate > 0 && l.queued.Load()+int64(len(b)) > rate*150/1000 {
		return
	}
	l.queued.Add(int64(len(b)))
	select {
	case l.queue <- shimPacket{b, to, conn}:
	default:
		l.queued.Add(-int64(len(b)))
	}
}

func (s *Shim) uplink() {
	defer s.wg.Done()
	for {
		buf := make([]byte, 1600)
		n, from, err := s.front.ReadFrom(buf)
		if err != nil {
			return
		}
		up := s.peerFor(from)
		if up == nil {
			return
		}
		s.send(&s.up, buf[:n], s.target, up)
	}
}

// peerFor returns the upstream socket of a client address, creating it.
func (s *Shim) peerFor(client net.Addr) net.PacketConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if up := s.peers[client.String()]; up != nil {
		return up
	}
	select {
	case <-s.done:
		return nil
	default:
	}
	up, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return nil
	}
	s.peers[client.String()] = up
	s.wg.Add(1)
	go s.downlink(up, client)
	return up
}

var hostCandidate = regexp.MustCompile(` 127\.0\.0\.1 (\d+) typ host`)

// ClientSDP rewrites the client's loopback candidates to the shim's upstream sockets for
// them, so the server reaches the client only through the shim (and can start
// connectivity checks itself).
func (s *Shim) ClientSDP(sdp string) string {
	return hostCandidate.ReplaceAllStringFunc(sdp, func(m string) string {
		port, _ := strconv.Atoi(hostCandidate.FindStringSubmatch(m)[1])
		up := s.peerFor(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		if up == nil {
			return m
		}
		return " 127.0.0.1 " + strconv.Itoa(up.LocalAddr().(*net.UDPAddr).Port) + " typ host"
	})
}

func (s *Shim) downlink(up net.PacketConn, client net.Addr) {
	defer s.wg.Done()
	for {
		buf := make([]byte, 1600)
		n, _, err := up.ReadFrom(buf)
		if err != nil {
			return
		}
		s.send(&s.down, buf[:n], client, s.front)
	}
}

// pace sends a direction's queued packets at its rate.
func (s *Shim) pace(l *shimLink) {
	defer s.wg.Done()
	free := time.Now()
	for {
		select {
		case <-s.done:
			return
		case p := <-l.queue:
			if !s.wait(time.Until(time.Unix(0, l.hold.Load()))) {
				return
			}
			if rate := l.rate.Load(); rate > 0 {
				now := time.Now()
				if free.Before(now) {
					free = now
				}
				free = free.Add(time.Duration(float64(len(p.b)) / float64(rate) * float64(time.Second)))
				if !s.wait(time.Until(free)) {
					return
				}
			}
			l.queued.Add(-int64(len(p.b)))
			_, _ = p.conn.WriteTo(p.b, p.to)
		}
	}
}

// wait waits d (nothing when d is not positive) and reports false when the shim closed meanwhile.
func (s *Shim) wait(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-s.done:
		return false
	}
}
