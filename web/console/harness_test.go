package console_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/conf"
	"fieldvideo/internal/sfu"
	"fieldvideo/internal/testkit"
	"fieldvideo/internal/whip"
	"fieldvideo/web/console"
)

var testSecret = []byte("console-test-secret-console-test-secret!")

// wallSFU is an in-process SFU serving the console, on loopback.
type wallSFU struct {
	t        *testing.T
	base     string
	httpAddr string

	auditDir string

	mu     sync.Mutex
	srv    *sfu.Server
	stop   func()
	serves int
}

func startSFU(t *testing.T) *wallSFU {
	t.Helper()
	h := &wallSFU{t: t, auditDir: t.TempDir()}
	h.serve("127.0.0.1:0")
	h.httpAddr = h.server().HTTPAddr()
	h.base = "http://" + h.httpAddr
	t.Cleanup(func() { h.close() })
	return h
}

// serve starts a server listening for HTTP on addr.
func (h *wallSFU) serve(addr string) {
	h.t.Helper()
	c := conf.DefaultSFU()
	c.HTTP.Address = addr
	c.WebRTC.UDPAddress = "127.0.0.1:0"
	c.Log.Level = "warn"
	v, err := auth.NewVerifier(testSecret, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	h.mu.Lock()
	h.serves++
	auditFile := filepath.Join(h.auditDir, fmt.Sprintf("audit-%d.log", h.serves))
	h.mu.Unlock()
	al, err := audit.Open(auditFile)
	if err != nil {
		h.t.Fatal(err)
	}
	srv, err := sfu.New(sfu.Params{Conf: c, Verifier: v, Audit: al, Log: c.Log.NewLogger(testWriter{h.t}), Console: console.FS()})
	if err != nil {
		al.Close()
		h.t.Fatalf("start the SFU on %s: %v", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Run(ctx); close(done) }()
	h.mu.Lock()
	h.srv = srv
	h.stop = func() { cancel(); <-done; al.Close() }
	h.mu.Unlock()
}

func (h *wallSFU) server() *sfu.Server {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.srv
}

func (h *wallSFU) close() {
	h.mu.Lock()
	stop := h.stop
	h.stop = nil
	h.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// restart stops the server, which ends every session, and starts a new one on the same HTTP
// address, as an SFU restarted by its supervisor would be.
func (h *wallSFU) restart() {
	h.t.Helper()
	h.close()
	h.serve(h.httpAddr)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func (h *wallSFU) token(claims auth.Claims) string {
	h.t.Helper()
	tok, err := auth.Mint(testSecret, claims, time.Hour, time.Now())
	if err != nil {
		h.t.Fatal(err)
	}
	return tok
}

func (h *wallSFU) wallToken() string {
	return h.token(auth.Claims{Role: auth.RoleWall, View: []string{"*"}})
}

// publish starts a live test pattern (H.264, plus Opus when audio is set) publishing to the
// SFU as name by WHIP, and waits until the SFU lists it live. stop ends the publisher (which
// DELETEs its session) and its ffmpeg.
func (h *wallSFU) publish(name string, audio bool) (stop func()) {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st := testkit.LiveStream(h.t, ctx, name, audio)
	api, err := whip.NewAPI(whip.APIParams{LoopbackOnly: true})
	if err != nil {
		h.t.Fatal(err)
	}
	pub, err := whip.NewPublisher(whip.PublisherParams{
		Endpoint:   whip.Endpoint(h.base, name, "whip"),
		Client:     &whip.Client{Token: h.token(auth.Claims{Role: auth.RoleCamera, Publish: []string{name}})},
		API:        api,
		Stream:     st,
		MinBackoff: 100 * time.Millisecond,
		MaxBackoff: time.Second,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { pub.Run(ctx); close(done) }()
	stop = sync.OnceFunc(func() { cancel(); <-done })
	h.t.Cleanup(stop)
	h.waitState(name, "live", 20*time.Second)
	return stop
}

// requestLog records the HTTP requests that pass through a proxy.
type requestLog struct {
	mu   sync.Mutex
	reqs []string // "METHOD path status"
}

func (l *requestLog) has(method, pathPrefix string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.reqs {
		if strings.HasPrefix(r, method+" "+pathPrefix) {
			return true
		}
	}
	return false
}

func (l *requestLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.reqs, "\n")
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// proxy returns the base URL of a reverse proxy to the SFU that records every request, so a
// test can see what the page sent. Media still flows straight to the SFU.
func (h *wallSFU) proxy() (string, *requestLog) {
	h.t.Helper()
	target, err := url.Parse(h.base)
	if err != nil {
		h.t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	log := &requestLog{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		rp.ServeHTTP(rec, r)
		log.mu.Lock()
		log.reqs = append(log.reqs, fmt.Sprintf("%s %s %d", r.Method, r.URL.Path, rec.status))
		log.mu.Unlock()
	}))
	h.t.Cleanup(srv.Close)
	return srv.URL, log
}

// auditEvents returns what every server of this test wrote to its audit log so far.
func (h *wallSFU) auditEvents() []audit.Event {
	h.t.Helper()
	files, err := filepath.Glob(filepath.Join(h.auditDir, "audit-*.log"))
	if err != nil {
		h.t.Fatal(err)
	}
	var events []audit.Event
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			h.t.Fatal(err)
		}
		for _, line := range bytes.Split(b, []byte("\n")) {
			var e audit.Event
			if len(line) > 0 && json.Unmarshal(line, &e) == nil {
				events = append(events, e)
			}
		}
	}
	return events
}

func (h *wallSFU) source(name string) (sfu.SourceInfo, bool) {
	for _, s := range h.server().Sources() {
		if s.Name == name {
			return s, true
		}
	}
	return sfu.SourceInfo{}, false
}

func (h *wallSFU) waitState(name, state string, timeout time.Duration) {
	h.t.Helper()
	testkit.WaitFor(h.t, timeout, fmt.Sprintf("source %s %s", name, state), func() bool {
		s, ok := h.source(name)
		return ok && s.State == state
	})
}

// waitViewers waits until the SFU counts n viewers of name: sessions the page ended must
// not linger.
func (h *wallSFU) waitViewers(name string, n int, timeout time.Duration) {
	h.t.Helper()
	testkit.WaitFor(h.t, timeout, fmt.Sprintf("%d viewers of %s", n, name), func() bool {
		s, ok := h.source(name)
		return ok && s.Viewers == n
	})
}

// browserPage is a Chromium page driven by test/e2e/wall-driver.mjs.
type browserPage struct {
	t      *testing.T
	in     io.WriteCloser
	lines  chan []byte
	stderr *lockedBuffer
	id     int
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := strings.TrimSpace(l.b.String())
	if len(s) > 4000 {
		s = "…" + s[len(s)-4000:]
	}
	return s
}

// openBrowser starts headless Chromium under wall-driver.mjs; it is closed when the test ends.
func openBrowser(t *testing.T) *browserPage {
	t.Helper()
	node := testkit.RequireBrowser(t)
	dir := testkit.E2EDir(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "wall-driver.mjs"), "--timeout-ms", "600000")
	cmd.Dir = dir
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	p := &browserPage{t: t, lines: make(chan []byte, 16), stderr: &lockedBuffer{}}
	cmd.Stderr = p.stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.in = in
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start node wall-driver.mjs: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			p.lines <- bytes.Clone(sc.Bytes())
		}
		close(p.lines)
	}()
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = in.Close() // the driver closes the browser at the end of its input
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			t.Errorf("wall-driver.mjs did not exit within 20 s of the end of its input; stopping it")
		}
		cancel()
		<-exited
	})

	var ready struct {
		Ready bool   `json:"ready"`
		Error string `json:"error"`
	}
	line, err := p.next(60 * time.Second)
	if err == nil {
		err = json.Unmarshal(line, &ready)
	}
	if err != nil || !ready.Ready {
		t.Fatalf("wall-driver.mjs did not start the browser: %v %s\nstderr: %s", err, ready.Error, p.stderr)
	}
	return p
}

