package netlimit

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"testing"
	"time"
)

// TestGrantRequestThroughTLS serves HTTPS on a Listener with a request
// timeout: a connection whose request was granted outlives the timeout and
// stays off the waiting list; one whose request was not is closed at it.
func TestGrantRequestThroughTLS(t *testing.T) {
	const timeout = 300 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(ln, Params{RequestTimeout: timeout, Logger: slog.New(slog.DiscardHandler)})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/granted":
			if !GrantRequest(r) {
				t.Error("GrantRequest found no Listener connection under TLS")
			}
		case "/hijacked":
			nc, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			if !RequestBy(nc, time.Time{}) {
				t.Errorf("RequestBy found no Listener connection under the hijacked %T", nc)
			}
			nc.Close()
		}
	}))
	srv.Listener = l
	srv.Config.ConnContext = ConnContext
	srv.StartTLS()
	defer srv.Close()

	// get asks for path on client and reports whether it reused a connection
	get := func(c *http.Client, path string) bool {
		t.Helper()
		var reused bool
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
		})
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+path, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return reused
	}
	granted := srv.Client()
	plain := &http.Client{Transport: granted.Transport.(*http.Transport).Clone()}
	get(granted, "/granted")
	get(plain, "/plain")
	waitFor(t, "the ungranted connection to time out", func() bool { return l.Stats().RequestTimeouts == 1 })
	if l.Stats().Open != 1 {
		t.Fatalf("open connections after the timeout: %d, want the granted one", l.Stats().Open)
	}
	if !get(granted, "/granted") {
		t.Fatal("the granted connection was closed")
	}
	l.mu.Lock()
	waiting := l.waiting.Len()
	l.mu.Unlock()
	if waiting != 0 {
		t.Fatalf("%d connections on the waiting list, want none", waiting)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/hijacked", nil)
	if resp, err := plain.Do(req); err == nil {
		resp.Body.Close()
	}
	if RequestBy(nil, time.Time{}) {
		t.Fatal("RequestBy(nil) found a connection")
	}
}
