package console_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/testkit"
)

// pageTextsExpr lists what a person reads in the header, the controls, the call's tiles and
// the token or join form: every visible element's own text and its title, aria-label and
// placeholder, as "where: text". The language switch's options name the languages and are
// left out.
const pageTextsExpr = `(() => {
	const roots = [...document.querySelectorAll('header.bar, #join-panel, #token-panel, #pick, #tiles .label')];
	const out = [];
	const shown = (e) => (e.checkVisibility ? e.checkVisibility({ visibilityProperty: true }) : e.getClientRects().length > 0);
	for (const root of roots) {
		if (!shown(root)) continue;
		for (const e of [root, ...root.querySelectorAll('*')]) {
			if (!shown(e) || e.closest('option, script, style')) continue;
			const where = e.tagName.toLowerCase() + (e.id ? '#' + e.id : '');
			const own = [...e.childNodes].filter((n) => n.nodeType === Node.TEXT_NODE).map((n) => n.textContent).join('').trim();
			if (own && e.tagName !== 'SELECT') out.push(where + ': ' + own);
			for (const a of ['title', 'aria-label', 'placeholder']) {
				const v = e.getAttribute(a);
				if (v) out.push(where + ' [' + a + ']: ' + v);
			}
		}
	}
	return { texts: out, title: document.title, lang: document.documentElement.lang };
})()`

// headerGeometryExpr finds what a person would see as broken in the header and the form:
// header items overlapping one another, anything running off the sides of the window or cut
// short, a page wider than the window, and controls without an accessible name.
const headerGeometryExpr = `(() => {
	const box = (e) => { const r = e.getBoundingClientRect(); return { x: r.x, y: r.y + window.scrollY, w: r.width, h: r.height }; };
	const overlap = (a, b) => a.x < b.x + b.w - 0.5 && b.x < a.x + a.w - 0.5 && a.y < b.y + b.h - 0.5 && b.y < a.y + a.h - 0.5;
	const shown = (e) => (e.checkVisibility ? e.checkVisibility({ visibilityProperty: true }) : e.getClientRects().length > 0);
	const name = (e) => e.id || JSON.stringify(e.textContent.trim().slice(0, 30));
	const problems = [];
	const vw = window.innerWidth;
	const items = [...document.querySelectorAll('.bar h1, .bar .rec, .bar .summary, .bar .status, .bar a, .bar button, .bar select, .bar summary')].filter(shown);
	for (let i = 0; i < items.length; i++) for (let j = i + 1; j < items.length; j++) {
		if (items[i].contains(items[j]) || items[j].contains(items[i])) continue;
		if (overlap(box(items[i]), box(items[j]))) problems.push('header items ' + name(items[i]) + ' and ' + name(items[j]) + ' overlap');
	}
	const forms = [...document.querySelectorAll('#join-panel, #token-panel')].filter(shown);
	for (const e of [...items, ...forms.flatMap((f) => [...f.querySelectorAll('h2, p, label, input, button, a')])]) {
		if (!shown(e)) continue;
		const b = box(e);
		if (b.x < -0.5 || b.x + b.w > vw + 0.5) problems.push(name(e) + ' runs off the side: x ' + Math.round(b.x) + '..' + Math.round(b.x + b.w) + ' in ' + vw + ' px');
		if (e.tagName !== 'INPUT' && e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== 'visible') problems.push(name(e) + ' is cut: ' + e.scrollWidth + ' px in ' + e.clientWidth);
	}
	if (document.documentElement.scrollWidth > vw + 1) problems.push('the page is ' + document.documentElement.scrollWidth + ' px wide in a ' + vw + ' px window');
	for (const c of document.querySelectorAll('button, select, input, a, summary')) {
		if (!shown(c)) continue;
		const n = c.getAttribute('aria-label') || c.textContent.trim() || (c.labels && c.labels[0]?.textContent.trim()) || c.title;
		if (!n) problems.push('a ' + c.tagName.toLowerCase() + (c.id ? '#' + c.id : '') + ' has no accessible name');
	}
	return problems;
})()`

type pageTexts struct {
	Texts []string
	Title string
	Lang  string
}

// latinWord is a word in Latin letters: left in a Chinese page, it is English not translated.
var latinWord = regexp.MustCompile(`[A-Za-z]{2,}`)

// bareKey is a string key shown instead of its text.
var bareKey = regexp.MustCompile(`\b(call|review|nav)\.[a-z][a-z0-9.-]*[a-z]`)

