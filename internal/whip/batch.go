package whip

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/pion/webrtc/v4"
)

// BatchConn is the media socket every peer connection of a server shares (through
// pion's ICE UDP mux). Writes to a destination that a Batch holds are gathered and
// go out together when it is released: on Linux one sendmsg per run of equal-size
// datagrams with UDP generic segmentation offload (UDP_SEGMENT), where the kernel
// walks its send path once for the run instead of once per datagram. A unit's
// packets to one viewer are such a run. Every other write goes out at once.
type BatchConn struct {
	*net.UDPConn

	mu   sync.Mutex
	held map[netip.AddrPort]*batch
	free []*batch

	noGSO                  atomic.Bool // the kernel or the route refused segmentation: send one by one
	sends, datagrams, errs atomic.Uint64
}

// batch is what is gathered for one destination while it is held.
type batch struct {
	holds int
	buf   []byte
	sizes []int
}

// Limits of one segmented send: older kernels take at most 64 segments
// (UDP_MAX_SEGMENTS; newer ones 128), and all of them one IP datagram's worth of bytes.
const (
	maxSegments  = 64
	maxBatchSize = 60 << 10
)

// NewBatchConn wraps u.
func NewBatchConn(u *net.UDPConn) *BatchConn {
	return &BatchConn{UDPConn: u, held: map[netip.AddrPort]*batch{}}
}

// ReadFromAddrPort lets pion's mux read without allocating addresses.
func (c *BatchConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	return c.UDPConn.ReadFromUDPAddrPort(b)
}

// WriteToAddrPort sends b to dst, or gathers it when dst is held.
func (c *BatchConn) WriteToAddrPort(b []byte, dst netip.AddrPort) (int, error) {
	dst = canonical(dst)
	c.mu.Lock()
	if bt := c.held[dst]; bt != nil && len(b) <= maxBatchSize {
		var out *batch
		if len(bt.sizes) == maxSegments || len(bt.buf)+len(b) > maxBatchSize {
			// full: what is gathered goes first
			out = c.swap(bt)
		}
		bt.buf = append(bt.buf, b...)
		bt.sizes = append(bt.sizes, len(b))
		c.mu.Unlock()
		if out != nil {
			c.sent(out, dst)
		}
		return len(b), nil
	}
	c.mu.Unlock()
	c.sends.Add(1)
	c.datagrams.Add(1)
	n, err := c.UDPConn.WriteToUDPAddrPort(b, dst)
	if err != nil {
		c.errs.Add(1)
	}
	return n, err
}

// WriteTo implements net.PacketConn.
func (c *BatchConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if u, ok := addr.(*net.UDPAddr); ok {
		return c.WriteToAddrPort(b, u.AddrPort())
	}
	return c.UDPConn.WriteTo(b, addr)
}

// hold starts gathering the writes to dst.
func (c *BatchConn) hold(dst netip.AddrPort) {
	c.mu.Lock()
	bt := c.held[dst]
	if bt == nil {
		bt = c.spare()
		c.held[dst] = bt
	}
	bt.holds++
	c.mu.Unlock()
}

// release sends what was gathered for dst; writes are gathered again only while
// another hold on dst lasts.
func (c *BatchConn) release(dst netip.AddrPort) {
	c.mu.Lock()
	bt := c.held[dst]
	if bt == nil {
		c.mu.Unlock()
		return
	}
	bt.holds--
	out := bt
	if bt.holds > 0 {
		// another writer still holds dst: send what is here, go on gathering
		out = c.swap(bt)
	} else {
		delete(c.held, dst)
	}
	c.mu.Unlock()
	c.sent(out, dst)
}

// swap moves what bt gathered into a spare batch and returns that; c.mu is held.
func (c *BatchConn) swap(bt *batch) *batch {
	out := c.spare()
	out.buf, bt.buf = bt.buf, out.buf
	out.sizes, bt.sizes = bt.sizes, out.sizes
	return out
}

// sent flushes out to dst and keeps it for reuse.
func (c *BatchConn) sent(out *batch, dst netip.AddrPort) {
	c.flush(out, dst)
	out.buf, out.sizes = out.buf[:0], out.sizes[:0]
	out.holds = 0
	c.mu.Lock()
	c.free = append(c.free, out)
	c.mu.Unlock()
}

