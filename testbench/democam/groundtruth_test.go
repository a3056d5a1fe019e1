package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/ntp"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"fieldvideo/testbench/democam/truth"
)

// seenFrame is a video frame as a reader received it.
type seenFrame struct {
	rtp     uint32
	arrival time.Time
	truth   time.Time // from the SEI; zero when there was none
}

// seenReport is a video sender report as a reader received it.
type seenReport struct {
	ntp time.Time
	rtp uint32
}

// cameraLog records what a reader of one camera receives.
type cameraLog struct {
	mu      sync.Mutex
	dep     truth.Depacketizer
	frames  []seenFrame
	reports []seenReport
	audioSR int
	errs    []error

	want   int           // frames to receive
	done   chan struct{} // closed once more than want frames arrived
	closed bool
}

func (l *cameraLog) onVideo(pkt *rtp.Packet) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.frames); n == 0 || l.frames[n-1].rtp != pkt.Timestamp {
		if n >= l.want {
			if !l.closed {
				close(l.done)
				l.closed = true
			}
			return
		}
		l.frames = append(l.frames, seenFrame{rtp: pkt.Timestamp, arrival: now})
	} else if len(l.frames) >= l.want {
		return
	}
	nalus, err := l.dep.Push(pkt.SequenceNumber, pkt.Payload)
	if err != nil {
		l.errs = append(l.errs, err)
	}
	for _, nalu := range nalus {
		if at, found, err := truth.ParseSEI(nalu); found {
			l.frames[len(l.frames)-1].truth = at
		} else if err != nil && err != truth.ErrNotSEI {
			l.errs = append(l.errs, err)
		}
	}
}

func (l *cameraLog) snapshot() ([]seenFrame, []seenReport, int, []error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.frames), slices.Clone(l.reports), l.audioSR, slices.Clone(l.errs)
}

// readCamera reads an RTSP camera until it has received frames video frames.
func readCamera(t *testing.T, url string, frames int) *cameraLog {
	t.Helper()
	u, err := base.ParseURL(url)
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
		t.Fatalf("DESCRIBE %s: %v", url, err)
	}
	var h264 *format.H264
	video := desc.FindFormat(&h264)
	if video == nil {
		t.Fatalf("%s has no H.264 media", url)
	}
	if err := c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		t.Fatalf("SETUP: %v", err)
	}
	log := &cameraLog{want: frames, done: make(chan struct{})}
	c.OnPacketRTP(video, h264, log.onVideo)
	c.OnPacketRTCPAny(func(m *description.Media, pkt rtcp.Packet) {
		sr, ok := pkt.(*rtcp.SenderReport)
		if !ok {
			return
		}
		log.mu.Lock()
		defer log.mu.Unlock()
		if m == video {
			log.reports = append(log.reports, seenReport{ntp: ntp.Decode(sr.NTPTime), rtp: sr.RTPTime})
		} else {
			log.audioSR++
		}
	})
	if _, err := c.Play(nil); err != nil {
		t.Fatalf("PLAY: %v", err)
	}
	select {
	case <-log.done:
	case <-time.After(20 * time.Second):
		got, _, _, _ := log.snapshot()
		t.Errorf("%s: %d video frames in 20 s, want %d", url, len(got), frames)
	}
	return log
}

