package testkit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Page is a headless Chromium page driven step by step by test/e2e/wall-driver.mjs,
// so a test can change the world between checks while the page stays open.
type Page struct {
	t      testing.TB
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

// OpenPage starts headless Chromium under wall-driver.mjs; it is closed when the test ends.
func OpenPage(t testing.TB) *Page {
	t.Helper()
	node := RequireBrowser(t)
	dir := E2EDir(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "wall-driver.mjs"), "--timeout-ms", "600000")
	cmd.Dir = dir
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	p := &Page{t: t, lines: make(chan []byte, 16), stderr: &lockedBuffer{}}
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

func (p *Page) next(timeout time.Duration) ([]byte, error) {
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

// Try runs one driver command; timeout bounds the step in the page.
func (p *Page) Try(cmd string, timeout time.Duration, args map[string]any) (json.RawMessage, error) {
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

// Do runs one driver command and fails the test when it fails.
func (p *Page) Do(cmd string, timeout time.Duration, args map[string]any) json.RawMessage {
	p.t.Helper()
	v, err := p.Try(cmd, timeout, args)
	if err != nil {
		p.t.Fatal(err)
	}
	return v
}

func (p *Page) Open(url string) {
	p.t.Helper()
	p.Do("open", 30*time.Second, map[string]any{"url": url})
}

// PlayedTile is what waitPlaying reports.
type PlayedTile struct {
	Source      string  `json:"source"`
	Width       int     `json:"width"`
	Height      int     `json:"height"`
	CurrentTime float64 `json:"currentTime"`
	Frames      int     `json:"frames"`
}

// WaitPlaying waits until the tile of source shows at least frames new video frames.
func (p *Page) WaitPlaying(source string, frames int, timeout time.Duration) PlayedTile {
	p.t.Helper()
	raw := p.Do("waitPlaying", timeout, map[string]any{"source": source, "frames": frames})
	var tile PlayedTile
	if err := json.Unmarshal(raw, &tile); err != nil {
		p.t.Fatalf("waitPlaying %s: %v", source, err)
	}
	return tile
}

// WaitFor waits until the JavaScript expression is truthy in the page and returns its value.
func (p *Page) WaitFor(what, expr string, timeout time.Duration) json.RawMessage {
	p.t.Helper()
	v, err := p.Try("waitFor", timeout, map[string]any{"expr": expr})
	if err != nil {
		p.t.Fatalf("waiting for %s: %v", what, err)
	}
	return v
}

// Eval returns the JavaScript expression's value in the page, decoded into out.
func (p *Page) Eval(expr string, out any) {
	p.t.Helper()
	raw := p.Do("eval", 10*time.Second, map[string]any{"expr": expr})
	if err := json.Unmarshal(raw, out); err != nil {
		p.t.Fatalf("eval %s: decode %s: %v", expr, raw, err)
	}
}

// LogConsole writes the page's recent console messages to the test log.
func (p *Page) LogConsole() {
	p.t.Helper()
	var lines []string
	if raw, err := p.Try("console", 5*time.Second, nil); err == nil && json.Unmarshal(raw, &lines) == nil {
		p.t.Logf("page console:\n    %s", strings.Join(lines, "\n    "))
	}
}
