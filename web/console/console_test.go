package console_test

import (
	"bytes"
	"io"
	"io/fs"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"fieldvideo/web/console"
)

// TestConsoleFiles checks that the SFU serves every page file with a type browsers accept
// (ES modules need a JavaScript type) and without a token.
func TestConsoleFiles(t *testing.T) {
	h := startSFU(t)
	for _, tc := range []struct {
		path, contentType, contains string
	}{
		{"/", "text/html", `<script type="module" src="wall.js">`},
		{"/wall.js", "text/javascript", "class Wall"},
		{"/whep.js", "text/javascript", "export class WHEPSession"},
		{"/timeline.js", "text/javascript", "export class PlayoutSync"},
		{"/api.js", "text/javascript", "export async function fetchSources"},
		{"/style.css", "text/css", ".grid"},
		{"/base.css", "text/css", "--bg"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			res, err := http.Get(h.base + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %s", tc.path, res.Status)
			}
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, tc.contentType) {
				t.Errorf("GET %s: Content-Type %q, want %s", tc.path, ct, tc.contentType)
			}
			if !bytes.Contains(body, []byte(tc.contains)) {
				t.Errorf("GET %s: body lacks %q", tc.path, tc.contains)
			}
		})
	}
}

// TestConsoleSelfContained checks that the console loads nothing from elsewhere (it runs on
// incident networks with no internet) and that its files stay small.
func TestConsoleSelfContained(t *testing.T) {
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}[/:"'\s)]|@import|\burl\(\s*['"]?(https?:|//)`)
	var names []string
	err := fs.WalkDir(console.FS(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		names = append(names, path)
		if strings.HasPrefix(path, "vendor/") {
			// third-party code as published (links in its comments and credits), checked
			// against its pinned hashes by TestVendoredLeaflet; the pages' CSP keeps it local.
			return nil
		}
		b, err := fs.ReadFile(console.FS(), path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			// a namespace name is a name, not an address the page fetches.
			line = strings.ReplaceAll(line, "http://www.w3.org/2000/svg", "")
			if m := external.FindString(line); m != "" {
				t.Errorf("%s:%d refers to something outside the console (%q): serve it from static/ instead", path, i+1, m)
			}
		}
		if n := bytes.Count(b, []byte("\n")); n > 800 {
			t.Errorf("%s has %d lines; keep console files under 800", path, n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"index.html", "wall.js", "whep.js", "api.js", "timeline.js", "style.css", "base.css"} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("the console has no %s (files: %v)", want, names)
		}
	}
}

// TestScriptHelpers runs the page's pure helpers in node: the reconnection backoff and the
// bitrate label.
func TestScriptHelpers(t *testing.T) {
	const script = `
import { Backoff } from './whep.js';
import { formatBitrate } from './api.js';
const runs = [];
for (let i = 0; i < 200; i++) {
  const b = new Backoff();
  const seq = [];
  for (let j = 0; j < 8; j++) seq.push(b.next());
  b.reset();
  const afterReset = b.next();
  b.jumpToMax();
  runs.push({ seq, afterReset, afterJump: b.next() });
}
const labels = [0, NaN, -5, 850e3, 2.4e6, 12e6, 999].map(formatBitrate);
console.log(JSON.stringify({ runs, labels }));
`
	var res struct {
		Runs []struct {
			Seq        []float64 `json:"seq"`
			AfterReset float64   `json:"afterReset"`
			AfterJump  float64   `json:"afterJump"`
		} `json:"runs"`
		Labels []string `json:"labels"`
	}
	runModule(t, script, &res)
	// attempt i waits base = min(8 s, 0.5 s·2^i), ±25 %, never outside 0.5–8 s.
	firsts := map[float64]bool{}
	for _, run := range res.Runs {
		for i, d := range run.Seq {
			base := min(8000, 500*math.Pow(2, float64(i)))
			lo, hi := max(500, 0.75*base), min(8000, 1.25*base)
			if d < lo-1 || d > hi+1 {
				t.Fatalf("attempt %d waited %v ms, want %v–%v (sequence %v)", i, d, lo, hi, run.Seq)
			}
		}
		firsts[run.Seq[1]] = true
		if run.AfterReset < 500 || run.AfterReset > 625 {
			t.Errorf("after reset: %v ms, want 500–625", run.AfterReset)
		}
		if run.AfterJump < 6000 || run.AfterJump > 8000 {
			t.Errorf("after jumpToMax: %v ms, want 6000–8000", run.AfterJump)
		}
	}
	if len(firsts) < 10 {
		t.Errorf("the second delay took only %d values over %d runs: no jitter", len(firsts), len(res.Runs))
	}
	want := []string{"—", "—", "—", "850 kbit/s", "2.4 Mbit/s", "12 Mbit/s", "1 kbit/s"}
	if !slices.Equal(res.Labels, want) {
		t.Errorf("formatBitrate labels = %q, want %q", res.Labels, want)
	}
}

// TestDisplayName: the call page sends a typed name as the server takes it.
func TestDisplayName(t *testing.T) {
	const script = `
import { displayName } from './call-strings.js';
const names = ['  Anna Lee  ', 'Anna\nCommander', 'Anna \u202egnp.exe', 'A\u0000B', '李安娜 (EOC)', 'x'.repeat(300), '界'.repeat(100)];
console.log(JSON.stringify(names.map(displayName)));
`
	var got []string
	runModule(t, script, &got)
	want := []string{"Anna Lee", "AnnaCommander", "Anna gnp.exe", "AB", "李安娜 (EOC)", strings.Repeat("x", 256), strings.Repeat("界", 85)}
	if len(got) != len(want) {
		t.Fatalf("got %q", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("name %d: %q, want %q", i, got[i], want[i])
		}
	}
}
