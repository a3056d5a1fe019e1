package audit

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func TestAppendsJSONLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "audit.log")
	for i := 0; i < 2; i++ { // reopening appends, never truncates
		l, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		l.Write(Event{Actor: "eoc-wall", Role: "wall", Action: "view", Source: "cam1", Via: "whep"})
		l.Write(Event{Actor: "x", Action: "publish", Source: "cam1", Via: "whip", Result: "denied", Reason: "expired"})
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var events []Event
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		events = append(events, e)
	}
	if len(events) != 4 || events[0].Result != "ok" || events[1].Result != "denied" || events[0].Time.IsZero() {
		t.Fatalf("events %+v", events)
	}
}
