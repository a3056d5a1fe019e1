package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/conf"
	"fieldvideo/internal/ingest"
	"fieldvideo/internal/sfu"
	"fieldvideo/internal/stream"
	"fieldvideo/internal/testkit"
	"fieldvideo/internal/whip"
	"fieldvideo/web/console"
)

// camerasPass is the test camera's password; the page must never show it.
const camerasPass = "console-cam-pw-91d2"

// cameraSite is an ingest (with its cameras API and a WHIP uplink of every live source) and
// an SFU serving the console and relaying /v1/cameras to that ingest, all in-process on
// loopback, as cmd/ingest and cmd/sfu run them.
type cameraSite struct {
	base string // the SFU
}

func startCameraSite(t *testing.T) *cameraSite {
	t.Helper()
	v, err := auth.NewVerifier(testSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	openAudit := func(name string) *audit.Log {
		al, err := audit.Open(audit.Params{File: filepath.Join(dir, name), KeyFile: filepath.Join(dir, name+".key")})
		if err != nil {
			t.Fatal(err)
		}
		return al
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))

	// the uplink: every source that goes live is published to the SFU by WHIP.
	api, err := whip.NewAPI(whip.APIParams{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	upToken, err := auth.Mint(testSecret, auth.Claims{Role: auth.RoleCamera, Publish: []string{"*"}}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	site := &cameraSite{}
	var mu sync.Mutex
	uplinks := map[string]func(){}
	var wg sync.WaitGroup
	live := func(name string, st *stream.Stream) {
		pub, err := whip.NewPublisher(whip.PublisherParams{
			Endpoint: whip.Endpoint(site.base, name, "whip"), Client: &whip.Client{Token: upToken}, API: api, Stream: st,
			MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second, Log: log,
		})
		if err != nil {
			t.Errorf("uplink of %s: %v", name, err)
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		wg.Add(1)
		go func() { defer wg.Done(); defer close(done); pub.Run(ctx) }()
		mu.Lock()
		if old := uplinks[name]; old != nil {
			old()
		}
		uplinks[name] = func() { cancel(); <-done }
		mu.Unlock()
	}
	offline := func(name string) {
		mu.Lock()
		stop := uplinks[name]
		delete(uplinks, name)
		mu.Unlock()
		if stop != nil {
			stop()
		}
	}

	ingestAudit := openAudit("audit-ingest.log")
	in, err := ingest.New(ingest.Params{
		RTSP: conf.RTSP{Address: "127.0.0.1:0"}, CamerasFile: filepath.Join(dir, "cameras.json"),
		Reconnect: conf.Reconnect{Min: 100 * time.Millisecond, Max: time.Second}, Stream: conf.DefaultIngest().Stream,
		Verifier: v, Audit: ingestAudit, Logger: log, OnLive: live, OnOffline: offline,
		OnRemoved: func(name string) {
			if err := (&whip.Client{Token: upToken}).Forget(context.Background(), site.base, name); err != nil {
				t.Errorf("the SFU kept removed camera %s: %v", name, err)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ictx, icancel := context.WithCancel(context.Background())
	idone := make(chan struct{})
	go func() { _ = in.Run(ictx); close(idone) }()
	mux := http.NewServeMux()
	in.CameraRoutes(mux, v)
	ingestAPI := httptest.NewServer(audit.HTTP(ingestAudit, v.Identify, mux))

	c := conf.DefaultSFU()
	c.HTTP.Address = "127.0.0.1:0"
	c.WebRTC.UDPAddress = "127.0.0.1:0"
	c.Log.Level = "warn"
	c.IngestAPI = []string{ingestAPI.URL}
	sfuAudit := openAudit("audit-sfu.log")
	srv, err := sfu.New(sfu.Params{Conf: c, Verifier: v, Audit: sfuAudit, Log: c.Log.NewLogger(testWriter{t}), Console: console.FS()})
	if err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithCancel(context.Background())
	sdone := make(chan struct{})
	go func() { _ = srv.Run(sctx); close(sdone) }()
	site.base = "http://" + srv.HTTPAddr()
	t.Cleanup(func() {
		ingestAPI.Close()
		icancel()
		<-idone
		mu.Lock()
		stops := uplinks
		uplinks = map[string]func(){}
		mu.Unlock()
		for _, stop := range stops {
			stop()
		}
		wg.Wait()
		scancel()
		<-sdone
		ingestAudit.Close()
		sfuAudit.Close()
	})
	return site
}

// rect is an element's bounding box in the page.
type rect struct {
	ID                       string
	X, Y, W, H               float64
	ScrollWidth, ClientWidth float64
}

// camerasLayoutExpr measures the page: the two sections, every card and camera name, and
// whether the document scrolls sideways.
const camerasLayoutExpr = `(() => {
  const box = (el, id) => { const r = el.getBoundingClientRect();
    return { ID: id, X: r.x, Y: r.y + window.scrollY, W: r.width, H: r.height, ScrollWidth: el.scrollWidth, ClientWidth: el.clientWidth }; };
  const main = document.getElementById('main');
  const out = { width: window.innerWidth, docWidth: document.documentElement.scrollWidth, mainScroll: main.scrollWidth - main.clientWidth,
    form: box(document.getElementById('form-section'), 'form'), list: box(document.querySelector('.cam-list-section'), 'list'),
    header: box(document.querySelector('header.bar'), 'header'), cards: [], names: [], unlabeled: [] };
  for (const c of document.querySelectorAll('.cam-card')) out.cards.push(box(c, c.dataset.camera));
  for (const n of document.querySelectorAll('.cam-name')) out.names.push(box(n, n.textContent));
  for (const c of document.querySelectorAll('#cam-form input, #cam-form select, #cam-form button, .cam-card button')) {
    const named = (c.labels && c.labels.length > 0) || c.getAttribute('aria-label') || (c.tagName === 'BUTTON' && c.textContent.trim());
    if (!named) out.unlabeled.push(c.id || c.className);
  }
  return out; })()`

type camerasLayout struct {
	Width, DocWidth, MainScroll float64
	Form, List, Header          rect
	Cards, Names                []rect
	Unlabeled                   []string
}

func overlaps(a, b rect) bool {
	return a.X < b.X+b.W-1 && b.X < a.X+a.W-1 && a.Y < b.Y+b.H-1 && b.Y < a.Y+a.H-1
}

// checkCamerasLayout asserts that nothing overlaps, nothing scrolls sideways, every control
// is labelled and no camera name is cut, and keeps a screenshot.
func checkCamerasLayout(t *testing.T, p *testkit.Page, w, h int, wideName, tag string) {
	t.Helper()
	p.Do("viewport", 10*time.Second, map[string]any{"width": w, "height": h})
	p.WaitFor("the layout at the new size", fmt.Sprintf(`window.innerWidth === %d`, w), 5*time.Second)
	var l camerasLayout
	p.Eval(camerasLayoutExpr, &l)
	if l.DocWidth > l.Width+0.5 || l.MainScroll > 0.5 {
		t.Errorf("%dx%d: the page scrolls sideways (document %v wide, main overflows by %v)", w, h, l.DocWidth, l.MainScroll)
	}
	if overlaps(l.Form, l.List) || overlaps(l.Header, l.Form) || overlaps(l.Header, l.List) {
		t.Errorf("%dx%d: header %+v, form %+v and list %+v overlap", w, h, l.Header, l.Form, l.List)
	}
	if w < 800 && l.List.Y+l.List.H > l.Form.Y+0.5 {
		t.Errorf("%dx%d: on a phone the list %+v must come above the form %+v in one column", w, h, l.List, l.Form)
	}
	if w >= 1200 && l.List.X+l.List.W > l.Form.X+0.5 {
		t.Errorf("%dx%d: on a wide screen the list %+v and the form %+v must stand side by side", w, h, l.List, l.Form)
	}
	for i, a := range l.Cards {
		if a.X < -0.5 || a.X+a.W > l.Width+0.5 {
			t.Errorf("%dx%d: card %s %+v leaves the page", w, h, a.ID, a)
		}
		for _, b := range l.Cards[i+1:] {
			if overlaps(a, b) {
				t.Errorf("%dx%d: cards %s and %s overlap", w, h, a.ID, b.ID)
			}
		}
	}
	found := false
	for _, n := range l.Names {
		found = found || n.ID == wideName
		if n.ScrollWidth > n.ClientWidth+0.5 {
			t.Errorf("%dx%d: camera name %q is cut (%v of %v px shown)", w, h, n.ID, n.ClientWidth, n.ScrollWidth)
		}
	}
	if !found {
		t.Errorf("%dx%d: camera %q not listed: %+v", w, h, wideName, l.Names)
	}
	if len(l.Unlabeled) > 0 {
		t.Errorf("%dx%d: controls without a label: %v", w, h, l.Unlabeled)
	}
	dir := os.Getenv("TEST_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	shot := filepath.Join(dir, fmt.Sprintf("cameras-%dx%d-%s.png", w, h, tag))
	p.Do("screenshot", 10*time.Second, map[string]any{"path": shot})
	t.Logf("screenshot: %s", shot)
}

// TestCamerasPage: a camera added on the Cameras page, through the SFU's relay to an ingest,
// is pulled at once and appears on the wall without a restart; the page shows the API's
// errors beside the form, never the password, and lays out on a phone and a wall display.
func TestCamerasPage(t *testing.T) {
	site := startCameraSite(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cam := testkit.StartRTSPCamera(t, testkit.RTSPCameraParams{User: "admin", Pass: camerasPass, Stream: testkit.LiveStream(t, ctx, "pattern", false)})
	claims := auth.Claims{Role: auth.RoleOperator, View: []string{"*"}}
	claims.Subject = "op-console"
	op, err := auth.Mint(testSecret, claims, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}

	p := testkit.PooledPage(t)
	p.Do("viewport", 10*time.Second, map[string]any{"width": 1920, "height": 1080})
	p.Open(site.base + "/cameras.html?token=" + op)
	p.WaitFor("the empty camera list", `!document.getElementById('content').hidden && !document.getElementById('empty').hidden`, 15*time.Second)

	// the keyboard reaches the form from the list's Add button, and Tab goes on in reading order.
	p.Do("press", 5*time.Second, map[string]any{"selector": "#add-camera", "key": "Enter"})
	p.WaitFor("the name field focused", `document.activeElement?.id === 'f-name'`, 5*time.Second)
	p.Do("press", 5*time.Second, map[string]any{"selector": "#f-name", "key": "Tab"})
	var focused struct {
		ID      string
		Outline string
	}
	p.Eval(`(() => { const e = document.activeElement; return { id: e.id, outline: getComputedStyle(e).outlineStyle }; })()`, &focused)
	if focused.ID != "f-url" || focused.Outline == "none" {
		t.Errorf("after Tab from the name: focus on %q with outline %q, want the address field with a visible outline", focused.ID, focused.Outline)
	}

	name := "north-gate-entrance-camera-with-a-long-name-01"
	for sel, v := range map[string]string{
		"#f-name": name, "#f-url": "rtsp://" + cam.Addr() + "/live", "#f-username": "admin", "#f-password": camerasPass,
		"#f-lat": "25.0330", "#f-lon": "121.5654", "#f-label": "North gate, facing the car park",
	} {
		p.Do("fill", 5*time.Second, map[string]any{"selector": sel, "value": v})
	}
	p.Eval(`(() => { document.getElementById('f-transport').value = 'tcp'; return true; })()`, new(bool))
	p.Do("click", 5*time.Second, map[string]any{"selector": "#form-submit"})
	card := fmt.Sprintf(`document.querySelector('.cam-card[data-camera=%q]')`, name)
	p.WaitFor("the camera live on the page", card+`?.dataset.state === 'live'`, 30*time.Second)
	var text string
	p.Eval(card+`.textContent`, &text)
	if !strings.Contains(text, "rtsp://admin:***@"+cam.Addr()+"/live") || !strings.Contains(text, "25.03300") || strings.Contains(text, camerasPass) {
		t.Errorf("camera card %q: want the redacted address and the position, never the password", text)
	}
	var html string
	p.Eval(`document.documentElement.outerHTML`, &html)
	if strings.Contains(html, camerasPass) {
		t.Error("the password is still in the page after the camera was added")
	}

	// the API's errors appear next to the field they name.
	p.Do("fill", 5*time.Second, map[string]any{"selector": "#f-name", "value": "bad-position"})
	p.Do("fill", 5*time.Second, map[string]any{"selector": "#f-url", "value": "rtsp://" + cam.Addr() + "/other"})
	p.Do("fill", 5*time.Second, map[string]any{"selector": "#f-lat", "value": "95"})
	p.Do("fill", 5*time.Second, map[string]any{"selector": "#f-lon", "value": "0"})
	p.Do("click", 5*time.Second, map[string]any{"selector": "#form-submit"})
	var fieldErr string
	if err := json.Unmarshal(p.WaitFor("the position error beside its field",
		`(() => { const e = document.getElementById('f-position-error'); return !e.hidden && e.textContent; })()`, 10*time.Second), &fieldErr); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(fieldErr, "position.lat 95") {
		t.Errorf("position error %q: want the API's message naming position.lat", fieldErr)
	}

	checkCamerasLayout(t, p, 1920, 1080, name, "en")
	checkCamerasLayout(t, p, 390, 844, name, "en")
	checkCamerasChinese(t, p, name)

	// the wall shows the new camera, with no restart of anything.
	p.Do("viewport", 10*time.Second, map[string]any{"width": 1280, "height": 720})
	p.Open(site.base + "/")
	tile := p.WaitPlaying(name, 10, 40*time.Second)
	if tile.Width != 640 || tile.Height != 360 {
		t.Errorf("wall tile of %s is %dx%d, want the camera's 640x360", name, tile.Width, tile.Height)
	}

	// the map places it at the position given on the Cameras page.
	p.Open(site.base + "/map.html")
	waitMarkerAt(t, p, name, 25.0330, 121.5654, 30*time.Second)

	// removing it asks first, then the camera is gone and the camera's session ends.
	p.Open(site.base + "/cameras.html")
	p.WaitFor("the camera listed", card+` !== null`, 15*time.Second)
	p.Do("click", 5*time.Second, map[string]any{"selector": fmt.Sprintf(`.cam-card[data-camera=%q] .cam-remove`, name)})
	p.WaitFor("the confirmation", card+`.querySelector('.cam-confirm').hidden === false`, 5*time.Second)
	p.Do("click", 5*time.Second, map[string]any{"selector": fmt.Sprintf(`.cam-card[data-camera=%q] .cam-confirm-yes`, name)})
	p.WaitFor("the camera gone", card+` === null`, 15*time.Second)
	testkit.WaitFor(t, 20*time.Second, "the camera's RTSP session to end", func() bool { return cam.Playing() == 0 })
	// and it leaves the SFU's list, so no wall keeps an offline tile of it.
	testkit.WaitFor(t, 10*time.Second, "the SFU to stop listing the removed camera", func() bool {
		req, _ := http.NewRequest(http.MethodGet, site.base+"/v1/sources", nil)
		req.Header.Set("Authorization", "Bearer "+op)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer res.Body.Close()
		var list struct{ Sources []sfu.SourceInfo }
		if res.StatusCode != http.StatusOK || json.NewDecoder(res.Body).Decode(&list) != nil {
			return false
		}
		for _, s := range list.Sources {
			if s.Name == name {
				return false
			}
		}
		return true
	})
}

// camerasTextsExpr lists the page's own words in view: every shown element's own text and its
// aria-label and placeholder, leaving out what the user or the server wrote (names, addresses,
// descriptions, reasons, API errors) and the language switch.
const camerasTextsExpr = `(() => {
  const skip = '.cam-name, .cam-url, .cam-label, .cam-reason, .cam-error, .cam-field-error, option, script, #lang-switch';
  const shown = (e) => e.getClientRects().length > 0;
  const out = [];
  for (const e of document.body.querySelectorAll('*')) {
    if (!shown(e) || e.closest(skip)) continue;
    const own = [...e.childNodes].filter((n) => n.nodeType === Node.TEXT_NODE).map((n) => n.textContent).join('').trim();
    if (own) out.push(own);
    for (const a of ['aria-label', 'placeholder']) if (e.getAttribute(a)) out.push(e.getAttribute(a));
  }
  return { texts: out, title: document.title, lang: document.documentElement.lang };
})()`

// camerasLatin is a word in Latin letters: in the Chinese page, English left untranslated.
var camerasLatin = regexp.MustCompile(`[A-Za-z]{2,}`)

// checkCamerasChinese switches the page to Traditional Chinese and back: in Chinese no
// English word of the page's own is left (but protocol names and the camera's name), and the
// state, buttons and title read in Chinese.
func checkCamerasChinese(t *testing.T, p *testkit.Page, name string) {
	t.Helper()
	set := func(lang string) {
		p.Eval(fmt.Sprintf(`(() => { const s = document.getElementById('lang-switch'); s.value = %q; s.dispatchEvent(new Event('change')); return true; })()`, lang), new(bool))
		p.WaitFor("the page in "+lang, fmt.Sprintf(`document.documentElement.lang === %q`, lang), 5*time.Second)
	}
	set("zh-TW")
	var got struct {
		Texts []string
		Title string
	}
	p.Eval(camerasTextsExpr, &got)
	allowed := strings.NewReplacer(name, "", "RTSP", "", "TCP", "", "UDP", "", "4G", "", "rtsp://10.0.0.5:554/stream1", "", "north-gate", "",
		"op-console", "")
	for _, text := range got.Texts {
		if w := camerasLatin.FindAllString(allowed.Replace(text), -1); w != nil {
			t.Errorf("in Chinese %q still has English: %v", text, w)
		}
	}
	if got.Title != "攝影機" {
		t.Errorf("title in Chinese %q, want 攝影機", got.Title)
	}
	var state string
	p.Eval(fmt.Sprintf(`document.querySelector('.cam-card[data-camera=%q] .cam-state').textContent`, name), &state)
	if state != "直播中" {
		t.Errorf("the live state reads %q in Chinese, want 直播中", state)
	}
	checkCamerasLayout(t, p, 390, 844, name, "zh-TW")
	set("en")
}
