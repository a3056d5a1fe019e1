package recorder

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"fieldvideo/internal/stream"
	"fieldvideo/internal/testkit"
	"fieldvideo/internal/unit"
)

// TestLayerPick drives the choice of the recorded simulcast layer through a start, a top
// layer that stops and comes back, and one that flaps.
func TestLayerPick(t *testing.T) {
	t0 := time.Unix(1000, 0)
	p := newLayerPick([]int{3, 4, 5})
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	offer := func(track int, key bool, ms int) ([]*unit.Unit, int) {
		return p.offer(&unit.Unit{Track: track, Keyframe: key}, at(ms))
	}
	// the start window keeps everything; then the top layer is recorded from its keyframe.
	// (The middle layer starts without one: nothing of it is kept for a switch down.)
	for _, tr := range []int{3, 4, 5} {
		if rec, ask := offer(tr, tr != 4, tr); len(rec) != 0 || ask != -1 {
			t.Fatalf("start window: recorded %d units, asked %d", len(rec), ask)
		}
	}
	offer(3, false, 100)
	offer(5, false, 101)
	rec, _ := offer(5, false, 340)
	if p.cur != 2 || len(rec) != 3 || rec[0].Track != 5 || !rec[0].Keyframe || rec[2].Track != 5 {
		t.Fatalf("after the start window: layer %d, recorded %+v; want layer 2 from its keyframe", p.cur, rec)
	}
	// the top layer stops after 340 ms: once it is late the middle layer is asked for a
	// keyframe and kept from it; once the top layer is gone, the middle one is recorded
	// from that keyframe.
	ms, askedAt, keyAt, kept := 380, 0, 0, 0
	for ; ms <= 340+int(layerGone/time.Millisecond); ms += 40 {
		key := askedAt != 0 && keyAt == 0
		if key {
			keyAt = ms
		}
		if keyAt != 0 {
			kept++
		}
		rec, ask := offer(4, key, ms)
		if len(rec) != 0 {
			t.Fatalf("%d ms: top layer only late, yet recorded %d units of the middle one", ms, len(rec))
		}
		switch {
		case ask == 4 && askedAt == 0:
			askedAt = ms
		case ask != -1:
			t.Fatalf("%d ms: asked a keyframe of track %d (the middle layer asked at %d ms)", ms, ask, askedAt)
		}
		offer(3, false, ms+1)
	}
	if late := askedAt - 340; askedAt == 0 || late < int(layerLate/time.Millisecond) || late > int(layerLate/time.Millisecond)+40 {
		t.Fatalf("the middle layer was asked for a keyframe %d ms after the top layer's last unit, want just after %s", late, layerLate)
	}
	ms += 40
	rec, _ = offer(4, false, ms)
	if p.cur != 1 || len(rec) != kept+1 || !rec[0].Keyframe || rec[0].Track != 4 {
		t.Fatalf("top layer gone: layer %d, recorded %d units; want the middle layer from the keyframe kept since %d ms", p.cur, len(rec), keyAt)
	}
	// the top layer comes back: it must arrive steadily before the recording moves up.
	back := ms
	for ms += 40; ms < back+int(layerSteady/time.Millisecond); ms += 40 {
		offer(5, ms == back+40, ms)
		if rec, ask := offer(4, false, ms+1); len(rec) != 1 || ask != -1 || p.cur != 1 {
			t.Fatalf("%d ms after the top layer came back: recorded %d, asked %d, layer %d", ms-back, len(rec), ask, p.cur)
		}
	}
	ms += 40
	if _, ask := offer(5, false, ms); ask != 5 {
		t.Fatalf("top layer steady: asked %d, want a keyframe of track 5", ask)
	}
	if rec, _ := offer(4, false, ms+1); len(rec) != 1 || rec[0].Track != 4 {
		t.Fatalf("waiting for the top keyframe: the middle layer must go on, got %+v", rec)
	}
	if rec, _ := offer(5, true, ms+40); len(rec) != 1 || p.cur != 2 {
		t.Fatalf("top keyframe: recorded %d, layer %d", len(rec), p.cur)
	}
}

// TestLayerPickGoesDownWithoutLoss: a lower layer's units are kept from its last keyframe
// while the top one is recorded, so a switch down records it from a keyframe before the
// top layer stopped, asking nothing of the publisher.
func TestLayerPickGoesDownWithoutLoss(t *testing.T) {
	for _, lowerKey := range []int{400, 0} { // 0: the lower layer's keyframe came in the start window
		t.Run(fmt.Sprintf("lower keyframe at %d ms", lowerKey), func(t *testing.T) { goesDownWithoutLoss(t, lowerKey) })
	}
}

