// Package netlimit keeps a TCP server serving through connection floods: a
// listener that bounds open connections in total and per remote address,
// closes connections that send no request in time, and keeps accepting
// through temporary errors such as running out of file descriptors; and
// RaiseFileLimit, which gives the process all the descriptors it may have.
package netlimit

import (
	"container/list"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Params configure a Listener.
type Params struct {
	// MaxConns bounds the open connections; a connection over the bound is
	// closed as soon as it is accepted. 0 means no bound.
	MaxConns int
	// MaxConnsPerAddr bounds the open connections from one remote address
	// (an IPv4 address, or an IPv6 /64 prefix, which one host commonly
	// holds whole), in the same way. 0 means no bound.
	MaxConnsPerAddr int
	// RequestTimeout is the request deadline every accepted connection
	// starts with (see Conn.SetRequestDeadline). 0 means none.
	RequestTimeout time.Duration
	// Logger receives warnings, at most one per kind every LogEvery; nil
	// means slog.Default().
	Logger *slog.Logger
	// LogEvery spaces the warnings of one kind; 0 means 10s.
	LogEvery time.Duration
}

// Stats count what a Listener did since it was made.
type Stats struct {
	// Open is the number of connections open now.
	Open int `json:"open"`
	// Accepted counts connections accepted and handed on.
	Accepted uint64 `json:"accepted"`
	// RefusedMax and RefusedPerAddr count connections closed at once
	// because MaxConns or MaxConnsPerAddr was reached.
	RefusedMax     uint64 `json:"refused_max_connections"`
	RefusedPerAddr uint64 `json:"refused_max_per_address"`
	// Evicted counts connections not yet granted access that were closed
	// to make room for a newcomer at MaxConns.
	Evicted uint64 `json:"evicted"`
	// RequestTimeouts counts connections whose read failed on their request
	// deadline (their owner then closes them).
	RequestTimeouts uint64 `json:"request_timeouts"`
	// AcceptErrors counts temporary accept errors (EMFILE and the like)
	// that were waited out.
	AcceptErrors uint64 `json:"accept_errors"`
}

// Backoff bounds between accept attempts after a temporary error.
const (
	minAcceptBackoff = 5 * time.Millisecond
	maxAcceptBackoff = time.Second
)

// Listener wraps a net.Listener. Accept returns *Conn values, and only
// returns an error when the listener is closed or fails for good: temporary
// errors are retried with a backoff of 5ms doubling up to 1s.
type Listener struct {
	ln  net.Listener
	p   Params
	log *slog.Logger

	done      chan struct{}
	closeOnce sync.Once

	// mu guards the maps, the waiting list and Conn.waiting.
	mu    sync.Mutex
	perIP map[string]int
	conns map[string]*Conn // by connKey
	// waiting lists the connections with a request deadline (not yet
	// granted access), oldest first: when MaxConns is reached, a newcomer
	// takes the place of the oldest of them, so that a flood of silent
	// connections cannot lock out clients that would authenticate.
	waiting list.List

	accepted, refusedMax, refusedPerAddr, evicted, timeouts, acceptErrs atomic.Uint64

	warnAccept, warnRefused, warnTimeout rateLimited
}

// NewListener wraps ln with the limits in p.
func NewListener(ln net.Listener, p Params) *Listener {
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	if p.LogEvery <= 0 {
		p.LogEvery = 10 * time.Second
	}
	l := &Listener{
		ln: ln, p: p, log: p.Logger, done: make(chan struct{}),
		perIP: map[string]int{}, conns: map[string]*Conn{},
	}
	l.warnAccept.every, l.warnRefused.every, l.warnTimeout.every = p.LogEvery, p.LogEvery, p.LogEvery
	return l
}

// Accept waits for a connection within the limits and returns it as a
// *Conn.
func (l *Listener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || !temporary(err) || l.closed() {
				return nil, err
			}
			l.acceptErrs.Add(1)
			delay = min(max(2*delay, minAcceptBackoff), maxAcceptBackoff)
			if n, ok := l.warnAccept.allow(); ok {
				l.log.Warn("cannot accept connections; retrying",
					"address", l.ln.Addr().String(), "error", err, "retry_in", delay, "errors_since_last_warning", n,
					"hint", "raise the open-file limit (ulimit -n, LimitNOFILE=) or lower the connection limits")
			}
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-l.done:
				t.Stop()
				return nil, net.ErrClosed
			}
			continue
		}
		delay = 0
		if c := l.admit(nc); c != nil {
			return c, nil
		}
	}
}

