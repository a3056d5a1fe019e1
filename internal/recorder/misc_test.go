package recorder

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"

	"fieldvideo/internal/metrics"
	"fieldvideo/internal/mp4"
	"fieldvideo/internal/stream"
	"fieldvideo/internal/testkit"
	"fieldvideo/internal/unit"
	"fieldvideo/testbench/synth"
)

func TestParamsAreChecked(t *testing.T) {
	a, b := newFS(t, "a"), newFS(t, "b")
	dir := filepath.Join(t.TempDir(), "spool")
	for _, tc := range []struct {
		p    Params
		want string
	}{
		{Params{Incident: "i", Primary: a, Offsite: b}, "spool directory"},
		{Params{SpoolDir: dir, Incident: "bad/name", Primary: a, Offsite: b}, "incident"},
		{Params{SpoolDir: dir, Incident: "i", Primary: a}, "off-site"},
		{Params{SpoolDir: dir, Incident: "i", Primary: a, Offsite: a}, "same"},
		{Params{SpoolDir: dir, Incident: "i", Primary: a, Offsite: b, MaxSpoolBytes: 1000}, "max spool bytes"},
		{Params{SpoolDir: dir, Incident: "i", Primary: a, Offsite: b, PartDuration: 5 * time.Second}, "part duration"},
	} {
		if _, err := New(tc.p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one about %q", tc.p, err, tc.want)
		}
	}
	// One process per spool directory.
	r, err := New(Params{SpoolDir: dir, Incident: "i", Primary: a, Offsite: b, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := New(Params{SpoolDir: dir, Incident: "i", Primary: a, Offsite: b, Log: testLog(t)}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second recorder on one spool: %v", err)
	}
	st := stream.New(stream.Params{Name: "x", Tracks: []unit.Track{opusTrack}})
	defer st.Close()
	if _, err := r.Record("../etc", st); err == nil {
		t.Error("a source name with a path was accepted")
	}
	stop, err := r.Record("x", st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Record("x", st); err == nil {
		t.Error("the same source was recorded twice")
	}
	stop()
	stop()
}

func TestUnsupportedTracksAreSkipped(t *testing.T) {
	t.Parallel()
	a, b := newFS(t, "primary"), newFS(t, "offsite")
	r := startRecorder(t, Params{Primary: a, Offsite: b, SegmentDuration: time.Second, PartDuration: 250 * time.Millisecond})
	st := stream.New(stream.Params{Name: "phone", Tracks: []unit.Track{
		{Kind: unit.KindVideo, Codec: unit.CodecVP8, ClockRate: 90000, PayloadType: 96}, opusTrack}})
	defer st.Close()
	stopFeed := synthFeed(st, 1, 100)
	defer stopFeed()
	stop, err := r.Record("phone", st)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, "2 segments", func() bool { return srcStats(r, "phone").Segments >= 2 })
	stop()
	waitDelivered(t, r, 10*time.Second)
	s := srcStats(r, "phone")
	if len(s.SkippedTracks) != 1 || !strings.Contains(s.SkippedTracks[0], "VP8") {
		t.Fatalf("skipped tracks %q", s.SkippedTracks)
	}
	_, ms := checkSites(t, a, b, "inc-1", "phone")
	for k, m := range ms {
		if len(m.Tracks) != 1 || m.Tracks[0].Codec != "opus" {
			t.Fatalf("%s: tracks %+v", k, m.Tracks)
		}
	}
}

// A source that reconnects keeps being recorded: with the same tracks
// (a new epoch) and with different ones (the reader is attached again).
func TestSourceReconnects(t *testing.T) {
	t.Parallel()
	a, b := newFS(t, "primary"), newFS(t, "offsite")
	r := startRecorder(t, Params{Primary: a, Offsite: b, SegmentDuration: time.Second, PartDuration: 250 * time.Millisecond})
	st := stream.New(stream.Params{Name: "cam", Tracks: []unit.Track{opusTrack}})
	defer st.Close()
	stopFeed := synthFeed(st, 0, 100)
	stop, err := r.Record("cam", st)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	testkit.WaitFor(t, 20*time.Second, "a segment", func() bool { return srcStats(r, "cam").Segments >= 1 })
	stopFeed()
	st.Restart([]unit.Track{opusTrack})
	stopFeed = synthFeed(st, 0, 100)
	n := srcStats(r, "cam").Segments
	testkit.WaitFor(t, 20*time.Second, "2 more segments after a reconnect", func() bool { return srcStats(r, "cam").Segments >= n+2 })
	stopFeed()
	video := unit.Track{Kind: unit.KindVideo, Codec: unit.CodecVP8, ClockRate: 90000, PayloadType: 96}
	st.Restart([]unit.Track{video, opusTrack})
	stopFeed = synthFeed(st, 1, 100)
	defer stopFeed()
	n = srcStats(r, "cam").Segments
	testkit.WaitFor(t, 20*time.Second, "2 more segments after a reconnect with new tracks", func() bool { return srcStats(r, "cam").Segments >= n+2 })
	if s := srcStats(r, "cam"); !s.Recording || len(s.SkippedTracks) != 1 {
		t.Fatalf("after the reconnect: %+v", s)
	}
}

func TestWriteMetrics(t *testing.T) {
	t.Parallel()
	a, b := newFS(t, "primary"), newFS(t, "offsite")
	r := startRecorder(t, Params{Primary: a, Offsite: b, SegmentDuration: time.Second, PartDuration: 250 * time.Millisecond})
	stop, err := r.Record("mic", synthSource(t, "mic", 100))
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, "a segment off-site", func() bool { return r.Stats().Stores[1].Uploaded >= 1 })
	stop()
	var buf bytes.Buffer
	m := metrics.NewWriter(&buf)
	r.WriteMetrics(m)
	m.Flush()
	out := buf.String()
	for _, want := range []string{
		"# TYPE fv_recorder_rpo_seconds gauge",
		`fv_recorder_source_rpo_seconds{source="mic"}`,
		`fv_recorder_store_uploaded_segments_total{role="offsite",store="offsite"}`,
		`fv_recorder_store_up{role="primary",store="primary"} 1`,
		`fv_recorder_source_dropped_total{source="mic",reason="spool_full"} 0`,
		"fv_recorder_spool_full 0",
		`fv_recorder_offsite_lag_seconds_bucket{le="+Inf"}`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q:\n%s", want, out)
		}
	}
}

