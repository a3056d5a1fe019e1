package sfu

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/fstest"
)

// The console's files are served with headers that keep them out of other sites'
// frames, and no folder is listed.
func TestConsoleFilesHeaders(t *testing.T) {
	h := consoleFiles(fstest.MapFS{
		"index.html":           {Data: []byte("<!doctype html><title>wall</title>")},
		"vendor/leaflet/a.js":  {Data: []byte("a()")},
		"vendor/leaflet/b.css": {Data: []byte("b{}")},
	})
	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/", http.StatusOK},
		{"/index.html", http.StatusMovedPermanently}, // FileServer's canonical "/"
		{"/vendor/leaflet/a.js", http.StatusOK},
		{"/vendor/", http.StatusNotFound},
		{"/vendor/leaflet/", http.StatusNotFound},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
		if rec.Code != tc.status {
			t.Errorf("GET %s: %d %q, want %d", tc.path, rec.Code, rec.Body.String(), tc.status)
			continue
		}
		if tc.status != http.StatusOK {
			continue
		}
		for k, want := range map[string]string{
			"X-Frame-Options": "SAMEORIGIN", "Content-Security-Policy": "frame-ancestors 'self'",
			"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
		} {
			if got := rec.Header().Get(k); got != want {
				t.Errorf("GET %s: %s %q, want %q", tc.path, k, got, want)
			}
		}
	}
}
