package playback

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"fieldvideo/internal/metrics"
	"fieldvideo/internal/testkit"
)

// testWriteTimeout is the write timeout of the servers of these tests.
const testWriteTimeout = time.Second

// stallingServer cuts a client that stops reading after testWriteTimeout,
// and gives every connection it accepts a small socket send buffer: a
// client that stops reading then stalls the answer after a few tens of KB
// instead of the megabytes the kernel would otherwise take in.
func stallingServer(p *Params, ts *httptest.Server) {
	p.WriteTimeout = testWriteTimeout
	ts.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetWriteBuffer(16 << 10)
		}
		return ctx
	}
}

// stall sends a request over a TCP connection of its own, reads the head of
// the answer and a little of its body, then reads nothing more and keeps
// the connection open: a player that hung. It returns the status.
func (s *server) stall(t *testing.T, tok, method, path string, q url.Values, rg string, body []byte) int {
	t.Helper()
	req, err := http.NewRequest(method, s.base+path+"?"+q.Encode(), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if rg != "" {
		req.Header.Set("Range", rg)
	}
	c, err := net.Dial("tcp", req.URL.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.(*net.TCPConn).SetReadBuffer(4 << 10); err != nil {
		t.Fatal(err)
	}
	if err := req.Write(c); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	res, err := http.ReadResponse(bufio.NewReaderSize(c, 4<<10), req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(res.Body, make([]byte, 1<<10)); err != nil {
		t.Fatalf("%s %s: the first KB of the answer: %v", method, path, err)
	}
	return res.StatusCode
}

// metric reads one of the Playback's metrics, as a scrape does.
func (s *server) metric(t *testing.T, name string) float64 {
	t.Helper()
	var b bytes.Buffer
	m := metrics.NewWriter(&b)
	s.pb.WriteMetrics(m)
	if err := m.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s in %s", name, b.String())
	return 0
}

// Long answers to a client that stops reading are cut, their stream slots
// and renders let go; one token holder cannot take every stream slot.
func TestClients(t *testing.T) {
	srv, g, segs := gatedRecording(t, stallingServer)
	const stream = "/v1/recordings/stream"
	from, to := segs[0].start.Add(100*time.Millisecond), segs[3].end
	q := url.Values{"source": {"cam1"}, "start": {ts(from)}, "end": {ts(to)}}
	export, _ := json.Marshal(ExportRequest{Incident: incident, Sources: []string{"cam1"}, Start: from, End: to})
	long := func(t *testing.T) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		t.Cleanup(cancel)
		return ctx
	}

	t.Run("a client that stops reading is cut", func(t *testing.T) {
		cases := []struct {
			name, method, path, rg string
			body                   []byte
			// held reports whether the answer holds what it should let go.
			held func() bool
		}{
			{"stream", http.MethodGet, stream, "", nil, func() bool { return srv.pb.busy() > 0 }},
			{"export", http.MethodPost, "/v1/exports", "", export, func() bool { return srv.pb.busy() > 0 }},
			{"range answer", http.MethodGet, stream, "bytes=0-", nil, func() bool { _, _, refs := srv.renders(); return refs > 0 }},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				srv.settle(t)
				cut := srv.metric(t, "fv_playback_clients_stalled_total")
				if code := srv.stall(t, srv.reviewer, c.method, c.path, q, c.rg, c.body); code/100 != 2 || !c.held() {
					t.Fatalf("the answer to the client that stops reading: %d, holding %v", code, c.held())
				}
				at := time.Now()
				testkit.WaitFor(t, 10*testWriteTimeout, "the answer to be cut and let go", func() bool {
					return !c.held() && srv.metric(t, "fv_playback_clients_stalled_total") == cut+1
				})
				t.Logf("cut %s after the client stopped reading", time.Since(at).Round(10*time.Millisecond))
				if n := srv.metric(t, "fv_playback_streams_active"); n != 0 {
					t.Fatalf("%v stream slots still taken", n)
				}
			})
		}
		a := within(t, srv.ask(long(t), srv.reviewer, http.MethodGet, stream, q, "", nil), 30*time.Second, "a stream after the cuts")
		if a.code != http.StatusOK || a.err != nil || !bytes.Contains(a.body[:min(len(a.body), 16)], []byte("ftyp")) {
			t.Fatalf("a stream after the cuts: %d %v, %d bytes", a.code, a.err, len(a.body))
		}
	})

	t.Run("one token holder cannot take every stream slot", func(t *testing.T) {
		srv.settle(t)
		defer g.release()
		g.hold(0)
		alice := tokenOf(t, "alice")
		var asked []<-chan answer
		for range streamsPerHolder {
			asked = append(asked, srv.ask(long(t), alice, http.MethodGet, stream, q, "", nil))
		}
		g.wait(t, streamsPerHolder)
		for _, r := range []struct {
			what, method, path string
			body               []byte
		}{{"stream", http.MethodGet, stream, nil}, {"export", http.MethodPost, "/v1/exports", export}} {
			a := within(t, srv.ask(long(t), alice, r.method, r.path, q, "", r.body), 10*time.Second, "alice's "+r.what+" past her share")
			if a.code != http.StatusTooManyRequests || a.h.Get("Retry-After") == "" ||
				!strings.Contains(string(a.body), "alice already has 4") || !strings.Contains(string(a.body), "wait for one to finish") {
				t.Fatalf("alice's %s with %d in flight: %d %v %q", r.what, streamsPerHolder, a.code, a.err, a.body)
			}
		}
		asked = append(asked, srv.ask(long(t), tokenOf(t, "bob"), http.MethodGet, stream, q, "", nil))
		g.wait(t, streamsPerHolder+1)
		g.release()
		for i, ch := range asked {
			if a := within(t, ch, 30*time.Second, "a stream in flight"); a.code != http.StatusOK || a.err != nil {
				t.Fatalf("stream %d: %d %v", i, a.code, a.err)
			}
		}
		testkit.WaitFor(t, 5*time.Second, "every stream slot free", func() bool { return srv.pb.busy() == 0 })
		a := within(t, srv.ask(long(t), alice, http.MethodGet, stream, q, "", nil), 30*time.Second, "alice's stream once hers ended")
		if a.code != http.StatusOK || a.err != nil {
			t.Fatalf("alice's stream once hers ended: %d %v", a.code, a.err)
		}
	})
}
