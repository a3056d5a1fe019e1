package testkit

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"
)

// Balancer is an HTTP load balancer on loopback in front of SFU nodes, as a
// site would run one: every request goes to the first backend whose
// /healthz answers 200 (checked every 200 ms), so a client's sessions stay
// on one node until it fails, then move to the next.
type Balancer struct {
	URL string

	mu       sync.Mutex
	backends []*url.URL
	healthy  []bool
}

// StartBalancer balances over the backends' base URLs until the test ends.
func StartBalancer(t testing.TB, backends ...string) *Balancer {
	t.Helper()
	b := &Balancer{healthy: make([]bool, len(backends))}
	for _, s := range backends {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		b.backends = append(b.backends, u)
	}
	b.check()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			if u := b.pick(); u != nil {
				r.SetURL(u)
			}
			r.Out.Host = r.In.Host
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			http.Error(w, "no healthy backend: "+err.Error(), http.StatusBadGateway)
		},
	}
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				b.check()
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
		_ = srv.Close()
	})
	b.URL = "http://" + ln.Addr().String()
	return b
}

// check asks each backend's /healthz.
func (b *Balancer) check() {
	c := &http.Client{Timeout: 500 * time.Millisecond}
	for i, u := range b.backends {
		res, err := c.Get(u.String() + "/healthz")
		ok := err == nil && res.StatusCode == http.StatusOK
		if err == nil {
			res.Body.Close()
		}
		b.mu.Lock()
		b.healthy[i] = ok
		b.mu.Unlock()
	}
}

// pick returns the first healthy backend, or nil.
func (b *Balancer) pick() *url.URL {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, ok := range b.healthy {
		if ok {
			return b.backends[i]
		}
	}
	return nil
}
