package console_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"fieldvideo/internal/testkit"
)

// geometryExpr measures the wall as a person sees it, after the next frame is drawn: the tiles shown, whether any two
// overlap, whether every shown tile's name is whole and inside its tile, whether the header's
// controls overlap, and whether every control has an accessible name.
const geometryExpr = `new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))).then(() => {
	const box = (e) => { const r = e.getBoundingClientRect(); return { x: r.x, y: r.y + window.scrollY + (document.querySelector('.main')?.scrollTop ?? 0), w: r.width, h: r.height }; };
	const overlap = (a, b) => a.x < b.x + b.w - 0.5 && b.x < a.x + a.w - 0.5 && a.y < b.y + b.h - 0.5 && b.y < a.y + a.h - 0.5;
	const problems = [];
	const tiles = [...document.querySelectorAll('.tile')].filter((t) => t.offsetParent !== null);
	const shown = tiles.map((t) => ({ name: t.dataset.tile, box: box(t), focused: t.classList.contains('focused') }));
	for (let i = 0; i < shown.length; i++) for (let j = i + 1; j < shown.length; j++)
		if (overlap(shown[i].box, shown[j].box)) problems.push('tiles ' + shown[i].name + ' and ' + shown[j].name + ' overlap');
	for (const t of tiles) {
		const n = t.querySelector('.name'), tb = box(t), nb = box(n);
		if (n.textContent !== t.dataset.tile) problems.push('tile ' + t.dataset.tile + ' is named ' + JSON.stringify(n.textContent));
		if (n.scrollWidth > n.clientWidth + 1 || nb.w < 1) problems.push('the name of ' + t.dataset.tile + ' is cut: ' + n.scrollWidth + ' px in ' + n.clientWidth);
		if (nb.x < tb.x - 0.5 || nb.x + nb.w > tb.x + tb.w + 0.5 || nb.y < tb.y - 0.5 || nb.y + nb.h > tb.y + tb.h + 0.5)
			problems.push('the name of ' + t.dataset.tile + ' leaves its tile');
		const badge = t.querySelector('.badge');
		if (badge.scrollWidth > badge.clientWidth + 1) problems.push('the badge of ' + t.dataset.tile + ' is cut');
	}
	const controls = [...document.querySelectorAll('.bar a, .bar button, .bar select, .bar h1, .bar .summary')].filter((e) => e.offsetParent !== null && e.getBoundingClientRect().width > 0);
	for (let i = 0; i < controls.length; i++) for (let j = i + 1; j < controls.length; j++) {
		if (controls[i].contains(controls[j]) || controls[j].contains(controls[i])) continue;
		if (overlap(box(controls[i]), box(controls[j]))) problems.push('header items ' + (controls[i].id || controls[i].textContent) + ' and ' + (controls[j].id || controls[j].textContent) + ' overlap');
	}
	for (const c of document.querySelectorAll('button, select, input, a')) {
		if (c.offsetParent === null) continue;
		const name = c.getAttribute('aria-label') || c.textContent.trim() || (c.labels && c.labels[0]?.textContent.trim()) || c.title;
		if (!name) problems.push('a ' + c.tagName.toLowerCase() + ' has no accessible name');
	}
	const main = document.querySelector('.main');
	return { problems, shown, layout: document.getElementById('grid').dataset.layout,
		page: document.getElementById('pager').hidden ? '' : document.getElementById('page-label').textContent,
		scrollable: main.scrollHeight > main.clientHeight + 1 || document.documentElement.scrollHeight > window.innerHeight + 1 };
})`

type wallGeometry struct {
	Problems []string
	Shown    []struct {
		Name    string
		Box     struct{ X, Y, W, H float64 }
		Focused bool
	}
	Layout     string
	Page       string
	Scrollable bool
}

func (g wallGeometry) names() []string {
	var out []string
	for _, s := range g.Shown {
		out = append(out, s.Name)
	}
	return out
}

func (g wallGeometry) width(name string) float64 {
	for _, s := range g.Shown {
		if s.Name == name {
			return s.Box.W
		}
	}
	return 0
}

