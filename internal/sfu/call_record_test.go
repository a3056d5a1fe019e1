package sfu

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/recorder"
	rooms "fieldvideo/internal/session"
	"fieldvideo/internal/store"
	"fieldvideo/internal/testkit"
)

// What a participant publishes in a call is recorded at both sites: the
// camera's best simulcast layer and the microphone, as sources named after
// the room and the participant.
func TestCallIsRecorded(t *testing.T) {
	primaryDir, offsiteDir := t.TempDir(), t.TempDir()
	primary, err := store.NewFS("primary", primaryDir)
	if err != nil {
		t.Fatal(err)
	}
	offsite, err := store.NewFS("offsite", offsiteDir)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := recorder.New(recorder.Params{SpoolDir: t.TempDir(), Incident: "drill", SegmentDuration: time.Second,
		PartDuration: 250 * time.Millisecond, Primary: primary, Offsite: offsite})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = rec.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; rec.Close() })

	h := startCallSFUWith(t, nil, rec)
	a := h.join("ops", h.callToken("alice@eoc", auth.RoleCommander, grant{room: "ops", publish: true}), nil)
	publishSynth(t, a, 20, "q", "h", "f")

	camera, mic := rooms.RecordingName("ops", "alice@eoc", "camera"), rooms.RecordingName("ops", "alice@eoc", "microphone")
	testkit.WaitFor(t, 30*time.Second, "two segments of the camera and the microphone at both sites", func() bool {
		return len(testkit.Segments(primaryDir, camera)) >= 2 && len(testkit.Segments(offsiteDir, camera)) >= 2 &&
			len(testkit.Segments(primaryDir, mic)) >= 2 && len(testkit.Segments(offsiteDir, mic)) >= 2
	})
	for source, kind := range map[string]string{camera: "video", mic: "audio"} {
		seg := testkit.Segments(offsiteDir, source)[0]
		streams, err := testkit.Probe(context.Background(), seg, "")
		if err != nil || len(streams) != 1 || streams[0].CodecType != kind {
			t.Fatalf("ffprobe %s: %v %+v; want one %s stream", seg, err, streams, kind)
		}
	}
	// The full layer carries 50 kB/s, the half 25 kB/s, the quarter 5 kB/s.
	for _, seg := range testkit.Segments(primaryDir, camera) {
		base := strings.TrimSuffix(filepath.Base(seg), ".mp4")
		ms, err := strconv.Atoi(base[strings.IndexByte(base, '-')+1:])
		fi, serr := os.Stat(seg)
		if err != nil || serr != nil || ms <= 0 {
			continue
		}
		if rate := float64(fi.Size()) / (float64(ms) / 1000); rate < 40_000 {
			t.Errorf("segment %s holds %.0f B/s; the full layer is about 50000", seg, rate)
		}
	}
	var names []string
	for _, s := range rec.View().Sources {
		names = append(names, s.Name)
	}
	t.Logf("recorded sources: %v", names)
}
