package recorder

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fieldvideo/internal/store"
	"fieldvideo/internal/stream"
	"fieldvideo/internal/testkit"
	"fieldvideo/internal/unit"
)

// sourceOpts describe an ffmpeg test source.
type sourceOpts struct {
	Video string // h264 (baseline), h264b (main with B-frames), h265
	Audio string // "", opus, aac, pcmu, pcma
	Size  string // default 320x240
	FPS   int    // default 25
	GOP   int    // frames; default FPS (one keyframe a second)
	// Filter is a video filter (e.g. select= to drop frames, which makes
	// the stream's timestamps jump).
	Filter string
}

// ffmpegArgs returns the ffmpeg arguments for a source sending RTP to the
// given ports and writing its SDP to sdp.
func ffmpegArgs(o sourceOpts, ports []int, sdp string) []string {
	if o.Size == "" {
		o.Size = "320x240"
	}
	if o.FPS == 0 {
		o.FPS = 25
	}
	if o.GOP == 0 {
		o.GOP = o.FPS
	}
	gop := strconv.Itoa(o.GOP)
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "error", "-re", "-f", "lavfi",
		"-i", fmt.Sprintf("testsrc2=size=%s:rate=%d", o.Size, o.FPS)}
	rate := "48000"
	if o.Audio == "pcmu" || o.Audio == "pcma" {
		rate = "8000"
	}
	if o.Audio != "" {
		args = append(args, "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate="+rate)
	}
	args = append(args, "-map", "0:v")
	if o.Filter != "" {
		args = append(args, "-vf", o.Filter, "-fps_mode", "vfr")
	}
	switch o.Video {
	case "h265":
		args = append(args, "-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
			"-x265-params", "keyint="+gop+":min-keyint="+gop+":scenecut=0:repeat-headers=1:log-level=error")
	case "h264b":
		args = append(args, "-c:v", "libx264", "-profile:v", "main", "-preset", "veryfast", "-bf", "2",
			"-g", gop, "-keyint_min", gop, "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-x264-params", "repeat-headers=1")
	default:
		args = append(args, "-c:v", "libx264", "-profile:v", "baseline", "-preset", "ultrafast", "-tune", "zerolatency",
			"-g", gop, "-keyint_min", gop, "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-x264-params", "repeat-headers=1")
	}
	args = append(args, "-f", "rtp", "-payload_type", "96", fmt.Sprintf("rtp://127.0.0.1:%d?pkt_size=1200", ports[0]))
	if o.Audio != "" {
		args = append(args, "-map", "1:a")
		switch o.Audio {
		case "opus":
			args = append(args, "-c:a", "libopus", "-ac", "2", "-b:a", "48k", "-payload_type", "97")
		case "aac":
			args = append(args, "-c:a", "aac", "-ac", "2", "-b:a", "64k", "-payload_type", "97")
		case "pcmu":
			args = append(args, "-c:a", "pcm_mulaw", "-ac", "1")
		case "pcma":
			args = append(args, "-c:a", "pcm_alaw", "-ac", "1")
		}
		args = append(args, "-f", "rtp", fmt.Sprintf("rtp://127.0.0.1:%d?pkt_size=1200", ports[1]))
	}
	return append(args, "-sdp_file", sdp)
}

