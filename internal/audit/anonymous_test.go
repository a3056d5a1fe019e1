package audit

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"fieldvideo/internal/testkit"
)

// fakeClock is the time of a log under test; it moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fakeTimers holds the flushes the limiter schedules until the test
// runs them.
type fakeTimers struct {
	mu    sync.Mutex
	armed []*fakeTimer
}

type fakeTimer struct {
	d       time.Duration
	f       func()
	stopped bool
}

func (ft *fakeTimers) after(d time.Duration, f func()) func() bool {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	t := &fakeTimer{d: d, f: f}
	ft.armed = append(ft.armed, t)
	return func() bool {
		ft.mu.Lock()
		defer ft.mu.Unlock()
		was := !t.stopped
		t.stopped = true
		return was
	}
}

// fire runs the flushes armed and not stopped, and returns how many ran.
func (ft *fakeTimers) fire(t *testing.T) int {
	t.Helper()
	ft.mu.Lock()
	armed := ft.armed
	ft.armed = nil
	ft.mu.Unlock()
	n := 0
	for _, tm := range armed {
		if tm.stopped {
			continue
		}
		if tm.d != anonymousInterval {
			t.Fatalf("a flush armed for %s, want %s", tm.d, anonymousInterval)
		}
		tm.f()
		n++
	}
	return n
}

// pending returns how many flushes are armed and not stopped.
func (ft *fakeTimers) pending() int {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	n := 0
	for _, tm := range ft.armed {
		if !tm.stopped {
			n++
		}
	}
	return n
}

// openLimited opens a log whose clock and flush timer the test drives.
func openLimited(t *testing.T, file string) (*Log, *fakeClock, *fakeTimers) {
	t.Helper()
	clock := &fakeClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	l := openTest(t, Params{File: file, KeyFile: testKeyFile(t), Now: clock.now})
	timers := &fakeTimers{}
	l.anon.after = timers.after
	return l, clock, timers
}

// refusingHandler answers 200 to anyone on /v1/auth/config, 200 to alice
// on /v1/sources, and 404 with the path in its reason to everything else.
var refusingHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v1/auth/config" || (r.URL.Path == "/v1/sources" && r.Header.Get("X-Who") == "alice") {
		_, _ = io.WriteString(w, "ok")
		return
	}
	http.Error(w, "no source "+r.URL.Path, http.StatusNotFound)
})

