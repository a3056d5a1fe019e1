package netlimit

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// waitTimeout bounds every wait on a condition in these tests.
const waitTimeout = 10 * time.Second

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", waitTimeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// serve listens on 127.0.0.1:0 with p and holds every accepted connection
// open until its peer closes it.
func serve(t *testing.T, p Params) *Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	l := NewListener(ln, p)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	return l
}

// dialFrom connects to l from the local IP src and reports on closed when
// the server closes the connection.
func dialFrom(t *testing.T, l *Listener, src string, closed chan<- struct{}) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		_, _ = c.Read(make([]byte, 1))
		closed <- struct{}{}
	}()
	return c
}

// TestListenerLimits: connections over the total or per-address bound are
// closed at once and counted; the others stay open.
func TestListenerLimits(t *testing.T) {
	cases := []struct {
		name            string
		max, perAddr    int
		dials           map[string]int // source IP → connections
		refusedMax      uint64
		refusedPerAddr  uint64
		wantOpenPerAddr map[string]int
	}{
		{"per address", 100, 5, map[string]int{"127.0.0.1": 8, "127.0.0.2": 3}, 0, 3,
			map[string]int{"127.0.0.1": 5, "127.0.0.2": 3}},
		{"total", 6, 5, map[string]int{"127.0.0.1": 4, "127.0.0.2": 4}, 2, 0,
			map[string]int{"127.0.0.1": 4, "127.0.0.2": 2}},
		{"no bounds", 0, 0, map[string]int{"127.0.0.1": 20}, 0, 0, map[string]int{"127.0.0.1": 20}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := serve(t, Params{MaxConns: tc.max, MaxConnsPerAddr: tc.perAddr})
			closed := make(chan struct{}, 100)
			total := 0
			for _, src := range []string{"127.0.0.1", "127.0.0.2"} {
				for range tc.dials[src] {
					dialFrom(t, l, src, closed)
					total++
					// Accept in dial order, so that which source is cut is known.
					waitFor(t, "the connection to be accepted or refused", func() bool {
						st := l.Stats()
						return int(st.Accepted+st.RefusedMax+st.RefusedPerAddr) == total
					})
				}
			}
			refused := int(tc.refusedMax + tc.refusedPerAddr)
			for i := range refused {
				select {
				case <-closed:
				case <-time.After(waitTimeout):
					t.Fatalf("%d of %d refused connections closed", i, refused)
				}
			}
			st := l.Stats()
			if st.RefusedMax != tc.refusedMax || st.RefusedPerAddr != tc.refusedPerAddr || st.Open != total-refused {
				t.Fatalf("stats %+v: want %d refused over max_connections, %d over the per-address bound, %d open",
					st, tc.refusedMax, tc.refusedPerAddr, total-refused)
			}
			l.mu.Lock()
			for src, want := range tc.wantOpenPerAddr {
				if got := l.perIP[src]; got != want {
					t.Errorf("%s has %d open connections, want %d", src, got, want)
				}
			}
			l.mu.Unlock()
			select {
			case <-closed:
				t.Fatal("a connection within the bounds was closed")
			case <-time.After(100 * time.Millisecond):
			}
		})
	}
}

// TestClosingFreesThePlace: once a connection is closed, one more may come
// from the same address.
func TestClosingFreesThePlace(t *testing.T) {
	l := serve(t, Params{MaxConnsPerAddr: 1})
	closed := make(chan struct{}, 10)
	c := dialFrom(t, l, "127.0.0.1", closed)
	waitFor(t, "the first connection", func() bool { return l.Stats().Open == 1 })
	dialFrom(t, l, "127.0.0.1", closed)
	<-closed // refused
	c.Close()
	<-closed
	waitFor(t, "the first connection to be counted out", func() bool { return l.Stats().Open == 0 })
	dialFrom(t, l, "127.0.0.1", closed)
	waitFor(t, "a new connection in its place", func() bool { return l.Stats().Open == 1 })
}

