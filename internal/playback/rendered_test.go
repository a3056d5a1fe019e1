package playback

import (
	"testing"
	"time"
)

// Rendered windows expire after their time to live, a window that may
// still be recording sooner; one being rendered stays.
func TestRenderedEviction(t *testing.T) {
	now := time.Now()
	ready := make(chan struct{})
	close(ready)
	c := &renderCache{entries: map[string]*rendered{
		"live": {ready: ready, used: now.Add(-6 * time.Second), ttl: renderedLiveTTL, b: make([]byte, 10)},
		"old":  {ready: ready, used: now.Add(-6 * time.Second), ttl: renderedTTL, b: make([]byte, 10)},
		"busy": {ready: make(chan struct{}), used: now.Add(-time.Hour), ttl: renderedLiveTTL},
	}, total: 20}
	c.evictLocked(now)
	if _, ok := c.entries["live"]; ok || c.entries["old"] == nil || c.entries["busy"] == nil || c.total != 10 {
		t.Fatalf("after 6 s: %v, total %d", c.entries, c.total)
	}
}