// TestServerGroundTruth reads cameras with wrong clocks and checks every part of the
// ground truth: each frame carries its true capture time, leaves after its delay, the RTP
// clock runs at the oscillator's rate, and the sender reports show the wrong wall clock.
func TestServerGroundTruth(t *testing.T) {
	models := []ClockModel{
		{TruthSEI: true},
		{Offset: 1700 * time.Millisecond, DriftPPM: 90, SRInterval: 200 * time.Millisecond, Delay: 30 * time.Millisecond, TruthSEI: true},
		{Offset: -2300 * time.Millisecond, DriftPPM: -60, NoSenderReports: true, Jitter: 5 * time.Millisecond, TruthSEI: true},
		{Offset: -40 * time.Millisecond, DriftPPM: 500, Wall: WallNTP, SRInterval: 200 * time.Millisecond, TruthSEI: true},
		{SpikeEvery: time.Second, SpikeFor: 400 * time.Millisecond, SpikeDelay: 300 * time.Millisecond, TruthSEI: true},
	}
	s := startServer(t, ServerParams{Cameras: len(models), Clocks: models})

	logs := make([]*cameraLog, len(models))
	var wg sync.WaitGroup
	for i := range models {
		wg.Go(func() { logs[i] = readCamera(t, s.URL(i+1), 60) })
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	for i, m := range models {
		t.Run(fmt.Sprintf("cam%d", i+1), func(t *testing.T) {
			frames, reports, audioSR, errs := logs[i].snapshot()
			if len(errs) > 0 {
				t.Errorf("depacketizing or reading SEIs: %v", errs)
			}
			// every frame carries its true capture time and left no earlier than its delay.
			var lat []time.Duration
			for j, f := range frames {
				if f.truth.IsZero() {
					t.Fatalf("frame %d (RTP %d) has no capture-time SEI", j, f.rtp)
				}
				lat = append(lat, f.arrival.Sub(f.truth))
			}
			slices.Sort(lat)
			t.Logf("%v: %d frames, capture to arrival %v … %v (median %v), %d video and %d audio sender reports",
				m, len(frames), lat[0], lat[len(lat)-1], lat[len(lat)/2], len(reports), audioSR)
			if lat[0] < m.Delay-time.Millisecond {
				t.Errorf("a frame arrived %v after its capture, before its delay of %v", lat[0], m.Delay)
			}
			if m.SpikeEvery > 0 {
				// 40 % of the frames are held back by the spike, the others are not.
				if spiked := len(lat) - sort.Search(len(lat), func(i int) bool { return lat[i] >= m.SpikeDelay }); spiked < len(lat)/5 || lat[len(lat)/5] > 100*time.Millisecond {
					t.Errorf("%d of %d frames arrived more than the spike delay after capture, want about 40%%", spiked, len(lat))
				}
			} else if lat[len(lat)/2] > m.Delay+m.Jitter+100*time.Millisecond {
				t.Errorf("median capture-to-arrival %v: frames leave late", lat[len(lat)/2])
			}
			if m.Jitter > 0 && lat[len(lat)*9/10]-lat[0] < m.Jitter/2 {
				t.Errorf("capture-to-arrival spans %v over 90%% of the frames, want jitter of about %v", lat[len(lat)*9/10]-lat[0], m.Jitter)
			}

			// the RTP clock advances one frame period of the oscillator per frame, which is
			// (1 + drift) times a frame period of true time.
			first, last := frames[0], frames[len(frames)-1]
			for j := 1; j < len(frames); j++ {
				if d := frames[j].rtp - frames[j-1].rtp; d != 3600 {
					t.Fatalf("frame %d: RTP time advances by %d, want 3600", j, int32(d))
				}
			}
			ticks := float64(last.rtp - first.rtp)
			ppm := (ticks/videoClockRate/last.truth.Sub(first.truth).Seconds() - 1) * 1e6
			if math.Abs(ppm-m.DriftPPM) > 0.5 {
				t.Errorf("RTP clock runs %+.2f ppm against true time, want %+g", ppm, m.DriftPPM)
			}

			// the sender reports map RTP time to the camera's wall clock: the true time plus
			// the offset (and the drift since the start, for a free-running clock).
			if m.NoSenderReports {
				if len(reports)+audioSR > 0 {
					t.Errorf("%d sender reports from a camera without them", len(reports)+audioSR)
				}
				return
			}
			if len(reports) == 0 || audioSR == 0 {
				t.Fatalf("%d video and %d audio sender reports, want both", len(reports), audioSR)
			}
			if m.SRInterval != 0 && len(reports) < 3 {
				t.Errorf("%d video sender reports in %v at one every %v", len(reports), last.arrival.Sub(first.arrival), m.SRInterval)
			}
			for _, sr := range reports {
				// RTP seconds are oscillator seconds: a free-running wall clock counts them
				// too, an NTP-locked one counts true seconds.
				secs := float64(int32(first.rtp-sr.rtp)) / videoClockRate
				if m.Wall == WallNTP {
					secs /= m.rate()
				}
				off := sr.ntp.Add(time.Duration(secs * 1e9)).Sub(first.truth)
				want := m.Offset
				if m.Wall == WallFree {
					// up to 5 s since the start at this drift: a few hundred µs at most.
					if slack := time.Duration(math.Abs(m.DriftPPM) * 5e3); off < want-slack-time.Millisecond || off > want+slack+time.Millisecond {
						t.Errorf("sender report %v/%d puts the first frame %v off true time, want %v", sr.ntp, sr.rtp, off, want)
					}
					continue
				}
				if off < want-time.Millisecond || off > want+time.Millisecond {
					t.Errorf("sender report %v/%d puts the first frame %v off true time, want %v", sr.ntp, sr.rtp, off, want)
				}
			}
		})
	}
}

// TestSEIReadByFFmpeg has FFmpeg's own H.264 syntax parser (the trace_headers bitstream
// filter) read the SEI of a camera's frames, and has FFmpeg decode the stream without error.
func TestSEIReadByFFmpeg(t *testing.T) {
	ffmpeg := requireTool(t, "ffmpeg")
	s := startServer(t, ServerParams{Cameras: 1, Clocks: []ClockModel{{TruthSEI: true, Offset: 3 * time.Second}}})

	t.Run("trace_headers", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		begin := time.Now()
		out, err := exec.CommandContext(ctx, ffmpeg, "-nostdin", "-hide_banner", "-rtsp_transport", "tcp", "-i", s.URL(1),
			"-frames:v", "5", "-an", "-c:v", "copy", "-bsf:v", "trace_headers", "-f", "null", "-").CombinedOutput()
		if err != nil {
			t.Fatalf("ffmpeg: %v\n%s", err, out)
		}
		field := regexp.MustCompile(`(uuid_iso_iec_11578|user_data_payload_byte)\[(\d+)\]\s+[01]+ = (\d+)`)
		var messages [][]byte
		var cur []byte
		for _, m := range field.FindAllSubmatch(out, -1) {
			idx, _ := strconv.Atoi(string(m[2]))
			v, _ := strconv.Atoi(string(m[3]))
			if string(m[1]) == "uuid_iso_iec_11578" && idx == 0 {
				if cur != nil {
					messages = append(messages, cur)
				}
				cur = nil
			}
			cur = append(cur, byte(v))
		}
		if cur != nil {
			messages = append(messages, cur)
		}
		var times []time.Time
		for _, msg := range messages {
			if len(msg) == 24 && bytes.Equal(msg[:16], truth.UUID[:]) {
				times = append(times, time.Unix(0, int64(binary.BigEndian.Uint64(msg[16:]))))
			}
		}
		if len(times) < 5 {
			t.Fatalf("FFmpeg read %d capture-time SEI messages in 5 frames (%d user data messages)", len(times), len(messages))
		}
		for i, at := range times {
			if at.Before(begin.Add(-10*time.Second)) || at.After(time.Now()) {
				t.Errorf("SEI %d says %v, not around now (%v): the camera's clock offset must not reach the truth", i, at, begin)
			}
			if i > 0 && at.Sub(times[i-1]) != 40*time.Millisecond {
				t.Errorf("SEI %d is %v after the previous, want 40ms", i, at.Sub(times[i-1]))
			}
		}
	})
	t.Run("decodes", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, ffmpeg, "-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-i", s.URL(1),
			"-t", "2", "-f", "null", "-")
		out, err := cmd.CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("ffmpeg decode of an SEI-stamped camera: %v\n%s", err, out)
		}
	})
}
