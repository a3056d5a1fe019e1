package main

import (
	"fmt"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// packetWriter is where RTP and RTCP packets of one RTSP session go: a
// *gortsplib.ServerStream or a recording *gortsplib.Client.
type packetWriter interface {
	WritePacketRTPWithNTP(medi *description.Media, pkt *rtp.Packet, ntp time.Time) error
	WritePacketRTCP(medi *description.Media, pkt rtcp.Packet) error
}

// mediaCount is what a session sent of one media, for its sender reports.
type mediaCount struct {
	ssrc    uint32
	packets uint32
	octets  uint32
}

func (c *mediaCount) add(pkt *rtp.Packet) {
	c.ssrc = pkt.SSRC
	c.packets++
	c.octets += uint32(len(pkt.Payload))
}

// sessionSink sends a player's frames to one RTSP session, and starts it at a keyframe, as a
// camera that sends an IDR picture to every new client does: a receiver never sees a picture
// whose references it lacks. Audio starts with the video. It sends the session's RTCP
// sender reports itself (the RTSP library's own are turned off), so that they carry the
// camera's clocks rather than the host's.
type sessionSink struct {
	w    packetWriter
	desc *description.Session // as returned by player.newDescription

	// delivered, when set, counts the RTP packets that reached the receiver; the video starts
	// only once a whole keyframe was delivered. A ServerStream drops packets until the
	// session's PLAY completes, which this detects. When nil, every write counts as delivered.
	delivered func() uint64

	started      bool
	video, audio mediaCount
	nextSR       time.Time
}

func (s *sessionSink) writeVideoFrame(pkts []*rtp.Packet, ntp time.Time, keyframe bool) error {
	if !s.started && !keyframe {
		return nil
	}
	var before uint64
	if !s.started && s.delivered != nil {
		before = s.delivered()
	}
	for _, pkt := range pkts {
		if err := s.w.WritePacketRTPWithNTP(s.desc.Medias[0], pkt, ntp); err != nil {
			return fmt.Errorf("write video: %w", err)
		}
		s.video.add(pkt)
	}
	if !s.started {
		s.started = s.delivered == nil || s.delivered()-before == uint64(len(pkts))
		if !s.started {
			s.video = mediaCount{}
		}
	}
	return nil
}

func (s *sessionSink) writeAudioFrame(pkts []*rtp.Packet, ntp time.Time) error {
	if !s.started {
		// audio starts with the video, so that both begin at the same instant.
		return nil
	}
	for _, pkt := range pkts {
		if err := s.w.WritePacketRTPWithNTP(s.desc.Medias[1], pkt, ntp); err != nil {
			return fmt.Errorf("write audio: %w", err)
		}
		s.audio.add(pkt)
	}
	return nil
}

// writeSenderReports sends a sender report for each media that has sent packets, once the
// session has started and then every sr.interval.
func (s *sessionSink) writeSenderReports(now time.Time, sr srPoint) error {
	if !s.started || now.Before(s.nextSR) {
		return nil
	}
	s.nextSR = now.Add(sr.interval)
	stamp := ntpTime(sr.ntp)
	for i, m := range []struct {
		count *mediaCount
		rtp   uint32
	}{{&s.video, sr.video}, {&s.audio, sr.audio}} {
		if m.count.packets == 0 {
			continue
		}
		rep := &rtcp.SenderReport{
			SSRC:        m.count.ssrc,
			NTPTime:     stamp,
			RTPTime:     m.rtp,
			PacketCount: m.count.packets,
			OctetCount:  m.count.octets,
		}
		if err := s.w.WritePacketRTCP(s.desc.Medias[i], rep); err != nil {
			return fmt.Errorf("write a sender report: %w", err)
		}
	}
	return nil
}

// ntpTime encodes t as a 64-bit NTP timestamp (RFC 5905), in the NTP era of t modulo 2³²
// seconds, so that a wall clock decades off (one never set, at 1970) still encodes.
func ntpTime(t time.Time) uint64 {
	const unixToNTP = 2208988800
	ns := t.UnixNano()
	secs, rem := ns/1e9, ns%1e9
	if rem < 0 {
		secs, rem = secs-1, rem+1e9
	}
	return uint64(secs+unixToNTP)<<32 | (uint64(rem)<<32+5e8)/1e9
}
