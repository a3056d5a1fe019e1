package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"fieldvideo/internal/stream"
	tsync "fieldvideo/internal/sync"
	"fieldvideo/internal/testkit"
	"fieldvideo/web/console"
)

// fakeAPI serves the console and a source list the test controls; every WHEP offer gets a
// 404, as for a source that is not published, so the tiles show their labels but no picture.
type fakeAPI struct {
	mu      sync.Mutex
	sources []map[string]any
}

func (f *fakeAPI) set(sources []map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sources = sources
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/v1/sources":
		f.mu.Lock()
		b, _ := json.Marshal(map[string]any{"sources": f.sources})
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	case r.Method == http.MethodPost:
		http.Error(w, "source not published", http.StatusNotFound)
	default:
		http.FileServer(http.FS(console.FS())).ServeHTTP(w, r)
	}
}

// liveSource is a source entry as the SFU lists it, with a video track of the given clock.
func liveSource(name string, clock map[string]any) map[string]any {
	return map[string]any{
		"name": name, "state": "live", "since": time.Now().Format(time.RFC3339Nano),
		"tracks": []map[string]any{
			{"kind": "video", "codec": "H264", "clock_rate": 90000, "relayable": true, "clock": clock},
			{"kind": "audio", "codec": "opus", "clock_rate": 48000, "relayable": true, "clock": map[string]any{"trust": "unaligned", "error_ms": -1}},
		},
		"clock": clock,
	}
}

// tileAlignment is what a tile says about its alignment.
type tileAlignment struct {
	Align, Warn, Title string
}

func alignmentOf(t *testing.T, p *testkit.Page, name string) tileAlignment {
	t.Helper()
	var a tileAlignment
	p.Eval(fmt.Sprintf(`(() => { const t = document.querySelector('[data-tile=%q]');
		const a = t.querySelector('.align'), w = t.querySelector('.align-warn');
		return { align: a.hidden ? '' : a.textContent, warn: w.hidden ? '' : w.textContent, title: a.title || w.title }; })()`, name), &a)
	return a
}

// TestWallAlignment checks that each tile shows how its source is aligned on the common time
// baseline, for every kind of alignment, and follows changes.
func TestWallAlignment(t *testing.T) {
	api := &fakeAPI{}
	api.set([]map[string]any{
		liveSource("cam1", map[string]any{"trust": "sender-reports", "error_ms": 4.2, "converged": true, "skew_ppm": -85.1, "offset_ms": -3200.5, "report_age_ms": 1200, "path_delay_ms": 40}),
		liveSource("cam2", map[string]any{"trust": "arrival", "error_ms": 12.4, "converged": true}),
		liveSource("cam3", map[string]any{"trust": "unaligned", "error_ms": -1, "converged": false}),
		liveSource("cam4", map[string]any{"trust": "refclk", "error_ms": 9, "converged": false}),
		{"name": "cam5", "state": "offline", "tracks": []any{}},
	})
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)

	p := testkit.PooledPage(t)
	defer p.LogConsole()
	p.Open(srv.URL + "/?token=anything")
	p.WaitFor("five tiles", `document.querySelectorAll('.tile').length === 5`, 10*time.Second)
	p.WaitFor("cam1's alignment", `document.querySelector('[data-tile="cam1"] .align').textContent !== ''`, 10*time.Second)

	for _, tc := range []struct {
		name, align, warn, inTitle string
	}{
		{"cam1", "±4 ms", "", "camera clock −3200.5 ms off"},
		{"cam2", "aligned on arrival ±12 ms", "", "arrival times"},
		{"cam3", "", "unaligned", "not known yet"},
		{"cam4", "±9 ms", "not converged", "reference clock"},
		{"cam5", "", "", ""},
	} {
		got := alignmentOf(t, p, tc.name)
		if got.Align != tc.align || got.Warn != tc.warn {
			t.Errorf("%s shows %q and badge %q, want %q and %q", tc.name, got.Align, got.Warn, tc.align, tc.warn)
		}
		if tc.inTitle != "" && !strings.Contains(got.Title, tc.inTitle) {
			t.Errorf("%s tooltip %q lacks %q", tc.name, got.Title, tc.inTitle)
		}
	}
	p.Do("screenshot", 10*time.Second, map[string]any{"path": screenshotPath(t, "wall-alignment.png")})

	// cam3 gets sender reports: the badge goes, the error shows.
	api.set([]map[string]any{
		liveSource("cam3", map[string]any{"trust": "sender-reports", "error_ms": 2.6, "converged": true}),
	})
	p.WaitFor("cam3 aligned", `document.querySelector('[data-tile="cam3"] .align').textContent === '±3 ms' &&
		document.querySelector('[data-tile="cam3"] .align-warn').hidden`, 10*time.Second)
}

// publishShifted publishes a live test pattern as name whose frames carry capture times
// shift earlier than their arrival, as a camera whose path is shift slower than the others'
// would: its tile then shows each capture instant shift later than the others do.
func (h *wallSFU) publishShifted(name string, shift time.Duration) {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	src := testkit.LiveStream(h.t, ctx, name, true)
	shifted := stream.New(stream.Params{Name: name, Tracks: src.Tracks(), RequestKeyframe: src.RequestKeyframe})
	h.t.Cleanup(shifted.Close)
	_, err := src.AddReader(stream.ReaderParams{Name: "shift", OnUnit: func(d stream.Delivery) {
		u := *d.Unit
		u.Capture = u.Arrival.Add(-shift)
		u.CaptureErr = 2 * time.Millisecond
		u.CaptureTrust = uint8(tsync.TrustSenderReports)
		shifted.Write(&u)
	}})
	if err != nil {
		h.t.Fatal(err)
	}
	h.publishStream(ctx, cancel, name, shifted)
}

