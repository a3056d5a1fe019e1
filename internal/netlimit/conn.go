package netlimit

import (
	"container/list"
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// Conn is a connection accepted by a Listener. Closing it frees its place
// under the limits. It has a request deadline besides the usual ones: while
// set, reads fail once it passes, whatever read deadline its user sets, so
// that code which keeps extending its own read deadline (or sets none)
// cannot keep a silent peer forever.
type Conn struct {
	net.Conn
	l   *Listener
	ip  string
	key string

	// waiting is c's place on the listener's waiting list, guarded by
	// the listener's mu.
	waiting *list.Element

	// mu guards the deadlines and orders the calls that apply them.
	mu       sync.Mutex
	read     time.Time // the read deadline the user set
	request  time.Time // zero: none
	timedOut bool

	closeOnce sync.Once
	closeErr  error
}

// SetRequestDeadline sets the time by which the peer must have sent what it
// owes (its next request); reads fail after it. Zero lifts it, leaving the
// read deadline the user set.
func (c *Conn) SetRequestDeadline(t time.Time) error {
	c.l.setWaiting(c, !t.IsZero())
	c.mu.Lock()
	defer c.mu.Unlock()
	c.request = t
	return c.Conn.SetReadDeadline(c.effectiveLocked())
}

// SetReadDeadline implements net.Conn; the request deadline still applies.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.read = t
	return c.Conn.SetReadDeadline(c.effectiveLocked())
}

// SetDeadline implements net.Conn; the request deadline still applies to
// reads.
func (c *Conn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.read = t
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.Conn.SetReadDeadline(c.effectiveLocked())
}

func (c *Conn) effectiveLocked() time.Time {
	switch {
	case c.request.IsZero():
		return c.read
	case c.read.IsZero() || c.request.Before(c.read):
		return c.request
	}
	return c.read
}

// Read implements net.Conn, and counts the first read that fails on the
// request deadline.
func (c *Conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		c.mu.Lock()
		hit := !c.timedOut && !c.request.IsZero() && !time.Now().Before(c.request)
		if hit {
			c.timedOut = true
		}
		c.mu.Unlock()
		if hit {
			c.l.requestTimedOut(c)
		}
	}
	return n, err
}

// Close implements net.Conn and frees the connection's place; only the
// first call closes.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.closeErr = c.Conn.Close()
		c.l.release(c)
	})
	return c.closeErr
}

var _ net.Conn = (*Conn)(nil)
