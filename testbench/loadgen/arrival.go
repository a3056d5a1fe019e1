package main

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"

	"fieldvideo/internal/whip"
)

// arrivals remembers when the kernel received each of one viewer's RTP
// packets (SO_TIMESTAMPNS), so that latency is also measured up to the
// viewer's socket: what the servers and the network add, without the time a
// busy load generator takes to read and decrypt.
type arrivals struct {
	mu   sync.Mutex
	ring [4096]arrival
}

type arrival struct {
	ssrc uint32
	seq  uint16
	at   int64 // Unix nanoseconds; 0: none
}

// note records the arrival of datagram b when it is an RTP packet (SRTP
// leaves the header in clear).
func (a *arrivals) note(b []byte, at int64) {
	if at == 0 || len(b) < 12 || b[0]>>6 != 2 {
		return
	}
	if pt := b[1] & 0x7f; pt >= 64 && pt <= 95 { // RTCP
		return
	}
	seq := binary.BigEndian.Uint16(b[2:4])
	ssrc := binary.BigEndian.Uint32(b[8:12])
	a.mu.Lock()
	a.ring[seq%uint16(len(a.ring))] = arrival{ssrc: ssrc, seq: seq, at: at}
	a.mu.Unlock()
}

// when returns when the packet ssrc/seq reached the kernel (its last copy,
// when it was sent again).
func (a *arrivals) when(ssrc uint32, seq uint16) (time.Time, bool) {
	a.mu.Lock()
	e := a.ring[seq%uint16(len(a.ring))]
	a.mu.Unlock()
	if e.at == 0 || e.ssrc != ssrc || e.seq != seq {
		return time.Time{}, false
	}
	return time.Unix(0, e.at), true
}

// stampNet is the host's network, whose UDP sockets note each RTP packet's
// kernel arrival time in book.
type stampNet struct {
	*stdnet.Net
	book *arrivals
}

func newStampNet(book *arrivals) (*stampNet, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, err
	}
	return &stampNet{Net: n, book: book}, nil
}

func (n *stampNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	raw, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		c.Close()
		if err == nil {
			err = serr
		}
		return nil, err
	}
	return &stampConn{UDPConn: c, book: n.book}, nil
}

// stampConn reads as ICE does (one reader per socket) and notes arrivals.
type stampConn struct {
	*net.UDPConn
	book *arrivals
	oob  [64]byte
}

func (c *stampConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, oobn, _, addr, err := c.ReadMsgUDP(p, c.oob[:])
	if err == nil {
		c.book.note(p[:n], kernelTime(c.oob[:oobn]))
	}
	if addr == nil {
		return n, nil, err
	}
	return n, addr, err
}

func (c *stampConn) ReadFromAddrPort(p []byte) (int, netip.AddrPort, error) {
	n, oobn, _, addr, err := c.ReadMsgUDPAddrPort(p, c.oob[:])
	if err == nil {
		c.book.note(p[:n], kernelTime(c.oob[:oobn]))
	}
	return n, addr, err
}

// kernelTime returns the SCM_TIMESTAMPNS time in oob, in Unix nanoseconds,
// or 0 (always on 32-bit systems, whose layout this does not read). A
// control message is a header (length as a 64-bit word, level and type as
// int32) and its data (two 64-bit words: seconds, nanoseconds), aligned to
// 8 bytes.
func kernelTime(oob []byte) int64 {
	const word = syscall.SizeofCmsghdr - 8
	if word != 8 {
		return 0
	}
	for len(oob) >= syscall.SizeofCmsghdr {
		l := int(binary.NativeEndian.Uint64(oob))
		level := int32(binary.NativeEndian.Uint32(oob[word:]))
		typ := int32(binary.NativeEndian.Uint32(oob[word+4:]))
		if l < syscall.SizeofCmsghdr || l > len(oob) {
			return 0
		}
		if level == syscall.SOL_SOCKET && typ == syscall.SCM_TIMESTAMPNS && l >= syscall.SizeofCmsghdr+16 {
			d := oob[syscall.SizeofCmsghdr:]
			return int64(binary.NativeEndian.Uint64(d[0:8]))*1e9 + int64(binary.NativeEndian.Uint64(d[8:16]))
		}
		step := (l + word - 1) &^ (word - 1)
		if step >= len(oob) {
			return 0
		}
		oob = oob[step:]
	}
	return 0
}

// stampedAPI is a viewer's WebRTC API, whose sockets note arrivals in book.
func stampedAPI(book *arrivals) (*webrtc.API, error) {
	n, err := newStampNet(book)
	if err != nil {
		return nil, err
	}
	return whip.NewAPI(whip.APIParams{LoopbackOnly: true, Net: n, Keepalive: browserKeepalive})
}

// browserKeepalive is how often the viewers check their path once it is up, as Chromium
// does on a stable connection (libwebrtc's STABLE_WRITABLE_CONNECTION_PING_INTERVAL).
const browserKeepalive = 2500 * time.Millisecond
