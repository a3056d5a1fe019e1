package playback

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/store"
	"fieldvideo/internal/testkit"
)

// gate is a store whose segment reads wait, once held, until it is
// released or the reader gives up.
type gate struct {
	store.Store
	mu sync.Mutex
	// free is how many segment reads go through before reads wait; -1 for
	// every one.
	free    int
	open    chan struct{}
	waiting int
}

func (g *gate) hold(free int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.free, g.open = free, make(chan struct{})
}

func (g *gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open != nil {
		close(g.open)
	}
	g.free, g.open = -1, nil
}

// wait waits until n segment reads wait at the gate.
func (g *gate) wait(t *testing.T, n int) {
	t.Helper()
	testkit.WaitFor(t, 20*time.Second, "segment reads waiting at the gate", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.waiting == n
	})
}

func (g *gate) Get(ctx context.Context, key string) (io.ReadCloser, store.Info, error) {
	if strings.HasSuffix(key, ".mp4") {
		g.mu.Lock()
		open := g.open
		if g.free != 0 {
			if g.free > 0 {
				g.free--
			}
			open = nil
		}
		if open != nil {
			g.waiting++
		}
		g.mu.Unlock()
		if open != nil {
			defer func() {
				g.mu.Lock()
				g.waiting--
				g.mu.Unlock()
			}()
			select {
			case <-open:
			case <-ctx.Done():
				return nil, store.Info{}, ctx.Err()
			}
		}
	}
	return g.Store.Get(ctx, key)
}

// waitRenderFreed waits until no render is left, its memory freed and no
// segment read waiting at the gate.
func waitRenderFreed(t *testing.T, srv *server, g *gate) {
	t.Helper()
	testkit.WaitFor(t, 5*time.Second, "the render to stop and free its memory", func() bool {
		entries, held, _ := srv.renders()
		g.mu.Lock()
		defer g.mu.Unlock()
		return entries == 0 && held == 0 && g.waiting == 0
	})
}

// gatedRecording records cam1 for four segments, and serves them with the
// segment reads through a gate.
func gatedRecording(t *testing.T, opts ...serverOption) (*server, *gate, []recorderSeg) {
	a, b := twoSites(t)
	st := testkit.LiveStream(t, context.Background(), "cam1", true)
	testkit.WaitKeyframes(t, st, 1, 20*time.Second)
	s := startSession(t, a, b)
	stop, err := s.r.Record("cam1", st)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 40*time.Second, "four segments at both sites", func() bool {
		x := s.r.Stats()
		return x.Stores[0].Uploaded >= 4 && x.Stores[1].Uploaded >= 4
	})
	stop()
	s.stop(t)
	g := &gate{Store: a, free: -1}
	srv := startServerWith(t, []store.Store{g}, opts...)
	t.Cleanup(g.release)
	return srv, g, segsOf(t, a, "cam1")
}

// answer is what a request got: the status, the headers with the
// trailers, the body, and the error reading it.
type answer struct {
	code int
	h    http.Header
	body []byte
	err  error
}

