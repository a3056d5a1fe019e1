package testkit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ChromiumPath is Debian's Chromium, which the browser scripts launch.
const ChromiumPath = "/usr/bin/chromium"

const browserInstallHint = "run `make test` (scripts/deps.sh test) to install Chromium and playwright-core"

// RepoRoot returns the repository root: the nearest directory at or above the test's working
// directory that holds go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("testkit: read the working directory: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("testkit: no go.mod at or above the working directory: run the test from inside the repository")
		}
		dir = parent
	}
}

// E2EDir returns the directory of the browser scripts, test/e2e.
func E2EDir(t testing.TB) string {
	t.Helper()
	return filepath.Join(RepoRoot(t), "test", "e2e")
}

// RequireBrowser fails the test when node, Chromium or the npm packages of test/e2e are
// missing, and returns the path of node.
func RequireBrowser(t testing.TB) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("testkit: node is not installed: %s", browserInstallHint)
	}
	if _, err := os.Stat(ChromiumPath); err != nil {
		t.Fatalf("testkit: %s is not installed: %s", ChromiumPath, browserInstallHint)
	}
	pkg := filepath.Join(E2EDir(t), "node_modules", "playwright-core", "package.json")
	if _, err := os.Stat(pkg); err != nil {
		t.Fatalf("testkit: test/e2e/node_modules has no playwright-core: %s", browserInstallHint)
	}
	return node
}

// RunNode runs a script of test/e2e (or a script at an absolute path) with node, in test/e2e,
// and returns what it printed on stdout. When ctx ends, the script gets SIGTERM, which closes
// its browser, and SIGKILL 10 s later. The error includes the end of the script's stderr.
func RunNode(t testing.TB, ctx context.Context, script string, args ...string) ([]byte, error) {
	t.Helper()
	node := RequireBrowser(t)
	dir := E2EDir(t)
	if !filepath.IsAbs(script) {
		script = filepath.Join(dir, script)
	}

	cmd := exec.CommandContext(ctx, node, append([]string{script}, args...)...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second

	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 4000 {
			msg = "…" + msg[len(msg)-4000:]
		}
		return stdout.Bytes(), fmt.Errorf("node %s: %w; stderr: %s", filepath.Base(script), err, msg)
	}
	return stdout.Bytes(), nil
}

// WallTile is one video element of a wall page, as wall.mjs saw it last.
type WallTile struct {
	// Source is the element's data-source attribute.
	Source      string  `json:"source"`
	Width       int     `json:"width"`
	Height      int     `json:"height"`
	CurrentTime float64 `json:"currentTime"`
	// Advancing tells whether currentTime grew over the last sample interval (≥ 500 ms).
	Advancing bool `json:"advancing"`
}

// WallResult is what wall.mjs reports.
type WallResult struct {
	// OK is true when at least the requested number of tiles played before the timeout.
	OK    bool       `json:"ok"`
	Tiles []WallTile `json:"tiles"`
	// Console holds the page's last 50 console messages and uncaught errors.
	Console []string `json:"console"`
	Error   string   `json:"error"`
}

// String summarises the result for a test failure message.
func (r WallResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ok=%v", r.OK)
	if r.Error != "" {
		fmt.Fprintf(&b, " error=%q", r.Error)
	}
	for _, tile := range r.Tiles {
		fmt.Fprintf(&b, "\n  tile %q: %dx%d currentTime=%.2f advancing=%v",
			tile.Source, tile.Width, tile.Height, tile.CurrentTime, tile.Advancing)
	}
	if len(r.Console) > 0 {
		b.WriteString("\n  console:")
		for _, line := range r.Console {
			b.WriteString("\n    " + line)
		}
	}
	return b.String()
}

// Tile returns the tile whose data-source is source.
func (r WallResult) Tile(source string) (WallTile, bool) {
	for _, tile := range r.Tiles {
		if tile.Source == source {
			return tile, true
		}
	}
	return WallTile{}, false
}

// Wall opens url in headless Chromium and waits, at most timeout from the page request, until
// at least tiles video elements play (a picture, and a currentTime that advances). A wall that
// does not play is reported with OK false; the test fails only when the harness itself does.
func Wall(t testing.TB, ctx context.Context, url string, tiles int, timeout time.Duration) WallResult {
	t.Helper()
	// the script enforces timeout itself; the margin covers starting and closing the browser.
	ctx, cancel := context.WithTimeout(ctx, timeout+90*time.Second)
	defer cancel()
	out, runErr := RunNode(t, ctx, "wall.mjs",
		"--url", url,
		"--tiles", strconv.Itoa(tiles),
		"--timeout-ms", strconv.FormatInt(max(1, timeout.Milliseconds()), 10))

	res, err := decodeLastJSONLine(out)
	if err != nil {
		t.Fatalf("testkit: wall.mjs gave no result (%v): %v\nstdout: %s", err, runErr, out)
	}
	if runErr != nil && res.OK {
		t.Fatalf("testkit: wall.mjs reported success but failed: %v", runErr)
	}
	if runErr != nil && res.Error == "" {
		res.Error = runErr.Error()
	}
	return res
}

func decodeLastJSONLine(out []byte) (WallResult, error) {
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	last := lines[len(lines)-1]
	if len(last) == 0 {
		return WallResult{}, errors.New("no output")
	}
	var res WallResult
	if err := json.Unmarshal(last, &res); err != nil {
		return WallResult{}, fmt.Errorf("decode %q: %w", last, err)
	}
	return res, nil
}

