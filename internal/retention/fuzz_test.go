package retention

import (
	"testing"
	"time"

	"fieldvideo/internal/recorder"
)

// FuzzParseHold: a hold read from a store (whose content anyone with write
// access to the bucket may have changed) either parses into a hold that is
// valid, round-trips and matches its key, or is refused; never a panic.
func FuzzParseHold(f *testing.F) {
	from := time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)
	good := Hold{Version: holdVersion, ID: "0123456789abcdef0123456789abcdef", Incident: "incident", Source: "cam*",
		From: from, To: from.Add(time.Hour), Reason: "case 1187", CreatedBy: "op", CreatedRole: "operator", CreatedAt: from}
	b, err := encodeHold(good)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(HoldKey(good.ID), b)
	f.Add(HoldKey(good.ID), []byte(`{"version":1}`))
	f.Add("holds/x.json", []byte(`not json`))
	f.Add(HoldKey(good.ID), []byte(`{"version":1,"id":"0123456789abcdef0123456789abcdef","source":"[","from":"2026-12-05T01:00:00Z"}`))
	f.Fuzz(func(t *testing.T, key string, b []byte) {
		h, err := parseHold(key, b)
		if err != nil {
			return
		}
		if HoldKey(h.ID) != key || h.validate() != nil {
			t.Fatalf("accepted hold %+v at %q", h, key)
		}
		again, err := encodeHold(h)
		if err != nil {
			t.Fatal(err)
		}
		h2, err := parseHold(key, again)
		if err != nil || h2.ID != h.ID || !h2.From.Equal(h.From) || !h2.To.Equal(h.To) || h2.Source != h.Source {
			t.Fatalf("hold %+v does not round-trip: %+v, %v", h, h2, err)
		}
		h.Covers(recorder.KeyInfo{Incident: h.Incident, Source: "cam1", Start: h.From, Duration: time.Second})
	})
}
