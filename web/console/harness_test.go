package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/conf"
	"fieldvideo/internal/sfu"
	"fieldvideo/internal/stream"
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
	// recDir holds the off-site store of the call SFU's recorder.
	recDir string
	// routes, when set, adds routes to the SFU's (the playback API).
	routes func(*http.ServeMux)
	// revocations is the servers' revocation list, kept across restarts.
	revocations *auth.Revocations

	mu     sync.Mutex
	srv    *sfu.Server
	stop   func()
	serves int
}

func startSFU(t *testing.T) *wallSFU {
	t.Helper()
	return startSFUWithRoutes(t, nil)
}

// startSFUWithRoutes starts an SFU that also serves the routes routes adds.
func startSFUWithRoutes(t *testing.T, routes func(*http.ServeMux)) *wallSFU {
	t.Helper()
	rl, err := auth.OpenRevocations("", nil)
	if err != nil {
		t.Fatal(err)
	}
	h := &wallSFU{t: t, auditDir: t.TempDir(), routes: routes, revocations: rl}
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
	v.UseRevocations(h.revocations)
	// the routes every process serves (node.Routes) that the console uses
	routes := func(mux *http.ServeMux) {
		mux.Handle("POST /v1/signout", auth.SignOutHandler(v))
		if h.routes != nil {
			h.routes(mux)
		}
	}
	h.mu.Lock()
	h.serves++
	auditFile := filepath.Join(h.auditDir, fmt.Sprintf("audit-%d.log", h.serves))
	h.mu.Unlock()
	al, err := audit.Open(audit.Params{File: auditFile, KeyFile: auditFile + ".key"})
	if err != nil {
		h.t.Fatal(err)
	}
	srv, err := sfu.New(sfu.Params{Conf: c, Verifier: v, Audit: al, Log: c.Log.NewLogger(testWriter{h.t}), Console: console.FS(), Routes: routes})
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
	return h.publishStream(ctx, cancel, name, testkit.LiveStream(h.t, ctx, name, audio))
}

// publishStream publishes st to the SFU as name by WHIP, as a camera, and waits until the
// SFU lists it live. stop cancels ctx (by cancel) and waits for the publisher to end.
func (h *wallSFU) publishStream(ctx context.Context, cancel context.CancelFunc, name string, st *stream.Stream) (stop func()) {
	h.t.Helper()
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

// tileState returns the state a tile shows (connecting, live, offline, error), or "" when
// there is no such tile.
func tileStateExpr(source string) string {
	return fmt.Sprintf(`(document.querySelector('[data-tile=%q]')?.dataset.state ?? '')`, source)
}
