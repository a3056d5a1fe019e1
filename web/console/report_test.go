package console_test

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/sfu"
	"fieldvideo/internal/testkit"
)

// The fake positions of the reporting phone: where it starts, and where it walks to.
const (
	reportLat, reportLon = 25.0339, 121.5645
	movedLat, movedLon   = 25.0346, 121.5656
	reportAccuracy       = 12
)

// artifactPath is where a test keeps a screenshot: under $TEST_ARTIFACTS when set, else in
// the test's temporary directory.
func artifactPath(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv("TEST_ARTIFACTS")
	if dir == "" {
		return filepath.Join(t.TempDir(), name)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, name)
}

// responderToken mints the token of a responder who reports under their own report-{sub}-* names.
func (h *wallSFU) responderToken(who string) string {
	h.t.Helper()
	c := auth.Claims{Role: auth.RoleResponder, Publish: []string{"report-{sub}-*"}, View: []string{"report-*"}}
	c.RegisteredClaims = jwt.RegisteredClaims{Subject: who}
	return h.token(c)
}

// listedSource returns source as GET /v1/sources lists it to token.
func (h *wallSFU) listedSource(token, source string) (sfu.SourceInfo, bool) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.base+"/v1/sources", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	var list struct{ Sources []sfu.SourceInfo }
	if res.StatusCode != http.StatusOK || json.NewDecoder(res.Body).Decode(&list) != nil {
		h.t.Fatalf("GET /v1/sources: %s", res.Status)
	}
	for _, s := range list.Sources {
		if s.Name == source {
			return s, true
		}
	}
	return sfu.SourceInfo{}, false
}

// TestReportSourceName: the report page names a report as the SFU's grants read it: its
// subjectName is auth.SubjectName, and a report-{sub}-* grant gives report-<subject>-<time>.
func TestReportSourceName(t *testing.T) {
	subjects := []string{"alice", "unit.7", "Alice.Smith@Example.org", "  --Ünïcödé  Name__ ", "李安娜", "*", "a-very-long-subject-name-that-goes-on", "Ǆemal İnan",
		"f81d4fae-7dec-11d0-a765-00a0c91e6bf6", "😀 x"}
	b, _ := json.Marshal(subjects)
	script := `
import { subjectName, sourceName } from './report-name.js';
const subjects = ` + string(b) + `;
const at = new Date(Date.UTC(2026, 11, 6, 9, 5, 7));
console.log(JSON.stringify({
  slugs: subjects.map(subjectName),
  names: subjects.map((sub) => sourceName({ sub, name: 'Shown Name', pub: ['report-{sub}-*'] }, at)),
  legacy: sourceName({ sub: 'alice', pub: ['report-*'] }, at),
  nosub: sourceName({ pub: ['report-{sub}-*'] }, at),
}));
`
	var got struct {
		Slugs, Names  []string
		Legacy, NoSub string
	}
	runModule(t, script, &got)
	if len(got.Slugs) != len(subjects) || len(got.Names) != len(subjects) {
		t.Fatalf("got %+v", got)
	}
	for i, sub := range subjects {
		c := auth.Claims{Role: auth.RoleResponder, Publish: []string{"report-{sub}-*"}}
		c.Subject = sub
		if want := auth.SubjectName(sub); got.Slugs[i] != want {
			t.Errorf("the page writes subject %q as %q, the SFU as %q", sub, got.Slugs[i], want)
		}
		if want := "report-" + auth.SubjectName(sub) + "-20261206-090507"; got.Names[i] != want || !c.CanPublish(got.Names[i]) {
			t.Errorf("subject %q with report-{sub}-*: the page publishes %q (allowed %v), want %q", sub, got.Names[i], c.CanPublish(got.Names[i]), want)
		}
	}
	if got.Legacy != "report-alice-20261206-090507" {
		t.Errorf("with report-*: %q, want report-alice-20261206-090507", got.Legacy)
	}
	if got.NoSub != "report-reporter-20261206-090507" {
		t.Errorf("no subject: %q, want the plain report name (which the SFU will refuse)", got.NoSub)
	}
}

// box is an element's place on the page, and whether its text shows whole.
type box struct {
	What       string
	X, Y, W, H float64
	Fits       bool
}