func goesDownWithoutLoss(t *testing.T, lowerKey int) {
	t0 := time.Unix(1000, 0)
	p := newLayerPick([]int{0, 1})
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	offer := func(track int, key bool, ms int) ([]*unit.Unit, int) {
		return p.offer(&unit.Unit{Track: track, Keyframe: key, RTPTime: uint64(ms)}, at(ms))
	}
	offer(0, true, 0)
	offer(1, true, 1)
	for ms := 40; ms < 400; ms += 40 {
		offer(0, false, ms)
		offer(1, false, ms+1)
	}
	if p.cur != 1 {
		t.Fatalf("recording layer %d, want the top one", p.cur)
	}
	// the lower layer's keyframe at 400 ms (asked when a segment was due); the top layer
	// stops at 1000 ms.
	ms := 400
	for ; ms <= 1000; ms += 40 {
		offer(0, ms == lowerKey, ms)
		offer(1, false, ms+1)
	}
	stopped := ms - 40
	var rec []*unit.Unit
	ask := -1
	for ; len(rec) == 0 && ms < 3000; ms += 40 {
		rec, ask = offer(0, false, ms)
		if ask != -1 && len(rec) == 0 {
			t.Fatalf("%d ms: asked track %d for a keyframe, with one of the lower layer kept", ms, ask)
		}
	}
	if ask != 0 {
		t.Errorf("at the switch asked %d, want a keyframe of the lower layer to end the segment that begins back at its last one", ask)
	}
	if p.cur != 0 || len(rec) == 0 || !rec[0].Keyframe || rec[0].RTPTime != uint64(lowerKey) {
		t.Fatalf("top layer gone: layer %d, recorded %d units from %+v; want the lower layer from its keyframe at %d ms", p.cur, len(rec), rec, lowerKey)
	}
	if gone := ms - 40 - stopped; gone > int((layerGone+40*time.Millisecond)/time.Millisecond) {
		t.Errorf("switched %d ms after the top layer stopped", gone)
	}
	for i := 1; i < len(rec); i++ {
		if rec[i].RTPTime != rec[i-1].RTPTime+40 {
			t.Fatalf("recorded units %d and %d are %d ms apart: units of the lower layer lost", i-1, i, rec[i].RTPTime-rec[i-1].RTPTime)
		}
	}
}

// startLayers runs one ffmpeg per simulcast layer (sizes, lowest first, a keyframe every
// gop frames) into the tracks of one stream; a layer whose gate is closed sends nothing.
func startLayers(t *testing.T, sizes []string, gop int) (*stream.Stream, []*atomic.Bool) {
	t.Helper()
	testkit.RequireBinary(t, testkit.FFmpegPath)
	var tracks []unit.Track
	var conns []net.PacketConn
	for i, size := range sizes {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		sdp := filepath.Join(t.TempDir(), "layer.sdp")
		p := testkit.Start(t, t.Context(), testkit.FFmpegPath, ffmpegArgs(sourceOpts{Size: size, GOP: gop}, []int{c.LocalAddr().(*net.UDPAddr).Port}, sdp)...)
		var got []unit.Track
		testkit.WaitFor(t, 20*time.Second, "ffmpeg's SDP file of layer "+size, func() bool {
			b, err := os.ReadFile(sdp)
			if err != nil || p.Exited() {
				return p.Exited()
			}
			got = parseSDP(string(b))
			return len(got) == 1
		})
		if len(got) != 1 {
			t.Fatalf("ffmpeg of layer %d exited: %s", i, p.Output())
		}
		tracks = append(tracks, got[0])
		conns = append(conns, c)
	}
	var requests atomic.Int64
	st := stream.New(stream.Params{Name: "layers", Tracks: tracks, RequestKeyframe: func(int) { requests.Add(1) }})
	t.Cleanup(st.Close)
	gates := make([]*atomic.Bool, len(sizes))
	for i, c := range conns {
		gates[i] = &atomic.Bool{}
		gates[i].Store(true)
		g := gates[i]
		go testkit.FeedRTP(c, unit.NewAssembler(i, tracks[i], func(u *unit.Unit) {
			if g.Load() {
				st.Write(u)
			}
		}))
	}
	return st, gates
}

