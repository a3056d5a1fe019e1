package ingest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/conf"
	"fieldvideo/internal/stream"
	"fieldvideo/internal/testkit"
	"fieldvideo/internal/unit"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef-ingest-tests")

// waitTimeout bounds every wait on a condition in these tests.
const waitTimeout = 20 * time.Second

type testEnv struct {
	srv       *Server
	auditPath string
	host      string // host:port of the RTSP server
}

// newTestServer starts a Server on 127.0.0.1:0 (TCP only) with fast
// reconnects; edit adjusts the params first.
func newTestServer(t *testing.T, edit func(*Params)) *testEnv {
	t.Helper()
	v, err := auth.NewVerifier(testSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	auditPath := filepath.Join(t.TempDir(), "audit.log")
	al, err := audit.Open(audit.Params{File: auditPath})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { al.Close() })
	p := Params{
		RTSP:      conf.RTSP{Address: "127.0.0.1:0", ReadTimeout: 5 * time.Second},
		Reconnect: conf.Reconnect{Min: 50 * time.Millisecond, Max: 400 * time.Millisecond},
		Stream:    conf.DefaultIngest().Stream,
		Verifier:  v,
		Audit:     al,
		Logger:    slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if edit != nil {
		edit(&p)
	}
	srv, err := New(p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return &testEnv{srv: srv, auditPath: auditPath, host: srv.Addr()}
}

// testWriter sends log lines to the test log while the test runs.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	defer func() { _ = recover() }() // a log line after the test ended
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

// mint signs c with secret for an hour; subject "tester" and role camera
// unless c names them.
func mint(t *testing.T, secret []byte, c auth.Claims) string {
	t.Helper()
	if c.Subject == "" {
		c.Subject = "tester"
	}
	if c.Role == "" {
		c.Role = auth.RoleCamera
	}
	tok, err := auth.Mint(secret, c, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// url is the URL of a source with the token as query parameter: ffmpeg and
// ffprobe truncate RTSP credentials to 127 bytes, too short for a JWT.
func (e *testEnv) url(token, name string) string {
	if token == "" {
		return "rtsp://" + e.host + "/" + name
	}
	return "rtsp://" + e.host + "/" + name + "?token=" + token
}

// basicURL is the URL of a source with the token as the RTSP password.
func (e *testEnv) basicURL(token, name string) string {
	return "rtsp://user:" + token + "@" + e.host + "/" + name
}

func (e *testEnv) source(name string) SourceInfo {
	in, _ := e.srv.Source(name)
	return in
}

func (e *testEnv) waitState(t *testing.T, name string, st State) SourceInfo {
	t.Helper()
	var in SourceInfo
	testkit.WaitFor(t, waitTimeout, "source "+name+" to be "+string(st), func() bool {
		in = e.source(name)
		return in.State == st
	})
	return in
}

// auditEvents reads the audit log.
func (e *testEnv) auditEvents(t *testing.T) []audit.Event {
	t.Helper()
	f, err := os.Open(e.auditPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []audit.Event
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev audit.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, ev)
	}
	return out
}

// waitAudit waits for an audit event matching want's non-empty fields.
func (e *testEnv) waitAudit(t *testing.T, want audit.Event) audit.Event {
	t.Helper()
	var got audit.Event
	testkit.WaitFor(t, waitTimeout, "audit event "+want.Action+" "+want.Source+" "+want.Result, func() bool {
		for _, ev := range e.auditEvents(t) {
			if (want.Action == "" || ev.Action == want.Action) && (want.Source == "" || ev.Source == want.Source) &&
				(want.Result == "" || ev.Result == want.Result) && ev.Via == "rtsp" {
				got = ev
				return true
			}
		}
		return false
	})
	return got
}

// collector is a stream reader that records what it gets, per track.
type collector struct {
	mu      sync.Mutex
	tracks  []unit.Track
	units   map[int]int
	nals    map[byte]int // H.264 NAL types seen on the video track
	seqErrs []string     // sequence discontinuities per track
	lastSeq map[int]uint16
	started map[int]bool
	epoch   uint32
	first   map[int]stream.Delivery
	last    map[int]stream.Delivery
	ended   error
}

func collect(t *testing.T, s *stream.Stream) *collector {
	t.Helper()
	c := &collector{
		tracks: s.Tracks(), units: map[int]int{}, nals: map[byte]int{}, lastSeq: map[int]uint16{},
		started: map[int]bool{}, first: map[int]stream.Delivery{}, last: map[int]stream.Delivery{},
	}
	r, err := s.AddReader(stream.ReaderParams{Name: "test", OnUnit: c.on, OnEnd: func(err error) {
		c.mu.Lock()
		c.ended = err
		c.mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return c
}

func (c *collector) on(d stream.Delivery) {
	c.mu.Lock()
	defer c.mu.Unlock()
	u := d.Unit
	if u.Epoch != c.epoch {
		c.epoch = u.Epoch
		clear(c.started)
	}
	c.units[u.Track]++
	if _, ok := c.first[u.Track]; !ok {
		c.first[u.Track] = d
	}
	c.last[u.Track] = d
	video := u.Track < len(c.tracks) && c.tracks[u.Track].Codec == unit.CodecH264
	for _, p := range u.Packets {
		if c.started[u.Track] && p.SequenceNumber != c.lastSeq[u.Track]+1 && len(c.seqErrs) < 10 {
			c.seqErrs = append(c.seqErrs, fmt.Sprintf("track %d: %d then %d", u.Track, c.lastSeq[u.Track], p.SequenceNumber))
		}
		c.started[u.Track] = true
		c.lastSeq[u.Track] = p.SequenceNumber
		if video {
			for _, n := range h264NALTypes(p.Payload) {
				c.nals[n]++
			}
		}
	}
}

func (c *collector) count(track int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.units[track]
}

func (c *collector) nalCount(typ byte) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nals[typ]
}

// trackIndex returns the index of the first track with codec, or -1.
func trackIndex(tracks []unit.Track, codec string) int {
	for i, tr := range tracks {
		if tr.Codec == codec {
			return i
		}
	}
	return -1
}

// exitedWith waits for an ffmpeg that must fail and returns its output.
func exitedWith(t *testing.T, p *testkit.Process) string {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(waitTimeout):
		t.Fatalf("ffmpeg did not exit although it should have been refused; output:\n%s", p.Output())
	}
	var ee interface{ ExitCode() int }
	if err := p.Err(); err == nil || !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("ffmpeg exited with %v, want a failure; output:\n%s", err, p.Output())
	}
	return p.Output()
}