// serve runs one GET through h from remote and returns the status.
func serve(h http.Handler, remote, path, who string) int {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.RemoteAddr = remote
	if who != "" {
		req.Header.Set("X-Who", who)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

// requestEvents returns the requests' own events and the summaries of a
// trail.
func requestEvents(t *testing.T, path string) (own, summaries []map[string]any) {
	t.Helper()
	for _, line := range readLines(t, path) {
		m := lineJSON(t, line)
		switch {
		case m["actor"] == nil:
		case m["action"] == ActionAnonymousSummary:
			summaries = append(summaries, m)
		default:
			own = append(own, m)
		}
	}
	return own, summaries
}

func verifyTrail(t *testing.T, path string) {
	t.Helper()
	if _, err := VerifyFiles([]string{path}, testPub()); err != nil {
		t.Fatalf("the trail does not verify: %v", err)
	}
}

// A flood of refused requests without a token, with long paths and a long
// bearer token, from one client over keep-alive connections: a burst of
// short events, then one summary per interval that counts the rest. The
// requests of a valid identity in the middle of it are all written in full.
func TestHTTPRefusedFloodIsBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, clock, timers := openLimited(t, path)
	srv := auditedServer(t, l, refusingHandler)
	long := "/v1/sources/" + strings.Repeat("x", 1500)
	token := strings.Repeat("T", 4096)
	const flood = 300
	alice := 0
	for i := 0; i < flood; i++ {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+long, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound {
			t.Fatalf("request %d: %d", i, res.StatusCode)
		}
		if i%50 == 25 {
			if code, _ := get(t, srv.URL+"/v1/sources/"+strings.Repeat("y", 1500), "alice"); code != http.StatusNotFound {
				t.Fatalf("alice's refused request: %d", code)
			}
			if code, body := get(t, srv.URL+"/v1/sources", "alice"); code != 200 || body != "ok" {
				t.Fatalf("alice's request: %d %q", code, body)
			}
			alice += 2
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 64<<10 {
		t.Fatalf("the flood wrote %d bytes of audit", fi.Size())
	}
	own, summaries := requestEvents(t, path)
	anonymous := 0
	for _, ev := range own {
		if ev["actor"] == "alice" {
			continue
		}
		anonymous++
		p, _ := ev["path"].(string)
		r, _ := ev["reason"].(string)
		if len(p) > anonymousField+len("…(clipped)") || len(r) > anonymousField+len("…(clipped)") || !strings.HasPrefix(p, "/v1/sources/xxx") {
			t.Fatalf("a refused request without identity wrote path %d bytes, reason %d bytes: %v", len(p), len(r), ev)
		}
	}
	if anonymous != anonymousAddrBurst || len(summaries) != 0 {
		t.Fatalf("%d events and %d summaries for %d refused requests at one instant, want %d and none before the interval ends",
			anonymous, len(summaries), flood, anonymousAddrBurst)
	}
	if n := len(own) - anonymous; n != alice {
		t.Fatalf("%d of alice's %d requests written", n, alice)
	}
	for _, ev := range own {
		if ev["actor"] == "alice" && ev["status"] == float64(404) && ev["path"] != "/v1/sources/"+strings.Repeat("y", 1500) {
			t.Fatalf("alice's refused request is not written in full: %v", ev)
		}
	}

	if n := timers.fire(t); n != 1 {
		t.Fatalf("%d flushes armed, want 1", n)
	}
	_, summaries = requestEvents(t, path)
	if len(summaries) != 1 {
		t.Fatalf("%d summaries, want 1: %v", len(summaries), summaries)
	}
	s := summaries[0]
	at := clock.now().Format(time.RFC3339)
	want := map[string]any{"actor": "anonymous", "remote": "127.0.0.1", "result": "denied", "via": "http", "method": "GET",
		"status": float64(404), "count": float64(flood - anonymousAddrBurst), "refused": float64(flood - anonymousAddrBurst), "since": at, "until": at}
	for k, v := range want {
		if s[k] != v {
			t.Errorf("summary: %s = %v, want %v (%v)", k, s[k], v, s)
		}
	}
	if r, _ := s["reason"].(string); !strings.HasPrefix(r, fmt.Sprintf("%d more requests without a valid identity (%[1]d refused) from 127.0.0.1 between ", flood-anonymousAddrBurst)) {
		t.Errorf("summary reason %q", r)
	}
	if p, _ := s["path"].(string); len(p) > anonymousField+len("…(clipped)") || !strings.HasPrefix(p, "/v1/sources/xxx") {
		t.Errorf("summary path %q", p)
	}

	// The flood goes on: the next interval has its own summary.
	for i := 0; i < 5; i++ {
		if code, _ := get(t, srv.URL+long, ""); code != http.StatusNotFound {
			t.Fatalf("%d", code)
		}
	}
	if n := timers.fire(t); n != 1 {
		t.Fatalf("%d flushes armed for the next interval, want 1", n)
	}
	closeTest(t, l)
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), "TTTT") {
		t.Fatal("the bearer token was written")
	}
	own, summaries = requestEvents(t, path)
	if len(summaries) != 2 || summaries[1]["count"] != float64(5) || len(own) != anonymous+alice {
		t.Fatalf("after the flood went on: %d own events, summaries %v", len(own), summaries)
	}
	verifyTrail(t, path)
}

// Each address earns events back over time; granted requests without a
// valid identity take from the same buckets; IPv6 addresses of one /64
// share their bucket; what is held back when the log closes is in a
// summary written by Close.
func TestHTTPAnonymousBucketsAndClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, clock, timers := openLimited(t, path)
	h := HTTP(l, identifyHeader, refusingHandler)
	for i := 0; i < anonymousAddrBurst+5; i++ {
		serve(h, fmt.Sprintf("192.0.2.1:%d", 1000+i), "/v1/sources/a", "")
	}
	clock.add(time.Second)
	for i := 0; i < 3; i++ {
		if code := serve(h, "192.0.2.1:2000", "/v1/auth/config", ""); code != 200 {
			t.Fatalf("public request: %d", code)
		}
	}
	for i := 0; i < anonymousAddrBurst+1; i++ {
		serve(h, "198.51.100.7:80", "/v1/auth/config", "")
	}
	for i := 0; i < anonymousAddrBurst; i++ {
		serve(h, "[2001:db8:1:2::1]:443", "/v1/sources/c", "")
	}
	serve(h, "[2001:db8:1:2::99]:443", "/v1/sources/d", "") // the same /64: held back
	serve(h, "[2001:db8:1:3::1]:443", "/v1/sources/e", "")  // another /64
	if n := timers.pending(); n != 1 {
		t.Fatalf("%d flushes armed, want 1", n)
	}
	closeTest(t, l)
	if n := timers.pending(); n != 0 {
		t.Fatalf("%d flushes still armed after Close", n)
	}
	own, summaries := requestEvents(t, path)
	if want := anonymousAddrBurst + anonymousAddrRate + anonymousAddrBurst + anonymousAddrBurst + 1; len(own) != want {
		t.Fatalf("%d own events, want %d", len(own), want)
	}
	got := map[string]string{}
	for _, s := range summaries {
		r, _ := s["remote"].(string)
		got[r] = fmt.Sprint(s["count"], " ", s["refused"], " ", s["result"])
	}
	want := map[string]string{"192.0.2.1": "6 5 denied", "198.51.100.7": "1 <nil> ok", "2001:db8:1:2::/64": "1 1 denied"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("summaries written by Close %v, want %v", got, want)
	}
	for _, s := range summaries {
		if s["remote"] == "192.0.2.1" && (s["path"] != "/v1/auth/config" || s["status"] != float64(200) || s["since"] == s["until"]) {
			t.Fatalf("summary %v: want the last request and the times of the first and last", s)
		}
	}
	verifyTrail(t, path)
}