// spare returns an empty batch; c.mu is held.
func (c *BatchConn) spare() *batch {
	if n := len(c.free); n > 0 {
		bt := c.free[n-1]
		c.free = c.free[:n-1]
		return bt
	}
	// room for a predicted frame; keyframes grow it (up to maxBatchSize), and it
	// is kept for the next
	return &batch{buf: make([]byte, 0, 8<<10), sizes: make([]int, 0, 8)}
}

// flush sends bt's datagrams: each run of equal sizes (the last may be shorter) in
// one segmented send.
func (c *BatchConn) flush(bt *batch, dst netip.AddrPort) {
	off := 0
	for i := 0; i < len(bt.sizes); {
		size, j, n := bt.sizes[i], i+1, bt.sizes[i]
		for j < len(bt.sizes) && bt.sizes[j] <= size {
			n += bt.sizes[j]
			j++
			if bt.sizes[j-1] < size {
				break
			}
		}
		c.send(bt.buf[off:off+n], size, j-i, dst)
		off += n
		i = j
	}
}

// send writes count datagrams of size bytes (the last may be shorter) held in b.
func (c *BatchConn) send(b []byte, size, count int, dst netip.AddrPort) {
	c.datagrams.Add(uint64(count))
	if count > 1 && !c.noGSO.Load() {
		c.sends.Add(1)
		err := c.sendSegments(b, size, dst)
		if err == nil {
			return
		}
		// one by one instead; for good when segmentation cannot work here
		if segmentationRefused(err) {
			c.noGSO.Store(true)
		}
	}
	for len(b) > 0 {
		n := min(size, len(b))
		c.sends.Add(1)
		if _, err := c.UDPConn.WriteToUDPAddrPort(b[:n], dst); err != nil {
			c.errs.Add(1)
		}
		b = b[n:]
	}
}

// BatchStats counts what the socket sent.
type BatchStats struct {
	Datagrams, Sends, Errors uint64
	Segmentation             bool // whether runs go out as one segmented send
}

// Stats returns the counts so far.
func (c *BatchConn) Stats() BatchStats {
	return BatchStats{Datagrams: c.datagrams.Load(), Sends: c.sends.Load(), Errors: c.errs.Load(),
		Segmentation: segmentationSupported && !c.noGSO.Load()}
}

// canonical maps IPv4-in-IPv6 to IPv4, as pion's mux keys its peers.
func canonical(a netip.AddrPort) netip.AddrPort {
	if a.Addr().Is4In6() {
		return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
	}
	return a
}

// Batch gathers what one peer connection sends on a BatchConn while a unit's packets
// are written: Hold before, Release after. It follows the connection's selected
// candidate pair; writes that do not go through the shared socket (a relayed or TCP
// pair) are not held. The zero Batch and a nil *Batch hold nothing.
type Batch struct {
	conn *BatchConn
	dst  atomic.Pointer[netip.AddrPort]
}

// NewBatch returns the Batch of pc, whose media go out on conn. It takes pc's
// ICE transport's OnSelectedCandidatePairChange.
func NewBatch(conn *BatchConn, pc *webrtc.PeerConnection) *Batch {
	b := &Batch{conn: conn}
	pc.SCTP().Transport().ICETransport().OnSelectedCandidatePairChange(func(p *webrtc.ICECandidatePair) {
		b.follow(p)
	})
	return b
}

func (b *Batch) follow(p *webrtc.ICECandidatePair) {
	if p == nil || p.Remote == nil || p.Remote.Protocol != webrtc.ICEProtocolUDP || p.Local == nil || p.Local.Typ != webrtc.ICECandidateTypeHost {
		b.dst.Store(nil)
		return
	}
	ip, err := netip.ParseAddr(p.Remote.Address)
	if err != nil {
		b.dst.Store(nil)
		return
	}
	dst := canonical(netip.AddrPortFrom(ip, p.Remote.Port))
	b.dst.Store(&dst)
}

// Hold starts gathering; pass what it returns to Release.
func (b *Batch) Hold() *netip.AddrPort {
	if b == nil || b.conn == nil {
		return nil
	}
	dst := b.dst.Load()
	if dst != nil {
		b.conn.hold(*dst)
	}
	return dst
}

// Release sends what was gathered since Hold returned dst.
func (b *Batch) Release(dst *netip.AddrPort) {
	if dst != nil {
		b.conn.release(*dst)
	}
}
