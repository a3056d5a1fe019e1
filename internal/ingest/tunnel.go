package ingest

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// RTSP over HTTP (the QuickTime tunnel): a player opens a GET connection
// that carries the server's responses and media, and a POST connection
// whose body carries its requests in base64; the two share an
// X-Sessioncookie. The listener pairs them itself, in whichever order
// they arrive, and hands the RTSP server one connection that reads the
// POST and writes the GET. (gortsplib's own pairing answers the GET before
// registering it, so a quick POST can find nothing to pair with.)
//
// RTSP over WebSocket (ONVIF's rtsp.onvif.org subprotocol) is served by
// gortsplib, which reads each WebSocket message whole before any RTSP
// parsing or authorization, and reads an HTTP request head with no bound.
// The listener therefore hands gortsplib only complete heads of at most
// maxTunnelHeader bytes, and ends a connection whose WebSocket message
// would be larger than maxTunnelMessage before its payload is read.

const (
	tunnelMime = "application/x-rtsp-tunnelled"
	// maxTunnelHeader bounds the HTTP request head that opens a tunnel
	// half or a WebSocket: room for the headers and cookies a browser
	// sends. A connection whose head is longer is answered 431 and closed.
	maxTunnelHeader = 16 << 10
	// maxTunnelMessage bounds the payload of one WebSocket message a client
	// sends over RTSP over WebSocket. A message carries RTSP requests (whose
	// bodies gortsplib bounds at 128 KiB) or interleaved RTP and RTCP
	// packets (at most 64 KiB each).
	maxTunnelMessage = 1 << 20
)

// tunnels pairs the halves of HTTP tunnels by peer address and cookie.
type tunnels struct {
	wait time.Duration // how long a half waits for the other
	mu   sync.Mutex
	m    map[string]*tunnelPair
}

type tunnelPair struct {
	post    chan *tunnelHalf // the POST half, once it arrived
	hasGet  bool
	hasPost bool
}

// tunnelHalf is the POST side handed to the GET side.
type tunnelHalf struct {
	nc  net.Conn
	buf *bufio.Reader
}

// tunnelListener wraps accepted connections so that tunnel halves are
// recognised on their first read.
type tunnelListener struct {
	net.Listener
	t *tunnels
}

func newTunnelListener(ln net.Listener, wait time.Duration) *tunnelListener {
	return &tunnelListener{Listener: ln, t: &tunnels{wait: wait, m: map[string]*tunnelPair{}}}
}

func (l *tunnelListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &tunnelConn{Conn: nc, t: l.t}, nil
}

// tunnelConn is an accepted connection. Its first read decides what it
// is: plain RTSP (or any other protocol, passed on untouched), the GET
// half of a tunnel (then it reads the POST half and writes the GET), or
// the POST half (then it reads as ended and leaves its connection to the
// GET half).
type tunnelConn struct {
	net.Conn
	t *tunnels

	once    sync.Once
	initErr error
	r       io.Reader // what reads return once decided
	post    net.Conn  // the POST half, when this is a tunnel's GET half
	handed  bool      // this is a POST half that was handed over

	closeOnce sync.Once
}

func (c *tunnelConn) Read(p []byte) (int, error) {
	c.once.Do(c.decide)
	if c.initErr != nil {
		return 0, c.initErr
	}
	return c.r.Read(p)
}

func (c *tunnelConn) decide() {
	br := bufio.NewReaderSize(c.Conn, maxTunnelHeader)
	c.r = br
	head, err := br.Peek(4)
	if err != nil {
		if len(head) == 0 {
			c.initErr = err
		}
		return
	}
	if !bytes.Equal(head, []byte("GET ")) && !bytes.Equal(head, []byte("POST")) {
		return
	}
	// Look at the request without taking it. Anything but a tunnel half
	// goes on to the RTSP server as it came: a WebSocket upgrade, whose
	// frames are then bounded, or a request the server refuses with 400.
	// The head must be complete within maxTunnelHeader bytes, since the
	// server would read it with no bound.
	hdr, err := peekHeader(br)
	if err != nil {
		c.initErr = c.refuseHead(err)
		return
	}
	passOn := &wsFrames{r: br, head: len(hdr)}
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(hdr)))
	if err != nil {
		c.r = passOn
		return
	}
	get := req.Method == http.MethodGet && req.Header.Get("Accept") == tunnelMime
	post := req.Method == http.MethodPost && req.Header.Get("Content-Type") == tunnelMime
	cookie := req.Header.Get("X-Sessioncookie")
	if (!get && !post) || cookie == "" {
		c.r = passOn
		return
	}
	_, _ = br.Discard(len(hdr))
	key := remoteHost(c.Conn.RemoteAddr()) + " " + cookie
	if post {
		c.initErr = c.t.offerPost(key, &tunnelHalf{nc: c.Conn, buf: br})
		if c.initErr == nil {
			c.handed = true
			c.initErr = io.EOF
		}
		return
	}
	resp := fmt.Sprintf("HTTP/1.%d 200 OK\r\n", min(req.ProtoMinor, 1)) +
		"Cache-Control: no-cache\r\nConnection: close\r\nContent-Type: " + tunnelMime + "\r\nPragma: no-cache\r\n\r\n"
	if _, err := c.Conn.Write([]byte(resp)); err != nil {
		c.initErr = err
		return
	}
	half, err := c.t.awaitPost(key)
	if err != nil {
		c.initErr = err
		return
	}
	c.post = half.nc
	c.r = &base64Stream{r: half.buf}
}

