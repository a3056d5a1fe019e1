package testkit

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// NATS is a real NATS server with JetStream, on loopback, for the cluster
// tests.
type NATS struct {
	URL string
	srv *server.Server
}

// StartNATS starts a NATS server with JetStream on a free loopback port; it
// is shut down when the test ends.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	opts := &server.Options{
		ServerName: "test", Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir(), JetStreamMaxMemory: 64 << 20, JetStreamMaxStore: 64 << 20,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		t.Fatal("nats server: not ready for connections within 10 s")
	}
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return &NATS{URL: srv.ClientURL(), srv: srv}
}

// Link is a TCP relay on loopback between a client and a server that a test
// cuts and mends, as a network partition does: cut closes every connection
// through it and refuses new ones until mended.
type Link struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewLink relays a free loopback port to target (host:port) until the test
// ends.
func NewLink(t testing.TB, target string) *Link {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &Link{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	l.wg.Add(1)
	go l.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		l.Cut()
		l.wg.Wait()
	})
	return l
}

// Addr is the relay's address.
func (l *Link) Addr() string { return l.ln.Addr().String() }

// Cut closes every connection and refuses new ones.
func (l *Link) Cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cut = true
	for c := range l.conns {
		_ = c.Close()
	}
}

// Mend lets connections through again.
func (l *Link) Mend() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cut = false
}

func (l *Link) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		cut := l.cut
		l.mu.Unlock()
		if cut {
			_ = c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", l.target, 2*time.Second)
		if err != nil {
			_ = c.Close()
			continue
		}
		if !l.track(c, up) {
			continue
		}
		l.wg.Add(2)
		go l.pipe(c, up)
		go l.pipe(up, c)
	}
}

// track registers a relayed pair, unless the link was cut meanwhile.
func (l *Link) track(a, b net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut {
		_ = a.Close()
		_ = b.Close()
		return false
	}
	l.conns[a], l.conns[b] = struct{}{}, struct{}{}
	return true
}

func (l *Link) pipe(dst, src net.Conn) {
	defer l.wg.Done()
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
	l.mu.Lock()
	delete(l.conns, dst)
	delete(l.conns, src)
	l.mu.Unlock()
}

// Site is one NATS server of a cluster spread over sites (two operations
// centres and a third site that keeps the quorum of the replicated buckets
// when one centre is lost).
type Site struct {
	Name string
	URL  string
	srv  *server.Server
}

// Stop shuts the site's server down, as losing the site would.
func (s *Site) Stop() {
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
}

// StartNATSSites starts one NATS server with JetStream per name, all one
// cluster (routes between every two), on loopback. They shut down when the
// test ends.
func StartNATSSites(t testing.TB, names ...string) []*Site {
	t.Helper()
	routes := make([]int, len(names))
	var all strings.Builder
	for i := range names {
		routes[i] = FreePort(t)
		fmt.Fprintf(&all, "%q, ", fmt.Sprintf("nats-route://127.0.0.1:%d", routes[i]))
	}
	out := make([]*Site, len(names))
	for i, name := range names {
		dir := t.TempDir()
		cfg := fmt.Sprintf(`listen: 127.0.0.1:-1
server_name: %q
jetstream: {max_mem_store: 64MB, max_file_store: 64MB, store_dir: %q}
cluster {
	name: "fieldvideo"
	listen: 127.0.0.1:%d
	routes = [%s]
}
`, name, dir, routes[i], all.String())
		path := filepath.Join(dir, "nats.conf")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		opts, err := server.ProcessConfigFile(path)
		if err != nil {
			t.Fatalf("nats server %s: %v", name, err)
		}
		opts.NoLog, opts.NoSigs = true, true
		srv, err := server.NewServer(opts)
		if err != nil {
			t.Fatalf("nats server %s: %v", name, err)
		}
		srv.Start()
		st := &Site{Name: name, srv: srv}
		t.Cleanup(st.Stop)
		out[i] = st
	}
	// a clustered JetStream is ready once the servers have met: wait for all together.
	for _, st := range out {
		if !st.srv.ReadyForConnections(30 * time.Second) {
			t.Fatalf("nats server %s: not ready for connections within 30 s", st.Name)
		}
		st.URL = st.srv.ClientURL()
	}
	return out
}
