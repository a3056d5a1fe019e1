package playback

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// A media element seeks by byte range, which needs the stream's length
// before its first byte. Asked with a Range header, a stream is rendered
// whole once, kept for a short while, and every range of it is served from
// memory; without one, it is stitched as it is sent.
//
// The memory of rendered streams is reserved before it is allocated, a
// chunk at a time, against three bounds: one stream (maxRendered), every
// stream in memory whether rendering, served or kept (renderedTotal), and
// the streams rendered for one token holder (renderedPerToken), so that one
// reviewer cannot take the whole budget. Room is made by dropping kept
// streams nobody is using, least recently used first; when there is none
// to drop, the request is refused (429 for the holder's own share, 503 for
// the whole budget). A stream in use (rendering for a request that still
// waits, or being served) is never dropped. A render is stopped when no
// request waits for it any more.

const (
	// maxRendered bounds one rendered stream; renderedTotal all of them;
	// renderedPerToken those rendered for one token holder.
	maxRendered      = 256 << 20
	renderedTotal    = 1 << 30
	renderedPerToken = renderedTotal / 2
	// renderChunk is the unit in which a rendered stream is held and its
	// memory reserved.
	renderChunk = 1 << 20
	// renderedTTL is how long a rendered stream is kept after its last use;
	// renderedLiveTTL when its window reaches the last minute, which may
	// still be recording.
	renderedTTL     = time.Minute
	renderedLiveTTL = 5 * time.Second
)

type rendered struct {
	key   string
	owner string // the token holder the render is charged to
	ttl   time.Duration
	// ready is closed when the render ended; then data, info and err are
	// set.
	ready  chan struct{}
	data   *chunks
	info   StreamInfo
	err    error
	cancel context.CancelFunc

	// Under the cache's lock:
	// refs counts the requests waiting for the render or serving it.
	refs int
	// used is when the last request let go of it.
	used time.Time
	// held is the memory reserved for it.
	held  int64
	timer *time.Timer
}

type renderCache struct {
	mu sync.Mutex
	// The bounds and times to live: the constants above unless a test
	// sets others.
	perRender, perToken, total, chunk int64
	ttl, liveTTL                      time.Duration

	entries map[string]*rendered
	// held is the memory reserved for every rendered stream not yet freed,
	// kept or not; owners the same by token holder.
	held   int64
	owners map[string]int64
}

func (c *renderCache) init() {
	c.perRender, c.perToken, c.total, c.chunk = maxRendered, renderedPerToken, renderedTotal, renderChunk
	c.ttl, c.liveTTL = renderedTTL, renderedLiveTTL
	c.entries, c.owners = map[string]*rendered{}, map[string]int64{}
}

// renderKey names a stream request.
func renderKey(req StreamRequest) string {
	return req.Incident + "\x00" + strings.Join(req.Sources, "\x00") + "\x00" +
		req.Start.UTC().Format(time.RFC3339Nano) + "\x00" + req.End.UTC().Format(time.RFC3339Nano)
}

// rendered returns the whole stream of req, rendering it once for all the
// requests that ask for it meanwhile, charged to owner when this request
// starts the render; release lets go of it once the answer is sent. When
// ctx ends first, it returns ctx's cause.
func (pb *Playback) rendered(ctx context.Context, req StreamRequest, owner string) (e *rendered, release func(), err error) {
	c := &pb.cache
	key := renderKey(req)
	c.mu.Lock()
	e, ok := c.entries[key]
	if !ok {
		ttl := c.ttl
		if req.End.After(time.Now().Add(-time.Minute)) {
			ttl = c.liveTTL
		}
		if e, err = c.newLocked(key, owner, ttl); err != nil {
			c.mu.Unlock()
			return nil, nil, err
		}
		var rctx context.Context
		rctx, e.cancel = context.WithCancel(context.WithoutCancel(ctx))
		go pb.render(rctx, e, req)
	}
	e.refs++
	c.mu.Unlock()
	select {
	case <-e.ready:
	case <-ctx.Done():
		c.release(e)
		return nil, nil, context.Cause(ctx)
	}
	if e.err != nil {
		c.release(e)
		return e, nil, e.errFor(owner)
	}
	return e, func() { c.release(e) }, nil
}

// errFor is the error of e's render as told to owner. The render is charged
// to the holder who started it, and a refusal of that holder's share names
// them; another holder whose request shared the render is told it stopped,
// and not whose it was.
func (e *rendered) errFor(owner string) error {
	var pe *Error
	if owner == e.owner || !errors.As(e.err, &pe) || pe.Status != http.StatusTooManyRequests {
		return e.err
	}
	return &Error{Status: http.StatusServiceUnavailable, Msg: "the recording was being prepared for seeking for another token holder, whose share is full, and was stopped; retry in a few seconds, or ask without a Range header to stream it"}
}

// newLocked adds the entry of a render of key charged to owner, with its
// first chunk reserved.
func (c *renderCache) newLocked(key, owner string, ttl time.Duration) (*rendered, error) {
	e := &rendered{key: key, owner: owner, ttl: ttl, ready: make(chan struct{})}
	if err := c.reserveLocked(e, c.chunk); err != nil {
		return nil, err
	}
	e.data = &chunks{c: c, e: e, chunk: c.chunk, limit: c.perRender, bufs: [][]byte{make([]byte, 0, c.chunk)}}
	c.entries[key] = e
	return e, nil
}