// TestRecordLayers records three simulcast layers of one camera as one track while the top
// layer stops for a few seconds and comes back: the recording goes on at the middle
// layer, moves back up, and every segment plays.
func TestRecordLayers(t *testing.T) {
	st, gates := startLayers(t, []string{"160x120", "320x240", "640x480"}, 10)
	a, b := newFS(t, "primary"), newFS(t, "offsite")
	r := startRecorder(t, Params{Primary: a, Offsite: b, SegmentDuration: 2 * time.Second, PartDuration: 500 * time.Millisecond})
	stop, err := r.RecordLayers("cam", st, []int{0, 1, 2})
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	testkit.WaitFor(t, 30*time.Second, "the top layer recorded", func() bool {
		l := srcStats(r, "cam").Layer
		return l != nil && *l == 2 && srcStats(r, "cam").Samples > 50
	})
	gates[2].Store(false)
	testkit.WaitFor(t, 10*time.Second, "the middle layer recorded", func() bool {
		l := srcStats(r, "cam").Layer
		return l != nil && *l == 1
	})
	testkit.WaitFor(t, 10*time.Second, "3 s on the middle layer", func() bool {
		return srcStats(r, "cam").Samples > 0 && time.Since(began) > 6*time.Second
	})
	gates[2].Store(true)
	testkit.WaitFor(t, 15*time.Second, "the top layer recorded again", func() bool {
		s := srcStats(r, "cam")
		return *s.Layer == 2 && s.LayerSwitches >= 2
	})
	testkit.WaitFor(t, 10*time.Second, "2 s more", func() bool { return time.Since(began) > 12*time.Second })
	stop()
	waitDelivered(t, r, 20*time.Second)
	segs, ms := checkSites(t, a, b, "inc-1", "cam")

	var sizes []int
	type span struct{ from, to time.Time }
	var spans []span
	for _, k := range segs {
		m := ms[k]
		if len(m.Tracks) != 1 || m.Tracks[0].Codec != "H264" {
			t.Fatalf("%s: tracks %+v, want one H.264 track", k, m.Tracks)
		}
		if !slices.Contains(sizes, m.Tracks[0].Width) {
			sizes = append(sizes, m.Tracks[0].Width)
		}
		spans = append(spans, span{m.CaptureStart, m.CaptureEnd})
		t.Logf("%s: %s to %s, %dx%d, %d samples", filepath.Base(k), m.CaptureStart.Format("15:04:05.000"), m.CaptureEnd.Format("15:04:05.000"), m.Tracks[0].Width, m.Tracks[0].Height, m.Tracks[0].Samples)
		p := ffprobe(t, fetch(t, a, k, t.TempDir()), false)
		for i := 1; i < len(p.Packets); i++ {
			if ptime(p.Packets[i].DTS) <= ptime(p.Packets[i-1].DTS) {
				t.Fatalf("%s: decode times not increasing at packet %d: %s then %s", k, i, p.Packets[i-1].DTS, p.Packets[i].DTS)
			}
		}
	}
	sort.Ints(sizes)
	if !slices.Equal(sizes, []int{320, 640}) {
		t.Errorf("recorded widths %v, want the top layer's 640 and the middle layer's 320", sizes)
	}
	// coverage: the time the segments hold (once, where they overlap) over the time from
	// the first to the last.
	var held time.Duration
	var gaps []time.Duration
	cursor := spans[0].from
	for _, s := range spans {
		if g := s.from.Sub(cursor); g > 0 {
			gaps = append(gaps, g.Round(time.Millisecond))
		}
		if s.to.After(cursor) {
			held += s.to.Sub(later(s.from, cursor))
			cursor = s.to
		}
	}
	total := spans[len(spans)-1].to.Sub(spans[0].from)
	cover := held.Seconds() / total.Seconds()
	s := srcStats(r, "cam")
	t.Logf("%d segments over %s: %.1f%% covered, gaps %v; %d layer switches", len(segs), total.Round(time.Millisecond), 100*cover, gaps, s.LayerSwitches)
	// a switch down records the lower layer from its last keyframe before the top one
	// stopped: nothing is lost but the odd frame at a join.
	for _, g := range gaps {
		if g > 80*time.Millisecond {
			t.Errorf("a gap of %s between segments, want at most two frames", g)
		}
	}
	if cover < 0.99 {
		t.Errorf("the segments cover %.1f%% of the recording's span, want at least 99%%", 100*cover)
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