func (p *browserPage) next(timeout time.Duration) ([]byte, error) {
	select {
	case line, ok := <-p.lines:
		if !ok {
			return nil, errors.New("wall-driver.mjs exited")
		}
		return line, nil
	case <-time.After(timeout):
		return nil, fmt.Errorf("no answer from wall-driver.mjs within %s", timeout)
	}
}

type driverReply struct {
	ID      int             `json:"id"`
	OK      bool            `json:"ok"`
	Value   json.RawMessage `json:"value"`
	Error   string          `json:"error"`
	Console []string        `json:"console"`
}

// try runs one driver command; timeout bounds the step in the page.
func (p *browserPage) try(cmd string, timeout time.Duration, args map[string]any) (json.RawMessage, error) {
	p.t.Helper()
	p.id++
	msg := map[string]any{"id": p.id, "cmd": cmd, "timeoutMs": timeout.Milliseconds()}
	for k, v := range args {
		msg[k] = v
	}
	b, err := json.Marshal(msg)
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.in.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("send %s to wall-driver.mjs: %w; stderr: %s", cmd, err, p.stderr)
	}
	for {
		line, err := p.next(timeout + 30*time.Second)
		if err != nil {
			return nil, fmt.Errorf("%s: %w; stderr: %s", cmd, err, p.stderr)
		}
		var r driverReply
		if err := json.Unmarshal(line, &r); err != nil {
			return nil, fmt.Errorf("%s: undecodable reply %q: %w", cmd, line, err)
		}
		if r.ID != p.id {
			continue // a late reply to an earlier command
		}
		if !r.OK {
			return nil, fmt.Errorf("%s: %s\n  page console:\n    %s", cmd, r.Error, strings.Join(r.Console, "\n    "))
		}
		return r.Value, nil
	}
}

