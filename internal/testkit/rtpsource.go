package testkit

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/pion/rtp"

	"fieldvideo/internal/stream"
	"fieldvideo/internal/unit"
)

// LiveStream runs ffmpeg making a live, decodable test pattern — H.264
// constrained baseline, 640x360, 25 fps, keyframe every 2 s, parameter sets
// in-band, plus Opus audio when audio is set — as RTP on loopback, and feeds
// it into a new stream named name. The stream closes when the test ends.
func LiveStream(t testing.TB, ctx context.Context, name string, audio bool) *stream.Stream {
	t.Helper()
	RequireBinary(t, FFmpegPath)
	tracks := []unit.Track{{Kind: unit.KindVideo, Codec: unit.CodecH264, ClockRate: 90000, PayloadType: 96}}
	if audio {
		tracks = append(tracks, unit.Track{Kind: unit.KindAudio, Codec: unit.CodecOpus, ClockRate: 48000, Channels: 2, PayloadType: 97})
	}
	st := stream.New(stream.Params{Name: name, Tracks: tracks})
	t.Cleanup(st.Close)

	args := []string{"-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25"}
	if audio {
		args = append(args, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000")
	}
	conns := make([]net.PacketConn, len(tracks))
	for i := range tracks {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns[i] = c
	}
	port := func(i int) string { return strconv.Itoa(conns[i].LocalAddr().(*net.UDPAddr).Port) }
	args = append(args, "-map", "0:v", "-c:v", "libx264", "-profile:v", "baseline", "-preset", "ultrafast",
		"-tune", "zerolatency", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-pix_fmt", "yuv420p",
		"-x264-params", "repeat-headers=1", "-f", "rtp", "-payload_type", "96", "rtp://127.0.0.1:"+port(0)+"?pkt_size=1200")
	if audio {
		args = append(args, "-map", "1:a", "-c:a", "libopus", "-ac", "2", "-b:a", "48k",
			"-f", "rtp", "-payload_type", "97", "rtp://127.0.0.1:"+port(1)+"?pkt_size=1200")
	}
	Start(t, ctx, FFmpegPath, args...)
	for i, c := range conns {
		go FeedRTP(c, unit.NewAssembler(i, tracks[i], st.Write))
	}
	return st
}

// FeedRTP reads RTP datagrams from c into a until c is closed.
func FeedRTP(c net.PacketConn, a *unit.Assembler) {
	buf := make([]byte, 2048)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		p := &rtp.Packet{}
		if err := p.Unmarshal(append([]byte(nil), buf[:n]...)); err != nil {
			continue
		}
		a.Push(p, time.Now())
	}
}

// WaitKeyframes waits until st has seen n keyframes.
func WaitKeyframes(t testing.TB, st *stream.Stream, n uint64, timeout time.Duration) {
	t.Helper()
	WaitFor(t, timeout, fmt.Sprintf("%d keyframes on %s", n, st.Name()), func() bool { return st.Stats().Keyframes >= n })
}