// A flood from many addresses is bounded overall: the shared bucket, a
// bounded number of tracked addresses, and a bounded number of summaries
// that still count every request. Idle addresses are forgotten.
func TestHTTPAnonymousManyAddresses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, clock, timers := openLimited(t, path)
	defer l.Close()
	h := HTTP(l, identifyHeader, refusingHandler)
	const addrs = anonymousMaxAddrs + 1000
	for i := 0; i < addrs; i++ {
		serve(h, fmt.Sprintf("10.%d.%d.%d:5000", i>>16&255, i>>8&255, i&255), "/x", "")
	}
	l.anon.mu.Lock()
	tracked := len(l.anon.keys)
	l.anon.mu.Unlock()
	if tracked > anonymousMaxAddrs {
		t.Fatalf("%d addresses tracked, at most %d", tracked, anonymousMaxAddrs)
	}
	own, _ := requestEvents(t, path)
	if len(own) != anonymousBurst {
		t.Fatalf("%d events for %d refused requests from as many addresses, want %d", len(own), addrs, anonymousBurst)
	}
	timers.fire(t)
	_, summaries := requestEvents(t, path)
	if len(summaries) != anonymousSummaries+1 {
		t.Fatalf("%d summaries, want %d", len(summaries), anonymousSummaries+1)
	}
	total := 0.0
	for _, s := range summaries {
		total += s["count"].(float64)
	}
	if int(total) != addrs-anonymousBurst || summaries[anonymousSummaries]["remote"] != nil {
		t.Fatalf("summaries count %v requests, want %d; the last %v", total, addrs-anonymousBurst, summaries[anonymousSummaries])
	}

	clock.add(time.Minute)
	for i := 0; i < anonymousAddrBurst+1; i++ {
		serve(h, "198.51.100.1:1", "/y", "")
	}
	timers.fire(t)
	l.anon.mu.Lock()
	tracked = len(l.anon.keys)
	l.anon.mu.Unlock()
	if tracked != 1 {
		t.Fatalf("%d addresses tracked after the others were idle, want 1", tracked)
	}
	closeTest(t, l)
	verifyTrail(t, path)
}

// A summary that cannot be written (the disk is full) is counted again and
// written once the log can be written.
func TestHTTPAnonymousSummaryRetried(t *testing.T) {
	disk := testkit.SmallDisk(t, 64<<10)
	path := filepath.Join(disk, "audit.log")
	l, _, timers := openLimited(t, path)
	h := HTTP(l, identifyHeader, refusingHandler)
	for i := 0; i < anonymousAddrBurst+3; i++ {
		serve(h, "192.0.2.9:1", "/z", "")
	}
	filler := testkit.FillDisk(t, disk)
	for i := 0; l.Write(Event{Actor: "filling the last page", Action: "view"}) == nil; i++ {
		if i > 1000 {
			t.Fatal("the audit log still takes events on a full disk")
		}
	}
	if n := timers.fire(t); n != 1 {
		t.Fatalf("%d flushes, want 1", n)
	}
	if n := timers.pending(); n != 1 {
		t.Fatalf("%d flushes armed after the summary failed, want 1", n)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	timers.fire(t)
	_, summaries := requestEvents(t, path)
	if len(summaries) != 1 || summaries[0]["count"] != float64(3) || summaries[0]["remote"] != "192.0.2.9" {
		t.Fatalf("summaries %v", summaries)
	}
	closeTest(t, l)
	verifyTrail(t, path)
}