// syncState is what the wall shows about synced playout.
type syncState struct {
	Synced  bool              `json:"synced"`
	Button  string            `json:"button"`
	Skew    string            `json:"skew"`
	Status  string            `json:"status"`
	Latency map[string]string `json:"latency"`
	Held    map[string]string `json:"held"`
}

const syncStateExpr = `(() => {
	const s = document.getElementById('sync-status'), b = document.getElementById('sync-toggle');
	const latency = {}, held = {};
	for (const t of document.querySelectorAll('.tile')) { latency[t.dataset.tile] = t.dataset.latencyMs ?? ''; held[t.dataset.tile] = t.dataset.heldMs ?? ''; }
	return { synced: b.getAttribute('aria-pressed') === 'true', button: b.textContent, skew: s.dataset.skewMs ?? '', status: s.hidden ? '' : s.textContent, latency, held };
})()`

func (s syncState) ms(m map[string]string, name string) int {
	v, err := strconv.Atoi(m[name])
	if err != nil {
		return -1
	}
	return v
}

// TestWallSynced checks synced playout with real capture times through the SFU: cam1's
// capture times are 250 ms before its frames arrive, so its tile runs 250 ms behind cam2's;
// in synced mode cam2 is held back until both show the same capture instant.
func TestWallSynced(t *testing.T) {
	h := startSFU(t)
	h.publishShifted("cam1", 250*time.Millisecond)
	h.publish("cam2", true)
	p := testkit.PooledPage(t)
	defer p.LogConsole()
	p.Open(h.base + "/?token=" + h.wallToken())
	p.WaitPlaying("cam1", 10, 40*time.Second)
	p.WaitPlaying("cam2", 10, 40*time.Second)

	var st syncState
	read := func() syncState {
		var s syncState
		p.Eval(syncStateExpr, &s)
		return s
	}
	// both tiles measure their latency from the capture times the SFU sends; a tile's
	// player may start far behind on a busy machine and catch up, so this waits for them
	// to settle about 250 ms apart, and for the header, which the page recomputes on its
	// own tick, to have caught up with the tiles.
	raw := p.WaitFor("both tiles measured, cam1 150-400 ms behind cam2, and the header naming cam1", `(() => { const s = `+syncStateExpr+`;
		const d = Number(s.latency.cam1) - Number(s.latency.cam2);
		return s.skew !== '' && Number(s.skew) > 150 && s.latency.cam1 !== '' && s.latency.cam2 !== '' && d >= 150 && d <= 400 && s.status.includes('cam1') && s; })()`, 30*time.Second)
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	t.Logf("unsynced: %+v", st)
	if st.Synced || st.Button != "Synced: off" {
		t.Errorf("synced mode is on at first: %+v", st)
	}
	if !strings.Contains(st.Status, "cam1 is") || !strings.Contains(st.Status, "behind") {
		t.Errorf("the header says %q, want it to name cam1 as the tile behind", st.Status)
	}
	if d := st.ms(st.Latency, "cam1") - st.ms(st.Latency, "cam2"); d < 150 || d > 400 {
		t.Errorf("cam1 runs %d ms behind cam2, want about 250", d)
	}

	p.Do("click", 5*time.Second, map[string]any{"selector": "#sync-toggle"})
	raw = p.WaitFor("the tiles in sync", `(() => { const s = `+syncStateExpr+`;
		return s.synced && s.skew !== '' && Number(s.skew) <= 50 && Number(s.held.cam2) > 150 && s; })()`, 30*time.Second)
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	t.Logf("synced: %+v", st)
	if st.ms(st.Held, "cam1") != 0 {
		t.Errorf("cam1, the slowest tile, is held back %s ms", st.Held["cam1"])
	}
	if st.Button != "Synced: on" || !strings.Contains(st.Status, "in sync") {
		t.Errorf("the header shows %q and %q, want the switch on and the skew", st.Button, st.Status)
	}
	p.Do("screenshot", 10*time.Second, map[string]any{"path": screenshotPath(t, "wall-synced.png")})

	// it stays in sync, and the choice survives a reload.
	p.Open(h.base + "/")
	p.WaitPlaying("cam2", 10, 40*time.Second)
	st = read()
	if !st.Synced {
		t.Fatalf("after a reload synced mode is off: %+v", st)
	}
	p.WaitFor("the tiles in sync after the reload", `(() => { const s = `+syncStateExpr+`;
		return s.skew !== '' && Number(s.skew) <= 50 && Number(s.held.cam2) > 150; })()`, 30*time.Second)

	// off again: nothing is held back and the tiles drift apart.
	p.Do("click", 5*time.Second, map[string]any{"selector": "#sync-toggle"})
	p.WaitFor("the tiles apart again", `(() => { const s = `+syncStateExpr+`;
		return !s.synced && s.held.cam2 === '' && Number(s.skew) > 150; })()`, 30*time.Second)
}
