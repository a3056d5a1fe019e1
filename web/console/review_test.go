package console_test

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"fieldvideo/internal/testkit"
)

// reviewStats is what the review page exposes as window.reviewStats.
type reviewStats struct {
	State         string      `json:"state"`
	Playing       bool        `json:"playing"`
	Speed         float64     `json:"speed"`
	MasterMs      float64     `json:"masterMs"`
	SpreadMs      []float64   `json:"spreadMs"`
	SpreadCount   int         `json:"spreadCount"`
	Unmeasured    int         `json:"unmeasured"`
	Wide          []string    `json:"wide"`
	P99           *float64    `json:"p99"`
	SeekToFrameMs []float64   `json:"seekToFrameMs"`
	Tiles         []tileStats `json:"tiles"`
	Errors        []string    `json:"errors"`
	Aligned       bool        `json:"aligned"`
	Corrections   int         `json:"corrections"`
	Events        []string    `json:"events"`
}

type tileStats struct {
	Source    string  `json:"source"`
	State     string  `json:"state"`
	Present   bool    `json:"present"`
	CaptureMs float64 `json:"captureMs"`
	// FirstMs is the capture time of the first frame shown after the last load (a seek).
	FirstMs float64 `json:"firstMs"`
	ErrMs   float64 `json:"errMs"`
	Frames  int     `json:"frames"`
	Rate    float64 `json:"rate"`
	Error   string  `json:"error"`
	// Unreported counts frames presented with no requestVideoFrameCallback; Dropped frames
	// the browser never showed while playing.
	Unreported int `json:"unreported"`
	Dropped    int `json:"dropped"`
	// FrameMs is the shortest capture interval the tile saw; Intervals the recent ones.
	FrameMs   float64   `json:"frameMs"`
	Intervals []float64 `json:"intervals"`
}

func (s reviewStats) tile(source string) tileStats {
	for _, t := range s.Tiles {
		if t.Source == source {
			return t
		}
	}
	return tileStats{}
}

func readStats(t *testing.T, p *testkit.Page) reviewStats {
	t.Helper()
	var s reviewStats
	p.Eval(`window.reviewStats`, &s)
	return s
}

// framesExpr is true when every source's tile shows a frame of the stream it loaded last and
// has shown more than after frames (by source) in all.
func framesExpr(after map[string]int) string {
	b, _ := json.Marshal(after)
	return fmt.Sprintf(`(() => { const s = window.reviewStats, after = %s;
		return Object.keys(after).every((src) => { const t = s.tiles.find((x) => x.source === src);
			return t && t.state === 'showing' && t.frames > after[src]; }); })()`, b)
}

// seekAndSettle seeks the page to at by typing it into the go-to box, waits until every
// source of want shows its first frame there, and returns the page's seek time.
func seekAndSettle(t *testing.T, p *testkit.Page, at time.Time, want []string) reviewStats {
	t.Helper()
	before := readStats(t, p)
	p.Do("fill", 5*time.Second, map[string]any{"selector": "#goto", "value": at.UTC().Format(time.RFC3339Nano)})
	p.Do("press", 5*time.Second, map[string]any{"selector": "#goto", "key": "Enter"})
	p.WaitFor("the seek to end", fmt.Sprintf(`window.reviewStats.seekToFrameMs.length > %d && window.reviewStats.state !== 'seeking'`, len(before.SeekToFrameMs)), 30*time.Second)
	after := map[string]int{}
	for _, src := range want {
		after[src] = 0
	}
	p.WaitFor("the first frames after the seek", framesExpr(after), 20*time.Second)
	s := readStats(t, p)
	t.Logf("seek to %s: first frame on every tile after %.0f ms", at.UTC().Format("15:04:05.000"), s.SeekToFrameMs[len(s.SeekToFrameMs)-1])
	return s
}

