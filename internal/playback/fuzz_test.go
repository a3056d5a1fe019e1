package playback

import (
	"errors"
	"testing"
	"testing/fstest"
	"time"
)

// FuzzQuery: whatever a client puts in a time, a duration or a name, the
// parsers answer a value in range or a 400 naming what was wrong.
func FuzzQuery(f *testing.F) {
	for _, s := range []string{"2026-12-05T03:30:00.250Z", "1796441866708", "60.5", "90s", "-1", "yesterday", "../x", "cam-1", "1e400", "NaN", "2026-12-05T03:30:00+02:00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var pe *Error
		if tm, err := ParseTime("t", s); err != nil {
			if !errors.As(err, &pe) || pe.Status != 400 {
				t.Fatalf("ParseTime(%q): %v", s, err)
			}
		} else if tm.Year() < 1970 || tm.Year() > 5200 {
			t.Fatalf("ParseTime(%q) = %s", s, tm)
		}
		if d, err := parseDuration(s); err != nil {
			if !errors.As(err, &pe) || pe.Status != 400 {
				t.Fatalf("parseDuration(%q): %v", s, err)
			}
		} else if d <= 0 || d > 1e7*time.Second {
			t.Fatalf("parseDuration(%q) = %s", s, d)
		}
		if err := checkName("source", s); err == nil && (s == "" || len(s) > 200) {
			t.Fatalf("checkName accepted %q", s)
		}
	})
}

// FuzzVerifyFile: whatever bytes an export's MP4 holds, verify reports
// problems (or none for the signed content) and never panics.
func FuzzVerifyFile(f *testing.F) {
	f.Add([]byte("\x00\x00\x00\x08ftyp\x00\x00\x00\x08moov\x00\x00\x00\x08moof\x00\x00\x00\x08mdat"), 16)
	f.Add([]byte{}, 0)
	f.Fuzz(func(t *testing.T, b []byte, initSize int) {
		if initSize < 0 || initSize > len(b) {
			initSize = len(b) / 2
		}
		entry := ExportFile{Name: "a.mp4", Size: int64(len(b)), SHA256: hexSum(b), InitSize: int64(initSize), InitSHA256: hexSum(b[:initSize])}
		if p := verifyFile(fstest.MapFS{"a.mp4": {Data: b}}, entry); len(p) != 0 {
			t.Fatalf("the signed content itself: %v", p)
		}
		entry.SHA256 = hexSum(append([]byte("x"), b...))
		if p := verifyFile(fstest.MapFS{"a.mp4": {Data: b}}, entry); len(p) == 0 {
			t.Fatal("content not matching its SHA-256 verified")
		}
	})
}
