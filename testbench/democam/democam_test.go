package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/pion/rtp"
)

// requireTool fails the test when a peer program is missing.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: run `make test` (scripts/deps.sh test) to install it", name)
	}
	return path
}

// testLogger writes to the test's output, shown when the test fails or with -v.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startServer starts a Server on a free loopback port and stops it when the test ends.
func startServer(t *testing.T, p ServerParams) *Server {
	t.Helper()
	p.Listen = "127.0.0.1:0"
	p.Logger = testLogger(t)
	s, err := NewServer(p)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s
}

// shortClip is the first GOP (2 s) of the embedded clip, so that a test sees it loop soon.
func shortClip(t *testing.T) *Clip {
	t.Helper()
	clip, err := EmbeddedClip()
	if err != nil {
		t.Fatalf("EmbeddedClip: %v", err)
	}
	clip.Video = clip.Video[:50]
	clip.Audio = clip.Audio[:100]
	if clip.IsKeyframe(49) || !clip.IsKeyframe(0) {
		t.Fatal("the embedded clip's GOP is not 50 frames: regenerate it with clip/generate.sh")
	}
	return clip
}

func TestEmbeddedClip(t *testing.T) {
	clip, err := EmbeddedClip()
	if err != nil {
		t.Fatalf("EmbeddedClip: %v", err)
	}
	if got := len(clip.Video); got != 150 {
		t.Errorf("video frames = %d, want 150 (6 s at 25 fps)", got)
	}
	if got := len(clip.Audio); got != 300 {
		t.Errorf("audio frames = %d, want 300 (6 s of 20 ms)", got)
	}
	for i := range clip.Video {
		if want := i%50 == 0; clip.IsKeyframe(i) != want {
			t.Errorf("frame %d: keyframe = %v, want %v", i, clip.IsKeyframe(i), want)
		}
	}
}