// admit counts nc in, or closes it when a limit is reached.
func (l *Listener) admit(nc net.Conn) *Conn {
	ip := remoteIP(nc.RemoteAddr())
	key := connKey(nc)
	l.mu.Lock()
	var refused string
	var victim *Conn
	switch {
	case l.p.MaxConnsPerAddr > 0 && l.perIP[ip] >= l.p.MaxConnsPerAddr:
		refused = "max_connections_per_address"
		l.refusedPerAddr.Add(1)
	case l.p.MaxConns > 0 && len(l.conns) >= l.p.MaxConns:
		if front := l.waiting.Front(); front != nil {
			victim = l.waiting.Remove(front).(*Conn)
			victim.waiting = nil
			l.evicted.Add(1)
		} else {
			refused = "max_connections"
			l.refusedMax.Add(1)
		}
	}
	if refused != "" {
		open := len(l.conns)
		l.mu.Unlock()
		_ = nc.Close()
		if n, ok := l.warnRefused.allow(); ok {
			l.log.Warn("connection refused: limit reached", "limit", refused, "remote", ip, "open", open,
				"refused_since_last_warning", n)
		}
		return nil
	}
	c := &Conn{Conn: nc, l: l, ip: ip, key: key}
	if l.p.RequestTimeout > 0 {
		c.request = time.Now().Add(l.p.RequestTimeout)
		_ = nc.SetReadDeadline(c.request)
		c.waiting = l.waiting.PushBack(c)
	}
	l.perIP[ip]++
	l.conns[key] = c
	l.mu.Unlock()
	l.accepted.Add(1)
	if victim != nil {
		_ = victim.Close()
		if n, ok := l.warnRefused.allow(); ok {
			l.log.Warn("connection limit reached: closed the oldest connection not yet granted access", "limit", "max_connections",
				"closed", victim.ip, "for", ip, "refused_since_last_warning", n)
		}
	}
	return c
}

// setWaiting puts c on the waiting list (a request deadline is set) or
// takes it off (lifted); a connection keeps its place while it stays on.
func (l *Listener) setWaiting(c *Conn, on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case on && c.waiting == nil && l.conns[c.key] == c:
		c.waiting = l.waiting.PushBack(c)
	case !on && c.waiting != nil:
		l.waiting.Remove(c.waiting)
		c.waiting = nil
	}
}

// release counts c out.
func (l *Listener) release(c *Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conns[c.key] == c {
		delete(l.conns, c.key)
	}
	if c.waiting != nil {
		l.waiting.Remove(c.waiting)
		c.waiting = nil
	}
	if l.perIP[c.ip]--; l.perIP[c.ip] <= 0 {
		delete(l.perIP, c.ip)
	}
}

func (l *Listener) requestTimedOut(c *Conn) {
	l.timeouts.Add(1)
	if n, ok := l.warnTimeout.allow(); ok {
		l.log.Info("closing connections that sent no request in time", "remote", c.ip,
			"request_timeout", l.p.RequestTimeout, "closed_since_last_report", n)
	}
}

// Lookup returns the open connection of this listener that nc is, or that
// nc wraps while keeping its local and remote addresses (an HTTP tunnel);
// nil when there is none.
func (l *Listener) Lookup(nc net.Conn) *Conn {
	if c, ok := nc.(*Conn); ok && c.l == l {
		return c
	}
	if nc == nil || nc.LocalAddr() == nil || nc.RemoteAddr() == nil {
		return nil
	}
	key := connKey(nc)
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conns[key]
}

// Close stops accepting; open connections stay open.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.ln.Close()
}

func (l *Listener) closed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// Addr returns the listener's address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Stats returns the counters.
func (l *Listener) Stats() Stats {
	l.mu.Lock()
	open := len(l.conns)
	l.mu.Unlock()
	return Stats{
		Open: open, Accepted: l.accepted.Load(), RefusedMax: l.refusedMax.Load(), RefusedPerAddr: l.refusedPerAddr.Load(), Evicted: l.evicted.Load(),
		RequestTimeouts: l.timeouts.Load(), AcceptErrors: l.acceptErrs.Load(),
	}
}

// temporary reports whether an accept error may go away by itself: out of
// descriptors or memory, or a connection that died in the backlog.
func temporary(err error) bool {
	for _, e := range []syscall.Errno{
		syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EINTR, syscall.EAGAIN,
		syscall.EPROTO, syscall.EPERM, syscall.ETIMEDOUT,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// connKey names a connection by its two ends.
func connKey(nc net.Conn) string {
	return nc.LocalAddr().String() + " " + nc.RemoteAddr().String()
}

// remoteIP is the key of the per-address limit: the IPv4 address, or the
// /64 prefix of an IPv6 address.
// AddrKey names the host of a remote "host:port" address as the limits
// count it: the IP address, or for IPv6 its /64 prefix.
func AddrKey(remote string) string {
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	if ip := net.ParseIP(host); ip != nil {
		return remoteIP(&net.TCPAddr{IP: ip})
	}
	return host
}

func remoteIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		if ta.IP.To4() == nil && len(ta.IP) == net.IPv6len {
			return ta.IP.Mask(net.CIDRMask(64, 128)).String() + "/64"
		}
		return ta.IP.String()
	}
	if host, _, err := net.SplitHostPort(a.String()); err == nil {
		return host
	}
	return a.String()
}

// rateLimited lets one event through every interval and counts the rest.
type rateLimited struct {
	every time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// allow reports whether to log now, and how many events were held back
// since the last one logged (this one included).
func (r *rateLimited) allow() (int, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.suppressed++
	now := time.Now()
	if !r.last.IsZero() && now.Sub(r.last) < r.every {
		return 0, false
	}
	n := r.suppressed
	r.last, r.suppressed = now, 0
	return n, true
}
