package console_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io/fs"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/conf"
	"fieldvideo/internal/sfu"
	"fieldvideo/internal/testkit"
	"fieldvideo/web/console"
)

// markerExpr finds the map marker of source.
func markerExpr(source string) string {
	return fmt.Sprintf(`document.querySelector('.leaflet-marker-icon[data-source=%q]')`, source)
}

// mapView is the map's centre and zoom, where the map is on the page, and where a marker is.
type mapView struct {
	Lat, Lon, Zoom float64
	MX, MY, MW, MH float64
	Marker         *struct{ X, Y, W, H float64 }
}

func readMapView(t *testing.T, p *testkit.Page, source string) mapView {
	t.Helper()
	var v mapView
	p.Eval(fmt.Sprintf(`(() => { const m = document.getElementById('map'), r = m.getBoundingClientRect(), k = %s, b = k && k.getBoundingClientRect();
		return { lat: +m.dataset.lat, lon: +m.dataset.lon, zoom: +m.dataset.zoom, mx: r.left, my: r.top, mw: m.clientWidth, mh: m.clientHeight,
			marker: b && { x: b.left, y: b.top, w: b.width, h: b.height } }; })()`, markerExpr(source)), &v)
	return v
}

// mercator returns the Web Mercator pixel of lat, lon at zoom (256 px tiles).
func mercator(lat, lon, zoom float64) (x, y float64) {
	size := 256 * math.Exp2(zoom)
	lat = math.Max(-85.0511287798, math.Min(85.0511287798, lat))
	s := math.Sin(lat * math.Pi / 180)
	return (lon + 180) / 360 * size, (0.5 - math.Log((1+s)/(1-s))/(4*math.Pi)) * size
}

// markerOff returns how far, in px, the marker's centre is from where lat, lon falls on the
// map as its centre and zoom place it (computed here, not by the page).
func (v mapView) markerOff(lat, lon float64) (dx, dy float64, ok bool) {
	if v.Marker == nil || v.MW == 0 {
		return 0, 0, false
	}
	cx, cy := mercator(v.Lat, v.Lon, v.Zoom)
	px, py := mercator(lat, lon, v.Zoom)
	wantX, wantY := v.MX+v.MW/2+px-cx, v.MY+v.MH/2+py-cy
	return v.Marker.X + v.Marker.W/2 - wantX, v.Marker.Y + v.Marker.H/2 - wantY, true
}

// waitMarkerAt waits until the marker of source shows at lat, lon within 2 px.
func waitMarkerAt(t *testing.T, p *testkit.Page, source string, lat, lon float64, timeout time.Duration) mapView {
	t.Helper()
	var v mapView
	var dx, dy float64
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		v = readMapView(t, p, source)
		var ok bool
		if dx, dy, ok = v.markerOff(lat, lon); ok && math.Abs(dx) <= 2 && math.Abs(dy) <= 2 {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("the marker of %s is not at %.5f, %.5f after %s: %+v (marker %+v) puts it %.1f, %.1f px off", source, lat, lon, timeout, v, v.Marker, dx, dy)
		}
		<-tick.C
	}
}

// checkMapLayout checks the map page at a window size: no control overlaps another or runs off
// the side, names show whole, and the map does not cover the side panel.
func checkMapLayout(t *testing.T, p *testkit.Page, what string, vw float64) {
	t.Helper()
	checkBoxes(t, what, readBoxes(t, p, `header a, header select, #fit, .leaflet-control-zoom a, #panel-close, #panel-sound, #panel-review, .map-list-item, #panel-name`), vw)
	areas := readBoxes(t, p, `#map-area, #side`)
	if len(areas) != 2 {
		t.Fatalf("%s: the map and the side panel are not both shown: %+v", what, areas)
	}
	checkBoxes(t, what, areas, vw)
	if vw < 700 && areas[0].W < vw-2 {
		t.Errorf("%s: on a phone the map is %.0f px wide, want the full %.0f px", what, areas[0].W, vw)
	}
	if areas[0].H < 250 {
		t.Errorf("%s: the map is only %.0f px high", what, areas[0].H)
	}
}