func TestServerFFprobe(t *testing.T) {
	ffprobe := requireTool(t, "ffprobe")
	s := startServer(t, ServerParams{Cameras: 2})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ffprobe, "-v", "error", "-rtsp_transport", "tcp",
		"-show_streams", "-of", "json", s.URL(1))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", s.URL(1), err, stderr.String())
	}

	var probe struct {
		Streams []struct {
			CodecName  string `json:"codec_name"`
			CodecType  string `json:"codec_type"`
			Profile    string `json:"profile"`
			Width      int    `json:"width"`
			Height     int    `json:"height"`
			SampleRate string `json:"sample_rate"`
			Channels   int    `json:"channels"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &probe); err != nil {
		t.Fatalf("decode ffprobe output: %v\n%s", err, out)
	}
	var video, audio bool
	for _, st := range probe.Streams {
		switch st.CodecName {
		case "h264":
			video = true
			if st.Width != 640 || st.Height != 360 {
				t.Errorf("video size = %dx%d, want 640x360", st.Width, st.Height)
			}
			if st.Profile != "Constrained Baseline" {
				t.Errorf("video profile = %q, want Constrained Baseline", st.Profile)
			}
		case "pcm_mulaw":
			audio = true
			if st.SampleRate != "8000" || st.Channels != 1 {
				t.Errorf("audio = %s Hz %d channels, want 8000 Hz mono", st.SampleRate, st.Channels)
			}
		}
	}
	if !video || !audio {
		t.Errorf("streams = %+v, want an h264 and a pcm_mulaw stream", probe.Streams)
	}
}

// TestServerFFmpegDecodes reads 3 s of two cameras with ffmpeg and requires an error-free
// decode. cam2 starts half-way through the 6 s clip, so its reader crosses the loop point.
func TestServerFFmpegDecodes(t *testing.T) {
	ffmpeg := requireTool(t, "ffmpeg")
	s := startServer(t, ServerParams{Cameras: 2})

	for _, cam := range []int{1, 2} {
		t.Run("cam"+strconv.Itoa(cam), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, ffmpeg, "-nostdin", "-v", "error", "-nostats",
				"-rtsp_transport", "tcp", "-i", s.URL(cam), "-t", "3",
				"-progress", "pipe:1", "-f", "null", "-")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("ffmpeg: %v\n%s", err, stderr.String())
			}
			if stderr.Len() > 0 {
				t.Errorf("ffmpeg reported errors:\n%s", stderr.String())
			}
			frames := lastProgressValue(stdout.String(), "frame")
			if frames < 70 {
				t.Errorf("decoded %d frames in 3 s, want about 75\n%s", frames, stdout.String())
			}
		})
	}
}

// lastProgressValue returns the last integer value of key in ffmpeg -progress output.
func lastProgressValue(progress, key string) int {
	v := -1
	for _, line := range strings.Split(progress, "\n") {
		if rest, ok := strings.CutPrefix(line, key+"="); ok {
			if n, err := strconv.Atoi(strings.TrimSpace(rest)); err == nil {
				v = n
			}
		}
	}
	return v
}

// rtpLog records the RTP packets of the first wantFrames video frames and the audio sent
// meanwhile, and closes done when a later video frame arrives.
type rtpLog struct {
	wantFrames int
	done       chan struct{}

	mu     sync.Mutex
	frames int
	lastTS uint32
	video  []rtp.Packet
	audio  []rtp.Packet
}

func (l *rtpLog) add(isVideo bool, pkt *rtp.Packet) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.frames > l.wantFrames {
		return
	}
	if isVideo && (l.frames == 0 || pkt.Timestamp != l.lastTS) {
		l.frames++
		l.lastTS = pkt.Timestamp
		if l.frames > l.wantFrames {
			close(l.done)
			return
		}
	}
	if isVideo {
		l.video = append(l.video, *pkt.Clone())
	} else {
		l.audio = append(l.audio, *pkt.Clone())
	}
}

// TestServerRTPContinuousAcrossLoop reads a camera playing a 2 s clip for more than one loop
// and checks that video starts at a keyframe and that sequence numbers and timestamps
// advance steadily through the loop point.
func TestServerRTPContinuousAcrossLoop(t *testing.T) {
	s := startServer(t, ServerParams{Cameras: 1, Clip: shortClip(t)})

	u, err := base.ParseURL(s.URL(1))
	if err != nil {
		t.Fatal(err)
	}
	tcp := gortsplib.ProtocolTCP
	c := gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Protocol: &tcp}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	desc, _, err := c.Describe(u)
	if err != nil {
		t.Fatalf("DESCRIBE: %v", err)
	}
	var h264 *format.H264
	videoMedia := desc.FindFormat(&h264)
	var g711 *format.G711
	audioMedia := desc.FindFormat(&g711)
	if videoMedia == nil || audioMedia == nil {
		t.Fatalf("medias = %+v, want H.264 and G.711", desc.Medias)
	}
	if len(h264.SPS) == 0 || len(h264.PPS) == 0 {
		t.Error("the SDP carries no sprop-parameter-sets")
	}
	if err := c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		t.Fatalf("SETUP: %v", err)
	}

	// 80 frames of a 50-frame clip: the loop point is crossed whatever the start.
	log := &rtpLog{wantFrames: 80, done: make(chan struct{})}
	c.OnPacketRTPAny(func(medi *description.Media, _ format.Format, pkt *rtp.Packet) {
		log.add(medi == videoMedia, pkt)
	})
	if _, err := c.Play(nil); err != nil {
		t.Fatalf("PLAY: %v", err)
	}

	select {
	case <-log.done:
	case <-time.After(15 * time.Second):
		log.mu.Lock()
		defer log.mu.Unlock()
		t.Fatalf("received %d video frames in 15 s, want 80", log.frames)
	}
	c.Close()

	log.mu.Lock()
	defer log.mu.Unlock()

	// the first video packet starts a keyframe: SPS alone, or a STAP-A that begins with SPS.
	first := log.video[0].Payload
	switch typ := first[0] & 0x1f; typ {
	case naluSPS:
	case 24: // STAP-A: 2-byte size, then the first NAL unit
		if len(first) < 4 || first[3]&0x1f != naluSPS {
			t.Errorf("first video packet is a STAP-A without SPS first: % x", first[:min(8, len(first))])
		}
	default:
		t.Errorf("first video packet carries NAL type %d, want an SPS before the first IDR", typ)
	}

	checkContinuous(t, "video", log.video, 3600)
	checkContinuous(t, "audio", log.audio, 160)
}

// checkContinuous requires consecutive sequence numbers and timestamps that never go back
// and advance by step from one frame to the next.
func checkContinuous(t *testing.T, name string, pkts []rtp.Packet, step uint32) {
	t.Helper()
	if len(pkts) < 2 {
		t.Fatalf("%s: %d packets received", name, len(pkts))
	}
	for i := 1; i < len(pkts); i++ {
		prev, cur := pkts[i-1], pkts[i]
		if cur.SequenceNumber != prev.SequenceNumber+1 {
			t.Fatalf("%s packet %d: sequence number %d follows %d", name, i, cur.SequenceNumber, prev.SequenceNumber)
		}
		if d := cur.Timestamp - prev.Timestamp; d != 0 && d != step {
			t.Fatalf("%s packet %d: timestamp advances by %d, want 0 or %d", name, i, int32(d), step)
		}
		if cur.SSRC != prev.SSRC {
			t.Fatalf("%s packet %d: SSRC changed", name, i)
		}
	}
}

func TestNewServerRejectsBadParams(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    ServerParams
		want string
	}{
		{"no address", ServerParams{Cameras: 1}, "listen address is empty"},
		{"no cameras", ServerParams{Listen: "127.0.0.1:0"}, "0 cameras"},
		{"too many cameras", ServerParams{Listen: "127.0.0.1:0", Cameras: 1000}, "1000 cameras"},
		{"half UDP", ServerParams{Listen: "127.0.0.1:0", Cameras: 1, UDPRTPAddress: ":8000"}, "UDP"},
		{"bad address", ServerParams{Listen: "127.0.0.1:notaport", Cameras: 1}, "listen for RTSP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewServer(tc.p)
			if err == nil {
				s.Close()
				t.Fatal("NewServer succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}
