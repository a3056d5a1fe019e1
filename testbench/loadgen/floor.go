package main

import (
	"net"
	"time"
)

// sendFloor measures what one datagram of size bytes costs to send on
// loopback on this machine, delivery to a reading socket included: the
// floor under any server's cost per packet here, whatever it does in user
// space.
func sendFloor(n, size int) (time.Duration, error) {
	r, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return 0, err
	}
	defer r.Close()
	_ = r.SetReadBuffer(8 << 20)
	go func() {
		buf := make([]byte, size+100)
		for {
			if _, _, err := r.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	s, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return 0, err
	}
	defer s.Close()
	to := r.LocalAddr().(*net.UDPAddr)
	p := make([]byte, size)
	start := time.Now()
	for range n {
		if _, err := s.WriteToUDP(p, to); err != nil {
			return 0, err
		}
	}
	return time.Since(start) / time.Duration(n), nil
}