// checkSpread lets the tiles play until the page has them aligned, then checks that the
// capture instants they show over the next animation frames are at most limit ms apart
// (p99, as the page measures them), and logs the figures. This machine is shared and has
// two cores: a window spoilt by a stutter of the machine is measured once more, from the
// start again (again seeks there, so that the recording does not run out), before the test
// fails.
func checkSpread(t *testing.T, p *testkit.Page, when string, limit float64, again func()) {
	t.Helper()
	const n, tries = 100, 2
	for try := 1; ; try++ {
		began := time.Now()
		p.WaitFor("the tiles aligned "+when, `window.reviewStats.aligned`, 20*time.Second)
		aligned := time.Since(began)
		from := readStats(t, p).SpreadCount
		p.WaitFor(fmt.Sprintf("%d spread samples %s", n, when), fmt.Sprintf(`window.reviewStats.spreadCount >= %d`, from+n), 60*time.Second)
		s := readStats(t, p)
		took := min(s.SpreadCount-from, len(s.SpreadMs))
		spread := s.SpreadMs[len(s.SpreadMs)-took:]
		v := p99(spread)
		errs := make([]string, len(s.Tiles))
		for i, st := range s.Tiles {
			errs[i] = fmt.Sprintf("%s %+.1f (%d unreported, %d dropped)", st.Source, st.ErrMs, st.Unreported, st.Dropped)
		}
		t.Logf("%s: aligned after %s; spread p99 %.1f ms, max %.1f ms over %d animation frames (%.0f a second); tiles off by %s ms; %d corrections so far %q; %d instants unmeasured; wide: %q", when,
			aligned.Round(time.Millisecond), v, slices.Max(spread), len(spread), float64(took)/(time.Since(began)-aligned).Seconds(), strings.Join(errs, ", "), s.Corrections, s.Events, s.Unmeasured, s.Wide)
		if v <= limit+1 {
			return
		}
		if try == tries {
			t.Errorf("%s: the tiles showed capture instants up to %.1f ms apart (p99), want within one frame (%.0f ms): %v", when, v, limit, spread)
			return
		}
		t.Logf("%s: spread p99 %.1f ms over the limit of %.0f ms; measuring again: %v", when, v, limit, spread)
		again()
	}
}

func p99(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[min(len(s)-1, int(math.Ceil(0.99*float64(len(s))))-1)]
}

