package whip

import (
	"net"
	"syscall"
)

// SocketBuffer is the receive and send buffer asked for the media socket: room for a
// few hundred milliseconds of a busy server's packets while its reader is descheduled,
// so that a pause drops nothing; beyond that, a late packet is worth less than a
// bounded delay.
const SocketBuffer = 2 << 20

// SizeSocketBuffers asks for SocketBuffer bytes of receive and send buffer on c and
// returns what the kernel granted (Linux grants at most net.core.rmem_max and
// net.core.wmem_max, and reports twice what it keeps for its own bookkeeping).
func SizeSocketBuffers(c net.PacketConn) (read, write int) {
	u, ok := c.(*net.UDPConn)
	if !ok {
		return 0, 0
	}
	_ = u.SetReadBuffer(SocketBuffer)
	_ = u.SetWriteBuffer(SocketBuffer)
	raw, err := u.SyscallConn()
	if err != nil {
		return 0, 0
	}
	_ = raw.Control(func(fd uintptr) {
		read, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
		write, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
	})
	return read, write
}
