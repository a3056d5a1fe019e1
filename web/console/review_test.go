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
	P99           *float64    `json:"p99"`
	SeekToFrameMs []float64   `json:"seekToFrameMs"`
	Tiles         []tileStats `json:"tiles"`
	Errors        []string    `json:"errors"`
}

type tileStats struct {
	Source    string  `json:"source"`
	State     string  `json:"state"`
	Present   bool    `json:"present"`
	CaptureMs float64 `json:"captureMs"`
	// FirstMs is the capture time of the first frame shown after the last load (a seek).
	FirstMs float64 `json:"firstMs"`
	ErrMs   float64 `json:"errMs"`
	Frames    int     `json:"frames"`
	Rate      float64 `json:"rate"`
	Error     string  `json:"error"`
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

// spreadAfterSettling lets the tiles play for settle samples, then returns the spread
// samples (ms) of the next n animation frames.
func spreadAfterSettling(t *testing.T, p *testkit.Page, settle, n int) []float64 {
	t.Helper()
	s := readStats(t, p)
	from := s.SpreadCount + settle
	p.WaitFor(fmt.Sprintf("%d spread samples", settle+n), fmt.Sprintf(`window.reviewStats.spreadCount >= %d`, from+n), 60*time.Second)
	s = readStats(t, p)
	took := s.SpreadCount - from
	if took > len(s.SpreadMs) {
		took = len(s.SpreadMs)
	}
	return s.SpreadMs[len(s.SpreadMs)-took:]
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
	full := []string{"cam1", "cam2", "cam3"}
	all := append(slices.Clone(full), "cam4")
	rec := recordReview(t, full, "cam4", 7)
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
	if lateFrom.Sub(first) < 4*time.Second || last.Sub(lateFrom) < 6*time.Second {
		t.Fatalf("cam4 starts %s after the others and lasts %s", lateFrom.Sub(first), last.Sub(lateFrom))
	}

	p := testkit.OpenPage(t)
	defer p.LogConsole()
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

	// Play: frames advance on the three tiles.
	p.Do("click", 5*time.Second, map[string]any{"selector": "#play"})
	for _, src := range full {
		p.WaitPlaying(src, 10, 20*time.Second)
	}
	spread := spreadAfterSettling(t, p, 60, 180)
	t.Logf("playing from the start: spread p99 %.1f ms over %d frames", p99(spread), len(spread))
	checkSpread(t, "playing", spread)

	// Seek 1, still before cam4's recording.
	seek1 := first.Add(3*time.Second + 263*time.Millisecond)
	s = seekAndSettle(t, p, seek1, full)
	checkShown(t, s, full, seek1)
	if st := s.tile("cam4"); st.State != "absent" {
		t.Errorf("cam4 at %s: state %q, want absent", seek1.Format("15:04:05.000"), st.State)
	}
	spread = spreadAfterSettling(t, p, 60, 180)
	t.Logf("after seek 1: spread p99 %.1f ms over %d frames", p99(spread), len(spread))
	checkSpread(t, "after seek 1", spread)

	// Seek 2, into cam4's recording: four tiles.
	seek2 := lateFrom.Add(1333 * time.Millisecond)
	s = seekAndSettle(t, p, seek2, all)
	checkShown(t, s, all, seek2)
	spread = spreadAfterSettling(t, p, 60, 180)
	t.Logf("after seek 2: spread p99 %.1f ms over %d frames", p99(spread), len(spread))
	checkSpread(t, "after seek 2", spread)

	// 2×: the master runs twice as fast, the tiles stay together.
	press(p, "Shift+Equal")
	p.WaitFor("2×", `window.reviewStats.speed === 2`, 5*time.Second)
	w0, m0 := time.Now(), readStats(t, p).MasterMs
	spread = spreadAfterSettling(t, p, 60, 180)
	s = readStats(t, p)
	rate := (s.MasterMs - m0) / float64(time.Since(w0).Milliseconds())
	t.Logf("at 2×: spread p99 %.1f ms over %d frames; capture time ran %.2f× the wall clock", p99(spread), len(spread), rate)
	checkSpread(t, "at 2×", spread)
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
		for _, src := range all {
			got := s.tile(src).CaptureMs - shown
			if math.Abs(got-step.delta) > 2 {
				t.Errorf("%s after %s: moved %.1f ms, want %.0f", src, step.key, got, step.delta)
			}
		}
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
	s = readStats(t, p)
	for _, src := range all {
		if d := s.tile(src).CaptureMs - shown; math.Abs(d) > 2 {
			t.Errorf("the link reopened %s %.1f ms off the instant shown", src, d)
		}
	}
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

// checkSpread checks that the tiles showed frames at most one frame (40 ms) apart, p99.
func checkSpread(t *testing.T, when string, spread []float64) {
	t.Helper()
	if len(spread) == 0 {
		t.Errorf("%s: no spread samples", when)
		return
	}
	if v := p99(spread); v > 41 {
		t.Errorf("%s: the tiles showed capture instants up to %.1f ms apart (p99), want within one frame (40 ms): %v", when, v, spread)
	}
}