// do runs one driver command and fails the test when it fails.
func (p *browserPage) do(cmd string, timeout time.Duration, args map[string]any) json.RawMessage {
	p.t.Helper()
	v, err := p.try(cmd, timeout, args)
	if err != nil {
		p.t.Fatal(err)
	}
	return v
}

func (p *browserPage) open(url string) {
	p.t.Helper()
	p.do("open", 30*time.Second, map[string]any{"url": url})
}

// playedTile is what waitPlaying reports.
type playedTile struct {
	Source      string  `json:"source"`
	Width       int     `json:"width"`
	Height      int     `json:"height"`
	CurrentTime float64 `json:"currentTime"`
	Frames      int     `json:"frames"`
}

// waitPlaying waits until the tile of source shows at least frames new video frames.
func (p *browserPage) waitPlaying(source string, frames int, timeout time.Duration) playedTile {
	p.t.Helper()
	raw := p.do("waitPlaying", timeout, map[string]any{"source": source, "frames": frames})
	var tile playedTile
	if err := json.Unmarshal(raw, &tile); err != nil {
		p.t.Fatalf("waitPlaying %s: %v", source, err)
	}
	return tile
}

// waitFor waits until the JavaScript expression is truthy in the page and returns its value.
func (p *browserPage) waitFor(what, expr string, timeout time.Duration) json.RawMessage {
	p.t.Helper()
	v, err := p.try("waitFor", timeout, map[string]any{"expr": expr})
	if err != nil {
		p.t.Fatalf("waiting for %s: %v", what, err)
	}
	return v
}

// eval returns the JavaScript expression's value in the page, decoded into out.
func (p *browserPage) eval(expr string, out any) {
	p.t.Helper()
	raw := p.do("eval", 10*time.Second, map[string]any{"expr": expr})
	if err := json.Unmarshal(raw, out); err != nil {
		p.t.Fatalf("eval %s: decode %s: %v", expr, raw, err)
	}
}

// logConsole writes the page's recent console messages to the test log.
func (p *browserPage) logConsole() {
	p.t.Helper()
	var lines []string
	if raw, err := p.try("console", 5*time.Second, nil); err == nil && json.Unmarshal(raw, &lines) == nil {
		p.t.Logf("page console:\n    %s", strings.Join(lines, "\n    "))
	}
}

// tileState returns the state a tile shows (connecting, live, offline, error), or "" when
// there is no such tile.
func tileStateExpr(source string) string {
	return fmt.Sprintf(`(document.querySelector('[data-tile=%q]')?.dataset.state ?? '')`, source)
}
