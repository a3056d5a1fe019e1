package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"fieldvideo/internal/auth"
	rooms "fieldvideo/internal/session"
)

// tileBox is where a tile (or the stage) is on the page, and whether its name shows whole.
type tileBox struct {
	Key                 string
	X, Y, W, H          float64
	NameShown, NameFits bool
}

type layoutState struct {
	VW, VH, Top float64 // viewport, and where the call area begins (below the header)
	ScrollH     float64
	Stage       *tileBox
	Tiles       []tileBox
}

const layoutExpr = `(() => {
	const box = (el, key) => {
		const r = el.getBoundingClientRect(), n = el.querySelector('.name');
		const nr = n ? n.getBoundingClientRect() : null;
		return { key, x: r.left + window.scrollX, y: r.top + window.scrollY, w: r.width, h: r.height,
			nameShown: !!n && n.textContent.trim() !== '' && nr.width > 0 && nr.left >= r.left - 1 && nr.right <= r.right + 1,
			nameFits: !!n && n.scrollWidth <= n.clientWidth + 1 };
	};
	const stage = document.getElementById('stage');
	const call = document.getElementById('call').getBoundingClientRect();
	return { vw: window.innerWidth, vh: window.innerHeight, top: call.top + window.scrollY,
		scrollH: document.documentElement.scrollHeight,
		stage: stage.hidden ? null : box(stage, 'stage'),
		tiles: [...document.querySelectorAll('#tiles > .tile')].map((t) => box(t, t.dataset.tile)) };
})()`

// checkLayout checks what any call layout must be: no tile overlaps another, every name
// shows whole, nothing runs off the sides; on a desktop everything fits the window and the
// tiles use a good share of it, on a phone a single full-width column scrolls.
func checkLayout(t *testing.T, what string, s layoutState, phone bool) {
	t.Helper()
	boxes := append([]tileBox(nil), s.Tiles...)
	if s.Stage != nil {
		boxes = append(boxes, *s.Stage)
	}
	area := 0.0
	for i, a := range boxes {
		area += a.W * a.H
		if a.X < -1 || a.X+a.W > s.VW+1 {
			t.Errorf("%s: %s runs off the side: x %.0f..%.0f in a %.0f px window", what, a.Key, a.X, a.X+a.W, s.VW)
		}
		if !phone && a.Y+a.H > s.VH+1 {
			t.Errorf("%s: %s ends at %.0f px, below the %.0f px window", what, a.Key, a.Y+a.H, s.VH)
		}
		if !a.NameShown || !a.NameFits {
			t.Errorf("%s: %s's name is hidden or cut", what, a.Key)
		}
		if phone && a.W < 0.9*s.VW-24 {
			t.Errorf("%s: on a phone %s is %.0f px wide in a %.0f px window, want the full width", what, a.Key, a.W, s.VW)
		}
		for _, b := range boxes[i+1:] {
			ox := min(a.X+a.W, b.X+b.W) - max(a.X, b.X)
			oy := min(a.Y+a.H, b.Y+b.H) - max(a.Y, b.Y)
			if ox > 1 && oy > 1 {
				t.Errorf("%s: %s and %s overlap by %.0f×%.0f px", what, a.Key, b.Key, ox, oy)
			}
		}
	}
	used := area / (s.VW * (s.VH - s.Top))
	t.Logf("%s: %d tiles%s use %.0f%% of the call area", what, len(s.Tiles), map[bool]string{true: " and the stage"}[s.Stage != nil], 100*used)
	if !phone && used < 0.4 {
		t.Errorf("%s: the tiles use %.0f%% of the call area, want at least 40%%", what, 100*used)
	}
}

// TestCallLayout fills the call page with 2 to 9 participants, with and without a pinned
// field camera, on a 1920×1080 display and a 390×844 phone.
func TestCallLayout(t *testing.T) {
	h := startCallSFU(t)
	stopCam := h.publish("cam1", false)
	defer stopCam()
	api, err := rooms.NewAPI(rooms.APIParams{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	ws := "ws://" + h.httpAddr + "/v1/rooms/" + callRoom + "/ws"
	var others []*rooms.Client
	join := func(n int) {
		for len(others) < n {
			who := fmt.Sprintf("responder-%d", len(others)+1)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			c, err := rooms.Dial(ctx, rooms.ClientParams{URL: ws, Token: h.callToken(who, auth.RoleResponder, callRoom), API: api})
			cancel()
			if err != nil {
				t.Fatalf("join %s: %v", who, err)
			}
			t.Cleanup(func() { _ = c.Close() })
			others = append(others, c)
		}
	}

	carol := openCall(t, "carol", callURL(h.base, callRoom, h.callToken("carol", auth.RoleCommander, callRoom)))
	carol.waitFor("carol in the call", `!!document.querySelector('[data-tile="carol"]')`, 20*time.Second)
	var wallLink bool
	carol.Eval(`(() => { const a = [...document.querySelectorAll('header a')].find((a) => a.textContent.trim() === 'Wall'); return !!a && ['/', '/index.html'].includes(new URL(a.href).pathname); })()`, &wallLink)
	if !wallLink {
		t.Errorf("the call page has no link to the wall")
	}
	read := func(what string, tiles int, stage bool) layoutState {
		var s layoutState
		raw := carol.waitFor(what, fmt.Sprintf(`(() => { const s = %s;
			return s.tiles.length === %d && (s.stage !== null) === %v && s.tiles.every((t) => t.w > 0) && s; })()`, layoutExpr, tiles, stage), 20*time.Second)
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	shot := func(name string) {
		carol.Do("screenshot", 10*time.Second, map[string]any{"path": callShotPath(t, name)})
	}

	carol.Do("viewport", 5*time.Second, map[string]any{"width": 1920, "height": 1080})
	for _, n := range []int{2, 4, 6, 9} {
		join(n - 1)
		what := fmt.Sprintf("1920×1080, %d in the call", n)
		checkLayout(t, what, read(what, n, false), false)
		shot(fmt.Sprintf("call-layout-%d.png", n))
	}

	carol.click("#fields summary")
	carol.click(`[data-pin="field:cam1/video"]`)
	carol.waitPlaying("field:cam1/video", 5, 40*time.Second)
	what := "1920×1080, 9 in the call and a pinned camera"
	checkLayout(t, what, read(what, 9, true), false)
	shot("call-layout-9-pinned.png")

	for _, c := range others[3:] {
		_ = c.Close()
	}
	what = "1920×1080, 4 in the call and a pinned camera"
	checkLayout(t, what, read(what, 4, true), false)
	shot("call-layout-4-pinned.png")

	carol.Do("viewport", 5*time.Second, map[string]any{"width": 390, "height": 844})
	what = "390×844, 4 in the call and a pinned camera"
	s := read(what, 4, true)
	checkLayout(t, what, s, true)
	if s.ScrollH <= s.VH {
		t.Logf("%s: everything fits without scrolling", what)
	}
	shot("call-layout-phone.png")
	if t.Failed() {
		var names []string
		for _, b := range s.Tiles {
			names = append(names, b.Key)
		}
		t.Logf("tiles on the phone: %s", strings.Join(names, ", "))
	}
}
