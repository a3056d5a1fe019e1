package ingest

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/pion/rtp"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/testkit"
	"fieldvideo/internal/unit"
)

// TestGarbagePublisher pushes random RTP payloads, sequence numbers and
// timestamps on a video and an audio track while a stream reader and an RTSP
// player read the source: nothing crashes and the server keeps serving.
func TestGarbagePublisher(t *testing.T) {
	env := newTestServer(t, nil)
	tok := mint(t, testSecret, auth.Claims{Publish: []string{"junk"}, View: []string{"junk"}})
	video := &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{
		&format.H264{PayloadTyp: 96, SPS: testSPS, PPS: testPPS, PacketizationMode: 1}}}
	audio := &description.Media{Type: description.MediaTypeAudio, Formats: []format.Format{
		&format.Opus{PayloadTyp: 111, ChannelCount: 2}}}
	pub := &gortsplib.Client{WriteQueueSize: 8192}
	if err := pub.StartRecording(env.basicURL(tok, "junk"), &description.Session{Medias: []*description.Media{video, audio}}); err != nil {
		t.Fatalf("publish with the token as password: %v", err)
	}
	defer pub.Close()
	env.waitState(t, "junk", StateLive)

	s, _ := env.srv.Stream("junk")
	c := collect(t, s)
	p, err := play(t, env.basicURL(tok, "junk"))
	if err != nil {
		t.Fatalf("play: %v", err)
	}

	r := rand.New(rand.NewPCG(1, 2))
	const packets = 4000
	seq := [2]uint16{100, 200}
	ts := [2]uint32{0, 0}
	for i := range packets {
		m, pt, k := video, uint8(96), 0
		if i%3 == 2 {
			m, pt, k = audio, 111, 1
		}
		switch r.IntN(20) {
		case 0:
			seq[k] += uint16(r.IntN(40000)) // jump (loss or wrap)
		case 1:
			seq[k] -= uint16(r.IntN(50)) // late / repeated
		default:
			seq[k]++
		}
		switch r.IntN(10) {
		case 0:
			ts[k] = r.Uint32()
		case 1, 2, 3:
			ts[k] += 3000
		}
		pkt := &rtp.Packet{
			Header:  rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq[k], Timestamp: ts[k], Marker: r.IntN(3) == 0},
			Payload: testkit.GarbagePayload(r),
		}
		if err := pub.WritePacketRTP(m, pkt); err != nil {
			t.Fatalf("write packet %d: %v", i, err)
		}
	}
	testkit.WaitFor(t, waitTimeout, "the server to take every packet", func() bool {
		return env.source("junk").Packets >= packets
	})
	in := env.source("junk")
	if in.State != StateLive {
		t.Fatalf("source %+v: want it still live", in)
	}
	if c.count(0) == 0 || c.count(1) == 0 {
		t.Fatalf("stream reader got %d video and %d audio units, want some of each", c.count(0), c.count(1))
	}
	if in.Lost == 0 {
		t.Fatalf("source reports no lost packets despite sequence jumps")
	}
	testkit.WaitFor(t, waitTimeout, "the player to get packets", func() bool {
		return p.count("H264") > 0 && p.count("opus") > 0
	})

	// The server still takes a well-behaved publisher.
	pub.Close()
	env.waitState(t, "junk", StateOffline)
	pub2 := &gortsplib.Client{}
	if err := pub2.StartRecording(env.basicURL(tok, "junk"), &description.Session{Medias: []*description.Media{video}}); err != nil {
		t.Fatalf("publish after garbage: %v", err)
	}
	defer pub2.Close()
	env.waitState(t, "junk", StateLive)
}

// TestUnsupportedCodecs: an MJPEG track next to H.264 is skipped with a
// reason; a push with nothing usable is refused with 415.
func TestUnsupportedCodecs(t *testing.T) {
	env := newTestServer(t, nil)
	tok := mint(t, testSecret, auth.Claims{Publish: []string{"*"}})
	h264 := &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{
		&format.H264{PayloadTyp: 96, SPS: testSPS, PPS: testPPS, PacketizationMode: 1}}}
	mjpeg := &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{&format.MJPEG{}}}

	c := &gortsplib.Client{}
	if err := c.StartRecording(env.basicURL(tok, "mixed"), &description.Session{Medias: []*description.Media{mjpeg, h264}}); err != nil {
		t.Fatalf("publish H264+MJPEG: %v", err)
	}
	defer c.Close()
	in := env.waitState(t, "mixed", StateLive)
	if len(in.Tracks) != 1 || in.Tracks[0].Codec != unit.CodecH264 {
		t.Fatalf("tracks %+v: want only H264", in.Tracks)
	}
	if len(in.Skipped) != 1 || in.Skipped[0].Codec != "JPEG" || !strings.Contains(in.Skipped[0].Note, "not supported") {
		t.Fatalf("skipped %+v: want the MJPEG track with a reason", in.Skipped)
	}

	c2 := &gortsplib.Client{}
	err := c2.StartRecording(env.basicURL(tok, "mjpeg-only"), &description.Session{Medias: []*description.Media{
		{Type: description.MediaTypeVideo, Formats: []format.Format{&format.MJPEG{}}}}})
	if err == nil {
		c2.Close()
		t.Fatal("a push with only MJPEG was accepted")
	}
	if !strings.Contains(err.Error(), "415") {
		t.Fatalf("error %v: want status 415", err)
	}
}
