package conf

import (
	"strings"
	"testing"
)

// TestCameraSettings: a camera's position and label are checked, the
// errors name the field and never quote the URL; the SFU's ingest_api takes
// plain http(s) base URLs only.
func TestCameraSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		cam  Camera
		want string
	}{
		{"latitude", Camera{Name: "a", URL: "rtsp://h/", Position: &Position{Lat: 90.5}}, "position.lat"},
		{"longitude", Camera{Name: "a", URL: "rtsp://h/", Position: &Position{Lon: -180.5}}, "position.lon"},
		{"label length", Camera{Name: "a", URL: "rtsp://h/", Label: strings.Repeat("攝", MaxCameraLabel+1)}, "label"},
		{"label line break", Camera{Name: "a", URL: "rtsp://h/", Label: "a\nb"}, "label"},
		{"url", Camera{Name: "a", URL: "http://admin:yaml-secret-pw@h/"}, "url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultIngest()
			c.Cameras = []Camera{tc.cam}
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "yaml-secret-pw") {
				t.Fatalf("error %v: want it to name %s and not quote the password", err, tc.want)
			}
		})
	}
	ok := Camera{Name: "a", URL: "rtsp://h/", Position: &Position{Lat: -90, Lon: 180}, Label: "北側大門"}
	if err := ok.Check(); err != nil {
		t.Fatal(err)
	}

	for _, bad := range [][]string{{"ftp://h"}, {"http://user:pw@h:9997"}, {"http://h?x=1"}, {"http://h", "http://h"}, {"127.0.0.1:9997"}} {
		c := DefaultSFU()
		c.IngestAPI = bad
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "ingest_api") {
			t.Errorf("ingest_api %q: %v, want an error naming ingest_api", bad, err)
		}
	}
	c := DefaultSFU()
	c.IngestAPI = []string{"http://127.0.0.1:9997", "https://ingest-2.example:9997/"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

// Names of the form of a call's recorded track are the calls' own.
func TestCallTrackName(t *testing.T) {
	for name, want := range map[string]bool{
		"incident-1.commander.camera":  true,
		"r.anna.lee.microphone":        true,
		"room.p.screen_audio":          true,
		"north.camera":                 false, // one dot: no participant
		"incident-1.commander.camera2": false,
		"cam1":                         false,
		".camera":                      false,
		"site.gate.thermal":            false,
	} {
		if got := CallTrackName(name); got != want {
			t.Errorf("CallTrackName(%q) = %v, want %v", name, got, want)
		}
		err := Camera{Name: name, URL: "rtsp://h/s"}.Check()
		if want && (err == nil || !strings.Contains(err.Error(), "call's recording")) {
			t.Errorf("camera %q: %v, want refused as a call's recording name", name, err)
		}
	}
}