// TestWallLayouts shows five sources, one with a long name as an ffmpeg push gets, in every
// layout at 1920×1080 and on a phone at 390×844: nothing overlaps, every name is whole, a
// layout change leaves the videos playing, and the page speaks English and Traditional Chinese.
func TestWallLayouts(t *testing.T) {
	h := startSFU(t)
	names := []string{"cam1", "cam2", "cam3", "north-gate-entrance-ffmpeg-push-04", "responder-ambulance-12"}
	for _, n := range names {
		h.publish(n, false)
	}
	p := testkit.PooledPage(t)
	defer p.LogConsole()
	p.Do("viewport", 5*time.Second, map[string]any{"width": 1920, "height": 1080})
	p.Open(h.base + "/?token=" + h.wallToken())
	for _, n := range names {
		p.WaitPlaying(n, 3, 40*time.Second)
	}
	measure := func(what string) wallGeometry {
		t.Helper()
		var g wallGeometry
		p.Eval(geometryExpr, &g)
		if len(g.Problems) > 0 {
			t.Errorf("%s: %s", what, strings.Join(g.Problems, "; "))
		}
		return g
	}
	setLayout := func(name string) {
		t.Helper()
		p.Do("eval", 5*time.Second, map[string]any{"expr": fmt.Sprintf(`(() => { const s = document.getElementById('layout');
			s.value = %q; s.dispatchEvent(new Event('change')); return true; })()`, name)})
	}

	g := measure("1920×1080, all")
	if len(g.Shown) != 5 || g.Layout != "auto" {
		t.Errorf("1920×1080: layout %q shows %v, want all five", g.Layout, g.names())
	}
	p.Do("screenshot", 10*time.Second, map[string]any{"path": screenshotPath(t, "wall-1920-all.png")})

	setLayout("2x2")
	g = measure("2×2, page 1")
	if len(g.Shown) != 4 || g.Page != "Page 1 of 2" {
		t.Errorf("2×2: %v on %q, want four tiles on page 1 of 2", g.names(), g.Page)
	}
	p.Do("click", 5*time.Second, map[string]any{"selector": "#page-next"})
	g = measure("2×2, page 2")
	if len(g.Shown) != 1 || g.Shown[0].Name != "responder-ambulance-12" || g.Page != "Page 2 of 2" {
		t.Errorf("2×2 page 2: %v on %q, want the fifth tile alone", g.names(), g.Page)
	}
	// tiles of the other page end their sessions: a wall of many pages decodes what it shows.
	h.waitViewers("cam1", 0, 15*time.Second)
	h.waitViewers("responder-ambulance-12", 1, 15*time.Second)

	setLayout("focus")
	p.WaitPlaying("cam1", 20, 20*time.Second)
	g = measure("focus + strip")
	if len(g.Shown) != 5 || !g.Shown[0].Focused || g.width("cam1") < 3*g.width("cam2") {
		t.Errorf("focus: %+v, want cam1 focused, at least three times as wide as a strip tile", g.Shown)
	}
	// a click on a strip tile makes it the large one; its video keeps playing in place.
	p.Do("click", 5*time.Second, map[string]any{"selector": `[data-tile="cam3"]`})
	g = measure("focus on cam3")
	if g.width("cam3") < 3*g.width("cam1") {
		t.Errorf("after a click on cam3: %+v, want cam3 the large tile", g.Shown)
	}
	p.WaitPlaying("cam3", 20, 20*time.Second)
	p.Do("screenshot", 10*time.Second, map[string]any{"path": screenshotPath(t, "wall-1920-focus.png")})

	// a phone: one scrolling column of every tile, whatever the layout chosen.
	p.Do("viewport", 5*time.Second, map[string]any{"width": 390, "height": 844})
	p.WaitFor("the phone column", `document.getElementById('grid').dataset.layout === 'narrow'`, 5*time.Second)
	g = measure("390×844")
	if len(g.Shown) != 5 || !g.Scrollable {
		t.Errorf("390×844: %v shown, scrollable %v; want all five in a column that scrolls", g.names(), g.Scrollable)
	}
	for i := 1; i < len(g.Shown); i++ {
		a, b := g.Shown[i-1].Box, g.Shown[i].Box
		if b.Y < a.Y+a.H || b.X != a.X {
			t.Errorf("390×844: %s is not below %s in one column: %+v then %+v", g.Shown[i].Name, g.Shown[i-1].Name, a, b)
		}
	}
	// the last tile can be scrolled into view.
	var inView bool
	p.Eval(`(() => { const t = document.querySelector('[data-tile="responder-ambulance-12"]'); t.scrollIntoView();
		const r = t.getBoundingClientRect(); return r.bottom <= window.innerHeight + 1 && r.top >= 0; })()`, &inView)
	if !inView {
		t.Error("390×844: the last tile cannot be scrolled into view")
	}
	p.Do("screenshot", 10*time.Second, map[string]any{"path": screenshotPath(t, "wall-390-column.png")})

	// Traditional Chinese, from the switch; the choice outlives a reload.
	p.Do("eval", 5*time.Second, map[string]any{"expr": `(() => { const s = document.getElementById('lang-switch');
		s.value = 'zh-TW'; s.dispatchEvent(new Event('change')); return true; })()`})
	var texts struct{ Nav, Summary, Lang string }
	read := `({ nav: document.querySelector('.nav-link[aria-current=page]').textContent, summary: document.getElementById('summary').textContent, lang: document.documentElement.lang })`
	p.Eval(read, &texts)
	if texts.Nav != "電視牆" || !strings.Contains(texts.Summary, "個來源") || texts.Lang != "zh-TW" {
		t.Errorf("in Traditional Chinese the page reads %+v", texts)
	}
	p.Open(h.base + "/")
	p.WaitPlaying("cam1", 3, 40*time.Second)
	p.WaitFor("the summary in Chinese", `document.getElementById('summary').textContent.includes('個來源')`, 10*time.Second)
	measure("390×844 in Traditional Chinese")
	p.Do("screenshot", 10*time.Second, map[string]any{"path": screenshotPath(t, "wall-390-zh-TW.png")})
}