// Units with capture times on the common baseline: segments start at the
// capture time of their first unit, and say how well it is known.
func TestAlignedCaptureTimes(t *testing.T) {
	t.Parallel()
	a, b := newFS(t, "primary"), newFS(t, "offsite")
	r := startRecorder(t, Params{Primary: a, Offsite: b, SegmentDuration: time.Second, PartDuration: 250 * time.Millisecond})
	st := stream.New(stream.Params{Name: "cam", Tracks: []unit.Track{opusTrack}})
	defer st.Close()
	var mu sync.Mutex
	var first time.Time
	var rtp0 uint64
	// Capture times follow the RTP clock, 123 ms before the first arrival,
	// known to 2 ms from sender reports.
	stopFeed := synthFeedAligned(st, 0, 100, func(u *unit.Unit) {
		mu.Lock()
		if first.IsZero() {
			first, rtp0 = u.Arrival.Add(-123*time.Millisecond), u.RTPTime
		}
		u.Capture = first.Add(time.Duration(u.RTPTime-rtp0) * time.Second / 48000)
		mu.Unlock()
		u.CaptureErr, u.CaptureTrust = 2*time.Millisecond, 2
	})
	defer stopFeed()
	stop, err := r.Record("cam", st)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, "3 segments", func() bool { return srcStats(r, "cam").Segments >= 3 })
	stop()
	waitDelivered(t, r, 10*time.Second)
	segs, ms := checkSites(t, a, b, "inc-1", "cam")
	m0 := ms[segs[0]]
	if m0.CaptureStart.Sub(first).Abs() > 25*time.Millisecond {
		t.Errorf("first segment starts at %s; the first unit recorded was captured at %s", m0.CaptureStart, first)
	}
	for i, k := range segs {
		m := ms[k]
		if !m.TimeAligned || m.TimeTrust != "sender-reports" || m.AlignmentErrorMS == nil || *m.AlignmentErrorMS != 2 {
			t.Errorf("%s: aligned %v trust %q error %v", k, m.TimeAligned, m.TimeTrust, m.AlignmentErrorMS)
		}
		if i > 0 && m.CaptureStart.Sub(ms[segs[i-1]].CaptureEnd).Abs() > time.Millisecond {
			t.Errorf("%s does not start where %s ends", k, segs[i-1])
		}
		data, _ := os.ReadFile(fetch(t, a, k, t.TempDir()))
		if i := bytes.Index(data, []byte("prft")); i < 0 || data[i+7] != mp4.PRFTCapture {
			t.Errorf("%s: prft does not say capture time", k)
		}
	}
}