// boxesExpr returns the boxes of the visible elements that match selector.
func boxesExpr(selector string) string {
	return fmt.Sprintf(`[...document.querySelectorAll(%q)].filter((e) => {
		const r = e.getBoundingClientRect();
		return r.width > 0 && r.height > 0 && getComputedStyle(e).visibility !== 'hidden';
	}).map((e) => {
		const r = e.getBoundingClientRect();
		return { what: (e.id ? '#' + e.id : e.tagName.toLowerCase() + '.' + e.className) + ' ' + (e.textContent || '').trim().slice(0, 24),
			x: r.left + window.scrollX, y: r.top + window.scrollY, w: r.width, h: r.height,
			fits: e.scrollWidth <= e.clientWidth + 1 || e.clientWidth === 0 };
	})`, selector)
}

// checkBoxes fails when two of the boxes overlap, one runs off the sides of a vw px wide
// window, or its text is cut.
func checkBoxes(t *testing.T, what string, boxes []box, vw float64) {
	t.Helper()
	if len(boxes) == 0 {
		t.Errorf("%s: no control is shown", what)
	}
	for i, a := range boxes {
		if a.X < -1 || a.X+a.W > vw+1 {
			t.Errorf("%s: %s runs off the side: x %.0f..%.0f in a %.0f px window", what, a.What, a.X, a.X+a.W, vw)
		}
		if !a.Fits {
			t.Errorf("%s: the text of %s is cut", what, a.What)
		}
		for _, b := range boxes[i+1:] {
			ox := min(a.X+a.W, b.X+b.W) - max(a.X, b.X)
			oy := min(a.Y+a.H, b.Y+b.H) - max(a.Y, b.Y)
			if ox > 1 && oy > 1 {
				t.Errorf("%s: %s and %s overlap by %.0f×%.0f px", what, a.What, b.What, ox, oy)
			}
		}
	}
}

func readBoxes(t *testing.T, p *testkit.Page, selector string) []box {
	t.Helper()
	var boxes []box
	p.Eval(boxesExpr(selector), &boxes)
	return boxes
}

