package main

import (
	"fmt"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/pion/rtp"
)

// packetWriter is where RTP packets of one RTSP session go: a *gortsplib.ServerStream or a
// recording *gortsplib.Client.
type packetWriter interface {
	WritePacketRTPWithNTP(medi *description.Media, pkt *rtp.Packet, ntp time.Time) error
}

// sessionSink sends a player's frames to one RTSP session, and starts it at a keyframe, as a
// camera that sends an IDR picture to every new client does: a receiver never sees a picture
// whose references it lacks. Audio starts with the video.
type sessionSink struct {
	w    packetWriter
	desc *description.Session // as returned by player.newDescription

	// delivered, when set, counts the RTP packets that reached the receiver; the video starts
	// only once a whole keyframe was delivered. A ServerStream drops packets until the
	// session's PLAY completes, which this detects. When nil, every write counts as delivered.
	delivered func() uint64

	started bool
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
	}
	if !s.started {
		s.started = s.delivered == nil || s.delivered()-before == uint64(len(pkts))
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
	}
	return nil
}
