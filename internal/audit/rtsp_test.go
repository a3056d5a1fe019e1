package audit

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// A flood of RTSP refusals without a valid identity, with long fields,
// from one address: a burst of clipped events, the rest counted in the
// address's summary; HTTP requests without a valid identity from the same
// address share its bucket, and a request with a valid identity is still
// written in full.
func TestWriteAnonymousIsBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, _, timers := openLimited(t, path)
	long := strings.Repeat("r", 2000)
	const flood = 50
	for i := 0; i < flood; i++ {
		ev := Event{Actor: "anonymous", Action: "view", Source: "cam" + long, Via: "rtsp", Remote: fmt.Sprintf("192.0.2.4:%d", 1000+i),
			Result: "denied", Reason: "token is malformed: " + long, Method: "DESCRIBE", Path: "/cam" + long, Status: 401}
		if err := l.WriteAnonymous(ev); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	h := HTTP(l, identifyHeader, refusingHandler)
	if code := serve(h, "192.0.2.4:9", "/v1/sources/x", ""); code != http.StatusNotFound {
		t.Fatalf("HTTP request: %d", code)
	}
	if err := l.Write(Event{Actor: "phone7", Role: "camera", Action: "publish", Source: "cam" + long, Via: "rtsp", Remote: "192.0.2.4:1",
		Result: "denied", Reason: long, Method: "ANNOUNCE", Status: 403}); err != nil {
		t.Fatal(err)
	}
	own, summaries := requestEvents(t, path)
	anonymous := 0
	for _, ev := range own {
		if ev["actor"] == "phone7" {
			if ev["reason"] != long {
				t.Fatalf("the event of a valid identity was cut: %v", ev)
			}
			continue
		}
		anonymous++
		for _, k := range []string{"source", "reason", "path"} {
			if v, _ := ev[k].(string); len(v) > anonymousField+len("…(clipped)") {
				t.Fatalf("%s of %d bytes in %v", k, len(v), ev)
			}
		}
	}
	if anonymous != anonymousAddrBurst || len(summaries) != 0 {
		t.Fatalf("%d anonymous events and %d summaries for %d refusals and an HTTP request at one instant, want %d and none yet",
			anonymous, len(summaries), flood, anonymousAddrBurst)
	}
	if n := timers.fire(t); n != 1 {
		t.Fatalf("%d flushes armed, want 1", n)
	}
	_, summaries = requestEvents(t, path)
	if len(summaries) != 1 || summaries[0]["count"] != float64(flood+1-anonymousAddrBurst) || summaries[0]["remote"] != "192.0.2.4" ||
		summaries[0]["method"] != http.MethodGet {
		t.Fatalf("summaries %v: want one counting the %d refusals held back, the HTTP request last", summaries, flood+1-anonymousAddrBurst)
	}
	closeTest(t, l)
	verifyTrail(t, path)
}

// WriteAnonymous on a Discard log takes every event.
func TestWriteAnonymousDiscard(t *testing.T) {
	l := Discard()
	for i := 0; i < 2*anonymousBurst; i++ {
		if err := l.WriteAnonymous(Event{Actor: "anonymous", Action: "view", Via: "rtsp", Remote: "192.0.2.5:1", Status: 401}); err != nil {
			t.Fatal(err)
		}
	}
}
