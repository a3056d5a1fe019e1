package audit

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fieldvideo/internal/testkit"
)

func identifyHeader(r *http.Request) (string, string) {
	if who := r.Header.Get("X-Who"); who != "" {
		return who, "operator"
	}
	return "anonymous", ""
}

func auditedServer(t *testing.T, l *Log, h http.Handler) *httptest.Server {
	srv := httptest.NewServer(HTTP(l, identifyHeader, h))
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url, who string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if who != "" {
		req.Header.Set("X-Who", who)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// Every request is audited once, with the actor, path without its query,
// status and the handler's annotations; refusals carry their reason.
func TestHTTPAuditsEveryRequest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openTest(t, Params{File: path, KeyFile: testKeyFile(t)})
	srv := auditedServer(t, l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/secret" {
			http.Error(w, "metrics need an operator token\nmore", http.StatusForbidden)
			return
		}
		ev := Annotate(r)
		ev.Action, ev.Source = "list", "cam1"
		_, _ = io.WriteString(w, "ok")
	}))
	if code, body := get(t, srv.URL+"/v1/sources?token=SECRET", "alice"); code != 200 || body != "ok" {
		t.Fatalf("GET: %d %q", code, body)
	}
	if code, _ := get(t, srv.URL+"/v1/secret", ""); code != 403 {
		t.Fatalf("refused GET: %d", code)
	}
	closeTest(t, l)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "SECRET") {
		t.Fatal("the query (which may carry a token) was audited")
	}
	var got []map[string]any
	for _, line := range splitLines(b) {
		if m := lineJSON(t, line); m["path"] != nil {
			got = append(got, m)
		}
	}
	if len(got) != 2 {
		t.Fatalf("%d request events, want 2: %s", len(got), b)
	}
	want := []map[string]any{
		{"actor": "alice", "method": "GET", "path": "/v1/sources", "status": float64(200), "result": "ok", "action": "list", "source": "cam1"},
		{"actor": "anonymous", "path": "/v1/secret", "status": float64(403), "result": "denied", "reason": "metrics need an operator token"},
	}
	for i, w := range want {
		for k, v := range w {
			if got[i][k] != v {
				t.Errorf("event %d: %s = %v, want %v (%v)", i, k, got[i][k], v, got[i])
			}
		}
	}
}

// When the audit log cannot be written the access is refused with the
// reason, and what the handler set up is undone.
func TestHTTPFailsClosed(t *testing.T) {
	disk := testkit.SmallDisk(t, 64<<10)
	l := openTest(t, Params{File: filepath.Join(disk, "audit.log"), KeyFile: testKeyFile(t)})
	defer l.Close()
	undone := 0
	srv := auditedServer(t, l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		OnFailure(r, func() { undone++ })
		_, _ = io.WriteString(w, "the secret answer")
	}))
	if code, _ := get(t, srv.URL+"/v1/sources", "alice"); code != 200 {
		t.Fatalf("before the disk filled: %d", code)
	}
	filler := testkit.FillDisk(t, disk)
	for i := 0; l.Write(Event{Actor: "filling the last page", Action: "view"}) == nil; i++ {
		if i > 1000 {
			t.Fatal("the audit log still takes events on a full disk")
		}
	}
	code, body := get(t, srv.URL+"/v1/sources", "alice")
	if code != http.StatusServiceUnavailable || strings.Contains(body, "secret") || !strings.Contains(body, "no space left on device") {
		t.Fatalf("with a full audit disk: %d %q", code, body)
	}
	if undone != 1 {
		t.Fatalf("undo ran %d times, want 1", undone)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, srv.URL+"/v1/sources", "alice"); code != 200 || body != "the secret answer" {
		t.Fatalf("after space returned: %d %q", code, body)
	}
}

// A handler that streams a long answer (a recording) flushes: its event is
// written then, the client gets the answer as it is written, and the
// request is audited once. When the event cannot be written, the client
// gets 503 and nothing of the answer.
func TestHTTPStreamsAfterTheEvent(t *testing.T) {
	disk := testkit.SmallDisk(t, 64<<10)
	path := filepath.Join(disk, "audit.log")
	l := openTest(t, Params{File: path, KeyFile: testKeyFile(t)})
	defer l.Close()
	release := make(chan struct{})
	var writeErr error
	srv := auditedServer(t, l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		Annotate(r).Action = "review"
		w.Header().Set("Content-Type", "video/mp4")
		w.Header().Set("Trailer", "X-Done")
		_, _ = io.WriteString(w, "first part;")
		_ = http.NewResponseController(w).Flush()
		<-release
		_, writeErr = io.WriteString(w, "second part")
		w.Header().Set("X-Done", "yes")
	}))
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/recordings/stream", nil)
	req.Header.Set("X-Who", "alice")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, len("first part;"))
	if _, err := io.ReadFull(res.Body, first); err != nil || string(first) != "first part;" || res.Header.Get("Content-Type") != "video/mp4" {
		t.Fatalf("before the handler finished: %q %v %v", first, err, res.Header)
	}
	b, _ := os.ReadFile(path)
	if n := strings.Count(string(b), `"path":"/v1/recordings/stream"`); n != 1 {
		t.Fatalf("%d events while streaming, want 1", n)
	}
	close(release)
	rest, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(rest) != "second part" || res.Trailer.Get("X-Done") != "yes" || writeErr != nil {
		t.Fatalf("rest %q, trailer %q, write %v", rest, res.Trailer.Get("X-Done"), writeErr)
	}
	b, _ = os.ReadFile(path)
	if n := strings.Count(string(b), `"path":"/v1/recordings/stream"`); n != 1 {
		t.Fatalf("%d events after the stream, want 1", n)
	}

	testkit.FillDisk(t, disk)
	for i := 0; l.Write(Event{Actor: "filling the last page", Action: "view"}) == nil; i++ {
		if i > 1000 {
			t.Fatal("the audit log still takes events on a full disk")
		}
	}
	release = make(chan struct{})
	close(release)
	code, body := get(t, srv.URL+"/v1/recordings/stream", "alice")
	if code != http.StatusServiceUnavailable || strings.Contains(body, "part") || writeErr == nil {
		t.Fatalf("with a full audit disk: %d %q, handler's write error %v", code, body, writeErr)
	}
}

// A long answer can bound its writes through the middleware: a write
// deadline reaches the connection, and a client that stops reading is cut
// at it instead of holding the handler.
func TestHTTPWriteDeadline(t *testing.T) {
	l := openTest(t, Params{File: filepath.Join(t.TempDir(), "audit.log"), KeyFile: testKeyFile(t)})
	defer l.Close()
	cut := make(chan error, 1)
	srv := auditedServer(t, l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		w.WriteHeader(http.StatusOK)
		_ = rc.Flush()
		chunk := make([]byte, 64<<10)
		for {
			if err := rc.SetWriteDeadline(time.Now().Add(500 * time.Millisecond)); err != nil {
				cut <- err
				return
			}
			if _, err := w.Write(chunk); err != nil {
				cut <- err
				return
			}
		}
	}))
	c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.(*net.TCPConn).SetReadBuffer(4 << 10)
	if _, err := io.WriteString(c, "GET /v1/recordings/stream HTTP/1.1\r\nHost: x\r\nX-Who: alice\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// The client reads nothing.
	select {
	case err := <-cut:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the handler's write to a client that reads nothing: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a write to a client that reads nothing is still blocked after 20 s")
	}
}