// startSource runs ffmpeg as o says and feeds its RTP into a new stream.
func startSource(t testing.TB, ctx context.Context, name string, o sourceOpts) *stream.Stream {
	t.Helper()
	testkit.RequireBinary(t, testkit.FFmpegPath)
	n := 1
	if o.Audio != "" {
		n = 2
	}
	conns := make([]net.PacketConn, n)
	ports := make([]int, n)
	for i := range conns {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns[i], ports[i] = c, c.LocalAddr().(*net.UDPAddr).Port
	}
	sdp := filepath.Join(t.TempDir(), "source.sdp")
	p := testkit.Start(t, ctx, testkit.FFmpegPath, ffmpegArgs(o, ports, sdp)...)
	var tracks []unit.Track
	testkit.WaitFor(t, 20*time.Second, "ffmpeg's SDP file", func() bool {
		b, err := os.ReadFile(sdp)
		if err != nil || p.Exited() {
			return p.Exited()
		}
		tracks = parseSDP(string(b))
		return len(tracks) == n
	})
	if len(tracks) != n {
		t.Fatalf("ffmpeg exited: %s", p.Output())
	}
	st := stream.New(stream.Params{Name: name, Tracks: tracks})
	t.Cleanup(st.Close)
	for i, c := range conns {
		go testkit.FeedRTP(c, unit.NewAssembler(i, tracks[i], st.Write))
	}
	return st
}

// parseSDP reads the tracks of the SDP ffmpeg writes for RTP outputs.
func parseSDP(s string) []unit.Track {
	var out []unit.Track
	var cur *unit.Track
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(l, "m="):
			f := strings.Fields(l[2:])
			if len(f) < 4 {
				return nil
			}
			pt, _ := strconv.Atoi(f[3])
			out = append(out, unit.Track{Kind: unit.KindAudio, PayloadType: uint8(pt)})
			cur = &out[len(out)-1]
			if f[0] == "video" {
				cur.Kind = unit.KindVideo
			}
			switch pt {
			case 0:
				cur.Codec, cur.ClockRate, cur.Channels = unit.CodecPCMU, 8000, 1
			case 8:
				cur.Codec, cur.ClockRate, cur.Channels = unit.CodecPCMA, 8000, 1
			}
		case cur != nil && strings.HasPrefix(l, "a=rtpmap:"):
			_, v, _ := strings.Cut(l, " ")
			f := strings.Split(v, "/")
			cur.Codec = f[0]
			switch strings.ToUpper(f[0]) {
			case "H264":
				cur.Codec = unit.CodecH264
			case "H265":
				cur.Codec = unit.CodecH265
			case "OPUS":
				cur.Codec = unit.CodecOpus
			case "MPEG4-GENERIC":
				cur.Codec = unit.CodecAAC
			}
			if len(f) > 1 {
				c, _ := strconv.Atoi(f[1])
				cur.ClockRate = uint32(c)
			}
			if len(f) > 2 {
				c, _ := strconv.Atoi(f[2])
				cur.Channels = uint16(c)
			}
		case cur != nil && strings.HasPrefix(l, "a=fmtp:"):
			_, v, _ := strings.Cut(l, " ")
			cur.Fmtp = strings.TrimSpace(v)
		}
	}
	return out
}

// flakyStore wraps a store and fails every call while down.
type flakyStore struct {
	store.Store
	down  atomic.Bool
	puts  atomic.Int64
	calls atomic.Int64
}

var errDown = errors.New("store is down (test)")

func (f *flakyStore) check() error {
	f.calls.Add(1)
	if f.down.Load() {
		return errDown
	}
	return nil
}

func (f *flakyStore) Put(ctx context.Context, key string, r io.Reader, size int64, sum string) error {
	if err := f.check(); err != nil {
		return err
	}
	f.puts.Add(1)
	return f.Store.Put(ctx, key, r, size, sum)
}

func (f *flakyStore) Get(ctx context.Context, key string) (io.ReadCloser, store.Info, error) {
	if err := f.check(); err != nil {
		return nil, store.Info{}, err
	}
	return f.Store.Get(ctx, key)
}

func (f *flakyStore) Stat(ctx context.Context, key string) (store.Info, error) {
	if err := f.check(); err != nil {
		return store.Info{}, err
	}
	return f.Store.Stat(ctx, key)
}

func (f *flakyStore) List(ctx context.Context, prefix string, fn func(store.Info) error) error {
	if err := f.check(); err != nil {
		return err
	}
	return f.Store.List(ctx, prefix, fn)
}