// errHeadTooLarge: an HTTP request head is not complete within
// maxTunnelHeader bytes.
var errHeadTooLarge = fmt.Errorf("RTSP over HTTP or WebSocket: the HTTP request head is longer than %d bytes", maxTunnelHeader)

// peekHeader returns the bytes of the HTTP request head at the front of
// br, up to and including the empty line that ends it (as net/http reads
// it: lines end with CRLF or LF), without consuming them. br's buffer must
// hold maxTunnelHeader bytes.
func peekHeader(br *bufio.Reader) ([]byte, error) {
	line, i := 0, 0 // start of the line being scanned; next byte to scan
	for {
		b, _ := br.Peek(br.Buffered())
		for ; i < len(b); i++ {
			if b[i] != '\n' {
				continue
			}
			if l := b[line:i]; len(l) == 0 || (len(l) == 1 && l[0] == '\r') {
				return b[:i+1], nil
			}
			line = i + 1
		}
		if len(b) >= maxTunnelHeader {
			return nil, errHeadTooLarge
		}
		if _, err := br.Peek(len(b) + 1); err != nil {
			return nil, err
		}
	}
}

// refuseHead answers a request whose head is too long with 431 and
// returns the error that closes the connection; a head cut short by the
// peer or a deadline closes it without an answer.
func (c *tunnelConn) refuseHead(err error) error {
	if errors.Is(err, errHeadTooLarge) {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(c.t.wait))
		_, _ = io.WriteString(c.Conn, "HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
	}
	return err
}

var (
	errTunnelDup     = errors.New("RTSP over HTTP: a tunnel with this X-Sessioncookie is already open from this address")
	errTunnelNoPost  = errors.New("RTSP over HTTP: no POST connection arrived for the tunnel's GET in time")
	errTunnelRefused = errors.New("RTSP over HTTP: this half of the tunnel was closed before it was paired")
)

func (t *tunnels) pair(key string) *tunnelPair {
	p := t.m[key]
	if p == nil {
		p = &tunnelPair{post: make(chan *tunnelHalf, 1)}
		t.m[key] = p
	}
	return p
}

// offerPost leaves the POST half for its GET half; it is closed if no GET
// takes it in time.
func (t *tunnels) offerPost(key string, h *tunnelHalf) error {
	t.mu.Lock()
	p := t.pair(key)
	if p.hasPost {
		t.mu.Unlock()
		return errTunnelDup
	}
	p.hasPost = true
	p.post <- h
	t.mu.Unlock()
	time.AfterFunc(t.wait, func() {
		t.mu.Lock()
		if t.m[key] != p {
			t.mu.Unlock()
			return
		}
		select {
		case left := <-p.post:
			delete(t.m, key)
			t.mu.Unlock()
			_ = left.nc.Close()
		default:
			t.mu.Unlock()
		}
	})
	return nil
}

// awaitPost waits for the POST half of the tunnel.
func (t *tunnels) awaitPost(key string) (*tunnelHalf, error) {
	t.mu.Lock()
	p := t.pair(key)
	if p.hasGet {
		t.mu.Unlock()
		return nil, errTunnelDup
	}
	p.hasGet = true
	t.mu.Unlock()
	timer := time.NewTimer(t.wait)
	defer timer.Stop()
	var h *tunnelHalf
	select {
	case h = <-p.post:
	case <-timer.C:
	}
	t.mu.Lock()
	if t.m[key] == p {
		delete(t.m, key)
	}
	if h == nil {
		select {
		case h = <-p.post:
		default:
		}
	}
	t.mu.Unlock()
	if h == nil {
		return nil, errTunnelNoPost
	}
	return h, nil
}

func (c *tunnelConn) Write(b []byte) (int, error) {
	if c.handed {
		return 0, errTunnelRefused
	}
	return c.Conn.Write(b)
}

// SetReadDeadline applies to the connection reads come from.
func (c *tunnelConn) SetReadDeadline(t time.Time) error {
	if c.post != nil {
		return c.post.SetReadDeadline(t)
	}
	if c.handed {
		return nil
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *tunnelConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

func (c *tunnelConn) SetWriteDeadline(t time.Time) error {
	if c.handed {
		return nil
	}
	return c.Conn.SetWriteDeadline(t)
}

// Close closes what this connection owns: a handed-over POST half belongs
// to its tunnel.
func (c *tunnelConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		if c.handed {
			return
		}
		if c.post != nil {
			_ = c.post.Close()
		}
		err = c.Conn.Close()
	})
	return err
}

