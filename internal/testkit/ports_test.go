package testkit

import (
	"net"
	"strconv"
	"testing"
)

// A reserved port stays out of every other reservation, in this process or
// another, until its test ends, and lies where the kernel never hands out
// ports of its own.
func TestFreePortStaysReserved(t *testing.T) {
	low, high := reserveRange()
	seen := map[int]bool{}
	for range 40 {
		p := FreePort(t)
		if p < low || p > high {
			t.Fatalf("port %d outside %d-%d", p, low, high)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice while reserved", p)
		}
		seen[p] = true
		if f := lockPort(p); f != nil {
			f.Close()
			t.Fatalf("port %d could be locked again while reserved", p)
		}
	}
	rtp, rtcp := FreeUDPPortPair(t)
	if rtp%2 != 0 || rtcp != rtp+1 || seen[rtp] || seen[rtcp] {
		t.Fatalf("UDP pair %d/%d: want an even port and the next, neither reserved before", rtp, rtcp)
	}
	c, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(rtcp)))
	if err != nil {
		t.Fatalf("the reserved RTCP port does not bind: %v", err)
	}
	c.Close()

	var released int
	t.Run("released", func(t *testing.T) {
		released = FreePort(t)
	})
	f := lockPort(released)
	if f == nil {
		t.Fatalf("port %d still locked after its test ended", released)
	}
	f.Close()
}