// TestReviewPage records four sources of one live test pattern (cam4 only over the second
// half), and reviews them in the console's review page in headless Chromium: every tile
// shows the frame captured at the instant asked, the tiles play in lockstep (the spread
// between the capture times they show stays within one frame) through seeks and a speed
// change, frame steps move by one frame, cam4 shows "no recording" before its recording and
// joins when it starts, and the link reopens the review at its instant.
func TestReviewPage(t *testing.T) {
	testkit.ClosePooledBrowsers()
	full := []string{"cam1", "cam2", "cam3"}
	all := append(slices.Clone(full), "cam4")
	// cam4's half is long enough for 100 spread samples after seek 2 even on a loaded
	// machine, where the page measures as few as 7 a second: with 6 keyframes (12 s) the
	// recording of cam1–3 ended first.
	rec := recordReview(t, full, "cam4", 8)
	srv := startReviewServer(t, rec)
	first, last := srv.recorded(all...)
	cov := srv.coverage(first, last, all...)
	for _, src := range all {
		if len(cov[src]) != 1 {
			t.Fatalf("%s: ranges %+v, want one", src, cov[src])
		}
	}
	lateFrom := cov["cam4"][0].Start
	t.Logf("recorded %s..%s; cam4 from %s", first.Format("15:04:05.000"), last.Format("15:04:05.000"), lateFrom.Format("15:04:05.000"))
	if lateFrom.Sub(first) < 4*time.Second || last.Sub(lateFrom) < 14*time.Second {
		t.Fatalf("cam4 starts %s after the others and lasts %s", lateFrom.Sub(first), last.Sub(lateFrom))
	}

	p := testkit.OpenPage(t)
	defer p.LogConsole()
	defer func() {
		if t.Failed() {
			if raw, err := p.Try("eval", 5*time.Second, map[string]any{"expr": `window.reviewStats`}); err == nil {
				t.Logf("the page's stats: %s", raw)
			}
		}
	}()
	at := first.Add(1517 * time.Millisecond) // between frames and between keyframes
	p.Open(srv.reviewURL(all, first, last, at))

	// Paused at the instant: each tile shows the frame that covers it (captured at most one
	// frame before it); cam4 has nothing there yet.
	p.WaitFor("three tiles showing a frame", framesExpr(map[string]int{"cam1": 0, "cam2": 0, "cam3": 0}), 30*time.Second)
	p.WaitFor("cam4 without a recording", `document.querySelector('[data-tile="cam4"]').dataset.state === 'absent'`, 10*time.Second)
	var text string
	p.Eval(`document.querySelector('[data-tile="cam4"] .placeholder').textContent`, &text)
	if !strings.Contains(text, "no recording") || !strings.Contains(text, "next recording at") {
		t.Errorf("cam4's tile says %q, want no recording and when the next starts", text)
	}
	s := readStats(t, p)
	checkShown(t, s, full, at)

	// Play: frames advance on the three tiles, which stay together.
	p.Do("click", 5*time.Second, map[string]any{"selector": "#play"})
	for _, src := range full {
		p.WaitPlaying(src, 10, 20*time.Second)
	}
	checkSpread(t, p, "playing from the open", 40, func() { seekAndSettle(t, p, at, full) })

	// Seek 1, back and still before cam4's recording.
	seek1 := first.Add(2*time.Second + 263*time.Millisecond)
	s = seekAndSettle(t, p, seek1, full)
	checkShown(t, s, full, seek1)
	if st := s.tile("cam4"); st.State != "absent" {
		t.Errorf("cam4 at %s: state %q, want absent", seek1.Format("15:04:05.000"), st.State)
	}
	checkSpread(t, p, "after seek 1", 40, func() { seekAndSettle(t, p, seek1, full) })

	// Seek 2, into cam4's recording: four tiles. cam4 was recorded from another instant, so
	// its frames' capture times sit a fraction of a frame off the others' (within the
	// recorder's alignment): with cam1–3 one frame apart, cam4 showing the frame next to
	// theirs is up to 40 ms plus the larger part of that offset from one of them.
	seek2 := lateFrom.Add(533 * time.Millisecond)
	s = seekAndSettle(t, p, seek2, all)
	checkShown(t, s, all, seek2)
	offset := math.Abs(s.tile("cam4").FirstMs - s.tile("cam1").FirstMs)
	offset = max(offset, 40-offset)
	t.Logf("cam4's frames are captured %.1f ms off cam1's (or the other way round)", offset)
	checkSpread(t, p, "after seek 2", 40+offset, func() { seekAndSettle(t, p, seek2, all) })

	// 2×, from seek 2 again (the recording is short): the master runs twice as fast, the
	// tiles stay together.
	seekAndSettle(t, p, seek2, all)
	press(p, "Shift+Equal")
	p.WaitFor("2×", `window.reviewStats.speed === 2`, 5*time.Second)
	// At 2× a frame lasts 20 ms on screen, and this machine's Chromium draws at about 30 to
	// 60 Hz: tiles 20 ms apart in display time are a frame apart. The page's figures are
	// logged; two frames is the bound.
	checkSpread(t, p, "at 2×", 80+offset, func() { seekAndSettle(t, p, seek2, all) })
	w0, m0 := time.Now(), readStats(t, p).MasterMs
	p.WaitFor("1.5 s of capture time at 2×", fmt.Sprintf(`window.reviewStats.masterMs >= %f`, m0+1500), 10*time.Second)
	s = readStats(t, p)
	rate := (s.MasterMs - m0) / float64(time.Since(w0).Milliseconds())
	t.Logf("at 2× capture time ran %.2f× the wall clock", rate)
	if rate < 1.5 || rate > 2.5 {
		t.Errorf("at 2× the master ran %.2f× the wall clock", rate)
	}

	// Pause and step: one frame forward, one back.
	press(p, "Space")
	p.WaitFor("paused", `window.reviewStats.state === 'paused'`, 10*time.Second)
	s = readStats(t, p)
	shown := s.tile("cam1").CaptureMs
	for _, step := range []struct {
		key   string
		delta float64
	}{{"ArrowRight", 40}, {"ArrowLeft", -40}, {"ArrowLeft", -40}} {
		before := readStats(t, p)
		press(p, step.key)
		p.WaitFor("the step", fmt.Sprintf(`window.reviewStats.seekToFrameMs.length > %d && window.reviewStats.state === 'paused'`, len(before.SeekToFrameMs)), 30*time.Second)
		p.WaitFor("the step's frames", framesExpr(map[string]int{"cam1": 0, "cam2": 0, "cam3": 0, "cam4": 0}), 20*time.Second)
		s = readStats(t, p)
		t.Logf("%s: the frame on every tile after %.0f ms (shortest frame intervals: %v)", step.key, s.SeekToFrameMs[len(s.SeekToFrameMs)-1], []float64{s.tile("cam1").FrameMs, s.tile("cam2").FrameMs, s.tile("cam3").FrameMs, s.tile("cam4").FrameMs})
		if got := s.tile("cam1").CaptureMs - shown; math.Abs(got-step.delta) > 2 {
			t.Errorf("cam1 after %s: moved %.1f ms, want %.0f (frame intervals seen: shortest %.1f ms, recent %v)", step.key, got, step.delta, s.tile("cam1").FrameMs, s.tile("cam1").Intervals)
		}
		checkShown(t, s, all, time.UnixMilli(int64(math.Round(s.MasterMs))))
		shown += step.delta
	}

	// The link opens the review at the instant shown.
	p.Do("click", 5*time.Second, map[string]any{"selector": "#link"})
	var link string
	p.Eval(`document.getElementById('link-out').value`, &link)
	u, err := url.Parse(link)
	if err != nil || u.Query().Get("t") == "" || u.Query().Get("token") != "" {
		t.Fatalf("link %q: want t= and no token", link)
	}
	t.Logf("link: %s", link)
	p.Open(link)
	p.WaitFor("four tiles showing a frame", framesExpr(map[string]int{"cam1": 0, "cam2": 0, "cam3": 0, "cam4": 0}), 30*time.Second)
	checkShown(t, readStats(t, p), all, time.UnixMilli(int64(math.Round(shown+1))))
	// Sound from tile 2, enlarge it, back.
	press(p, "Digit2")
	press(p, "f")
	p.WaitFor("cam2 audible and enlarged", `window.reviewStats.audio === 'cam2' && window.reviewStats.enlarged === 'cam2' &&
		!document.querySelector('[data-tile="cam2"] video').muted && document.querySelector('[data-tile="cam1"] video').muted &&
		document.querySelector('[data-tile="cam2"]').classList.contains('enlarged')`, 5*time.Second)
	p.Do("screenshot", 10*time.Second, map[string]any{"path": screenshotPath(t, "review-enlarged.png")})
	press(p, "Escape")
	p.WaitFor("back to the grid", `window.reviewStats.enlarged === null && !document.querySelector('.tile.enlarged')`, 5*time.Second)
	p.Do("screenshot", 10*time.Second, map[string]any{"path": screenshotPath(t, "review.png")})

	// An API error is shown as the server said it.
	q := url.Values{"incident": {reviewIncident}, "sources": {"cam1,nosuchcam"}, "start": {ms(first)}, "end": {ms(last)}}
	p.Open(srv.base + "/review.html?" + q.Encode())
	raw := p.WaitFor("the error shown", `!document.getElementById('status').hidden && document.getElementById('status').textContent`, 20*time.Second)
	if !strings.Contains(string(raw), `no recordings of source \"nosuchcam\"`) {
		t.Errorf("the page shows %s, want the server's reason", raw)
	}
}

// press types key with nothing focused, as a reviewer using the shortcuts does.
func press(p *testkit.Page, key string) {
	var ok bool
	p.Eval(`(document.activeElement?.blur(), true)`, &ok)
	p.Do("press", 5*time.Second, map[string]any{"selector": "body", "key": key})
}

// checkShown checks that each source's tile shows the frame covering instant at: captured at
// it or at most one frame (40 ms) before it.
func checkShown(t *testing.T, s reviewStats, sources []string, at time.Time) {
	t.Helper()
	want := float64(at.UnixMilli())
	for _, src := range sources {
		st := s.tile(src)
		if d := st.FirstMs - want; d > 1 || d < -41 {
			t.Errorf("%s shows the frame captured %.1f ms from the instant asked, want within the frame before it", src, d)
		}
	}
}