// han is a Chinese character.
var han = regexp.MustCompile(`\p{Han}`)

// TestCallReviewLanguages opens the call page's join form, a call, and the review page's token
// form, and switches each to Traditional Chinese and back with the language switch: in Chinese
// no English word is left but names (the room, the participant, UTC), back in English every
// text reads as before, and at 390×844 and 1920×1080 nothing in the header overlaps or runs
// off the window in either language.
func TestCallReviewLanguages(t *testing.T) {
	h := startSFU(t)
	const who = "dana"
	// a token to watch and listen only: the page joins without opening a camera.
	claims := auth.Claims{Role: auth.RoleCommander, Room: callRoom, RoomSubscribe: true}
	claims.Subject = who
	watch := h.token(claims)
	p := testkit.PooledPage(t)
	p.Do("viewport", 5*time.Second, map[string]any{"width": 1920, "height": 1080})
	names := []string{callRoom, who, "UTC"}

	for _, pg := range []struct {
		name, url, ready, title string
	}{
		// the pages without a token first: the call keeps its token for the tab.
		{"review-form", h.base + "/review.html", `!document.getElementById('token-panel').hidden`, "回放"},
		{"call-form", h.base + "/call.html", `document.body.dataset.call === 'form'`, "通話"},
		{"call", callURL(h.base, callRoom, watch), `document.body.dataset.call === 'in-call' && !!document.querySelector('[data-tile="` + who + `"] .name')?.textContent`, "通話 · " + callRoom},
	} {
		p.Open(pg.url)
		p.WaitFor(pg.name+" ready", pg.ready, 20*time.Second)
		english := readTexts(t, p)
		if english.Lang != "en" {
			t.Errorf("%s: the page starts in %q, want en (the browser speaks English)", pg.name, english.Lang)
		}
		checkHeader(t, p, pg.name+", English, 1920×1080")

		switchLang(p, "zh-TW")
		chinese := readTexts(t, p)
		t.Logf("%s in Chinese: %q", pg.name, chinese.Texts)
		for _, s := range append(slices.Clone(english.Texts), chinese.Texts...) {
			if k := bareKey.FindString(s); k != "" {
				t.Errorf("%s: %q shows the key %s, which has no text", pg.name, s, k)
			}
		}
		if chinese.Title != pg.title {
			t.Errorf("%s: in Chinese the document's title is %q, want %q", pg.name, chinese.Title, pg.title)
		}
		hanTexts := 0
		for _, s := range chinese.Texts {
			text := s[strings.Index(s, ": ")+2:]
			for _, n := range names {
				text = strings.ReplaceAll(text, n, "")
			}
			if w := latinWord.FindAllString(text, -1); w != nil {
				t.Errorf("%s: in Chinese %q still has English: %v", pg.name, s, w)
			}
			if han.MatchString(text) {
				hanTexts++
			}
		}
		if hanTexts < len(chinese.Texts)/2 || len(chinese.Texts) < 5 {
			t.Errorf("%s: %d of %d texts in Chinese: %q", pg.name, hanTexts, len(chinese.Texts), chinese.Texts)
		}
		checkHeader(t, p, pg.name+", Chinese, 1920×1080")
		p.Do("viewport", 5*time.Second, map[string]any{"width": 390, "height": 844})
		checkHeader(t, p, pg.name+", Chinese, 390×844")
		p.Do("screenshot", 10*time.Second, map[string]any{"path": screenshotPath(t, pg.name+"-390-zh-TW.png")})

		switchLang(p, "en")
		checkHeader(t, p, pg.name+", English, 390×844")
		p.Do("viewport", 5*time.Second, map[string]any{"width": 1920, "height": 1080})
		back := readTexts(t, p)
		if !slices.Equal(back.Texts, english.Texts) || back.Title != english.Title {
			t.Errorf("%s: back in English the page reads\n  %q (title %q)\nwant as before\n  %q (title %q)", pg.name, back.Texts, back.Title, english.Texts, english.Title)
		}
	}
	if t.Failed() {
		p.LogConsole()
	}
}

func readTexts(t *testing.T, p *testkit.Page) pageTexts {
	t.Helper()
	var r pageTexts
	p.Eval(pageTextsExpr, &r)
	return r
}

