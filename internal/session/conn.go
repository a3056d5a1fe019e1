package session

import (
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"fieldvideo/internal/netlimit"
)

// Timing of the WebSocket keepalive: the server pings every pingEvery and
// gives up on a connection that has said nothing for readTimeout.
const (
	pingEvery    = 10 * time.Second
	readTimeout  = 30 * time.Second
	writeTimeout = 5 * time.Second
	outQueue     = 512
)

// conn is one signalling WebSocket. Messages are sent through a bounded
// queue drained by a writer goroutine, so the participant never blocks on a
// slow network; a client that lets the queue fill up is disconnected.
type conn struct {
	ws     *websocket.Conn
	remote string
	out    chan []byte
	done   chan struct{}
	once   sync.Once
	// normal is set when the client closed the socket on purpose (close
	// codes 1000 and 1001): it left, and will not resume.
	normal bool
	// joinBy (Unix ns) is when the join must have come; until it has, no
	// frame or pong moves the read deadline past it. Zero once joined.
	joinBy atomic.Int64
}

func newConn(ws *websocket.Conn, remote string) *conn {
	ws.SetReadLimit(MaxMessageBytes)
	c := &conn{ws: ws, remote: remote, out: make(chan []byte, outQueue), done: make(chan struct{})}
	_ = ws.SetReadDeadline(time.Now().Add(readTimeout))
	ws.SetPongHandler(func(string) error { return c.extend() })
	go c.writeLoop()
	return c
}

// awaitJoin makes d the last moment the join may come: a socket that sends
// frames or answers pings without joining is still closed then.
func (c *conn) awaitJoin(d time.Time) {
	c.joinBy.Store(d.UnixNano())
	_ = c.ws.SetReadDeadline(d)
	netlimit.RequestBy(c.ws.NetConn(), d)
}

// joined lifts the join deadline: from now on any frame or pong keeps the
// connection for readTimeout more, and the listener counts it as granted.
func (c *conn) joined() {
	c.joinBy.Store(0)
	netlimit.RequestBy(c.ws.NetConn(), time.Time{})
}

// extend moves the read deadline readTimeout ahead, but not past the join
// deadline while there is one.
func (c *conn) extend() error {
	d := time.Now().Add(readTimeout)
	if by := c.joinBy.Load(); by != 0 && d.UnixNano() > by {
		d = time.Unix(0, by)
	}
	return c.ws.SetReadDeadline(d)
}

// send queues a message; it reports false when the connection is closed or
// its queue is full (and then closes it).
func (c *conn) send(v any) bool {
	b, err := json.Marshal(v)
	if err != nil {
		return false
	}
	select {
	case <-c.done:
		return false
	default:
	}
	select {
	case c.out <- b:
		return true
	default:
		c.close()
		return false
	}
}

// close closes the connection after flushing what is queued (bounded by the
// write timeout).
func (c *conn) close() { c.once.Do(func() { close(c.done) }) }

func (c *conn) writeLoop() {
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	defer c.ws.Close()
	for {
		select {
		case b := <-c.out:
			if !c.write(b) {
				c.close()
				return
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeTimeout)); err != nil {
				c.close()
				return
			}
		case <-c.done:
			for {
				select {
				case b := <-c.out:
					if !c.write(b) {
						return
					}
				default:
					_ = c.ws.WriteControl(websocket.CloseMessage,
						websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
					return
				}
			}
		}
	}
}

func (c *conn) write(b []byte) bool {
	_ = c.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
	return c.ws.WriteMessage(websocket.TextMessage, b) == nil
}

// read returns the next message's bytes, extending the read deadline.
func (c *conn) read() ([]byte, error) {
	for {
		typ, b, err := c.ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) && (ce.Code == websocket.CloseNormalClosure || ce.Code == websocket.CloseGoingAway) {
				c.normal = true
			}
			return nil, err
		}
		_ = c.extend()
		if typ == websocket.TextMessage {
			return b, nil
		}
	}
}

// readLoop parses messages and hands them to deliver until the connection
// ends; malformed messages are answered with an error and skipped.
func (c *conn) readLoop(deliver func(Request) bool) {
	defer c.close()
	for {
		b, err := c.read()
		if err != nil {
			return
		}
		r, err := ParseRequest(b)
		if err != nil {
			c.send(errorMessage(0, errorf(CodeBadRequest, "%v", err)))
			continue
		}
		if !deliver(r) {
			return
		}
	}
}
