package testkit

import (
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Ports for peers that must be told their port in advance are drawn below
// the kernel's ephemeral range, so no socket bound to port 0 and no
// outgoing connection can take one, and each is reserved for the whole test
// by a lock file that every test process honours. A server stopped and
// started again on its port therefore finds it free even while other test
// packages run beside it.
const (
	portLow  = 20000
	portHigh = 32767 // the default ephemeral range starts at 32768
)

var portDir = filepath.Join(os.TempDir(), "fieldvideo-test-ports")

// FreePort returns a TCP port on 127.0.0.1 that is free and reserved for the
// rest of the test. Prefer binding to 127.0.0.1:0 and reading the port back;
// use this only for a peer that must be told its port in advance, or one
// that is restarted on the same port.
func FreePort(t testing.TB) int {
	t.Helper()
	return reservePorts(t, "tcp", 1)
}

// FreeUDPPortPair returns an even UDP port and the next one on 127.0.0.1
// (an RTP/RTCP pair), free and reserved for the rest of the test.
func FreeUDPPortPair(t testing.TB) (rtp, rtcp int) {
	t.Helper()
	p := reservePorts(t, "udp", 2)
	return p, p + 1
}

// reservePorts finds n consecutive ports (the first even when n is 2) that
// no other test holds and that bind now, and holds them until the test ends.
func reservePorts(t testing.TB, network string, n int) int {
	t.Helper()
	low, high := reserveRange()
	if err := os.MkdirAll(portDir, 0o777); err != nil {
		t.Fatalf("testkit: port reservations: %v", err)
	}
	for range 1000 {
		p := low + rand.IntN(high-low-n)
		if n == 2 {
			p &^= 1
		}
		var held []*os.File
		ok := true
		for i := range n {
			f := lockPort(p + i)
			if f == nil || !bindable(network, p+i) {
				if f != nil {
					f.Close()
				}
				ok = false
				break
			}
			held = append(held, f)
		}
		if !ok {
			for _, f := range held {
				f.Close()
			}
			continue
		}
		t.Cleanup(func() {
			for _, f := range held {
				f.Close()
			}
		})
		return p
	}
	t.Fatalf("testkit: no free %s port found in %d-%d on 127.0.0.1", network, low, high)
	return 0
}

// reserveRange is portLow..portHigh, moved below the kernel's ephemeral
// range when that starts lower.
func reserveRange() (low, high int) {
	low, high = portLow, portHigh
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return low, high
	}
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return low, high
	}
	if eph, err := strconv.Atoi(f[0]); err == nil && eph-1 < high && eph > 2048 {
		high = eph - 1
		low = max(1024, high-12000)
	}
	return low, high
}

// lockPort takes the port's lock file without waiting; nil when another
// test holds it. Both TCP and UDP reservations use one lock per number.
func lockPort(port int) *os.File {
	f, err := os.OpenFile(filepath.Join(portDir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil
	}
	return f
}

func bindable(network string, port int) bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	switch network {
	case "udp":
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return false
		}
		c.Close()
	default:
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}