func newFS(t testing.TB, name string) *store.FS {
	t.Helper()
	s, err := store.NewFS(name, filepath.Join(t.TempDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testLog returns a logger that writes to the test's log.
func testLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(&tlogWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tlogWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *tlogWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// startRecorder makes a recorder with p (stores and spool filled in when
// empty) and runs it until the test ends.
func startRecorder(t testing.TB, p Params) *Recorder {
	t.Helper()
	if p.SpoolDir == "" {
		p.SpoolDir = filepath.Join(t.TempDir(), "spool")
	}
	if p.Incident == "" {
		p.Incident = "inc-1"
	}
	if p.Log == nil {
		p.Log = testLog(t)
	}
	if p.RetryMin == 0 {
		p.RetryMin, p.RetryMax = 50*time.Millisecond, 500*time.Millisecond
	}
	r, err := New(p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		r.Run(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		r.Close()
	})
	return r
}

// listKeys returns the keys under prefix in a store.
func listKeys(t testing.TB, s store.Store, prefix string) []string {
	t.Helper()
	var keys []string
	if err := s.List(context.Background(), prefix, func(in store.Info) error {
		keys = append(keys, in.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(keys)
	return keys
}

// segmentsOf returns the segment keys (sorted by start) and manifests in a
// store for a source.
func segmentsOf(t testing.TB, s store.Store, incident, source string) ([]string, map[string]*Manifest) {
	t.Helper()
	ms := map[string]*Manifest{}
	var segs []string
	for _, k := range listKeys(t, s, "rec/"+incident+"/"+source+"/") {
		if strings.HasSuffix(k, ".mp4") {
			segs = append(segs, k)
			continue
		}
		rc, _, err := s.Get(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		m, err := ParseManifest(b)
		if err != nil {
			t.Fatalf("manifest %s: %v", k, err)
		}
		ms[m.Key] = m
	}
	sort.Slice(segs, func(a, b int) bool {
		ka, _ := ParseKey(segs[a])
		kb, _ := ParseKey(segs[b])
		return ka.Start.Before(kb.Start)
	})
	return segs, ms
}

// fetch copies an object to a file in dir and returns its path.
func fetch(t testing.TB, s store.Store, key, dir string) string {
	t.Helper()
	rc, _, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("get %s from %s: %v", key, s.Name(), err)
	}
	defer rc.Close()
	p := filepath.Join(dir, strings.ReplaceAll(key, "/", "_"))
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(f, rc); err != nil {
		t.Fatal(err)
	}
	return p
}

// probeStream and probePacket are what ffprobe reports.
type probeStream struct {
	Index     int    `json:"index"`
	CodecType string `json:"codec_type"`
	CodecName string `json:"codec_name"`
}

type probePacket struct {
	StreamIndex int    `json:"stream_index"`
	PTS         string `json:"pts_time"`
	DTS         string `json:"dts_time"`
	Duration    string `json:"duration_time"`
	Flags       string `json:"flags"`
}

type probeResult struct {
	Streams []probeStream `json:"streams"`
	Packets []probePacket `json:"packets"`
}

// ffprobe runs ffprobe on a file (or, with concat, on an ffconcat list) and
// fails the test when it reports any error.
func ffprobe(t testing.TB, path string, concat bool) probeResult {
	t.Helper()
	testkit.RequireBinary(t, testkit.FFprobePath)
	args := []string{"-v", "error", "-show_streams", "-show_packets", "-of", "json"}
	if concat {
		args = append(args, "-f", "concat", "-safe", "0")
	}
	cmd := exec.Command(testkit.FFprobePath, append(args, path)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || strings.TrimSpace(stderr.String()) != "" {
		t.Fatalf("ffprobe %s: %v: %s", path, err, stderr.String())
	}
	var res probeResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	return res
}

func ptime(s string) float64 {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return -1
	}
	return v
}