// switchLang chooses lang with the page's language switch, as a person does.
func switchLang(p *testkit.Page, lang string) {
	p.Do("eval", 5*time.Second, map[string]any{"expr": fmt.Sprintf(`(() => { const s = document.getElementById('lang-switch');
		s.value = %q; s.dispatchEvent(new Event('change')); return true; })()`, lang)})
	p.WaitFor("the page in "+lang, fmt.Sprintf(`document.documentElement.lang === %q`, lang), 5*time.Second)
}

func checkHeader(t *testing.T, p *testkit.Page, what string) {
	t.Helper()
	var problems []string
	p.Eval(headerGeometryExpr, &problems)
	if len(problems) > 0 {
		t.Errorf("%s: %s", what, strings.Join(problems, "; "))
	}
}

// TestCallReviewStrings checks the call and review pages' strings in node: every key has both
// languages with the same {vars}, the Chinese is Chinese, and the call's helpers speak the
// language chosen.
func TestCallReviewStrings(t *testing.T) {
	const script = `
globalThis.localStorage = { getItem: () => 'zh-TW', setItem: () => {} };
const { CALL_STRINGS } = await import('./call-strings.js');
const { REVIEW_STRINGS } = await import('./review-strings.js');
const { layerLabel } = await import('./call-tiles.js');
const { CallError, why } = await import('./call-signal.js');
const { said } = await import('./call-strings.js');
const err = new CallError('network', said('call.sig.broke', { code: 1006 }));
console.log(JSON.stringify({
  call: CALL_STRINGS, review: REVIEW_STRINGS,
  layer: layerLabel('off', 'bandwidth').text,
  lost: String(said('call.lost', { reason: why(err) })),
  server: String(said('call.join.refused', { reason: why(new CallError('forbidden', 'token expired')) })),
}));
`
	var res struct {
		Call, Review map[string]map[string]string
		Layer, Lost  string
		Server       string
	}
	runModule(t, script, &res)
	vars := regexp.MustCompile(`\{\w+\}`)
	// keys whose text is the same in both languages: only vars, times and names.
	same := map[string]bool{"review.server": true, "review.clock": true, "review.tl.view": true, "review.tl.part": true}
	for page, d := range map[string]map[string]map[string]string{"call": res.Call, "review": res.Review} {
		en, zh := d["en"], d["zh-TW"]
		if len(en) < 20 {
			t.Fatalf("%s: %d English strings", page, len(en))
		}
		for k, e := range en {
			z, ok := zh[k]
			if !ok {
				t.Errorf("%s: %s has no Chinese", page, k)
				continue
			}
			ev, zv := vars.FindAllString(e, -1), vars.FindAllString(z, -1)
			slices.Sort(ev)
			slices.Sort(zv)
			if !slices.Equal(ev, zv) {
				t.Errorf("%s: %s has vars %v in English and %v in Chinese", page, k, ev, zv)
			}
			if !same[k] && !han.MatchString(z) {
				t.Errorf("%s: %s in Chinese is %q", page, k, z)
			}
		}
		for k := range zh {
			if _, ok := en[k]; !ok {
				t.Errorf("%s: %s has no English", page, k)
			}
		}
	}
	// every key the pages' files name has a text.
	files, err := filepath.Glob("static/call*")
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob("static/review*")
	keyRef := regexp.MustCompile(`['":=](call|review)\.[a-z0-9.-]*[a-z0-9]`)
	used := 0
	for _, f := range append(files, more...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range keyRef.FindAllString(string(b), -1) {
			k := m[1:]
			if strings.HasSuffix(k, ".js") || strings.HasSuffix(k, ".css") || strings.HasSuffix(k, ".html") {
				continue
			}
			used++
			if _, ok := res.Call["en"][k]; !ok && res.Review["en"][k] == "" {
				t.Errorf("%s uses the key %s, which has no text", f, k)
			}
		}
	}
	if used < 100 {
		t.Errorf("only %d keys found in the call and review pages' files", used)
	}
	if res.Layer != "已暫停：頻寬不足" {
		t.Errorf("layerLabel in Chinese = %q", res.Layer)
	}
	if res.Lost != "連線中斷（連線異常中斷（代碼 1006）），正在重新連線…" {
		t.Errorf("a lost connection in Chinese reads %q", res.Lost)
	}
	if res.Server != "伺服器拒絕加入：token expired" {
		t.Errorf("a server's refusal in Chinese reads %q, want the server's reason as it came", res.Server)
	}
}