// Halves returns the accepted connections under c: the one it reads from
// first (the POST half of a tunnel), then the one it writes to.
func (c *tunnelConn) Halves() []net.Conn {
	if c.post != nil {
		return []net.Conn{c.post, c.Conn}
	}
	return []net.Conn{c.Conn}
}

// base64Stream decodes a tunnel's request stream: base64 in groups of
// four characters, each group on its own (clients pad each write), with
// line breaks and spaces ignored.
type base64Stream struct {
	r       io.Reader
	quad    [4]byte
	n       int // characters in quad
	raw     []byte
	dec     []byte
	pending []byte // decoded, not yet returned
	err     error
}

func (s *base64Stream) Read(p []byte) (int, error) {
	for len(s.pending) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		if s.raw == nil {
			s.raw = make([]byte, 4096)
			s.dec = make([]byte, 0, len(s.raw)/4*3+3)
		}
		m, err := s.r.Read(s.raw)
		s.pending = s.dec[:0]
		var group [3]byte
		for _, ch := range s.raw[:m] {
			if ch == '\r' || ch == '\n' || ch == ' ' || ch == '\t' {
				continue
			}
			s.quad[s.n] = ch
			if s.n++; s.n < 4 {
				continue
			}
			s.n = 0
			k, derr := base64.StdEncoding.Decode(group[:], s.quad[:])
			if derr != nil {
				err = fmt.Errorf("RTSP over HTTP: the POST body is not base64 (%q): %w", s.quad[:], derr)
				break
			}
			s.pending = append(s.pending, group[:k]...)
		}
		if err != nil {
			s.err = err
		}
	}
	k := copy(p, s.pending)
	s.pending = s.pending[k:]
	return k, nil
}

// wsFrames passes on the bytes of a connection handed to the RTSP server
// after an HTTP request head (head bytes), reading what follows the head
// as the WebSocket frames a client sends (RFC 6455, section 5.2). A data
// message (a frame with an opcode and the continuation frames up to the
// one with FIN set) whose frame headers declare more than maxTunnelMessage
// bytes of payload in all is an error as soon as the header that crosses
// the bound is read: the connection ends before that payload is read, and
// before the RTSP server's WebSocket reader buffers it. Control frames
// (close, ping, pong) carry at most 125 bytes and belong to no message.
type wsFrames struct {
	r       io.Reader
	head    int      // bytes of the request head still to pass on
	hdr     [14]byte // the frame header being read
	nhdr    int      // bytes of hdr read
	payload uint64   // payload bytes of the current frame still to pass on
	message uint64   // payload bytes of the current data message so far
	err     error
}

// Maximum payload of a WebSocket control frame.
const wsMaxControl = 125

func (w *wsFrames) Read(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.r.Read(p)
	if ferr := w.scan(p[:n]); ferr != nil {
		w.err = ferr
		return 0, ferr
	}
	return n, err
}

// scan follows the frames through b.
func (w *wsFrames) scan(b []byte) error {
	for len(b) > 0 {
		switch {
		case w.head > 0:
			k := min(w.head, len(b))
			w.head -= k
			b = b[k:]
		case w.payload > 0:
			k := min(w.payload, uint64(len(b)))
			w.payload -= k
			b = b[k:]
		default:
			w.hdr[w.nhdr] = b[0]
			w.nhdr++
			b = b[1:]
			if w.nhdr < wsHeaderLen(w.hdr[:w.nhdr]) {
				continue
			}
			if err := w.frame(w.hdr[:w.nhdr]); err != nil {
				return err
			}
			w.nhdr = 0
		}
	}
	return nil
}

// wsHeaderLen is the length of a frame header that starts with h: 2 bytes,
// the extended payload length (2 or 8 bytes) and the masking key (4).
func wsHeaderLen(h []byte) int {
	if len(h) < 2 {
		return 2
	}
	n := 2
	switch h[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if h[1]&0x80 != 0 {
		n += 4
	}
	return n
}

// frame takes the complete frame header h.
func (w *wsFrames) frame(h []byte) error {
	fin, opcode := h[0]&0x80 != 0, h[0]&0x0f
	length := uint64(h[1] & 0x7f)
	switch length {
	case 126:
		length = uint64(binary.BigEndian.Uint16(h[2:4]))
	case 127:
		length = binary.BigEndian.Uint64(h[2:10])
	}
	w.payload = length
	if opcode >= 8 {
		if length > wsMaxControl {
			return fmt.Errorf("RTSP over WebSocket: a control frame declares %d bytes, more than %d", length, wsMaxControl)
		}
		return nil
	}
	if opcode != 0 {
		w.message = 0 // the first frame of a message
	}
	if length > maxTunnelMessage-w.message {
		return fmt.Errorf("RTSP over WebSocket: a message of more than %d bytes (a frame declares %d after %d); "+
			"send RTSP requests and interleaved packets in messages of at most %[1]d bytes", maxTunnelMessage, length, w.message)
	}
	w.message += length
	if fin {
		w.message = 0
	}
	return nil
}

// remoteHost is the address part of a peer's address.
func remoteHost(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}
