package testkit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Paths of the external tools tests drive.
const (
	FFmpegPath  = "/usr/bin/ffmpeg"
	FFprobePath = "/usr/bin/ffprobe"
)

// RequireBinary fails the test when the tool at path is not installed: the
// tests need their real peers, and `make test` installs them.
func RequireBinary(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s is not installed (%v); run `make test`, which installs the test peers with scripts/deps.sh test", path, err)
	}
}

// WaitFor polls cond until it holds, and fails the test when timeout passes
// first. It must be called from the test's goroutine.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// Audio codecs a push can carry.
type Audio string

// Audio codecs.
const (
	AudioNone Audio = ""
	AudioOpus Audio = "opus"
	AudioAAC  Audio = "aac"
	AudioPCMU Audio = "pcmu"
)

// PushParams configures an ffmpeg push of a generated test pattern (lavfi
// testsrc2, plus a sine tone when Audio is set) to an RTSP server.
type PushParams struct {
	// URL is the rtsp:// URL to ANNOUNCE to, credentials included.
	URL string
	// Transport is tcp (default) or udp.
	Transport string
	// Video is h264 (default, libx264) or h265 (libx265).
	Video string
	Audio Audio
	// Size (default 320x240), FPS (default 25) and GOP, the keyframe
	// interval in frames (default FPS).
	Size string
	FPS  int
	GOP  int
	// Duration stops ffmpeg by itself after this much media; zero runs
	// until Stop or the context ends.
	Duration time.Duration
}

// Process is a running ffmpeg.
type Process struct {
	cmd    *exec.Cmd
	cancel context.CancelFunc
	out    *tailBuffer
	done   chan struct{}
	err    error
}

// StartPush starts ffmpeg pushing a test pattern as p says. It is stopped
// when ctx ends, when Stop is called, and when the test ends.
func StartPush(t testing.TB, ctx context.Context, p PushParams) *Process {
	t.Helper()
	RequireBinary(t, FFmpegPath)
	if p.URL == "" {
		t.Fatalf("testkit.StartPush: PushParams.URL is empty")
	}
	return Start(t, ctx, FFmpegPath, PushArgs(p)...)
}

// PushArgs returns the ffmpeg arguments StartPush uses.
func PushArgs(p PushParams) []string {
	if p.Transport == "" {
		p.Transport = "tcp"
	}
	if p.Size == "" {
		p.Size = "320x240"
	}
	if p.FPS <= 0 {
		p.FPS = 25
	}
	if p.GOP <= 0 {
		p.GOP = p.FPS
	}
	args := []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "warning",
		"-re", "-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%s:rate=%d", p.Size, p.FPS)}
	if p.Audio != AudioNone {
		rate := 48000
		if p.Audio == AudioPCMU {
			rate = 8000
		}
		args = append(args, "-re", "-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=440:sample_rate=%d", rate))
	}
	if p.Duration > 0 {
		args = append(args, "-t", strconv.FormatFloat(p.Duration.Seconds(), 'f', 3, 64))
	}
	args = append(args, "-map", "0:v")
	if p.Audio != AudioNone {
		args = append(args, "-map", "1:a")
	}
	gop := strconv.Itoa(p.GOP)
	if p.Video == "h265" {
		args = append(args, "-c:v", "libx265", "-preset", "ultrafast", "-tune", "zerolatency",
			"-pix_fmt", "yuv420p", "-x265-params", "keyint="+gop+":min-keyint="+gop+":log-level=error")
	} else {
		args = append(args, "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
			"-pix_fmt", "yuv420p", "-g", gop, "-keyint_min", gop, "-bf", "0")
	}
	switch p.Audio {
	case AudioOpus:
		args = append(args, "-c:a", "libopus", "-ar", "48000", "-ac", "2", "-b:a", "64k")
	case AudioAAC:
		args = append(args, "-c:a", "aac", "-ar", "48000", "-ac", "2", "-b:a", "64k")
	case AudioPCMU:
		args = append(args, "-c:a", "pcm_mulaw", "-ar", "8000", "-ac", "1")
	}
	return append(args, "-f", "rtsp", "-rtsp_transport", p.Transport, p.URL)
}

// Start runs a command with args, stopped (SIGINT, then SIGKILL after 5 s)
// when ctx ends, when Stop is called, and when the test ends. Its standard
// error and output are kept (the last 64 KiB) for Output.
func Start(t testing.TB, ctx context.Context, path string, args ...string) *Process {
	t.Helper()
	return StartEnv(t, ctx, nil, path, args...)
}

// StartEnv is Start with extra environment variables (KEY=value) on top of
// the test's own environment.
func StartEnv(t testing.TB, ctx context.Context, env []string, path string, args ...string) *Process {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(ctx, path, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	out := &tailBuffer{max: 64 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", path, err)
	}
	p := &Process{cmd: cmd, cancel: cancel, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.Stop)
	return p
}

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Pid is the process's id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Stop ends the process and waits for it.
func (p *Process) Stop() {
	p.cancel()
	<-p.done
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is the exit error; valid once Done is closed.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// Output returns the end of what the process printed.
func (p *Process) Output() string { return p.out.String() }

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (w *tailBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	if over := len(w.b) - w.max; over > 0 {
		w.b = append(w.b[:0], w.b[over:]...)
	}
	return len(p), nil
}

func (w *tailBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.b)
}

// ProbeStream is one stream ffprobe found.
type ProbeStream struct {
	Index     int    `json:"index"`
	CodecType string `json:"codec_type"`
	CodecName string `json:"codec_name"`
	Width     int    `json:"width"`
	Height    int    `json:"height"`
	Channels  int    `json:"channels"`
}

// Probe runs ffprobe on an RTSP url over transport (tcp or udp) and returns
// the streams it found.
func Probe(ctx context.Context, url, transport string) ([]ProbeStream, error) {
	if _, err := os.Stat(FFprobePath); err != nil {
		return nil, fmt.Errorf("ffprobe is not installed: %w", err)
	}
	if transport == "" {
		transport = "tcp"
	}
	cmd := exec.CommandContext(ctx, FFprobePath, "-hide_banner", "-loglevel", "error",
		"-rtsp_transport", transport, "-show_streams", "-of", "json", url)
	var stderr tailBuffer
	stderr.max = 16 << 10
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("ffprobe: %w: %s", err, stderr.String())
	}
	var res struct {
		Streams []ProbeStream `json:"streams"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, fmt.Errorf("ffprobe output: %w", err)
	}
	if len(res.Streams) == 0 {
		return nil, errors.New("ffprobe found no stream")
	}
	return res.Streams, nil
}
