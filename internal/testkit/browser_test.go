package testkit

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// playingPage shows two videos fed by canvas.captureStream() from a drawing that changes at
// every frame, and a third, never-playing one when dead is set.
func playingPage(dead bool) string {
	deadVideo := ""
	if dead {
		deadVideo = `<video data-source="dead" autoplay muted playsinline src="/missing.mp4"></video>`
	}
	return `<!doctype html>
<html><head><title>wall</title><link rel="icon" href="data:,"></head><body>
<canvas id="c" width="320" height="180"></canvas>
<video data-source="cam-a" autoplay muted playsinline></video>
<video data-source="cam-b" autoplay muted playsinline></video>
` + deadVideo + `
<script>
const canvas = document.getElementById('c');
const g = canvas.getContext('2d');
let n = 0;
function draw() {
  n++;
  g.fillStyle = 'hsl(' + (n * 7 % 360) + ' 80% 50%)';
  g.fillRect(0, 0, canvas.width, canvas.height);
  g.fillStyle = '#fff';
  g.font = '32px sans-serif';
  g.fillText('frame ' + n, 20, 100);
}
draw();
setInterval(draw, 40);
for (const v of document.querySelectorAll('video:not([src])')) {
  v.srcObject = canvas.captureStream(25);
}
console.log('wall page ready');
</script></body></html>`
}

func servePage(t *testing.T, html string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(html))
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/"
}

func TestWallPlaying(t *testing.T) {
	t.Parallel()
	url := servePage(t, playingPage(false))

	res := Wall(t, context.Background(), url, 2, 20*time.Second)
	if !res.OK {
		t.Fatalf("the wall did not play:\n%s", res)
	}
	for _, source := range []string{"cam-a", "cam-b"} {
		tile, ok := res.Tile(source)
		if !ok {
			t.Errorf("no tile %q:\n%s", source, res)
			continue
		}
		if tile.Width != 320 || tile.Height != 180 || !tile.Advancing || tile.CurrentTime <= 0 {
			t.Errorf("tile %q = %+v, want 320x180 and advancing", source, tile)
		}
	}
	if !strings.Contains(strings.Join(res.Console, "\n"), "wall page ready") {
		t.Errorf("console = %q, want the page's log message", res.Console)
	}
}

func TestWallNotPlaying(t *testing.T) {
	t.Parallel()
	const timeout = 3 * time.Second

	t.Run("never playing", func(t *testing.T) {
		t.Parallel()
		url := servePage(t, `<!doctype html><html><head><link rel="icon" href="data:,"></head><body>
<video data-source="dead" autoplay muted src="/missing.mp4"></video></body></html>`)
		start := time.Now()
		res := Wall(t, context.Background(), url, 1, timeout)
		elapsed := time.Since(start)
		if res.OK {
			t.Fatalf("a video with no media was reported playing:\n%s", res)
		}
		if !strings.Contains(res.Error, "timed out") {
			t.Errorf("error = %q, want a timeout", res.Error)
		}
		if tile, ok := res.Tile("dead"); !ok || tile.Width != 0 || tile.Advancing {
			t.Errorf("tile dead = %+v (found %v), want no picture", tile, ok)
		}
		// starting and closing the browser come on top of the timeout.
		if elapsed > timeout+15*time.Second {
			t.Errorf("Wall took %v, want about %v", elapsed, timeout)
		}
	})

	t.Run("fewer tiles than wanted", func(t *testing.T) {
		t.Parallel()
		url := servePage(t, playingPage(true))
		// the timeout leaves the two live tiles several sample intervals to show they advance.
		res := Wall(t, context.Background(), url, 3, timeout)
		if res.OK {
			t.Fatalf("3 tiles reported playing, only 2 can:\n%s", res)
		}
		if tile, ok := res.Tile("cam-a"); !ok || !tile.Advancing {
			t.Errorf("tile cam-a = %+v, want it playing", tile)
		}
		if tile, ok := res.Tile("dead"); !ok || tile.Advancing || tile.Width != 0 {
			t.Errorf("tile dead = %+v, want it not playing", tile)
		}
	})
}
