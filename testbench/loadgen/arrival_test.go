package main

import (
	"encoding/binary"
	"net"
	"testing"
	"time"
)

// A datagram read through a stamped socket is noted with the kernel's
// arrival time; RTCP and other datagrams are not.
func TestArrivalStamps(t *testing.T) {
	book := &arrivals{}
	n, err := newStampNet(book)
	if err != nil {
		t.Fatal(err)
	}
	c, err := n.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := net.DialUDP("udp4", nil, c.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	rtp := make([]byte, 100)
	rtp[0], rtp[1] = 0x80, 96
	binary.BigEndian.PutUint16(rtp[2:], 4242)
	binary.BigEndian.PutUint32(rtp[8:], 0xfeed)
	rtcp := []byte{0x80, 200, 0, 6, 0, 0, 0xfe, 0xed, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(rtcp[2:], 4243)

	before := time.Now()
	for _, b := range [][]byte{rtp, rtcp} {
		if _, err := s.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 1500)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for range 2 {
		if _, _, err := c.ReadFrom(buf); err != nil {
			t.Fatal(err)
		}
	}
	after := time.Now()

	at, ok := book.when(0xfeed, 4242)
	if !ok {
		t.Fatal("the RTP packet's arrival was not noted")
	}
	if at.Before(before.Add(-time.Millisecond)) || at.After(after) {
		t.Fatalf("arrival %s outside the send and read %s .. %s", at.Format(time.StampMicro), before.Format(time.StampMicro), after.Format(time.StampMicro))
	}
	if _, ok := book.when(0xfeed, 4243); ok {
		t.Fatal("an RTCP packet was noted as RTP")
	}
	if _, ok := book.when(0xbeef, 4242); ok {
		t.Fatal("another SSRC's packet was found")
	}
}