// checkMap opens the map in viewer while phone reports source: the marker is placed at the
// position, its panel plays the source and links to the review at that moment, the marker
// follows the phone, and the page holds at 1920×1080 and 390×844.
func checkMap(t *testing.T, h *wallSFU, viewer, phone *testkit.Page, source, token string) {
	t.Helper()
	viewer.Open(h.base + "/map.html?token=" + url.QueryEscape(token))
	viewer.WaitFor("the live report marker", markerExpr(source)+`?.dataset.state === 'live' && `+markerExpr(source)+`.dataset.kind === 'report'`, 15*time.Second)
	viewer.WaitFor("the map fitted to the report", `document.getElementById('map').dataset.zoom === '16'`, 5*time.Second)
	v := waitMarkerAt(t, viewer, source, reportLat, reportLon, 5*time.Second)
	t.Logf("the marker of %s is at %.0f, %.0f px (map centre %.5f, %.5f, zoom %.0f)", source, v.Marker.X, v.Marker.Y, v.Lat, v.Lon, v.Zoom)

	var page struct {
		Background string
		GridLines  int
		Tiles      int
		Foreign    []string
	}
	viewer.Eval(`({ background: document.getElementById('map').dataset.background,
		gridLines: document.querySelectorAll('.fv-grid-line').length,
		tiles: document.querySelectorAll('.leaflet-tile').length,
		foreign: performance.getEntriesByType('resource').map((e) => e.name).filter((u) => new URL(u).origin !== location.origin) })`, &page)
	if page.Background != "grid" || page.GridLines < 4 || page.Tiles != 0 || len(page.Foreign) != 0 {
		t.Errorf("with no tile server the map shows %+v, want the grid, no tiles and no other host", page)
	}

	viewer.Do("click", 5*time.Second, map[string]any{"selector": fmt.Sprintf(`.leaflet-marker-icon[data-source=%q]`, source)})
	clicked := time.Now()
	viewer.WaitPlaying(source, 10, 20*time.Second)
	var link string
	viewer.Eval(`document.getElementById('panel-review').href`, &link)
	u, err := url.Parse(link)
	if err != nil || u.Path != "/review.html" {
		t.Fatalf("the panel links to %q, not the review page", link)
	}
	q := u.Query()
	at, _ := strconv.ParseInt(q.Get("t"), 10, 64)
	start, _ := strconv.ParseInt(q.Get("start"), 10, 64)
	end, _ := strconv.ParseInt(q.Get("end"), 10, 64)
	moment := time.UnixMilli(at)
	if q.Get("sources") != source || moment.After(clicked) || clicked.Sub(moment) > 20*time.Second || !(start < at && at < end) {
		t.Errorf("the review link %s is not of %s at the moment the marker was opened (%s)", link, source, clicked.Format(time.RFC3339))
	}
	var facts string
	viewer.Eval(`document.getElementById('panel-facts').textContent`, &facts)
	if !strings.Contains(facts, "alice") || !strings.Contains(facts, "smoke, 3rd floor") || !strings.Contains(facts, "25.03390") {
		t.Errorf("the panel tells %q, want the reporter, the note and the position", facts)
	}
	checkMapLayout(t, viewer, "map page at 1920×1080", 1920)
	viewer.Do("screenshot", 10*time.Second, map[string]any{"path": artifactPath(t, "map-1920x1080.png")})

	// the phone moves: the server takes the new position, and the marker follows.
	phone.Do("geolocation", 5*time.Second, map[string]any{"latitude": movedLat, "longitude": movedLon, "accuracy": reportAccuracy})
	testkit.WaitFor(t, 10*time.Second, "the moved position at the server", func() bool {
		in, ok := h.listedSource(token, source)
		return ok && in.Position != nil && math.Abs(in.Position.Lat-movedLat) < 1e-9 && math.Abs(in.Position.Lon-movedLon) < 1e-9
	})
	moved := waitMarkerAt(t, viewer, source, movedLat, movedLon, 10*time.Second)
	if d := math.Hypot(moved.Marker.X-v.Marker.X, moved.Marker.Y-v.Marker.Y); d < 20 {
		t.Errorf("the marker moved %.0f px for a 140 m walk at zoom %.0f", d, moved.Zoom)
	}

	viewer.Do("viewport", 5*time.Second, map[string]any{"width": 390, "height": 844})
	waitMarkerAt(t, viewer, source, movedLat, movedLon, 5*time.Second)
	checkMapLayout(t, viewer, "map page at 390×844", 390)
	viewer.Do("screenshot", 10*time.Second, map[string]any{"path": artifactPath(t, "map-390x844.png")})
}