// TestRequestDeadline: a connection's reads fail on its request deadline
// whatever read deadline is set, until the request deadline is lifted.
func TestRequestDeadline(t *testing.T) {
	const timeout = 150 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(ln, Params{RequestTimeout: timeout, Logger: slog.New(slog.DiscardHandler)})
	defer l.Close()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	nc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c := nc.(*Conn)
	defer c.Close()

	for _, tc := range []struct {
		name string
		read time.Time
	}{
		{"no read deadline", time.Time{}},
		{"a later read deadline", time.Now().Add(time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			if err := c.SetRequestDeadline(start.Add(timeout)); err != nil {
				t.Fatal(err)
			}
			if err := c.SetReadDeadline(tc.read); err != nil {
				t.Fatal(err)
			}
			_, err := c.Read(make([]byte, 1))
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("read: %v, want the deadline exceeded", err)
			}
			if d := time.Since(start); d < timeout || d > timeout+2*time.Second {
				t.Fatalf("read failed after %s, want about %s", d, timeout)
			}
		})
	}
	if n := l.Stats().RequestTimeouts; n != 1 {
		t.Fatalf("%d request timeouts counted, want 1 (the connection's first)", n)
	}

	// Lifted: the read waits for data past the old deadline.
	if err := c.SetRequestDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(2 * timeout)
		_, _ = client.Write([]byte("x"))
	}()
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatalf("read after the request deadline was lifted: %v", err)
	}
	// An earlier read deadline still applies under a request deadline.
	if err := c.SetRequestDeadline(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v, want the read deadline exceeded", err)
	}
}

// fakeListener returns errs from Accept, then conns, then blocks until
// closed.
type fakeListener struct {
	mu     sync.Mutex
	errs   []error
	conns  []net.Conn
	closed chan struct{}
	once   sync.Once
}

func (f *fakeListener) Accept() (net.Conn, error) {
	f.mu.Lock()
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		f.mu.Unlock()
		return nil, err
	}
	if len(f.conns) > 0 {
		c := f.conns[0]
		f.conns = f.conns[1:]
		f.mu.Unlock()
		return c, nil
	}
	f.mu.Unlock()
	<-f.closed
	return nil, net.ErrClosed
}

func (f *fakeListener) Close() error {
	f.once.Do(func() { close(f.closed) })
	return nil
}

func (f *fakeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

func acceptErr(errno syscall.Errno) error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", errno)}
}

// TestAcceptWaitsOutTemporaryErrors: EMFILE and the like are retried with
// a backoff; other errors end Accept.
func TestAcceptWaitsOutTemporaryErrors(t *testing.T) {
	cases := []struct {
		name     string
		errs     []error
		wantConn bool
		retried  uint64
	}{
		{"out of descriptors", []error{acceptErr(syscall.EMFILE), acceptErr(syscall.EMFILE), acceptErr(syscall.ENFILE)}, true, 3},
		{"aborted in the backlog", []error{acceptErr(syscall.ECONNABORTED)}, true, 1},
		{"out of buffers", []error{acceptErr(syscall.ENOBUFS), acceptErr(syscall.ENOMEM)}, true, 2},
		{"permanent", []error{acceptErr(syscall.EINVAL)}, false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b := net.Pipe()
			defer a.Close()
			defer b.Close()
			f := &fakeListener{errs: tc.errs, conns: []net.Conn{a}, closed: make(chan struct{})}
			l := NewListener(f, Params{Logger: slog.New(slog.DiscardHandler)})
			defer l.Close()
			c, err := l.Accept()
			if tc.wantConn {
				if err != nil {
					t.Fatalf("Accept: %v, want the connection after the errors", err)
				}
				c.Close()
			} else if err == nil || !errors.Is(err, syscall.EINVAL) {
				t.Fatalf("Accept: %v, %v; want the permanent error", c, err)
			}
			if got := l.Stats().AcceptErrors; got != tc.retried {
				t.Fatalf("%d accept errors waited out, want %d", got, tc.retried)
			}
		})
	}
}

// TestCloseInterruptsBackoff: Close ends an Accept that is waiting out
// errors.
func TestCloseInterruptsBackoff(t *testing.T) {
	errs := make([]error, 50)
	for i := range errs {
		errs[i] = acceptErr(syscall.EMFILE)
	}
	f := &fakeListener{errs: errs, closed: make(chan struct{})}
	l := NewListener(f, Params{Logger: slog.New(slog.DiscardHandler)})
	done := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		done <- err
	}()
	waitFor(t, "a few accept errors", func() bool { return l.Stats().AcceptErrors >= 3 })
	l.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept: %v, want net.ErrClosed", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Accept did not return after Close")
	}
}

// TestLookup finds a connection by itself and under a wrapper that keeps
// its addresses.
func TestLookup(t *testing.T) {
	l := serve(t, Params{})
	closed := make(chan struct{}, 1)
	client := dialFrom(t, l, "127.0.0.1", closed)
	waitFor(t, "the connection", func() bool { return l.Stats().Open == 1 })
	l.mu.Lock()
	var c *Conn
	for _, v := range l.conns {
		c = v
	}
	l.mu.Unlock()
	if got := l.Lookup(c); got != c {
		t.Fatalf("Lookup(conn) = %p, want %p", got, c)
	}
	if got := l.Lookup(wrapped{c}); got != c {
		t.Fatalf("Lookup(wrapper) = %p, want %p", got, c)
	}
	if got := l.Lookup(client); got != nil {
		t.Fatalf("Lookup(the client's end) = %p, want nil", got)
	}
}

