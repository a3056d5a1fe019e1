package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/testkit"
)

// screenshotPath is where TestWall saves a picture of the wall with two tiles: under the
// directory named by FIELDVIDEO_SCREENSHOT_DIR when set, else in the test's temporary directory.
func screenshotPath(t *testing.T, name string) string {
	dir := os.Getenv("FIELDVIDEO_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	return filepath.Join(dir, name)
}

func TestWall(t *testing.T) {
	h := startSFU(t)
	h.publish("cam1", true)
	h.publish("cam2", true)
	wallToken := h.wallToken()

	t.Run("two live sources play", func(t *testing.T) {
		res := testkit.Wall(t, context.Background(), h.base+"/?token="+wallToken, 2, 40*time.Second)
		if !res.OK {
			t.Fatalf("the wall did not play both sources:\n%s", res)
		}
		if len(res.Tiles) != 2 {
			t.Errorf("%d video tiles, want 2:\n%s", len(res.Tiles), res)
		}
		for _, name := range []string{"cam1", "cam2"} {
			tile, ok := res.Tile(name)
			if !ok {
				t.Errorf("no tile for %s:\n%s", name, res)
				continue
			}
			if tile.Width != 640 || tile.Height != 360 || !tile.Advancing {
				t.Errorf("tile %s = %+v, want a 640x360 picture that advances", name, tile)
			}
		}
	})

	t.Run("token form", func(t *testing.T) {
		p := testkit.PooledPage(t)
		formShown := `(() => { const f = document.getElementById('token-panel');
			return f && !f.hidden && f.offsetHeight > 0 && document.getElementById('token-reason').textContent; })()`

		// no token at all: the form, not a blank page.
		p.Open(h.base + "/")
		var reason string
		if err := json.Unmarshal(p.WaitFor("the token form", formShown, 10*time.Second), &reason); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(reason, "needs an access token") {
			t.Errorf("token form reason = %q, want it to say a token is needed", reason)
		}
		var videos int
		p.Eval(`document.querySelectorAll('video').length`, &videos)
		if videos != 0 {
			t.Errorf("%d video elements without a token, want none", videos)
		}

		// a token the server refuses: the form again, with the server's reason.
		p.Do("fill", 5*time.Second, map[string]any{"selector": "#token-input", "value": "not-a-token"})
		p.Do("click", 5*time.Second, map[string]any{"selector": "#token-form button[type=submit]"})
		refused := `(() => { const r = document.getElementById('token-reason').textContent;
			return !document.getElementById('token-panel').hidden && r.includes('refused') && r; })()`
		if err := json.Unmarshal(p.WaitFor("the refused-token reason", refused, 10*time.Second), &reason); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(reason, "invalid token") {
			t.Errorf("token form reason = %q, want the server's reason (invalid token)", reason)
		}
		p.Do("screenshot", 10*time.Second, map[string]any{"path": screenshotPath(t, "wall-token-form.png")})

		// a good token typed in: both sources play.
		p.Do("fill", 5*time.Second, map[string]any{"selector": "#token-input", "value": wallToken})
		p.Do("press", 5*time.Second, map[string]any{"selector": "#token-input", "key": "Enter"})
		for _, name := range []string{"cam1", "cam2"} {
			tile := p.WaitPlaying(name, 10, 40*time.Second)
			if tile.Width != 640 || tile.Height != 360 {
				t.Errorf("tile %s is %dx%d, want 640x360", name, tile.Width, tile.Height)
			}
		}
		for _, name := range []string{"cam1", "cam2"} {
			p.WaitFor(name+" shown live", tileStateExpr(name)+` === 'live'`, 10*time.Second)
		}
		shot := screenshotPath(t, "wall-two-tiles.png")
		p.Do("screenshot", 10*time.Second, map[string]any{"path": shot})
		if st, err := os.Stat(shot); err != nil || st.Size() == 0 {
			t.Errorf("screenshot %s: %v", shot, err)
		}
		t.Logf("screenshot of the wall: %s", shot)

		// a reload keeps the token (sessionStorage) although the address has none.
		p.Open(h.base + "/")
		p.WaitPlaying("cam1", 10, 40*time.Second)

		// an expired token in the address replaces the stored one and is refused.
		expired, err := auth.Mint(testSecret, auth.Claims{Role: auth.RoleWall, View: []string{"*"}}, time.Minute, time.Now().Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		p.Open(h.base + "/?token=" + expired)
		if err := json.Unmarshal(p.WaitFor("the refused-token reason", refused, 10*time.Second), &reason); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(reason, "expired") {
			t.Errorf("token form reason = %q, want it to say the token expired", reason)
		}
		var stored string
		p.Eval(`location.search + '|' + (sessionStorage.getItem('fieldvideo.token') ?? '')`, &stored)
		if stored != "|" {
			t.Errorf("after a refused token, address query|stored token = %q, want both empty", stored)
		}
	})
}

func TestWallEnlargeAndSound(t *testing.T) {
	h := startSFU(t)
	h.publish("cam1", true)
	h.publish("cam2", true)
	p := testkit.PooledPage(t)
	p.Open(h.base + "/?token=" + h.wallToken())
	p.WaitPlaying("cam1", 5, 40*time.Second)
	p.WaitPlaying("cam2", 5, 40*time.Second)

	enlarged := func(name string) string {
		return fmt.Sprintf(`(() => { const t = document.querySelector('[data-tile=%q]');
			const r = t.getBoundingClientRect();
			return t.classList.contains('enlarged') && Math.round(r.width) === innerWidth && Math.round(r.height) === innerHeight; })()`, name)
	}
	p.Do("click", 5*time.Second, map[string]any{"selector": `[data-tile="cam1"] video`})
	p.WaitFor("cam1 enlarged to the whole window", enlarged("cam1"), 5*time.Second)
	p.Do("press", 5*time.Second, map[string]any{"selector": "body", "key": "Escape"})
	p.WaitFor("cam1 back in the grid", `!document.querySelector('.tile.enlarged')`, 5*time.Second)
	p.Do("click", 5*time.Second, map[string]any{"selector": `[data-tile="cam2"] video`})
	p.WaitFor("cam2 enlarged to the whole window", enlarged("cam2"), 5*time.Second)
	p.Do("click", 5*time.Second, map[string]any{"selector": `[data-tile="cam2"] video`})
	p.WaitFor("cam2 back in the grid", `!document.querySelector('.tile.enlarged')`, 5*time.Second)

	muted := `[...document.querySelectorAll('video[data-source]')].map((v) => v.dataset.source + ':' + (v.muted ? 'muted' : 'sound')).join(' ')`
	var got string
	p.Eval(muted, &got)
	if got != "cam1:muted cam2:muted" {
		t.Errorf("at start: %s, want every tile muted", got)
	}
	// one tile has sound at a time; the button does not enlarge its tile.
	for _, step := range []struct{ click, want string }{
		{"cam2", "cam1:muted cam2:sound"},
		{"cam1", "cam1:sound cam2:muted"},
		{"cam1", "cam1:muted cam2:muted"},
	} {
		p.Do("click", 5*time.Second, map[string]any{"selector": fmt.Sprintf(`[data-tile=%q] .sound`, step.click)})
		p.Eval(muted, &got)
		if got != step.want {
			t.Errorf("after the sound button of %s: %s, want %s", step.click, got, step.want)
		}
		var anyEnlarged bool
		p.Eval(`Boolean(document.querySelector('.tile.enlarged'))`, &anyEnlarged)
		if anyEnlarged {
			t.Errorf("the sound button of %s enlarged a tile", step.click)
		}
	}
	p.WaitPlaying("cam1", 5, 10*time.Second)
}

// recoveryCase is how a source goes away and comes back.
type recoveryCase struct {
	name string
	// outage takes the source away and brings it back.
	outage func(t *testing.T, h *wallSFU, p *testkit.Page, stop func())
	// audio tells whether the source has audio at the end.
	audio bool
	// kiosk opens the wall in kiosk mode: no header, and no one to touch it.
	kiosk bool
}

func TestWallRecovers(t *testing.T) {
	cases := []recoveryCase{
		{
			// the SFU keeps the viewer's session; the picture resumes on it.
			name:  "publisher returns with the same tracks",
			audio: true,
			outage: func(t *testing.T, h *wallSFU, p *testkit.Page, stop func()) {
				stop()
				h.waitState("cam1", "offline", 10*time.Second)
				p.WaitFor("cam1 shown offline", tileStateExpr("cam1")+` === 'offline'`, 10*time.Second)
				p.Do("screenshot", 10*time.Second, map[string]any{"path": screenshotPath(t, "wall-offline.png")})
				h.publish("cam1", true)
			},
		},
		{
			// the SFU ends the viewer's session; the page must connect again.
			name:  "publisher returns without audio",
			audio: false,
			outage: func(t *testing.T, h *wallSFU, p *testkit.Page, stop func()) {
				stop()
				h.waitState("cam1", "offline", 10*time.Second)
				p.WaitFor("cam1 shown offline", tileStateExpr("cam1")+` === 'offline'`, 10*time.Second)
				h.publish("cam1", false)
			},
		},
		{
			// every session ends and the API is unreachable for a while.
			name:  "SFU restarts",
			audio: true,
			kiosk: true,
			outage: func(t *testing.T, h *wallSFU, p *testkit.Page, stop func()) {
				h.restart()
				// the publisher reconnects to the new server by itself.
				h.waitState("cam1", "live", 20*time.Second)
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := startSFU(t)
			stop := h.publish("cam1", true)
			p := testkit.PooledPage(t)
			defer p.LogConsole()
			fragment := ""
			if tc.kiosk {
				fragment = "#kiosk"
			}
			p.Open(h.base + "/?token=" + h.wallToken() + fragment)

			before := p.WaitPlaying("cam1", 10, 40*time.Second)
			if before.Width != 640 {
				t.Fatalf("before the outage: tile %+v, want a 640-pixel-wide picture", before)
			}
			var query string
			p.Eval(`location.search`, &query)
			if query != "" {
				t.Errorf("the address still has a query %q: the token must be removed from it", query)
			}

			tc.outage(t, h, p, stop)

			after := p.WaitPlaying("cam1", 25, 40*time.Second)
			if after.Width != 640 {
				t.Errorf("after the outage: tile %+v, want a 640-pixel-wide picture", after)
			}
			p.WaitFor("cam1 shown live", tileStateExpr("cam1")+` === 'live'`, 10*time.Second)
			var header bool
			p.Eval(`document.querySelector('.bar').offsetHeight > 0`, &header)
			if header == tc.kiosk {
				t.Errorf("header shown = %v in kiosk mode %v", header, tc.kiosk)
			}
			// sessions the page replaced were ended, not left to time out.
			h.waitViewers("cam1", 1, 15*time.Second)
			var hasSound bool
			p.Eval(`!document.querySelector('[data-tile="cam1"] .sound').hidden`, &hasSound)
			if hasSound != tc.audio {
				t.Errorf("sound button shown = %v, want %v (source has audio: %v)", hasSound, tc.audio, tc.audio)
			}
			var videos int
			p.Eval(`document.querySelectorAll('video[data-source]').length`, &videos)
			if videos != 1 {
				t.Errorf("%d video tiles, want 1", videos)
			}
		})
	}
}

// TestWallPageHideEndsSessions checks that leaving the page DELETEs its WHEP sessions.
func TestWallPageHideEndsSessions(t *testing.T) {
	h := startSFU(t)
	h.publish("cam1", false)
	base, requests := h.proxy()
	p := testkit.PooledPage(t)
	p.Open(base + "/?token=" + h.wallToken())
	p.WaitPlaying("cam1", 5, 40*time.Second)
	h.waitViewers("cam1", 1, 10*time.Second)
	if requests.has("DELETE", "/cam1/whep/") {
		t.Fatalf("the page DELETEd its session while playing; requests:\n%s", requests)
	}
	p.Open("about:blank")
	testkit.WaitFor(t, 10*time.Second, "the page's DELETE of its WHEP session", func() bool {
		return requests.has("DELETE", "/cam1/whep/")
	})
	h.waitViewers("cam1", 0, 10*time.Second)
}
