package playback

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// A media element seeks by byte range, which needs the stream's length
// before its first byte. Asked with a Range header, a stream is rendered
// whole once, kept for a short while, and every range of it is served from
// memory; without one, it is stitched as it is sent.

const (
	// maxRendered bounds one rendered stream; renderedTotal all of them.
	maxRendered   = 256 << 20
	renderedTotal = 1 << 30
	// renderedTTL is how long a rendered stream is kept after its last use;
	// renderedLiveTTL when its window reaches the last minute, which may
	// still be recording.
	renderedTTL     = time.Minute
	renderedLiveTTL = 5 * time.Second
)

type rendered struct {
	ready chan struct{}
	b     []byte
	info  StreamInfo
	err   error
	used  time.Time
	ttl   time.Duration
}

type renderCache struct {
	mu      sync.Mutex
	entries map[string]*rendered
	total   int64
}

// renderKey names a stream request.
func renderKey(req StreamRequest) string {
	return req.Incident + "\x00" + strings.Join(req.Sources, "\x00") + "\x00" +
		req.Start.UTC().Format(time.RFC3339Nano) + "\x00" + req.End.UTC().Format(time.RFC3339Nano)
}

// rendered returns the whole stream of req, rendering it once for all the
// requests that ask for it meanwhile.
func (pb *Playback) rendered(ctx context.Context, req StreamRequest) (*rendered, error) {
	c := &pb.cache
	key := renderKey(req)
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[string]*rendered{}
	}
	c.evictLocked(time.Now())
	e, ok := c.entries[key]
	if !ok {
		e = &rendered{ready: make(chan struct{}), ttl: renderedTTL}
		if req.End.After(time.Now().Add(-time.Minute)) {
			e.ttl = renderedLiveTTL
		}
		c.entries[key] = e
	}
	e.used = time.Now()
	c.mu.Unlock()
	if !ok {
		var buf limitedBuffer
		e.info, e.err = pb.Stream(context.WithoutCancel(ctx), &buf, req, func(StreamInfo) {})
		e.b = buf.Bytes()
		c.mu.Lock()
		if e.err != nil {
			delete(c.entries, key)
		} else {
			c.total += int64(len(e.b))
		}
		c.mu.Unlock()
		close(e.ready)
	}
	select {
	case <-e.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// Its time to live runs from its last use, not from the request that started a
	// render which may have taken longer than that (then every request would render
	// the window again, and a media element asking range after range would never get
	// its data).
	c.mu.Lock()
	e.used = time.Now()
	c.mu.Unlock()
	return e, e.err
}

// evictLocked drops rendered streams unused for their time to live, then the
// least recently used until the total is under the bound.
func (c *renderCache) evictLocked(now time.Time) {
	for k, e := range c.entries {
		select {
		case <-e.ready:
		default:
			continue
		}
		if now.Sub(e.used) > e.ttl {
			c.total -= int64(len(e.b))
			delete(c.entries, k)
		}
	}
	for c.total > renderedTotal {
		var oldK string
		var old *rendered
		for k, e := range c.entries {
			select {
			case <-e.ready:
			default:
				continue
			}
			if old == nil || e.used.Before(old.used) {
				oldK, old = k, e
			}
		}
		if old == nil {
			return
		}
		c.total -= int64(len(old.b))
		delete(c.entries, oldK)
	}
}

// limitedBuffer refuses to grow past maxRendered.
type limitedBuffer struct{ bytes.Buffer }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if l.Len()+len(p) > maxRendered {
		return 0, &Error{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf(
			"the range is too long to seek in by bytes (over %d MiB); ask for a shorter window, or read it without a Range header", maxRendered>>20)}
	}
	return l.Buffer.Write(p)
}

// headerFlusher sends the answer's head as soon as it is written, so that
// the audit middleware writes the event and then lets the body stream.
type headerFlusher struct {
	http.ResponseWriter
	rc *http.ResponseController
}

func (f headerFlusher) WriteHeader(code int) {
	f.ResponseWriter.WriteHeader(code)
	_ = f.rc.Flush()
}
