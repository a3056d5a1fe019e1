package playback

import (
	"errors"
	"net/http"
	"os"
	"time"
)

// A long answer (a stream, an export, a rendered stream served by range) is
// written to its client with a deadline on every write. The server sets no
// write timeout of its own, since streams are long, so a client that stops
// reading (its connection's window full) would otherwise hold the answer's
// writer, its stream slot and its memory for as long as it keeps the
// connection open. Cut at the deadline, the answer is counted
// (fv_playback_clients_stalled_total) and logged.
//
// The server writes the end of an answer (what is buffered, the last chunk
// and the trailers) after the handler returns, under the deadline set last,
// and then clears it: it does not reach the connection's next request.

// clientWriter writes a long answer to its client, every write under a
// deadline of the Playback's WriteTimeout.
type clientWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
	pb *Playback
	// started: the head was written; stalled: a write failed at its
	// deadline.
	started, stalled bool
}

// clientWriter returns the writer of a long answer.
func (h *handler) clientWriter(w http.ResponseWriter) *clientWriter {
	return &clientWriter{w: w, rc: http.NewResponseController(w), pb: h.pb}
}

func (c *clientWriter) Header() http.Header { return c.w.Header() }

// WriteHeader writes the head and sends it at once, so that the audit
// middleware writes the answer's event and then lets the body stream.
func (c *clientWriter) WriteHeader(code int) {
	c.started = true
	c.arm()
	c.w.WriteHeader(code)
	_ = c.rc.Flush()
}

func (c *clientWriter) Write(p []byte) (int, error) {
	if !c.started {
		c.WriteHeader(http.StatusOK)
	}
	deadline := c.arm()
	n, err := c.w.Write(p)
	if err != nil && (errors.Is(err, os.ErrDeadlineExceeded) || !time.Now().Before(deadline)) {
		c.stalled = true
	}
	return n, err
}

// arm sets the deadline of the next write and returns it.
func (c *clientWriter) arm() time.Time {
	deadline := time.Now().Add(c.pb.p.WriteTimeout)
	if err := c.rc.SetWriteDeadline(deadline); err != nil {
		c.pb.noDeadline.Do(func() {
			c.pb.log.Error("playback: the connection takes no write deadline; a client that stops reading holds its stream until it disconnects", "error", err)
		})
	}
	return deadline
}

// end is called when the handler has written the answer, what it is named
// in the log with attrs: it gives the end of the answer a deadline of its
// own, and counts and logs the answer when its client stopped reading.
func (c *clientWriter) end(what string, attrs ...any) {
	if !c.started {
		return
	}
	c.arm()
	if c.stalled {
		c.pb.stalled.Add(1)
		c.pb.log.Warn(what+" cut: its client stopped reading", append(attrs, "write_timeout", c.pb.p.WriteTimeout)...)
	}
}