// render renders e's stream and frees its memory when it fails or nobody
// waits for it any more.
func (pb *Playback) render(ctx context.Context, e *rendered, req StreamRequest) {
	info, err := pb.Stream(ctx, e.data, req, func(StreamInfo) {})
	c := &pb.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	e.cancel()
	if err == nil && c.entries[e.key] != e {
		err = context.Canceled
	}
	e.info, e.err = info, err
	if err != nil {
		c.dropLocked(e)
	}
	close(e.ready)
}

// release lets go of e: the last request waiting for a render stops it; the
// last one served from a rendered stream starts its time to live.
func (c *renderCache) release(e *rendered) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.refs--; e.refs > 0 {
		return
	}
	select {
	case <-e.ready:
	default:
		// Nobody waits for it: a later request renders it anew. Its memory is
		// freed when the render returns.
		if c.entries[e.key] == e {
			delete(c.entries, e.key)
		}
		e.cancel()
		return
	}
	if e.err != nil || c.entries[e.key] != e {
		return
	}
	e.used = time.Now()
	if e.timer == nil {
		e.timer = time.AfterFunc(e.ttl, func() { c.expire(e) })
	} else {
		e.timer.Reset(e.ttl)
	}
}

// expire drops e when nobody used it for its time to live.
func (c *renderCache) expire(e *rendered) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.refs > 0 || c.entries[e.key] != e {
		return
	}
	if left := e.ttl - time.Since(e.used); left > 0 {
		e.timer.Reset(left)
		return
	}
	c.dropLocked(e)
}

// dropLocked removes e from the cache and frees its memory; nobody may be
// using it.
func (c *renderCache) dropLocked(e *rendered) {
	if c.entries[e.key] == e {
		delete(c.entries, e.key)
	}
	if e.timer != nil {
		e.timer.Stop()
	}
	c.held -= e.held
	if c.owners[e.owner] -= e.held; c.owners[e.owner] <= 0 {
		delete(c.owners, e.owner)
	}
	e.held, e.data = 0, nil
}

// reserveLocked reserves n bytes for e, dropping kept streams nobody uses
// (the holder's own first when its share is full), or says which bound
// refuses it.
func (c *renderCache) reserveLocked(e *rendered, n int64) error {
	for c.owners[e.owner]+n > c.perToken {
		if !c.evictLocked(e.owner) {
			return &Error{Status: http.StatusTooManyRequests, Msg: fmt.Sprintf(
				"%s already has %d MiB of recordings being prepared for seeking or played that way, the most one token holder may have; close other players or wait for them to finish, or ask without a Range header to stream it",
				e.owner, c.owners[e.owner]>>20)}
		}
	}
	for c.held+n > c.total {
		if !c.evictLocked("") {
			return &Error{Status: http.StatusServiceUnavailable, Msg: fmt.Sprintf(
				"too many recordings are being prepared for seeking (%d MiB in memory, the most there may be); retry in a few seconds, or ask without a Range header to stream it",
				c.held>>20)}
		}
	}
	c.held += n
	c.owners[e.owner] += n
	e.held += n
	return nil
}

// evictLocked drops the least recently used kept stream nobody uses, of
// owner when not empty; false when there is none.
func (c *renderCache) evictLocked(owner string) bool {
	var old *rendered
	for _, e := range c.entries {
		if e.refs > 0 || (owner != "" && e.owner != owner) {
			continue
		}
		select {
		case <-e.ready:
		default:
			continue
		}
		if old == nil || e.used.Before(old.used) {
			old = e
		}
	}
	if old == nil {
		return false
	}
	c.dropLocked(old)
	return true
}

// chunks is a rendered stream held in chunks of the cache's chunk size,
// each reserved before it is allocated: what it holds is what is counted,
// and growing it copies nothing.
type chunks struct {
	c     *renderCache
	e     *rendered
	chunk int64
	limit int64
	bufs  [][]byte
	size  int64
}

func (b *chunks) Write(p []byte) (int, error) {
	if b.size+int64(len(p)) > b.limit {
		return 0, &Error{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf(
			"the range is too long to seek in by bytes (over %d MiB); ask for a shorter window, or read it without a Range header", b.limit>>20)}
	}
	n := 0
	for len(p) > 0 {
		last := len(b.bufs) - 1
		if last < 0 || len(b.bufs[last]) == cap(b.bufs[last]) {
			b.c.mu.Lock()
			err := b.c.reserveLocked(b.e, b.chunk)
			b.c.mu.Unlock()
			if err != nil {
				return n, err
			}
			b.bufs = append(b.bufs, make([]byte, 0, b.chunk))
			last++
		}
		buf := b.bufs[last]
		k := copy(buf[len(buf):cap(buf)], p)
		b.bufs[last] = buf[:len(buf)+k]
		p, n, b.size = p[k:], n+k, b.size+int64(k)
	}
	return n, nil
}

// ReadAt reads the stream from off.
func (b *chunks) ReadAt(p []byte, off int64) (int, error) {
	if off >= b.size {
		return 0, io.EOF
	}
	n := 0
	for len(p) > 0 && off < b.size {
		buf := b.bufs[off/b.chunk]
		k := copy(p, buf[off%b.chunk:])
		p, n, off = p[k:], n+k, off+int64(k)
	}
	if len(p) > 0 {
		return n, io.EOF
	}
	return n, nil
}

// boundReader reads a rendered stream until ctx ends, then fails with its
// cause: the answer stops.
type boundReader struct {
	ctx context.Context
	*io.SectionReader
}

func (r boundReader) Read(p []byte) (int, error) {
	if r.ctx.Err() != nil {
		return 0, context.Cause(r.ctx)
	}
	return r.SectionReader.Read(p)
}