// checkMapTiles opens in p the map of an SFU configured with a tile server on loopback (another
// origin than the SFU's): the page draws the server's tiles, which its policy lets through
// because the SFU names that origin in it, and shows the tile server's credit.
func checkMapTiles(t *testing.T, p *testkit.Page) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 256, 256))
	for i := range img.Pix {
		img.Pix[i] = 0x80
	}
	img.Set(0, 0, color.White)
	var tile bytes.Buffer
	if err := png.Encode(&tile, img); err != nil {
		t.Fatal(err)
	}
	var served atomic.Int64
	tiles := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(tile.Bytes())
	}))
	t.Cleanup(tiles.Close)

	c := conf.DefaultSFU()
	c.HTTP.Address, c.WebRTC.UDPAddress, c.Log.Level = "127.0.0.1:0", "127.0.0.1:0", "warn"
	c.Console.MapTiles = tiles.URL + "/{z}/{x}/{y}.png"
	c.Console.MapAttribution = "Test tiles <b>©</b>"
	v, err := auth.NewVerifier(testSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	al, err := audit.Open(audit.Params{File: filepath.Join(dir, "audit.log"), KeyFile: filepath.Join(dir, "audit.key")})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sfu.New(sfu.Params{Conf: c, Verifier: v, Audit: al, Log: c.Log.NewLogger(testWriter{t}), Console: console.FS()})
	if err != nil {
		al.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; al.Close() })

	tok, err := auth.Mint(testSecret, auth.Claims{Role: auth.RoleWall, View: []string{"*"}}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p.Open("http://" + srv.HTTPAddr() + "/map.html?token=" + url.QueryEscape(tok))
	raw := p.WaitFor("the tile server's tiles drawn", `document.getElementById('map').dataset.background === 'tiles' &&
		document.querySelectorAll('.leaflet-tile-loaded').length >= 4 && document.querySelector('.leaflet-control-attribution')?.textContent`, 10*time.Second)
	var credit string
	if err := json.Unmarshal(raw, &credit); err != nil || credit != "Test tiles <b>©</b>" {
		t.Errorf("the map credits the tiles as %q, want the configured text as it is", credit)
	}
	if served.Load() < 4 {
		t.Errorf("the tile server served %d tiles", served.Load())
	}
}

// The vendored Leaflet is what scripts/vendor.sh fetched and checked: every file the console
// embeds under vendor/leaflet matches its SHA256SUMS, which names the pinned version.
func TestVendoredLeaflet(t *testing.T) {
	files := console.FS()
	sums, err := fs.ReadFile(files, "vendor/leaflet/SHA256SUMS")
	if err != nil {
		t.Fatalf("vendor/leaflet/SHA256SUMS: %v (run scripts/vendor.sh)", err)
	}
	if !strings.HasPrefix(string(sums), "# leaflet@1.9.4 sha512-") {
		t.Errorf("the vendored Leaflet is not 1.9.4: %q", strings.SplitN(string(sums), "\n", 2)[0])
	}
	listed := map[string]bool{}
	for _, line := range strings.Split(string(sums), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		want, name, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q", line)
		}
		b, err := fs.ReadFile(files, "vendor/leaflet/"+name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != want {
			t.Errorf("vendor/leaflet/%s differs from what scripts/vendor.sh wrote: run it again", name)
		}
		listed[name] = true
	}
	for _, name := range []string{"leaflet.js", "leaflet.css", "images/layers.png", "images/marker-icon.png", "LICENSE"} {
		if !listed[name] {
			t.Errorf("vendor/leaflet/%s is not vendored", name)
		}
	}
}

// stringKey is one entry of a page's register({en: {…}, 'zh-TW': {…}}) block.
var stringKey = regexp.MustCompile(`(?m)^\s*'([a-z0-9.-]+)':\s*'((?:[^'\\]|\\.)*)',?\s*$`)

// The report and map pages say everything in English and in Traditional Chinese: every key
// has both, and the Chinese is Chinese (or only placeholders), not English left in.
func TestReportMapStrings(t *testing.T) {
	for _, page := range []string{"report.js", "map.js"} {
		b, err := fs.ReadFile(console.FS(), page)
		if err != nil {
			t.Fatal(err)
		}
		src := string(b)
		start := strings.Index(src, "register({")
		zh := strings.Index(src, "'zh-TW': {")
		end := strings.Index(src[zh:], "\n});") + zh
		if start < 0 || zh < start || end < zh {
			t.Fatalf("%s: no register({en: …, 'zh-TW': …}) block", page)
		}
		read := func(s string) map[string]string {
			m := map[string]string{}
			for _, kv := range stringKey.FindAllStringSubmatch(s, -1) {
				m[kv[1]] = kv[2]
			}
			return m
		}
		en, tw := read(src[start:zh]), read(src[zh:end])
		if len(en) < 20 {
			t.Errorf("%s: only %d English strings found", page, len(en))
		}
		prefix := strings.TrimSuffix(page, ".js") + "."
		for k, v := range en {
			if !strings.HasPrefix(k, prefix) {
				t.Errorf("%s: key %q is not prefixed with %q", page, k, prefix)
			}
			c, ok := tw[k]
			if !ok {
				t.Errorf("%s: %q has no Traditional Chinese", page, k)
				continue
			}
			bare := regexp.MustCompile(`\{\w+\}`).ReplaceAllString(c, "")
			if latin := regexp.MustCompile(`[A-Za-z]{2,}`).FindString(bare); latin != "" && latin != "https" {
				t.Errorf("%s: %q in Chinese still has English %q: %q (English %q)", page, k, latin, c, v)
			}
		}
		for k := range tw {
			if _, ok := en[k]; !ok {
				t.Errorf("%s: %q is in Chinese only", page, k)
			}
		}
	}
}
