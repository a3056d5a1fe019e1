package audit

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHTTPLimitedRoleFloodIsRefused floods with the token of a limited role
// (a responder's phone) and with one of an unlimited role at the same
// instant: the phone's requests past its burst are refused with 429, not
// served, and counted in one rate-limited summary; the other role's are all
// served and written in full.
func TestHTTPLimitedRoleFloodIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	clock := &fakeClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	l := openTest(t, Params{File: path, KeyFile: testKeyFile(t), Now: clock.now,
		Limits: map[string]Limit{"responder": {Rate: 2, Burst: 5}}})
	timers := &fakeTimers{}
	l.limited.after = timers.after
	served := map[string]int{}
	srv := httptest.NewServer(HTTP(l, func(r *http.Request) (string, string) {
		return r.Header.Get("X-Who"), r.Header.Get("X-Role")
	}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served[r.Header.Get("X-Who")]++
	})))
	t.Cleanup(srv.Close)
	do := func(who, role string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/sources", nil)
		req.Header.Set("X-Who", who)
		req.Header.Set("X-Role", role)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header.Get("Retry-After") + " " + string(b)
	}
	const flood = 30
	refused := 0
	for range flood {
		code, body := do("phone7", "responder")
		switch code {
		case 200:
		case http.StatusTooManyRequests:
			refused++
			if !strings.Contains(body, "too many requests from phone7") || !strings.HasPrefix(body, "1 ") {
				t.Fatalf("the refusal: %q", body)
			}
		default:
			t.Fatalf("phone7: %d %s", code, body)
		}
		if code, _ := do("wall1", "wall"); code != 200 {
			t.Fatalf("wall1: %d", code)
		}
	}
	if refused != flood-5 || served["phone7"] != 5 || served["wall1"] != flood {
		t.Fatalf("refused %d of the phone's requests, served %d of its and %d of the wall's; want %d, 5 and %d",
			refused, served["phone7"], served["wall1"], flood-5, flood)
	}
	own, _ := requestEvents(t, path)
	count := map[string]int{}
	for _, ev := range own {
		if ev["action"] == ActionRateLimited {
			t.Fatalf("a summary before its interval: %v", ev)
		}
		count[ev["actor"].(string)]++
	}
	if count["phone7"] != 5 || count["wall1"] != flood {
		t.Fatalf("events: %v; want the phone's 5 served requests and the wall's %d", count, flood)
	}

	if n := timers.fire(t); n != 1 {
		t.Fatalf("%d flushes, want 1", n)
	}
	var summaries []map[string]any
	for _, ev := range mustEvents(t, path) {
		if ev["action"] == ActionRateLimited {
			summaries = append(summaries, ev)
		}
	}
	if len(summaries) != 1 {
		t.Fatalf("%d rate-limited summaries, want 1", len(summaries))
	}
	s := summaries[0]
	want := map[string]any{"actor": "phone7", "role": "responder", "result": "denied", "status": float64(429),
		"count": float64(flood - 5), "refused": float64(flood - 5), "path": "/v1/sources"}
	for k, v := range want {
		if s[k] != v {
			t.Errorf("summary: %s = %v, want %v (%v)", k, s[k], v, s)
		}
	}

	// a second later the phone has 2 requests again
	clock.add(time.Second)
	for i := range 3 {
		code, _ := do("phone7", "responder")
		if (i < 2) != (code == 200) {
			t.Fatalf("request %d a second later: %d", i, code)
		}
	}
	verifyTrail(t, path)
}

func mustEvents(t *testing.T, path string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range readLines(t, path) {
		out = append(out, lineJSON(t, line))
	}
	return out
}
