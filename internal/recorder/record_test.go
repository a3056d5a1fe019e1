package recorder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"fieldvideo/internal/mp4"
	"fieldvideo/internal/store"
	"fieldvideo/internal/stream"
	"fieldvideo/internal/testkit"
)

// keyframeTimes records the arrival time of every video keyframe of a
// stream, as the recorder sees them.
type keyframeTimes struct {
	mu    sync.Mutex
	times []time.Time
}

func watchKeyframes(t *testing.T, st *stream.Stream) *keyframeTimes {
	k := &keyframeTimes{}
	rd, err := st.AddReader(stream.ReaderParams{Name: "test", OnUnit: func(d stream.Delivery) {
		if d.Unit.Track == 0 && d.Unit.Keyframe && d.Flags&stream.FlagReplay == 0 {
			k.mu.Lock()
			k.times = append(k.times, d.Unit.Arrival)
			k.mu.Unlock()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rd.Close)
	return k
}

// nearest returns the keyframe arrival time closest to at.
func (k *keyframeTimes) nearest(at time.Time) time.Duration {
	k.mu.Lock()
	defer k.mu.Unlock()
	best := time.Duration(math.MaxInt64)
	for _, x := range k.times {
		if d := x.Sub(at).Abs(); d < best {
			best = d
		}
	}
	return best
}

// waitDelivered waits until every recorded segment is confirmed at both
// sites and evicted from the spool.
func waitDelivered(t *testing.T, r *Recorder, timeout time.Duration) {
	t.Helper()
	testkit.WaitFor(t, timeout, "every segment confirmed at both sites", func() bool {
		s := r.Stats()
		return s.SpoolSegments == 0 && s.Stores[0].Backlog.Segments == 0 && s.Stores[1].Backlog.Segments == 0
	})
}

func srcStats(r *Recorder, name string) SourceStats {
	for _, s := range r.Stats().Sources {
		if s.Name == name {
			return s
		}
	}
	return SourceStats{}
}

// checkSites checks that both sites hold the same segments of a source,
// each with a manifest whose size and SHA-256 match, and returns the
// segments (by start) with their manifests.
func checkSites(t *testing.T, a, b store.Store, incident, source string) ([]string, map[string]*Manifest) {
	t.Helper()
	segsA, msA := segmentsOf(t, a, incident, source)
	segsB, msB := segmentsOf(t, b, incident, source)
	if strings.Join(segsA, ",") != strings.Join(segsB, ",") {
		t.Fatalf("sites differ:\n%s: %v\n%s: %v", a.Name(), segsA, b.Name(), segsB)
	}
	if len(segsA) == 0 {
		t.Fatalf("no segment of %s stored", source)
	}
	dir := t.TempDir()
	for _, k := range segsA {
		m, mb := msA[k], msB[k]
		if m == nil || mb == nil {
			t.Fatalf("segment %s has no manifest at one site", k)
		}
		for _, s := range []store.Store{a, b} {
			p := fetch(t, s, k, dir)
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(data)
			if hex.EncodeToString(sum[:]) != m.SHA256 || int64(len(data)) != m.Size {
				t.Fatalf("%s at %s: size %d sha %x, manifest says %d %s", k, s.Name(), len(data), sum, m.Size, m.SHA256)
			}
		}
		if m.Source != source || m.Key != k {
			t.Fatalf("manifest of %s says source %s key %s", k, m.Source, m.Key)
		}
	}
	return segsA, msA
}

// span is the interval of capture time a track covers in one segment.
type span struct {
	start, end time.Time
	frame      time.Duration // one sample
}

// trackSpans reads the tracks of a segment file with mp4.Scan, checks
// that every track's samples follow each other without gaps, and returns
// the capture time each covers (video presentation starts at media time
// zero, after its edit list).
func trackSpans(t *testing.T, name string, data []byte, m *Manifest) map[uint32]span {
	t.Helper()
	sc, err := mp4.Scan(data)
	if err != nil || sc.Valid != len(data) || sc.Stop != nil {
		t.Fatalf("%s: scan %v, valid %d of %d, stop %v", name, err, sc.Valid, len(data), sc.Stop)
	}
	out := map[uint32]span{}
	for _, tr := range sc.Tracks {
		if tr.Samples == 0 {
			continue
		}
		if tr.Gaps != 0 {
			t.Fatalf("%s: track %d has %d gaps between parts", name, tr.ID, tr.Gaps)
		}
		start := tr.Start
		if tr.Handler == "vide" {
			start = 0
		}
		out[tr.ID] = span{
			start: m.CaptureStart.Add(mp4.TicksToDuration(int64(start), tr.TimeScale)),
			end:   m.CaptureStart.Add(mp4.TicksToDuration(int64(tr.End), tr.TimeScale)),
			frame: mp4.TicksToDuration(int64(tr.End-tr.Start), tr.TimeScale) / time.Duration(tr.Samples),
		}
	}
	return out
}

// checkPlayback probes every segment alone and checks that consecutive
// segments join with no gap or overlap beyond one frame of each stream, in
// capture time (manifest start plus presentation times) and in the key
// names; then ffprobe reads all of them concatenated.
func checkPlayback(t *testing.T, s store.Store, segs []string, ms map[string]*Manifest, wantCodecs []string, frame time.Duration) {
	t.Helper()
	dir := t.TempDir()
	var list strings.Builder
	list.WriteString("ffconcat version 1.0\n")
	var prev map[uint32]span
	packets := 0
	for i, k := range segs {
		p := fetch(t, s, k, dir)
		res := ffprobe(t, p, false)
		var codecs []string
		for _, st := range res.Streams {
			codecs = append(codecs, st.CodecName)
		}
		if strings.Join(codecs, ",") != strings.Join(wantCodecs, ",") {
			t.Fatalf("%s: ffprobe finds %v, want %v", k, codecs, wantCodecs)
		}
		if len(res.Packets) == 0 || res.Packets[0].Flags[0] != 'K' {
			t.Fatalf("%s does not start with a keyframe", k)
		}
		packets += len(res.Packets)
		for idx := range res.Streams {
			var pts []float64
			for _, pk := range res.Packets {
				if pk.StreamIndex == idx {
					pts = append(pts, ptime(pk.PTS))
				}
			}
			sort.Float64s(pts)
			if idx == 0 && (len(pts) == 0 || pts[0] != 0) {
				t.Errorf("%s: video presentation starts at %v, want 0", k, pts[:min(len(pts), 1)])
			}
			for i := 1; i < len(pts); i++ {
				if pts[i] <= pts[i-1] {
					t.Fatalf("%s stream %d: two frames presented at %.4f s", k, idx, pts[i])
				}
			}
		}
		// The prft boxes tie media time to the manifest's capture start.
		data, _ := os.ReadFile(p)
		m := ms[k]
		spans := trackSpans(t, k, data, m)
		sc, _ := mp4.Scan(data)
		if len(sc.PRFT) != sc.Parts {
			t.Fatalf("%s: %d prft for %d parts", k, len(sc.PRFT), sc.Parts)
		}
		pr := sc.PRFT[0]
		var ts uint32
		for _, tr := range sc.Tracks {
			if tr.ID == pr.TrackID {
				ts = tr.TimeScale
			}
		}
		wall := m.CaptureStart.Add(mp4.TicksToDuration(int64(pr.MediaTime), ts))
		if d := pr.Wall.Sub(wall).Abs(); d > time.Millisecond {
			t.Fatalf("%s: prft says %s for media time %d, manifest implies %s", k, pr.Wall, pr.MediaTime, wall)
		}
		if i > 0 {
			pm := ms[segs[i-1]]
			if gap := m.CaptureStart.Sub(pm.CaptureEnd); gap.Abs() > frame {
				t.Errorf("capture gap of %s between %s and %s", gap, segs[i-1], k)
			}
			for id, sp := range spans {
				pv, ok := prev[id]
				if !ok {
					continue
				}
				one := max(pv.frame, sp.frame) + time.Millisecond
				if gap := sp.start.Sub(pv.end); gap.Abs() > one {
					t.Errorf("track %d: %s between %s and %s (one sample is %s)", id, gap, segs[i-1], k, one)
				}
			}
		}
		prev = spans
		fmt.Fprintf(&list, "file '%s'\n", p)
	}
	lp := filepath.Join(dir, "list.ffconcat")
	if err := os.WriteFile(lp, []byte(list.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if res := ffprobe(t, lp, true); len(res.Packets) != packets {
		t.Fatalf("concatenated playback has %d packets, the segments %d", len(res.Packets), packets)
	}
}

func TestRecordLiveStreamToBothSites(t *testing.T) {
	ctx := context.Background()
	st := testkit.LiveStream(t, ctx, "cam1", true)
	kf := watchKeyframes(t, st)
	a, b := newFS(t, "primary"), newFS(t, "offsite")
	r := startRecorder(t, Params{Primary: a, Offsite: b, SegmentDuration: 2 * time.Second, PartDuration: 500 * time.Millisecond})
	stop, err := r.Record("cam1", st)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 40*time.Second, "4 segments", func() bool { return srcStats(r, "cam1").Segments >= 4 })
	if rpo := r.Stats().RPO; rpo <= 0 || rpo > 15*time.Second {
		t.Errorf("RPO while recording is %s; want the age of the segment in progress", rpo)
	}
	stop()
	waitDelivered(t, r, 20*time.Second)
	s := r.Stats()
	if s.RPO != 0 {
		t.Errorf("RPO after everything is off-site: %s", s.RPO)
	}
	segs, ms := checkSites(t, a, b, "inc-1", "cam1")
	for i, k := range segs {
		m := ms[k]
		if m.TimeAligned {
			t.Errorf("%s is marked aligned; the stream has no capture times", k)
		}
		if i < len(segs)-1 && (m.DurationMS < 1900 || m.DurationMS > 2100) {
			t.Errorf("%s lasts %d ms; want about 2 s (keyframes every 2 s)", k, m.DurationMS)
		}
		if d := kf.nearest(m.CaptureStart); d > 50*time.Millisecond {
			t.Errorf("%s starts at %s, %s from the nearest keyframe's arrival", k, m.CaptureStart, d)
		}
		if len(m.Tracks) != 2 || m.Tracks[0].Codec != "H264" || m.Tracks[0].Width != 640 || m.Tracks[1].Codec != "opus" {
			t.Errorf("%s: manifest tracks %+v", k, m.Tracks)
		}
	}
	checkPlayback(t, a, segs, ms, []string{"h264", "opus"}, 40*time.Millisecond)
	if s.Stores[0].Uploaded < uint64(len(segs)) || s.Stores[1].Uploaded < uint64(len(segs)) {
		t.Errorf("upload counters %d/%d for %d segments", s.Stores[0].Uploaded, s.Stores[1].Uploaded, len(segs))
	}
}

func TestRecordCodecs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		o      sourceOpts
		codecs []string
		tracks []string
	}{
		{"h265-aac", sourceOpts{Video: "h265", Audio: "aac"}, []string{"hevc", "aac"}, []string{"H265", "MPEG4-GENERIC"}},
		{"h264-bframes-pcmu", sourceOpts{Video: "h264b", Audio: "pcmu"}, []string{"h264", "pcm_mulaw"}, []string{"H264", "PCMU"}},
		{"h264-pcma", sourceOpts{Video: "h264", Audio: "pcma"}, []string{"h264", "pcm_alaw"}, []string{"H264", "PCMA"}},
		// A source that skips frames: 16 frames (0.64 s) missing from every
		// 50, so timestamps jump; the frame before each jump lasts until
		// the next one.
		{"h264-skips-opus", sourceOpts{Video: "h264", Audio: "opus", Filter: "select='not(between(mod(n\\,50)\\,30\\,45))'"}, []string{"h264", "opus"}, []string{"H264", "opus"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := startSource(t, context.Background(), tc.name, tc.o)
			a, b := newFS(t, "primary"), newFS(t, "offsite")
			r := startRecorder(t, Params{Primary: a, Offsite: b, SegmentDuration: 2 * time.Second, PartDuration: 500 * time.Millisecond})
			stop, err := r.Record(tc.name, st)
			if err != nil {
				t.Fatal(err)
			}
			testkit.WaitFor(t, 60*time.Second, "3 segments", func() bool { return srcStats(r, tc.name).Segments >= 3 })
			stop()
			waitDelivered(t, r, 20*time.Second)
			segs, ms := checkSites(t, a, b, "inc-1", tc.name)
			for _, k := range segs {
				var got []string
				for _, tr := range ms[k].Tracks {
					got = append(got, tr.Codec)
				}
				if strings.Join(got, ",") != strings.Join(tc.tracks, ",") {
					t.Fatalf("%s: manifest tracks %v, want %v", k, got, tc.tracks)
				}
			}
			checkPlayback(t, a, segs, ms, tc.codecs, 40*time.Millisecond)
			if s := srcStats(r, tc.name); s.DecodeErrors != 0 {
				t.Errorf("%d decode errors", s.DecodeErrors)
			}
		})
	}
}