func TestJournalCompaction(t *testing.T) {
	t.Parallel()
	a, b := newFS(t, "primary"), newFS(t, "offsite")
	dir := filepath.Join(t.TempDir(), "spool")
	r := startRecorder(t, Params{SpoolDir: dir, Primary: a, Offsite: b, SegmentDuration: 200 * time.Millisecond, PartDuration: 100 * time.Millisecond})
	r.sp.compactAt = 30
	stop, err := r.Record("mic", synthSource(t, "mic", 100))
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, "20 segments", func() bool { return srcStats(r, "mic").Segments >= 20 })
	stop()
	waitDelivered(t, r, 10*time.Second)
	if _, n, _ := r.sp.j.stats(); n >= 30+5 {
		t.Fatalf("journal holds %d records after compaction at 30", n)
	}
	next := r.sp.nextID
	r.Close()
	r2, err := New(Params{SpoolDir: dir, Incident: "inc-1", Primary: a, Offsite: b, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if s := r2.Stats(); s.SpoolSegments != 0 || r2.sp.nextID < next {
		t.Fatalf("reopened compacted spool: %d segments, next id %d (was %d)", s.SpoolSegments, r2.sp.nextID, next)
	}
	checkSites(t, a, b, "inc-1", "mic")
}

// Padding-only packets (a browser probing bandwidth) are not part of a
// picture: a unit of padding is skipped quietly, and padding after a frame's
// last packet does not cost the frame.
func TestPaddingIsNotRecorded(t *testing.T) {
	v, err := newRecTrack(0, unit.Track{Kind: unit.KindVideo, Codec: unit.CodecH264, ClockRate: 90000, PayloadType: 96})
	if err != nil {
		t.Fatal(err)
	}
	pkt := func(seq uint16, payload []byte, marker bool) *rtp.Packet {
		return &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: 9000, Marker: marker, Padding: len(payload) == 0}, Payload: payload}
	}
	idr := []byte{0x78, 0x00, 0x17, 0x67, 0x42, 0xc0, 0x0c, 0xda, 0x05, 0x06, 0x7e, 0x7c, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40, 0x00, 0x00, 0x0c, 0xa3, 0xc5, 0x0a, 0xa8,
		0x00, 0x04, 0x68, 0xce, 0x0f, 0xc8}
	tests := []struct {
		name    string
		packets []*rtp.Packet
		samples int
		skipped bool
	}{
		{"padding only", []*rtp.Packet{pkt(10, nil, false)}, 0, true},
		{"keyframe then padding", []*rtp.Packet{pkt(20, idr, false), pkt(21, []byte{0x65, 0x88, 0x84, 0x00}, true), pkt(22, nil, false)}, 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := &unit.Unit{Packets: tc.packets, Seq: uint64(tc.packets[0].SequenceNumber), RTPTime: 9000, Keyframe: true}
			out, err := v.decode(u, nil)
			if tc.skipped != errors.Is(err, errSkip) || (!tc.skipped && err != nil) || len(out) != tc.samples {
				t.Fatalf("decode = %d samples, %v; want %d samples (skipped %v)", len(out), err, tc.samples, tc.skipped)
			}
		})
	}
}

// A source that sends keyframes only when asked (a browser) is asked for one
// when a segment is due, so its segments stay near their target length.
func TestKeyframeAskedWhenSegmentIsDue(t *testing.T) {
	t.Parallel()
	a, b := newFS(t, "primary"), newFS(t, "offsite")
	r := startRecorder(t, Params{Primary: a, Offsite: b, SegmentDuration: time.Second, PartDuration: 250 * time.Millisecond})
	p := synth.Params{FPS: 25, GOP: 1 << 30, PacketsPerFrame: 2, PayloadSize: 200}
	cam := synth.New(p)
	var asked atomic.Int32
	st := stream.New(stream.Params{Name: "phone", Tracks: synth.Tracks(p), KeyframeInterval: 500 * time.Millisecond,
		RequestKeyframe: func(int) { asked.Add(1); cam.ForceKeyframe() }})
	defer st.Close()
	stop, err := r.Record("phone", st)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go cam.Run(ctx, st)
	testkit.WaitFor(t, 20*time.Second, "3 segments from a camera that sends keyframes only on request", func() bool {
		return srcStats(r, "phone").Segments >= 3
	})
	if asked.Load() == 0 {
		t.Fatal("segments were cut without a keyframe request")
	}
	t.Logf("%d keyframe requests for %d segments", asked.Load(), srcStats(r, "phone").Segments)
}
