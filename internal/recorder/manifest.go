package recorder

import (
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"
)

// Manifest describes one segment. It is stored next to the segment as
// <start>-<duration>.json, so either site can be used with no database.
type Manifest struct {
	Version  int    `json:"version"`
	Incident string `json:"incident"`
	Source   string `json:"source"`
	// Key is the segment's object key; the manifest's key is the same with
	// .json instead of .mp4.
	Key string `json:"key"`
	// CaptureStart is the wall-clock time of the segment's media time zero
	// (the decode time of its first keyframe): a sample presented at time p
	// in the file was captured at CaptureStart + p. CaptureEnd is
	// CaptureStart plus the segment's duration.
	CaptureStart time.Time `json:"capture_start"`
	CaptureEnd   time.Time `json:"capture_end"`
	DurationMS   int64     `json:"duration_ms"`
	// TimeAligned is true when the capture times come from the common time
	// baseline; false when they are the recorder's arrival times.
	TimeAligned bool `json:"time_aligned"`
	// AlignmentErrorMS is the largest estimated error of the aligned capture
	// times in the segment, when known.
	AlignmentErrorMS *float64 `json:"alignment_error_ms,omitempty"`
	// TimeTrust is what the aligned capture times rest on, the weakest in
	// the segment: arrival, sender-reports or refclk.
	TimeTrust string          `json:"time_trust,omitempty"`
	Tracks    []ManifestTrack `json:"tracks"`
	Parts     int             `json:"parts"`
	Size      int64           `json:"size"`
	SHA256    string          `json:"sha256"`
	// Recovered is true for a segment cut at its last complete part after
	// the recorder stopped abruptly.
	Recovered bool   `json:"recovered,omitempty"`
	Node      string `json:"node,omitempty"`
	// Recorder is the id of the spool that wrote the segment and Seq its
	// number there; both are in the key.
	Recorder string    `json:"recorder,omitempty"`
	Seq      uint64    `json:"seq,omitempty"`
	Created  time.Time `json:"created"`
}

// ManifestTrack describes one track of a segment.
type ManifestTrack struct {
	ID        int    `json:"id"`
	Kind      string `json:"kind"`
	Codec     string `json:"codec"`
	ClockRate uint32 `json:"clock_rate"`
	Channels  int    `json:"channels,omitempty"`
	Width     int    `json:"width,omitempty"`
	Height    int    `json:"height,omitempty"`
	Samples   int    `json:"samples"`
}

// ParseManifest decodes and checks a manifest.
func ParseManifest(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("segment manifest: %w", err)
	}
	if m.Version != 1 {
		return nil, fmt.Errorf("segment manifest version %d is not supported", m.Version)
	}
	if _, err := ParseKey(m.Key); err != nil {
		return nil, fmt.Errorf("segment manifest: %w", err)
	}
	if len(m.SHA256) != 64 || m.Size <= 0 {
		return nil, fmt.Errorf("segment manifest for %s lacks the segment's size or SHA-256", m.Key)
	}
	return &m, nil
}

// SegmentKey returns the object key of a segment of source in incident that
// starts at start (UTC) and lasts dur, written by recorder (the spool's
// random id) as its segment number seq. The recorder and number make the
// key unique by construction: two segments never share one, whatever their
// times.
func SegmentKey(incident, source string, start time.Time, dur time.Duration, recorder string, seq uint64) string {
	u := start.UTC()
	return fmt.Sprintf("rec/%s/%s/%04d/%02d/%02d/%02d/%d-%d-%s-%d.mp4", incident, source,
		u.Year(), u.Month(), u.Day(), u.Hour(), start.UnixMilli(), dur.Milliseconds(), recorder, seq)
}

// ManifestKey returns the key of the manifest of the segment at key.
func ManifestKey(key string) string { return strings.TrimSuffix(key, ".mp4") + ".json" }

// KeyInfo is what a segment or manifest key says.
type KeyInfo struct {
	Incident, Source string
	Start            time.Time
	Duration         time.Duration
	// Recorder and Seq name the writer of the segment; both are empty in
	// keys of the earlier <start-ms>-<duration-ms> form.
	Recorder string
	Seq      uint64
	Manifest bool // the key ends in .json
}

// ParseKey parses a key made by SegmentKey or ManifestKey (and the earlier
// form without recorder and number).
func ParseKey(key string) (KeyInfo, error) {
	var k KeyInfo
	parts := strings.Split(key, "/")
	if len(parts) != 8 || parts[0] != "rec" {
		return k, fmt.Errorf("key %q is not rec/<incident>/<source>/YYYY/MM/DD/HH/<start-ms>-<duration-ms>-<recorder>-<n>.mp4", key)
	}
	k.Incident, k.Source = parts[1], parts[2]
	name := parts[7]
	switch ext := path.Ext(name); ext {
	case ".mp4":
	case ".json":
		k.Manifest = true
	default:
		return k, fmt.Errorf("key %q: unknown extension %q", key, ext)
	}
	f := strings.Split(strings.TrimSuffix(name, path.Ext(name)), "-")
	if len(f) != 2 && len(f) != 4 {
		return k, fmt.Errorf("key %q: name is not <start-ms>-<duration-ms>-<recorder>-<n>", key)
	}
	start, err1 := strconv.ParseInt(f[0], 10, 64)
	dur, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil || start < 0 || dur < 0 {
		return k, fmt.Errorf("key %q: name is not <start-ms>-<duration-ms>-<recorder>-<n>", key)
	}
	if len(f) == 4 {
		seq, err := strconv.ParseUint(f[3], 10, 64)
		if !validRecorderID(f[2]) || err != nil || strconv.FormatUint(seq, 10) != f[3] {
			return k, fmt.Errorf("key %q: the recorder is not %d hex digits followed by a segment number", key, recorderIDLen)
		}
		k.Recorder, k.Seq = f[2], seq
	}
	k.Start = time.UnixMilli(start).UTC()
	k.Duration = time.Duration(dur) * time.Millisecond
	u := k.Start
	if want := fmt.Sprintf("%04d/%02d/%02d/%02d", u.Year(), u.Month(), u.Day(), u.Hour()); strings.Join(parts[3:7], "/") != want ||
		strconv.FormatInt(start, 10) != f[0] || strconv.FormatInt(dur, 10) != f[1] {
		return k, fmt.Errorf("key %q: the hour folders do not match the start time, or a number is not in its plain form", key)
	}
	return k, nil
}

// recorderIDLen is the length of a recorder id: lower-case hex digits.
const recorderIDLen = 8

func validRecorderID(s string) bool {
	if len(s) != recorderIDLen {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
