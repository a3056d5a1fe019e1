package playback

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"fieldvideo/internal/testkit"
)

const testChunk = 4 << 10

// testCache is a cache of chunk-sized pieces, bounded to perToken and
// total chunks.
func testCache(perToken, total int64) *renderCache {
	c := &renderCache{}
	c.init()
	c.chunk, c.perToken, c.total = testChunk, perToken*testChunk, total*testChunk
	return c
}

// add starts a render of key for owner in c, used by one request, and
// writes n bytes of it.
func (c *renderCache) add(t *testing.T, key, owner string, n int) (*rendered, error) {
	t.Helper()
	c.mu.Lock()
	e, err := c.newLocked(key, owner, time.Minute)
	if err == nil {
		e.refs, e.cancel = 1, func() {}
	}
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	_, err = e.data.Write(make([]byte, n))
	return e, err
}

// finish ends e's render, and lets its request go at used.
func (c *renderCache) finish(e *rendered, used time.Time) {
	c.mu.Lock()
	close(e.ready)
	e.refs, e.used = 0, used
	c.mu.Unlock()
}

func (c *renderCache) state() (entries int, held int64, owners map[string]int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	owners = map[string]int64{}
	for k, v := range c.owners {
		owners[k] = v
	}
	return len(c.entries), c.held, owners
}

func wantStatus(t *testing.T, what string, err error, status int, says string) {
	t.Helper()
	var pe *Error
	if !errors.As(err, &pe) || pe.Status != status || !strings.Contains(pe.Msg, says) {
		t.Fatalf("%s: %v, want %d naming %q", what, err, status, says)
	}
}

// A rendered stream is held in chunks, each reserved before it is made: the
// memory counted is the memory held, and it reads back whole.
func TestRenderedChunks(t *testing.T) {
	c := testCache(100, 100)
	c.perRender = 10 * testChunk
	e, err := c.add(t, "a", "alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for i := 0; len(want) < 10000; i++ {
		p := bytes.Repeat([]byte{byte(i)}, 333)
		if _, err := e.data.Write(p); err != nil {
			t.Fatal(err)
		}
		want = append(want, p...)
	}
	capacity := int64(0)
	for _, b := range e.data.bufs {
		capacity += int64(cap(b))
	}
	_, held, owners := c.state()
	if capacity != held || held != e.held || owners["alice"] != held || held >= int64(len(want))+testChunk {
		t.Fatalf("%d bytes written: %d held, %d in its chunks, %v by owner", len(want), held, capacity, owners)
	}
	got, err := io.ReadAll(io.NewSectionReader(e.data, 0, e.data.size))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read back %d bytes of %d: %v", len(got), len(want), err)
	}
	part := make([]byte, 5000)
	if n, err := e.data.ReadAt(part, 3000); n != 5000 || err != nil || !bytes.Equal(part, want[3000:8000]) {
		t.Fatalf("ReadAt across chunks: %d %v", n, err)
	}
	_, err = e.data.Write(make([]byte, 10*testChunk))
	wantStatus(t, "past the bound of one stream", err, http.StatusRequestEntityTooLarge, "too long")
}

// Renders in flight count against the budget and are never dropped; kept
// streams nobody uses make room, least recently used first.
func TestRenderedBudget(t *testing.T) {
	c := testCache(100, 4)
	_, err := c.add(t, "busy", "alice", 3*testChunk)
	if err != nil {
		t.Fatal(err)
	}
	if _, held, _ := c.state(); held != 3*testChunk {
		t.Fatalf("a render in flight of 3 chunks: %d bytes held", held)
	}
	_, err = c.add(t, "more", "bob", 2*testChunk)
	wantStatus(t, "past the budget with a render in flight", err, http.StatusServiceUnavailable, "retry in a few seconds, or ask without a Range header")
	if _, ok := c.entries["busy"]; !ok {
		t.Fatal("the render in flight was dropped")
	}

	c = testCache(100, 4)
	old, _ := c.add(t, "old", "alice", 100)
	c.finish(old, time.Now().Add(-2*time.Minute+time.Second))
	recent, _ := c.add(t, "recent", "alice", 100)
	c.finish(recent, time.Now().Add(-time.Second))
	served, _ := c.add(t, "served", "alice", 100)
	close(served.ready)
	if _, err := c.add(t, "new", "bob", 2*testChunk); err != nil {
		t.Fatalf("with two kept streams nobody uses: %v", err)
	}
	_, inOld := c.entries["old"]
	_, inRecent := c.entries["recent"]
	if inOld || !inRecent || c.entries["served"] == nil {
		t.Fatalf("room made: old kept %v, recent kept %v, served kept %v", inOld, inRecent, c.entries["served"] != nil)
	}
	_, err = c.add(t, "another", "carol", 2*testChunk)
	wantStatus(t, "past the budget", err, http.StatusServiceUnavailable, "too many recordings are being prepared")
	if entries, held, _ := c.state(); entries != 3 || held != 4*testChunk {
		t.Fatalf("after a refusal: %d streams, %d bytes held", entries, held)
	}
}

// One token holder's renders are bounded to its share: its own kept
// streams make room, others' do not, and another holder still renders.
func TestRenderedShare(t *testing.T) {
	c := testCache(1, 8)
	bobs, _ := c.add(t, "bobs", "bob", 100)
	c.finish(bobs, time.Now().Add(-time.Hour))
	mine, _ := c.add(t, "mine", "alice", 100)
	c.finish(mine, time.Now())
	if _, err := c.add(t, "a1", "alice", 100); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.entries["mine"]; ok || c.entries["bobs"] == nil {
		t.Fatalf("alice's own kept stream should make room, not bob's: %v", c.entries)
	}
	_, err := c.add(t, "a2", "alice", 100)
	wantStatus(t, "alice past her share", err, http.StatusTooManyRequests, "alice already has")
	if _, err := c.add(t, "b1", "bob", 100); err != nil {
		t.Fatalf("bob while alice's share is full: %v", err)
	}
}

// A kept stream expires after its time to live with no request coming; a
// render nobody waits for any more is stopped and leaves the cache.
func TestRenderedExpiry(t *testing.T) {
	c := testCache(100, 100)
	c.ttl = 50 * time.Millisecond
	e, _ := c.add(t, "a", "alice", 100)
	e.ttl = c.ttl
	close(e.ready)
	c.release(e)
	testkit.WaitFor(t, 5*time.Second, "the kept stream to expire", func() bool {
		entries, held, owners := c.state()
		return entries == 0 && held == 0 && len(owners) == 0
	})

	stopped := make(chan struct{})
	e, _ = c.add(t, "b", "alice", 100)
	e.cancel = func() { close(stopped) }
	c.release(e)
	select {
	case <-stopped:
	default:
		t.Fatal("the render nobody waits for was not stopped")
	}
	if c.entries["b"] != nil {
		t.Fatal("a render nobody waits for is still found by new requests")
	}
}