type wrapped struct{ net.Conn }

// TestRemoteIP: IPv6 addresses share a bound per /64.
func TestRemoteIP(t *testing.T) {
	cases := []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 5}, "192.0.2.7"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:aaaa::1"), Port: 5}, "2001:db8:1:2::/64"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:bbbb::9"), Port: 6}, "2001:db8:1:2::/64"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7"), Port: 5}, "192.0.2.7"},
		{&net.UnixAddr{Name: "@x", Net: "unix"}, "@x"},
	}
	for _, tc := range cases {
		if got := remoteIP(tc.addr); got != tc.want {
			t.Errorf("remoteIP(%v) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}

// TestRaiseFileLimit raises a lowered soft limit back to the hard one.
func TestRaiseFileLimit(t *testing.T) {
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
	if old.Max <= 512 {
		t.Skipf("hard limit %d is too low to lower the soft one", old.Max)
	}
	low := syscall.Rlimit{Cur: 512, Max: old.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	soft, hard, err := RaiseFileLimit()
	if err != nil {
		t.Fatal(err)
	}
	if soft != uint64(old.Max) || hard != uint64(old.Max) {
		t.Fatalf("RaiseFileLimit = %d, %d; want both %d", soft, hard, old.Max)
	}
	if s, h, err := FileLimit(); err != nil || s != soft || h != hard {
		t.Fatalf("FileLimit = %d, %d, %v; want %d, %d", s, h, err, soft, hard)
	}
}

// TestNewcomerTakesTheOldestWaitingPlace: at the total limit a newcomer
// closes the oldest connection not yet granted access, and a granted one
// is never closed for it; with every place granted, newcomers are refused.
func TestNewcomerTakesTheOldestWaitingPlace(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(ln, Params{MaxConns: 3, RequestTimeout: time.Minute, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { l.Close() })
	accepted := make(chan *Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c.(*Conn)
		}
	}()
	// dial connects from src and waits until the server has taken it in.
	dial := func(src string) (*Conn, chan struct{}) {
		closed := make(chan struct{}, 1)
		dialFrom(t, l, src, closed)
		select {
		case c := <-accepted:
			return c, closed
		case <-time.After(waitTimeout):
			t.Fatalf("the connection from %s was not accepted", src)
			return nil, nil
		}
	}
	isClosed := func(ch chan struct{}) bool {
		select {
		case <-ch:
			return true
		case <-time.After(waitTimeout):
			return false
		}
	}
	g, grantedClosed := dial("127.0.0.1")
	g.SetRequestDeadline(time.Time{}) // granted access
	_, closed2 := dial("127.0.0.2")
	c3, closed3 := dial("127.0.0.3")
	dial("127.0.0.4")
	if !isClosed(closed2) {
		t.Fatal("the oldest waiting connection (127.0.0.2) was not closed for a newcomer")
	}
	c5, _ := dial("127.0.0.5")
	if !isClosed(closed3) {
		t.Fatal("the next oldest waiting connection (127.0.0.3) was not closed for a newcomer")
	}
	_ = c3
	if st := l.Stats(); st.Evicted != 2 || st.RefusedMax != 0 || st.Open != 3 {
		t.Fatalf("stats %+v: want 2 evicted, none refused, 3 open", st)
	}
	// All granted: a newcomer is refused.
	l.mu.Lock()
	var waiting []*Conn
	for e := l.waiting.Front(); e != nil; e = e.Next() {
		waiting = append(waiting, e.Value.(*Conn))
	}
	l.mu.Unlock()
	for _, c := range waiting {
		c.SetRequestDeadline(time.Time{})
	}
	_ = c5
	closed6 := make(chan struct{}, 1)
	dialFrom(t, l, "127.0.0.6", closed6)
	if !isClosed(closed6) {
		t.Fatal("a newcomer was not refused when every place is granted")
	}
	select {
	case <-grantedClosed:
		t.Fatal("a granted connection was closed")
	default:
	}
	if st := l.Stats(); st.Open != 3 || st.Evicted != 2 || st.RefusedMax != 1 {
		t.Fatalf("stats %+v after a newcomer met only granted connections", st)
	}
}
