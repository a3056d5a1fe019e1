package sfu

import (
	"net"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// shim is a UDP relay on loopback standing for a client's mobile link: the
// client sends to it as if it were the SFU, and the downlink (SFU → client)
// can be limited to a rate with a short drop-tail queue, as a congested cell
// does. Each client address gets its own upstream socket, so the SFU sees
// one remote address per client connection.
type shim struct {
	t      *testing.T
	front  net.PacketConn
	sfu    *net.UDPAddr
	rate   atomic.Int64 // downlink bytes per second; 0 unlimited
	lose   atomic.Int64 // drop one in this many downlink RTP packets; 0 none
	rtpN   atomic.Int64
	queue  chan shimPacket
	queued atomic.Int64

	mu    sync.Mutex
	peers map[string]net.PacketConn
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

type shimPacket struct {
	b  []byte
	to net.Addr
}

func newShim(t *testing.T, sfuAddr string) *shim {
	t.Helper()
	front, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ua, err := net.ResolveUDPAddr("udp4", sfuAddr)
	if err != nil {
		t.Fatal(err)
	}
	s := &shim{t: t, front: front, sfu: ua, queue: make(chan shimPacket, 4096), peers: map[string]net.PacketConn{}, done: make(chan struct{})}
	s.wg.Add(2)
	go s.uplink()
	go s.pace()
	t.Cleanup(s.close)
	return s
}

// Addr is where clients send.
func (s *shim) Addr() string { return s.front.LocalAddr().String() }

// limit sets the downlink rate in bits per second; 0 lifts the limit.
func (s *shim) limit(bps int) { s.rate.Store(int64(bps / 8)) }

// loseEvery drops one in n downlink RTP packets (RTCP, STUN and DTLS pass);
// 0 stops the loss.
func (s *shim) loseEvery(n int) { s.lose.Store(int64(n)) }

// lost reports whether the shim drops this downlink datagram.
func (s *shim) lost(b []byte) bool {
	n := s.lose.Load()
	isRTP := len(b) >= 12 && b[0]>>6 == 2 && (b[1] < 192 || b[1] > 223)
	return n > 0 && isRTP && s.rtpN.Add(1)%n == 0
}

// close cuts the link, as when a phone leaves a cell.
func (s *shim) close() {
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

func (s *shim) uplink() {
	defer s.wg.Done()
	buf := make([]byte, 1600)
	for {
		n, from, err := s.front.ReadFrom(buf)
		if err != nil {
			return
		}
		up := s.peerFor(from)
		if up == nil {
			return
		}
		_, _ = up.WriteTo(buf[:n], s.sfu)
	}
}

// peerFor returns the upstream socket of a client address, creating it.
func (s *shim) peerFor(client net.Addr) net.PacketConn {
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

// clientSDP rewrites the client's loopback candidates to the shim's
// upstream sockets for them, so the SFU reaches the client only through
// the shim (and can start connectivity checks itself).
func (s *shim) clientSDP(sdp string) string {
	return hostCandidate.ReplaceAllStringFunc(sdp, func(m string) string {
		port, _ := strconv.Atoi(hostCandidate.FindStringSubmatch(m)[1])
		up := s.peerFor(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		if up == nil {
			return m
		}
		return " 127.0.0.1 " + strconv.Itoa(up.LocalAddr().(*net.UDPAddr).Port) + " typ host"
	})
}

func (s *shim) downlink(up net.PacketConn, client net.Addr) {
	defer s.wg.Done()
	for {
		buf := make([]byte, 1600)
		n, _, err := up.ReadFrom(buf)
		if err != nil {
			return
		}
		if s.lost(buf[:n]) {
			continue
		}
		rate := s.rate.Load()
		if rate == 0 {
			_, _ = s.front.WriteTo(buf[:n], client)
			continue
		}
		// A queue of at most 150 ms at the link rate; beyond, drop.
		if s.queued.Load()+int64(n) > rate*150/1000 {
			continue
		}
		s.queued.Add(int64(n))
		select {
		case s.queue <- shimPacket{buf[:n], client}:
		default:
			s.queued.Add(-int64(n))
		}
	}
}

// pace sends queued packets at the link rate.
func (s *shim) pace() {
	defer s.wg.Done()
	free := time.Now()
	for {
		select {
		case <-s.done:
			return
		case p := <-s.queue:
			rate := s.rate.Load()
			if rate > 0 {
				now := time.Now()
				if free.Before(now) {
					free = now
				}
				free = free.Add(time.Duration(float64(len(p.b)) / float64(rate) * float64(time.Second)))
				if d := time.Until(free); d > 0 {
					timer := time.NewTimer(d)
					select {
					case <-timer.C:
					case <-s.done:
						timer.Stop()
						return
					}
				}
			}
			s.queued.Add(-int64(len(p.b)))
			_, _ = s.front.WriteTo(p.b, p.to)
		}
	}
}
