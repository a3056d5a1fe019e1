package console_test

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"fieldvideo/internal/testkit"
)

// runModule runs an ES module script in node from the static directory and decodes the JSON
// it prints into out.
func runModule(t *testing.T, script string, out any) {
	t.Helper()
	node := testkit.RequireBrowser(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--input-type=module", "-e", script)
	cmd.Dir = "static"
	b, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("node: %v\n%s", err, stderr)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

// TestAlignmentLabel checks what a tile says about its source's clock health.
func TestAlignmentLabel(t *testing.T) {
	const script = `
import { alignmentLabel, videoClock } from './timeline.js';
const clocks = [
  {trust: 'sender-reports', error_ms: 4.2, converged: true, skew_ppm: -85.1, offset_ms: -3200.5, report_age_ms: 1200, path_delay_ms: 40},
  {trust: 'refclk', error_ms: 0.3, converged: true},
  {trust: 'arrival', error_ms: 12.4, converged: true, skew_ppm: 90},
  {trust: 'arrival', error_ms: 31, converged: false},
  {trust: 'sender-reports', error_ms: 9, converged: false, upstream: true, skew_ppm: 0, report_age_ms: -1},
  {trust: 'unaligned', error_ms: -1, converged: false},
  {trust: 'gps-magic', error_ms: 1, converged: true},
  null,
  {error_ms: 3},
];
const labels = clocks.map(alignmentLabel);
const picked = [
  videoClock([{kind: 'audio', clock: {trust: 'arrival'}}, {kind: 'video', clock: {trust: 'refclk'}}])?.trust,
  videoClock([{kind: 'audio', clock: {trust: 'arrival'}}, {kind: 'video'}])?.trust,
  videoClock(undefined),
];
console.log(JSON.stringify({ labels, picked }));
`
	var res struct {
		Labels []struct{ Text, Warn, Title string }
		Picked []*string
	}
	runModule(t, script, &res)
	want := []struct{ text, warn, inTitle string }{
		{"±4 ms", "", "skew −85.1 ppm"},
		{"±1 ms", "", "reference clock"},
		{"aligned on arrival ±12 ms", "", "arrival times"},
		{"aligned on arrival ±31 ms", "not converged", "not settled"},
		{"±9 ms", "not converged", "aligned by ingest"},
		{"", "unaligned", "not known yet"},
		{"", "unaligned", "gps-magic"},
		{"", "", ""},
		{"", "", ""},
	}
	if len(res.Labels) != len(want) {
		t.Fatalf("%d labels, want %d", len(res.Labels), len(want))
	}
	for i, w := range want {
		got := res.Labels[i]
		if got.Text != w.text || got.Warn != w.warn {
			t.Errorf("clock %d: text %q warn %q, want %q and %q", i, got.Text, got.Warn, w.text, w.warn)
		}
		if w.inTitle != "" && !strings.Contains(got.Title, w.inTitle) {
			t.Errorf("clock %d: title %q lacks %q", i, got.Title, w.inTitle)
		}
	}
	if r := res.Labels[0].Title; !strings.Contains(r, "camera clock −3200.5 ms off") || !strings.Contains(r, "last report 1.2 s ago") || !strings.Contains(r, "path delay 40 ms") {
		t.Errorf("sender-report title %q lacks the details", r)
	}
	if strings.Contains(res.Labels[4].Title, "ppm") {
		t.Errorf("an alignment made by ingest claims a skew: %q", res.Labels[4].Title)
	}
	if len(res.Picked) != 3 || res.Picked[0] == nil || *res.Picked[0] != "refclk" || res.Picked[1] == nil || *res.Picked[1] != "arrival" || res.Picked[2] != nil {
		t.Errorf("videoClock picked %v, want refclk (video first), arrival (the only one), none", res.Picked)
	}
}

// TestCaptureTime checks how a frame's capture time is found: from the synchronization
// source of the same frame, of a newer frame (stepping back by the RTP time), across an RTP
// timestamp wrap, and from requestVideoFrameCallback's captureTime when that is all.
func TestCaptureTime(t *testing.T) {
	const script = `
import { captureTimeOf, LatencyMeter, NTP_UNIX_OFFSET_MS } from './timeline.js';
const ntp = (unixMs) => unixMs + NTP_UNIX_OFFSET_MS;
const cases = [
  captureTimeOf({rtpTimestamp: 1000}, [{rtpTimestamp: 1000, captureTimestamp: ntp(5000)}], 0),
  captureTimeOf({rtpTimestamp: 1000}, [{rtpTimestamp: 1000 + 3600, captureTimestamp: ntp(5040)}], 0),
  captureTimeOf({rtpTimestamp: 4294967000}, [{rtpTimestamp: 3304, captureTimestamp: ntp(7000)}], 0),
  captureTimeOf({rtpTimestamp: 1000, captureTime: 250}, [{rtpTimestamp: 1000}], 1e12),
  captureTimeOf({rtpTimestamp: 1000}, [{rtpTimestamp: 1000 + 90 * 5000, captureTimestamp: ntp(9)}], 0),
  captureTimeOf({}, [], 0),
];
const m = new LatencyMeter();
const few = [];
for (let i = 0; i < 20; i++) {
  // display at 40 ms steps; latencies 100…119 ms, plus one outlier.
  m.record(1000 + 40 * i, 1e12 + 1000 + 40 * i - (i === 7 ? 900 : 100 + i), true, 1e12);
  few.push(m.latency(1000 + 40 * i));
}
console.log(JSON.stringify({ cases: cases.map((c) => [Number.isNaN(c.at) ? null : c.at, c.fromBaseline]), few, late: m.latency(1000 + 40 * 19 + 5000) }));
`
	var res struct {
		Cases [][2]any
		Few   []*float64
		Late  *float64
	}
	runModule(t, script, &res)
	want := [][2]any{{5000.0, true}, {5000.0, true}, {7000.0 - 3600.0/90, true}, {1e12 + 250, false}, {nil, false}, {nil, false}}
	for i, w := range want {
		if res.Cases[i][0] != w[0] || res.Cases[i][1] != w[1] {
			t.Errorf("case %d: capture %v from the baseline %v, want %v %v", i, res.Cases[i][0], res.Cases[i][1], w[0], w[1])
		}
	}
	for i, v := range res.Few {
		if i < 7 && v != nil {
			t.Errorf("latency after %d frames = %v, want none yet (too few)", i+1, *v)
		}
	}
	// the window holds 1.5 s: the last 38 samples; the median ignores the outlier.
	if last := res.Few[len(res.Few)-1]; last == nil || *last < 108 || *last > 112 {
		t.Errorf("median latency = %v, want about 110 ms", last)
	}
	if res.Late != nil {
		t.Errorf("latency 5 s after the last frame = %v, want none", *res.Late)
	}
}

// TestPlanDelays runs the synced-mode controller against simulated tiles: their own
// latencies differ by up to 180 ms, one browser adds delay by itself (lip sync) that the
// controller must not need to know, and measurements are noisy. It requires that the tiles
// end up showing the same capture instant, that the slowest tile is not held back, and that
// the holds neither run away nor linger once the slow tile gets faster.
func TestPlanDelays(t *testing.T) {
	const script = `
import { planDelays } from './timeline.js';
let seed = 7;
const noise = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return (seed / 2147483648 - 0.5) * 8; };
const tiles = [
  { name: 'cam1', own: 200, hidden: 0 },
  { name: 'cam2', own: 20, hidden: 0 },
  { name: 'cam3', own: 35, hidden: 40 }, // a hold under 40 ms changes nothing here
  { name: 'cam4', own: 60, hidden: 0 },
];
const extra = {};
const step = () => {
  const rows = tiles.map((t) => ({ name: t.name, extraMs: extra[t.name] ?? null,
    latencyMs: Math.max(t.own, t.own - t.hidden + (extra[t.name] ?? 0)) + noise() }));
  const plan = planDelays(rows);
  for (const t of tiles) extra[t.name] = plan.extraMs[t.name];
  return rows;
};
const trace = [];
for (let i = 0; i < 200; i++) {
  const rows = step();
  if (i === 199 || i % 20 === 0) trace.push({ i, rows: rows.map((r) => Math.round(r.latencyMs)), extra: { ...extra } });
}
const settled = step();
// the slow camera gets faster: the holds must come down.
tiles[0].own = 90;
for (let i = 0; i < 60; i++) step();
const after = step();
console.log(JSON.stringify({ settled, after, extra, trace,
  empty: planDelays([]), single: planDelays([{ name: 'a', latencyMs: 50, extraMs: null }]),
  allHeld: planDelays([{ name: 'a', latencyMs: 50, extraMs: 30 }, { name: 'b', latencyMs: 60, extraMs: 10 }]) }));
`
	type row struct {
		Name      string   `json:"name"`
		LatencyMs float64  `json:"latencyMs"`
		ExtraMs   *float64 `json:"extraMs"`
	}
	var res struct {
		Settled, After []row
		Extra          map[string]*float64
		Trace          []any
		Empty, Single  struct{ SkewMs *float64 }
		AllHeld        struct{ ExtraMs map[string]*float64 }
	}
	runModule(t, script, &res)
	spread := func(rows []row) float64 {
		lo, hi := rows[0].LatencyMs, rows[0].LatencyMs
		for _, r := range rows {
			lo, hi = min(lo, r.LatencyMs), max(hi, r.LatencyMs)
		}
		return hi - lo
	}
	t.Logf("settled: %+v", res.Settled)
	t.Logf("after cam1 got faster: %+v", res.After)
	if s := spread(res.Settled); s > 16 {
		t.Errorf("after 200 steps the tiles are %.1f ms apart, want within 16 (noise ±4 ms):\n%v", s, res.Trace)
	}
	if res.Settled[0].ExtraMs != nil {
		t.Errorf("the slowest tile is held back %v ms", *res.Settled[0].ExtraMs)
	}
	for _, r := range res.Settled[1:] {
		if r.ExtraMs == nil || *r.ExtraMs > 260 {
			t.Errorf("%s held back %v ms, want about its distance to cam1 (at most 260)", r.Name, r.ExtraMs)
		}
	}
	if s := spread(res.After); s > 16 {
		t.Errorf("after cam1 got faster the tiles are %.1f ms apart, want within 16", s)
	}
	for _, r := range res.After {
		if r.LatencyMs > 110 {
			t.Errorf("after cam1 got faster (90 ms), %s still shows %.0f ms: the holds did not come down", r.Name, r.LatencyMs)
		}
	}
	if res.Empty.SkewMs != nil || res.Single.SkewMs != nil {
		t.Errorf("skew of no tile or one tile = %v %v, want none", res.Empty.SkewMs, res.Single.SkewMs)
	}
	if a, b := res.AllHeld.ExtraMs["a"], res.AllHeld.ExtraMs["b"]; a == nil || *a != 30 || b != nil {
		t.Errorf("with every tile held, the least held must be released: %v %v", a, b)
	}
}