// TestReport: a responder on report.html, on a 390×844 phone with a fake camera and position,
// starts a report. The SFU lists the source with its reporter (from the token) and position;
// a wall plays it; the map places it where it is and follows it when it moves (map_test.go);
// the SFU records it; when the server ends the session the page publishes again by itself;
// Stop ends it, and the source keeps its last position offline. One report serves all; the
// map's page then also shows that it draws a configured tile server's tiles.
func TestReport(t *testing.T) {
	h := startCallSFU(t)
	begin := time.Now()
	step := func(what string) { t.Logf("%5.1f s: %s", time.Since(begin).Seconds(), what) }
	const who = "alice"
	tok := h.responderToken(who)
	wallTok := h.token(auth.Claims{Role: auth.RoleWall, View: []string{"*"}})

	phone := testkit.PooledPage(t)
	step("a browser for the phone")
	phone.Do("viewport", 5*time.Second, map[string]any{"width": 390, "height": 844})
	phone.Do("geolocation", 5*time.Second, map[string]any{"latitude": reportLat, "longitude": reportLon, "accuracy": reportAccuracy})
	phone.Open(h.base + "/report.html?incident=flood-7&token=" + url.QueryEscape(tok))
	phone.WaitFor("the report form", `!document.getElementById('form').hidden && document.getElementById('who').textContent === 'alice'`, 10*time.Second)
	if v, err := phone.Try("waitFor", 5*time.Second, map[string]any{"expr": `!new URL(location.href).searchParams.has('token')`}); err != nil {
		t.Errorf("the token stays in the address bar: %v %s", err, v)
	}
	step("the report page open")
	phone.Do("fill", 5*time.Second, map[string]any{"selector": "#note", "value": "smoke, 3rd floor"})
	phone.Do("click", 5*time.Second, map[string]any{"selector": "#start"})
	started := time.Now()
	raw := phone.WaitFor("the report live with its position sent",
		`(() => { const r = document.getElementById('report').dataset; return r.state === 'live' && Number(r.positions) >= 1 && r.source; })()`, 30*time.Second)
	var source string
	if err := json.Unmarshal(raw, &source); err != nil {
		t.Fatal(err)
	}
	t.Logf("the report is live as %s after %s", source, time.Since(started).Round(time.Millisecond))
	if !regexp.MustCompile(`^report-alice-\d{8}-\d{6}$`).MatchString(source) {
		t.Errorf("the report is published as %q, want report-alice-<UTC date>-<time>", source)
	}

	in, ok := h.listedSource(wallTok, source)
	if !ok || in.State != "live" || in.Reporter != who || in.Kind != "report" || in.Note != "smoke, 3rd floor" || in.Incident != "flood-7" || in.Position == nil ||
		math.Abs(in.Position.Lat-reportLat) > 1e-9 || math.Abs(in.Position.Lon-reportLon) > 1e-9 || in.Position.AccuracyM != reportAccuracy {
		t.Fatalf("GET /v1/sources lists the report as %+v (position %+v)", in, in.Position)
	}
	if len(in.Tracks) != 2 {
		t.Errorf("the report has tracks %+v, want video and audio", in.Tracks)
	}

	checkBoxes(t, "report page at 390×844", readBoxes(t, phone, `header a, header select, #note, #stop, #preview, #source`), 390)
	var scroll struct{ Doc, View float64 }
	phone.Eval(`({ doc: document.documentElement.scrollWidth, view: window.innerWidth })`, &scroll)
	if scroll.Doc > scroll.View+1 {
		t.Errorf("the report page is %.0f px wide in a %.0f px phone: it scrolls sideways", scroll.Doc, scroll.View)
	}
	var stopShown bool
	phone.Eval(`(() => { const r = document.getElementById('stop').getBoundingClientRect(); return r.height >= 48 && r.bottom <= window.innerHeight; })()`, &stopShown)
	if !stopShown {
		t.Errorf("the Stop button is not a big button on the first screen of the phone")
	}
	phone.Do("screenshot", 10*time.Second, map[string]any{"path": artifactPath(t, "report-390x844.png")})
	step("the report page checked")

	// the wall and the map, in a second browser.
	viewer := testkit.PooledPage(t)
	step("a browser for the wall and the map")
	viewer.Do("viewport", 5*time.Second, map[string]any{"width": 1920, "height": 1080})
	viewer.Open(h.base + "/index.html?token=" + url.QueryEscape(wallTok))
	viewer.WaitPlaying(source, 10, 30*time.Second)
	step("the wall plays the report")
	checkMap(t, h, viewer, phone, source, wallTok)
	step("the map checked")

	testkit.WaitFor(t, 30*time.Second, "a recorded segment of the report", func() bool { return len(testkit.Segments(h.recDir, source)) > 0 })
	step("a segment recorded")

	// the server ends the session (as when the network drops it): the page publishes again.
	kicked := kickPublisher(t, h, source)
	phone.WaitFor("the report live again in a new session",
		`(() => { const r = document.getElementById('report').dataset; return r.state === 'live' && Number(r.sessions) >= 2; })()`, 30*time.Second)
	h.waitState(source, "live", 10*time.Second)
	t.Logf("the report was live again %s after its session was ended", time.Since(kicked).Round(time.Millisecond))

	step("live again")
	phone.Do("click", 5*time.Second, map[string]any{"selector": "#stop"})
	phone.WaitFor("the report stopped", `document.getElementById('report').dataset.state === 'stopped'`, 10*time.Second)
	h.waitState(source, "offline", 10*time.Second)
	if in, ok := h.listedSource(wallTok, source); !ok || in.Position == nil || in.Reporter != who || in.Position.At.IsZero() {
		t.Errorf("offline, the report is listed as %+v (position %+v), want its last position and reporter", in, in.Position)
	}
	viewer.WaitFor("the marker offline", markerExpr(source)+`?.dataset.state === 'offline'`, 10*time.Second)
	var ended bool
	for _, e := range h.auditEvents() {
		if e.Action == "end" && e.Source == source && e.Actor == who && e.Result == "ok" {
			ended = true
		}
	}
	if !ended {
		t.Errorf("Stop did not end the session by WHIP DELETE (no audited end by %s)", who)
	}
	step("stopped")
	checkMapTiles(t, viewer)
	step("the map drew a tile server's tiles")
}

// kickPublisher ends the current WHIP session of source as an operator would, and returns when.
func kickPublisher(t *testing.T, h *wallSFU, source string) time.Time {
	t.Helper()
	var session string
	for _, e := range h.auditEvents() {
		if e.Action == "publish" && e.Source == source && e.Result == "ok" {
			session = e.Session
		}
	}
	if session == "" {
		t.Fatalf("no audited publish of %s", source)
	}
	op := h.token(auth.Claims{Role: auth.RoleOperator})
	req, _ := http.NewRequest(http.MethodDelete, h.base+"/"+source+"/whip/"+session, nil)
	req.Header.Set("Authorization", "Bearer "+op)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("DELETE the report's session: %s", res.Status)
	}
	return time.Now()
}