// ask sends a request in the background.
func (s *server) ask(ctx context.Context, tok, method, path string, q url.Values, rg string, body []byte) <-chan answer {
	ch := make(chan answer, 1)
	go func() {
		req, err := http.NewRequestWithContext(ctx, method, s.base+path+"?"+q.Encode(), bytes.NewReader(body))
		if err != nil {
			ch <- answer{err: err}
			return
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		if rg != "" {
			req.Header.Set("Range", rg)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			ch <- answer{err: err}
			return
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		for k, v := range res.Trailer {
			res.Header[k] = v
		}
		ch <- answer{code: res.StatusCode, h: res.Header, body: b, err: err}
	}()
	return ch
}

// within waits at most d for an answer.
func within(t *testing.T, ch <-chan answer, d time.Duration, what string) answer {
	t.Helper()
	select {
	case a := <-ch:
		return a
	case <-time.After(d):
		t.Fatalf("%s: no answer within %s", what, d)
		return answer{}
	}
}

// renders reports the rendered streams found, the memory held for every
// one, and the requests using them.
func (s *server) renders() (entries int, held int64, refs int) {
	c := &s.pb.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.entries {
		refs += e.refs
	}
	return len(c.entries), c.held, refs
}

// settle waits until no render runs or is used, drops the kept ones, and
// sets the cache's bounds back.
func (s *server) settle(t *testing.T) {
	t.Helper()
	c := &s.pb.cache
	testkit.WaitFor(t, 20*time.Second, "the renders to end", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, e := range c.entries {
			select {
			case <-e.ready:
			default:
				return false
			}
			if e.refs > 0 {
				return false
			}
			c.dropLocked(e)
		}
		return c.held == 0
	})
	c.mu.Lock()
	c.init()
	c.mu.Unlock()
}

// bound sets the cache's bounds, in chunks.
func (s *server) bound(perToken, total int64) {
	c := &s.pb.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	c.perToken, c.total = perToken*c.chunk, total*c.chunk
}

func tokenOf(t *testing.T, subject string) string {
	c := auth.Claims{Role: auth.RoleReviewer}
	c.Subject = subject
	return mint(t, c)
}

// Range renders are bounded in memory while they run, stop when nobody
// waits for them, are bounded per token holder and expire by themselves;
// every long answer stops when its token is revoked.
func TestLongAnswers(t *testing.T) {
	srv, g, segs := gatedRecording(t)
	const stream = "/v1/recordings/stream"
	// window i is a distinct stream of the recording.
	window := func(i int) (url.Values, StreamRequest) {
		from, to := segs[0].start.Add(100*time.Millisecond+time.Duration(i)*time.Millisecond), segs[3].end
		return url.Values{"source": {"cam1"}, "start": {ts(from)}, "end": {ts(to)}},
			StreamRequest{Incident: incident, Sources: []string{"cam1"}, Start: from, End: to}
	}
	long := func(t *testing.T) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		t.Cleanup(cancel)
		return ctx
	}
	short := func(t *testing.T) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		t.Cleanup(cancel)
		return ctx
	}
	whole := func(t *testing.T, what string, a answer) {
		t.Helper()
		if a.err != nil || a.code != http.StatusPartialContent || a.h.Get("Content-Length") == "" || !bytes.Contains(a.body[:min(len(a.body), 16)], []byte("ftyp")) {
			t.Fatalf("%s: %d %v %q", what, a.code, a.err, a.body[:min(len(a.body), 200)])
		}
	}
	revoke := func(t *testing.T, subject string) time.Time {
		if _, err := srv.rev.Add(auth.Revocation{Subject: subject, By: "test", Reason: "lost laptop"}); err != nil {
			t.Fatal(err)
		}
		return time.Now()
	}

	t.Run("a render in flight counts against the budget", func(t *testing.T) {
		srv.settle(t)
		defer g.release()
		g.hold(0)
		q1, _ := window(1)
		first := srv.ask(long(t), srv.reviewer, http.MethodGet, stream, q1, "bytes=0-", nil)
		g.wait(t, 1)
		srv.bound(1, 1)
		q2, _ := window(2)
		a := within(t, srv.ask(short(t), tokenOf(t, "other"), http.MethodGet, stream, q2, "bytes=0-", nil), 10*time.Second, "a second render")
		if a.code != http.StatusServiceUnavailable || a.h.Get("Retry-After") == "" ||
			!strings.Contains(string(a.body), "too many recordings are being prepared for seeking") || !strings.Contains(string(a.body), "without a Range header") {
			t.Fatalf("a second render with the budget held by one in flight: %d %v %q", a.code, a.err, a.body)
		}
		srv.bound(renderedPerToken/renderChunk, renderedTotal/renderChunk)
		g.release()
		whole(t, "the render in flight", within(t, first, 30*time.Second, "the render in flight"))
	})

	t.Run("a render stops when nobody waits for it", func(t *testing.T) {
		srv.settle(t)
		defer g.release()
		g.hold(0)
		q, _ := window(3)
		ctx1, leave := context.WithCancel(long(t))
		one := srv.ask(ctx1, srv.reviewer, http.MethodGet, stream, q, "bytes=0-", nil)
		two := srv.ask(long(t), srv.reviewer, http.MethodGet, stream, q, "bytes=0-", nil)
		testkit.WaitFor(t, 20*time.Second, "two requests waiting for one render", func() bool {
			_, _, refs := srv.renders()
			return refs == 2
		})
		leave()
		within(t, one, 10*time.Second, "the request that left")
		testkit.WaitFor(t, 10*time.Second, "one request waiting", func() bool {
			_, _, refs := srv.renders()
			return refs == 1
		})
		g.release()
		whole(t, "the request still waiting", within(t, two, 30*time.Second, "the request still waiting"))

		srv.settle(t)
		g.hold(0)
		q, _ = window(4)
		ctx3, leave := context.WithCancel(long(t))
		three := srv.ask(ctx3, srv.reviewer, http.MethodGet, stream, q, "bytes=0-", nil)
		g.wait(t, 1)
		leave()
		within(t, three, 10*time.Second, "the request that left")
		waitRenderFreed(t, srv, g)
	})

	t.Run("one token holder cannot take the whole budget", func(t *testing.T) {
		srv.settle(t)
		defer g.release()
		g.hold(0)
		alice, bob := tokenOf(t, "alice"), tokenOf(t, "bob")
		q5, _ := window(5)
		a1 := srv.ask(long(t), alice, http.MethodGet, stream, q5, "bytes=0-", nil)
		g.wait(t, 1)
		srv.bound(1, 4)
		q6, _ := window(6)
		a := within(t, srv.ask(short(t), alice, http.MethodGet, stream, q6, "bytes=0-", nil), 10*time.Second, "alice's second render")
		if a.code != http.StatusTooManyRequests || a.h.Get("Retry-After") == "" || !strings.Contains(string(a.body), "alice already has") {
			t.Fatalf("alice's second render with her share held: %d %v %q", a.code, a.err, a.body)
		}
		q7, _ := window(7)
		b1 := srv.ask(long(t), bob, http.MethodGet, stream, q7, "bytes=0-", nil)
		g.wait(t, 2)
		srv.bound(renderedPerToken/renderChunk, renderedTotal/renderChunk)
		g.release()
		whole(t, "alice's first render", within(t, a1, 30*time.Second, "alice's first render"))
		whole(t, "bob's render", within(t, b1, 30*time.Second, "bob's render"))
	})

	t.Run("a shared render's refusal names nobody else", func(t *testing.T) {
		srv.settle(t)
		defer g.release()
		g.hold(0)
		// carol's share is one chunk, which her render's first takes: its next
		// is refused.
		c := &srv.pb.cache
		c.mu.Lock()
		c.chunk = 64 << 10
		c.mu.Unlock()
		srv.bound(1, 64)
		q, _ := window(13)
		carol := srv.ask(long(t), tokenOf(t, "carol"), http.MethodGet, stream, q, "bytes=0-", nil)
		g.wait(t, 1)
		dave := srv.ask(long(t), tokenOf(t, "dave"), http.MethodGet, stream, q, "bytes=0-", nil)
		testkit.WaitFor(t, 20*time.Second, "dave's request sharing carol's render", func() bool {
			_, _, refs := srv.renders()
			return refs == 2
		})
		g.release()
		a := within(t, carol, 30*time.Second, "carol's render")
		if a.code != http.StatusTooManyRequests || !strings.Contains(string(a.body), "carol already has") {
			t.Fatalf("carol, past her share: %d %v %q", a.code, a.err, a.body)
		}
		d := within(t, dave, 30*time.Second, "dave's request")
		if d.code != http.StatusServiceUnavailable || d.h.Get("Retry-After") == "" || strings.Contains(string(d.body), "carol") ||
			!strings.Contains(string(d.body), "another token holder") || !strings.Contains(string(d.body), "without a Range header") {
			t.Fatalf("dave, who shared carol's render: %d %v %q", d.code, d.err, d.body)
		}
	})

	t.Run("kept streams expire with no further request", func(t *testing.T) {
		srv.settle(t)
		c := &srv.pb.cache
		c.mu.Lock()
		c.ttl, c.liveTTL = 200*time.Millisecond, 200*time.Millisecond
		c.mu.Unlock()
		q, _ := window(8)
		whole(t, "a render", within(t, srv.ask(long(t), srv.reviewer, http.MethodGet, stream, q, "bytes=0-", nil), 30*time.Second, "a render"))
		testkit.WaitFor(t, 5*time.Second, "the kept stream to expire", func() bool {
			entries, held, _ := srv.renders()
			return entries == 0 && held == 0
		})
	})

	t.Run("a stream stops when its token is revoked", func(t *testing.T) {
		srv.settle(t)
		defer g.release()
		g.hold(1)
		q, _ := window(9)
		s := srv.ask(long(t), tokenOf(t, "rev-stream"), http.MethodGet, stream, q, "", nil)
		g.wait(t, 1)
		at := revoke(t, "rev-stream")
		a := within(t, s, 3*time.Second, "the stream after its token was revoked")
		if a.code != http.StatusOK || a.err != nil || !strings.Contains(a.h.Get("X-Playback-Ended"), "revoked") {
			t.Fatalf("%d %v, ended %q", a.code, a.err, a.h.Get("X-Playback-Ended"))
		}
		t.Logf("the stream stopped %s after the revocation: %s", time.Since(at).Round(time.Millisecond), a.h.Get("X-Playback-Ended"))
	})

	t.Run("a range answer stops when its token is revoked while it is rendered", func(t *testing.T) {
		srv.settle(t)
		defer g.release()
		g.hold(0)
		q, _ := window(10)
		s := srv.ask(long(t), tokenOf(t, "rev-wait"), http.MethodGet, stream, q, "bytes=0-", nil)
		g.wait(t, 1)
		revoke(t, "rev-wait")
		a := within(t, s, 3*time.Second, "the range answer after its token was revoked")
		if a.code != http.StatusUnauthorized || !strings.Contains(string(a.body), "revoked") {
			t.Fatalf("%d %v %q", a.code, a.err, a.body)
		}
		waitRenderFreed(t, srv, g)
	})

	t.Run("a range answer stops when its token is revoked while it is sent", func(t *testing.T) {
		srv.settle(t)
		// A rendered stream larger than what the connection buffers.
		const size = 16 << 20
		q, req := window(11)
		c := &srv.pb.cache
		c.mu.Lock()
		e, err := c.newLocked(renderKey(req), "test", time.Minute)
		c.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		e.cancel = func() {}
		if _, err := e.data.Write(make([]byte, size)); err != nil {
			t.Fatal(err)
		}
		e.info = StreamInfo{Site: "primary", Start: req.Start, Keyframe: req.Start}
		close(e.ready)
		hr, _ := http.NewRequestWithContext(long(t), http.MethodGet, srv.base+stream+"?"+q.Encode(), nil)
		hr.Header.Set("Authorization", "Bearer "+tokenOf(t, "rev-serve"))
		hr.Header.Set("Range", "bytes=0-")
		res, err := http.DefaultClient.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusPartialContent || res.ContentLength != size {
			t.Fatalf("%d, %d bytes", res.StatusCode, res.ContentLength)
		}
		if _, err := io.ReadFull(res.Body, make([]byte, 64<<10)); err != nil {
			t.Fatal(err)
		}
		revoke(t, "rev-serve")
		type read struct {
			n   int64
			err error
		}
		rest := make(chan read, 1)
		go func() {
			n, err := io.Copy(io.Discard, res.Body)
			rest <- read{n, err}
		}()
		select {
		case r := <-rest:
			if r.err == nil || r.n+64<<10 >= size {
				t.Fatalf("after the revocation: %d more bytes of %d, %v", r.n, size, r.err)
			}
			t.Logf("the answer stopped %d bytes in: %v", r.n+64<<10, r.err)
		case <-time.After(10 * time.Second):
			t.Fatal("the range answer goes on 10 s after its token was revoked")
		}
	})

	t.Run("an export stops when its token is revoked", func(t *testing.T) {
		srv.settle(t)
		defer g.release()
		g.hold(0)
		_, req := window(12)
		body, _ := json.Marshal(ExportRequest{Incident: incident, Sources: []string{"cam1"}, Start: req.Start, End: req.End})
		s := srv.ask(long(t), tokenOf(t, "rev-export"), http.MethodPost, "/v1/exports", nil, "", body)
		g.wait(t, 1)
		revoke(t, "rev-export")
		a := within(t, s, 3*time.Second, "the export after its token was revoked")
		if a.code != http.StatusOK || a.err == nil {
			t.Fatalf("the export after its token was revoked: %d %v, %d bytes", a.code, a.err, len(a.body))
		}
	})
}

// A question naming a source twice is refused, as an export is.
func TestNamedTwice(t *testing.T) {
	pb, err := New(Params{Sites: []store.Store{newMem("primary")}})
	if err != nil {
		t.Fatal(err)
	}
	h := &handler{pb: pb, incident: incident}
	ask := func(sources ...string) error {
		q := url.Values{"source": sources, "start": {"2026-12-05T03:30:00Z"}, "duration": {"1500.001"}}
		_, err := h.parse(httptest.NewRequest(http.MethodGet, "/v1/recordings/stream?"+q.Encode(), nil), true)
		return err
	}
	wantStatus(t, "cam1 twice", ask("cam1", "cam2,cam1"), http.StatusBadRequest, `source "cam1" is named twice`)
	wantStatus(t, "cam1 eight times", ask("cam1", "cam1", "cam1", "cam1", "cam1", "cam1", "cam1", "cam1"), http.StatusBadRequest, "named twice")
	if err := ask("cam1", "cam2"); err != nil {
		t.Fatal(err)
	}
}
