package whip

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"
	"unsafe"
)

// batchPair is a BatchConn and a plain receiving socket on IPv4 loopback.
func batchPair(t testing.TB) (*BatchConn, *net.UDPConn, netip.AddrPort) {
	return batchPairOn(t, "udp4", net.IPv4(127, 0, 0, 1))
}

func batchPairOn(t testing.TB, network string, ip net.IP) (*BatchConn, *net.UDPConn, netip.AddrPort) {
	t.Helper()
	send, err := net.ListenUDP(network, &net.UDPAddr{IP: ip})
	if err != nil {
		t.Skipf("no %s loopback here: %v", network, err)
	}
	recv, err := net.ListenUDP(network, &net.UDPAddr{IP: ip})
	if err != nil {
		t.Fatal(err)
	}
	_ = recv.SetReadBuffer(4 << 20)
	t.Cleanup(func() { send.Close(); recv.Close() })
	return NewBatchConn(send), recv, recv.LocalAddr().(*net.UDPAddr).AddrPort()
}

// datagram returns n bytes that name their index i.
func datagram(i, n int) []byte {
	b := bytes.Repeat([]byte{byte(i)}, n)
	b[0] = 0x80
	return b
}

// receive reads n datagrams from r, failing after a deadline.
func receive(t *testing.T, r *net.UDPConn, n int) [][]byte {
	t.Helper()
	_ = r.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got [][]byte
	buf := make([]byte, 1<<16)
	for len(got) < n {
		k, err := r.Read(buf)
		if err != nil {
			t.Fatalf("after %d of %d datagrams: %v", len(got), n, err)
		}
		got = append(got, bytes.Clone(buf[:k]))
	}
	return got
}

// A unit's packets written while held arrive as they were written, each a datagram
// of its own, sent together when released: one segmented send per run of equal sizes.
func TestBatchConnSendsWhatIsHeldAsItWasWritten(t *testing.T) {
	t.Run("IPv4", func(t *testing.T) { testBatchConnSends(t, "udp4", net.IPv4(127, 0, 0, 1)) })
	t.Run("IPv6", func(t *testing.T) { testBatchConnSends(t, "udp6", net.IPv6loopback) })
}

func testBatchConnSends(t *testing.T, network string, ip net.IP) {
	for _, oneByOne := range []bool{false, true} {
		c, r, dst := batchPairOn(t, network, ip)
		c.noGSO.Store(oneByOne)
		sizes := []int{1250, 1236, 1236, 1236, 800, 500, 1236}
		var want [][]byte
		c.hold(dst)
		for i, n := range sizes {
			b := datagram(i, n)
			want = append(want, b)
			if k, err := c.WriteToAddrPort(b, dst); err != nil || k != n {
				t.Fatalf("write %d: %d, %v", i, k, err)
			}
		}
		if s := c.Stats(); s.Sends != 0 {
			t.Fatalf("%d sends while held, want none before release", s.Sends)
		}
		c.release(dst)
		got := receive(t, r, len(sizes))
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("one by one %v: datagram %d is %d bytes starting %x, want %d bytes of %d", oneByOne, i, len(got[i]), got[i][:2], len(want[i]), i)
			}
		}
		s := c.Stats()
		wantSends := uint64(4) // [1250 1236] [1236 1236 800] [500] [1236]
		if oneByOne || !s.Segmentation {
			wantSends = uint64(len(sizes))
		}
		if s.Datagrams != uint64(len(sizes)) || s.Sends != wantSends || s.Errors != 0 {
			t.Fatalf("one by one %v: stats %+v, want %d datagrams in %d sends", oneByOne, s, len(sizes), wantSends)
		}
	}
}

// Writes to another destination, and writes when nothing is held, go at once; a
// release while another writer holds the destination sends what was gathered and the
// holding goes on.
func TestBatchConnHoldsOnlyWhatIsHeld(t *testing.T) {
	c, r, dst := batchPair(t)
	_, r2, other := batchPair(t)
	c.hold(dst)
	c.hold(dst)
	if _, err := c.WriteToAddrPort(datagram(1, 100), other); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, r2, 1); len(got[0]) != 100 {
		t.Fatalf("other destination got %d bytes", len(got[0]))
	}
	_, _ = c.WriteToAddrPort(datagram(2, 200), dst)
	c.release(dst)
	if got := receive(t, r, 1); got[0][1] != 2 {
		t.Fatalf("got datagram %d, want 2", got[0][1])
	}
	_, _ = c.WriteToAddrPort(datagram(3, 300), dst)
	if s := c.Stats(); s.Datagrams != 2 {
		t.Fatalf("%d datagrams sent, want 2: the third is still held", s.Datagrams)
	}
	c.release(dst)
	if got := receive(t, r, 1); got[0][1] != 3 {
		t.Fatalf("got datagram %d, want 3", got[0][1])
	}
	_, _ = c.WriteToAddrPort(datagram(4, 400), dst)
	if s := c.Stats(); s.Datagrams != 4 {
		t.Fatalf("%d datagrams sent, want 4: nothing is held any more", s.Datagrams)
	}
}

// More than one send can carry goes out in order: what is gathered first.
func TestBatchConnKeepsOrderBeyondOneSend(t *testing.T) {
	c, r, dst := batchPair(t)
	n := maxSegments*2 + 5
	c.hold(dst)
	for i := range n {
		_, _ = c.WriteToAddrPort(datagram(i, 1200), dst)
	}
	c.release(dst)
	got := receive(t, r, n)
	for i := range got {
		if got[i][1] != byte(i) || len(got[i]) != 1200 {
			t.Fatalf("datagram %d is %d bytes of %d", i, len(got[i]), got[i][1])
		}
	}
}

// An IPv4 peer named in IPv6 form is the same destination.
func TestBatchConnMapsIPv4InIPv6(t *testing.T) {
	c, r, dst := batchPair(t)
	mapped := netip.AddrPortFrom(netip.AddrFrom16(dst.Addr().As16()), dst.Port())
	c.hold(dst)
	_, _ = c.WriteToAddrPort(datagram(1, 10), mapped)
	if s := c.Stats(); s.Datagrams != 0 {
		t.Fatal("a write to the mapped address was not held")
	}
	c.release(dst)
	receive(t, r, 1)
}

func TestSentRefStaysSmall(t *testing.T) {
	if n := unsafe.Sizeof(sentRef{}); n > 32 {
		t.Fatalf("sentRef is %d bytes; a history keeps %d of them per viewer", n, historySize)
	}
}

// BenchmarkBatchConn sends a predicted frame's four packets to one viewer.
func BenchmarkBatchConn(b *testing.B) {
	c, r, dst := batchPair(b)
	go func() {
		buf := make([]byte, 1<<16)
		for {
			if _, err := r.Read(buf); err != nil {
				return
			}
		}
	}()
	pkt := datagram(1, 1200)
	b.ReportAllocs()
	b.SetBytes(4 * 1200)
	for b.Loop() {
		c.hold(dst)
		for range 4 {
			_, _ = c.WriteToAddrPort(pkt, dst)
		}
		c.release(dst)
	}
}