// A pooled driver is a wall-driver.mjs process (with --contexts) whose browser serves one test
// after another: PooledPage takes an idle one (or starts one) and opens a page in a new
// browser context; the end of the test closes the context and gives the driver back. Idle
// drivers end with the test binary: their input closes then, which makes them close the
// browser.
type pooledDriver struct {
	in      io.WriteCloser
	lines   chan []byte
	stderr  *lockedBuffer
	id      int // of the last command sent
	started time.Time
	exited  chan struct{}
	cancel  context.CancelFunc
}

const (
	// pooledDriverLimit is the watchdog of a pooled driver; it serves tests for at most
	// pooledDriverReuse, well within it.
	pooledDriverLimit = 30 * time.Minute
	pooledDriverReuse = 20 * time.Minute
	// pooledDriversIdle bounds the browsers kept between tests: as many as a test opens at once.
	pooledDriversIdle = 2
)

var driverPool struct {
	mu   sync.Mutex
	idle []*pooledDriver
}

// PooledPage is OpenPage with a browser that outlives the test: the page is the only one of a
// new browser context (no cookies, storage or cache of earlier tests), in a headless Chromium
// started by an earlier test when one is idle. When the test ends the context is closed, as
// OpenPage's browser would be, and the browser waits for the next test.
func PooledPage(t testing.TB) *Page {
	t.Helper()
	d := takeDriver(t)
	p := &Page{t: t, in: d.in, lines: d.lines, stderr: d.stderr, id: d.id}
	// the first command opens the page's browser context; a browser that cannot is stopped.
	if _, err := p.Try("console", 30*time.Second, nil); err != nil {
		t.Logf("testkit: an idle browser has no page (%v); starting another", err)
		d.stop()
		d = startDriver(t)
		p = &Page{t: t, in: d.in, lines: d.lines, stderr: d.stderr, id: d.id}
	}
	t.Cleanup(func() {
		_, err := p.Try("reset", 20*time.Second, nil)
		d.id = p.id
		if err != nil {
			t.Logf("testkit: closing the page's browser context failed, so its browser is stopped: %v", err)
			d.stop()
			return
		}
		giveDriver(d)
	})
	return p
}

// ClosePooledBrowsers closes the browsers PooledPage keeps between tests; the next PooledPage
// starts one again. A test that measures its own page's timing calls it first, so that no
// browser but its own runs on the machine.
func ClosePooledBrowsers() {
	driverPool.mu.Lock()
	idle := driverPool.idle
	driverPool.idle = nil
	driverPool.mu.Unlock()
	for _, d := range idle {
		d.stop()
	}
}

func takeDriver(t testing.TB) *pooledDriver {
	t.Helper()
	driverPool.mu.Lock()
	for len(driverPool.idle) > 0 {
		d := driverPool.idle[len(driverPool.idle)-1]
		driverPool.idle = driverPool.idle[:len(driverPool.idle)-1]
		if d.usable() {
			driverPool.mu.Unlock()
			return d
		}
		go d.stop()
	}
	driverPool.mu.Unlock()
	return startDriver(t)
}

func giveDriver(d *pooledDriver) {
	driverPool.mu.Lock()
	if d.usable() && len(driverPool.idle) < pooledDriversIdle {
		driverPool.idle = append(driverPool.idle, d)
		d = nil
	}
	driverPool.mu.Unlock()
	if d != nil {
		d.stop()
	}
}

func (d *pooledDriver) usable() bool {
	select {
	case <-d.exited:
		return false
	default:
		return time.Since(d.started) < pooledDriverReuse
	}
}

// stop closes the driver's input, which makes it close its browser and exit, and stops it
// when it does not within 20 s.
func (d *pooledDriver) stop() {
	_ = d.in.Close()
	select {
	case <-d.exited:
	case <-time.After(20 * time.Second):
		d.cancel()
		<-d.exited
	}
}

func startDriver(t testing.TB) *pooledDriver {
	t.Helper()
	node := RequireBrowser(t)
	dir := E2EDir(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "wall-driver.mjs"), "--contexts",
		"--timeout-ms", strconv.FormatInt(pooledDriverLimit.Milliseconds(), 10))
	cmd.Dir = dir
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	d := &pooledDriver{lines: make(chan []byte, 16), stderr: &lockedBuffer{}, started: time.Now(),
		exited: make(chan struct{}), cancel: cancel}
	cmd.Stderr = d.stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	d.in = in
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start node wall-driver.mjs: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			d.lines <- bytes.Clone(sc.Bytes())
		}
		close(d.lines)
	}()
	go func() { _ = cmd.Wait(); cancel(); close(d.exited) }()

	p := &Page{t: t, lines: d.lines, stderr: d.stderr}
	var ready struct {
		Ready bool   `json:"ready"`
		Error string `json:"error"`
	}
	line, err := p.next(60 * time.Second)
	if err == nil {
		err = json.Unmarshal(line, &ready)
	}
	if err != nil || !ready.Ready {
		d.stop()
		t.Fatalf("wall-driver.mjs did not start the browser: %v %s\nstderr: %s", err, ready.Error, d.stderr)
	}
	return d
}
