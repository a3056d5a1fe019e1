package whip

import (
	"errors"
	"net/netip"
	"syscall"
	"unsafe"
)

const segmentationSupported = true

// udpSegment is UDP_SEGMENT (linux/udp.h): the size of the datagrams a send is cut into.
const udpSegment = 103

// sendSegments sends b to dst as datagrams of size bytes, the last one shorter when
// b is not a multiple of size, in one sendmsg.
func (c *BatchConn) sendSegments(b []byte, size int, dst netip.AddrPort) error {
	var oob [24]byte // syscall.CmsgSpace(2) on 64-bit; 16 on 32-bit
	h := (*syscall.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = syscall.IPPROTO_UDP, udpSegment
	h.SetLen(syscall.CmsgLen(2))
	*(*uint16)(unsafe.Pointer(&oob[syscall.CmsgLen(0)])) = uint16(size)
	_, _, err := c.UDPConn.WriteMsgUDPAddrPort(b, oob[:syscall.CmsgSpace(2)], dst)
	return err
}

// segmentationRefused reports whether err says segmentation cannot work on this
// socket at all (a kernel without UDP_SEGMENT, a route without checksum offload or
// through IPsec), rather than refusing one send (a datagram larger than the path's
// MTU: EINVAL), so that every send goes one by one from now on.
func segmentationRefused(err error) bool {
	return errors.Is(err, syscall.EIO) || errors.Is(err, syscall.ENOPROTOOPT) || errors.Is(err, syscall.EOPNOTSUPP)
}
