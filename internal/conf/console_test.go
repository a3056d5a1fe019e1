package conf

import (
	"strings"
	"testing"
)

func TestTileOrigin(t *testing.T) {
	for _, tc := range []struct{ tiles, origin, err string }{
		{"", "", ""},
		{"https://tiles.example.org/{z}/{x}/{y}.png", "https://tiles.example.org", ""},
		{"http://10.0.0.5:8080/osm/{z}/{x}/{y}{r}.png?style=plain", "http://10.0.0.5:8080", ""},
		{"/tiles/{z}/{x}/{y}.png", "", ""},
		{"https://{s}.tile.example.org/{z}/{x}/{y}.png", "", "no {s} subdomains"},
		{"https://tiles.example.org/{z}/{x}.png", "", "lacks {y}"},
		{"tiles/{z}/{x}/{y}.png", "", "a path on this server starting with /"},
		{"//tiles.example.org/{z}/{x}/{y}.png", "", "use http:// or https://"},
		{"ftp://tiles.example.org/{z}/{x}/{y}.png", "", "use http:// or https://"},
		{"https://user@tiles.example.org/{z}/{x}/{y}.png", "", "no user name"},
		{"https://tiles.example.org/{z}/{x}/{y}.png; script-src *", "", "semicolon"},
		{"https://tiles.example.org/{z}/{x}/{y}.png' *", "", "quote"},
	} {
		origin, err := TileOrigin(tc.tiles)
		if tc.err == "" && (err != nil || origin != tc.origin) {
			t.Errorf("%q: got %q, %v; want %q", tc.tiles, origin, err, tc.origin)
		}
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "console.map_tiles")) {
			t.Errorf("%q: got %q, %v; want an error with %q", tc.tiles, origin, err, tc.err)
		}
	}
	c := DefaultSFU()
	c.Console.MapAttribution = "line one\nline two"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "console.map_attribution") {
		t.Errorf("a two-line attribution: %v", err)
	}
}
