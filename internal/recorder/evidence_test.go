package recorder

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"fieldvideo/internal/mp4"
	"fieldvideo/internal/store"
	"fieldvideo/internal/stream"
	"fieldvideo/internal/testkit"
	"fieldvideo/internal/unit"
)

var garbageTracks = []unit.Track{
	{Kind: unit.KindVideo, Codec: unit.CodecH264, ClockRate: 90000, PayloadType: 96},
	{Kind: unit.KindAudio, Codec: unit.CodecOpus, ClockRate: 48000, Channels: 2, PayloadType: 111},
}

// feedGarbage writes a garbage camera's packets into st, about rate a
// second, for d.
func feedGarbage(st *stream.Stream, seed uint64, rate int, d time.Duration) {
	g := testkit.NewGarbage(seed)
	asm := [2]*unit.Assembler{
		unit.NewAssembler(0, garbageTracks[0], st.Write),
		unit.NewAssembler(1, garbageTracks[1], st.Write),
	}
	start := time.Now()
	for i := 0; time.Since(start) < d; i++ {
		if due := start.Add(time.Duration(i) * time.Second / time.Duration(rate)); time.Until(due) > 0 {
			time.Sleep(time.Until(due)) // pacing the camera, not synchronisation
		}
		k, pkt := g.Next()
		asm[k].Push(pkt, time.Now())
	}
	asm[0].Flush()
	asm[1].Flush()
}

// probeDuration is what ffprobe says a file lasts: the end of the stream
// that ends last (ffprobe gives an fMP4 stream's end as its duration), or
// -1 when it cannot tell.
func probeDuration(t *testing.T, path string) float64 {
	t.Helper()
	out, err := exec.Command(testkit.FFprobePath, "-v", "quiet", "-show_entries", "stream=duration", "-of", "json", path).Output()
	if err != nil {
		return -1
	}
	var res struct {
		Streams []struct {
			Duration string `json:"duration"`
		} `json:"streams"`
	}
	if json.Unmarshal(out, &res) != nil {
		return -1
	}
	end := -1.0
	for _, st := range res.Streams {
		if v, err := strconv.ParseFloat(st.Duration, 64); err == nil {
			end = max(end, v)
		}
	}
	return end
}

// A camera sending garbage makes many short segments: every one lands on
// its own key, both sites hold the same bytes, and each manifest's duration
// is what the media holds.
func TestGarbageCameraNeverOverwrites(t *testing.T) {
	testkit.RequireBinary(t, testkit.FFprobePath)
	a, b := newFS(t, "primary"), newFS(t, "offsite")
	r := startRecorder(t, Params{Primary: a, Offsite: b, SegmentDuration: time.Second, PartDuration: 200 * time.Millisecond})
	st := stream.New(stream.Params{Name: "junk", Tracks: garbageTracks})
	t.Cleanup(st.Close)
	stop, err := r.Record("junk", st)
	if err != nil {
		t.Fatal(err)
	}
	feedGarbage(st, 7, 3000, 6*time.Second)
	stop()
	waitDelivered(t, r, 60*time.Second)

	closed := srcStats(r, "junk").Segments
	segsA, msA := segmentsOf(t, a, "inc-1", "junk")
	segsB, _ := segmentsOf(t, b, "inc-1", "junk")
	t.Logf("garbage camera: %d segments closed, %d at the primary, %d off-site", closed, len(segsA), len(segsB))
	if closed < 20 {
		t.Fatalf("only %d segments: the garbage did not exercise segment cuts", closed)
	}
	if uint64(len(segsA)) != closed || uint64(len(segsB)) != closed {
		t.Fatalf("%d segments closed but %d objects at the primary and %d off-site: keys collided", closed, len(segsA), len(segsB))
	}
	infos := func(s store.Store) map[string]string {
		m := map[string]string{}
		if err := s.List(context.Background(), "rec/inc-1/junk/", func(in store.Info) error {
			m[in.Key] = in.SHA256
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return m
	}
	ia, ib := infos(a), infos(b)
	for k, sum := range ia {
		if ib[k] != sum {
			t.Fatalf("%s differs between the sites: %s and %s", k, sum, ib[k])
		}
	}
	// every key matches its manifest; ffprobe reads every few segments (64 in all), each
	// as long as its manifest says.
	dir := t.TempDir()
	frame := 1.0 / 25
	every := max(1, len(segsA)/64)
	checked, probed := 0, 0
	for i, k := range segsA {
		m := msA[k]
		ki, err := ParseKey(k)
		if err != nil || ki.Duration != time.Duration(m.DurationMS)*time.Millisecond || !ki.Start.Equal(m.CaptureStart.Truncate(time.Millisecond)) {
			t.Errorf("%s: key says %v %v, manifest %v %d ms (%v)", k, ki.Start, ki.Duration, m.CaptureStart, m.DurationMS, err)
		}
		if i%every != 0 {
			continue
		}
		probed++
		got := probeDuration(t, fetch(t, a, k, dir))
		if got < 0 {
			continue
		}
		checked++
		if d := float64(m.DurationMS) / 1000; d-got > frame+0.001 || got-d > frame+0.001 {
			data, _ := os.ReadFile(filepath.Join(dir, strings.ReplaceAll(k, "/", "_")))
			sc, _ := mp4.Scan(data)
			t.Errorf("%s: manifest says %.3f s, ffprobe %.3f s; tracks %+v", k, d, got, sc.Tracks)
		}
	}
	if checked < probed/2 {
		t.Fatalf("ffprobe read only %d of %d segments", checked, probed)
	}
	if !strings.HasPrefix(segsA[0], "rec/inc-1/junk/") {
		t.Fatalf("unexpected key %s", segsA[0])
	}
}

func hasAlarm(v View, kind string) bool {
	for _, a := range v.Alarms {
		if a.Kind == kind {
			return true
		}
	}
	return false
}

// A spool on a small disk fills while the off-site store is down: the alarm
// shows at once and recording pauses without losing what was accepted.
// Then something else fills the disk to the last byte: a restart on it
// works, and when the site returns the confirmations are journaled (from the
// spool's reserve), the backlog drains, the evicted segments free space and
// recording resumes by itself.
func TestSpoolDiskFull(t *testing.T) {
	disk := testkit.SmallDisk(t, 8<<20)
	spoolDir := filepath.Join(disk, "spool")
	a := &flakyStore{Store: newFS(t, "primary")}
	b := &flakyStore{Store: newFS(t, "offsite")}
	b.down.Store(true)
	p := Params{SpoolDir: spoolDir, Incident: "inc-1", Primary: a, Offsite: b, SegmentDuration: time.Second,
		PartDuration: 250 * time.Millisecond, RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond, Log: testLog(t)}
	run := func() (*Recorder, func()) {
		r, err := New(p)
		if err != nil {
			t.Fatalf("open the recorder: %v", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			r.Run(ctx)
			close(done)
		}()
		return r, func() {
			cancel()
			<-done
			r.Close()
		}
	}
	r, stopRec := run()
	st := synthSource(t, "mic9", 12000) // 600 kB/s
	stop, err := r.Record("mic9", st)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 60*time.Second, "the disk-full alarm in the API", func() bool {
		v := r.View()
		return hasAlarm(v, "disk_full") && len(v.Sources) == 1 && v.Sources[0].Paused && !v.Sources[0].Recording
	})
	full := r.Stats()
	t.Logf("disk full: %d segments spooled, %d bytes free", full.SpoolSegments, full.DiskFreeBytes)
	if full.Lost != 0 || full.Evicted != 0 {
		t.Fatalf("lost %d, evicted %d while the off-site store was down", full.Lost, full.Evicted)
	}

	// Something else takes the rest of the disk while the source is live.
	filler := testkit.FillDisk(t, disk)
	refused := srcStats(r, "mic9").DroppedSpoolFull
	testkit.WaitFor(t, 10*time.Second, "units refused on the full disk", func() bool { return srcStats(r, "mic9").DroppedSpoolFull > refused+10 })
	stop()
	stopRec()

	// A restart on the full disk.
	r, stopRec = run()
	defer func() { stopRec() }()
	if got := r.Stats().SpoolSegments; got < full.SpoolSegments {
		t.Fatalf("after a restart on a full disk the spool has %d segments, had %d", got, full.SpoolSegments)
	}
	stop, err = r.Record("mic9", st)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	// The site returns while the disk is still full: confirmations are
	// journaled, segments evicted, and recording resumes.
	b.down.Store(false)
	testkit.WaitFor(t, 90*time.Second, "the backlog to drain and recording to resume on the still-full disk", func() bool {
		s := r.Stats()
		return !s.SpoolFull && s.Evicted >= uint64(full.SpoolSegments) && srcStats(r, "mic9").Recording
	})
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	before := srcStats(r, "mic9").Segments
	testkit.WaitFor(t, 30*time.Second, "new segments after the disk had room", func() bool { return srcStats(r, "mic9").Segments >= before+2 })
	stop()
	waitDelivered(t, r, 60*time.Second)
	s := r.Stats()
	if s.Lost != 0 {
		t.Fatalf("%d segments lost", s.Lost)
	}
	testkit.WaitFor(t, 10*time.Second, "the spool's reserve back", func() bool { return r.Stats().ReserveGone.IsZero() })
	segs, _ := checkSites(t, a, b, "inc-1", "mic9")
	if len(segs) < full.SpoolSegments+2 {
		t.Fatalf("%d segments at both sites; %d were spooled when the disk filled, and recording resumed after", len(segs), full.SpoolSegments)
	}
}

// A journal append that finds the disk full takes the spool's reserve and
// succeeds; a failed append leaves no torn record before later ones.
func TestJournalUsesReserveOnFullDisk(t *testing.T) {
	disk := testkit.SmallDisk(t, 6<<20)
	dir := filepath.Join(disk, "spool")
	sp, err := openSpool(dir, 1<<30, "inc-1", "node", testLog(t), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sp.reservePath()); err != nil {
		t.Fatalf("no reserve file in a new spool: %v", err)
	}
	testkit.FillDisk(t, disk)
	if err := sp.j.append(&record{Op: opEvict, ID: 7, Reason: strings.Repeat("r", 64<<10)}); err != nil {
		t.Fatalf("append on a full disk with a reserve: %v", err)
	}
	if _, err := os.Stat(sp.reservePath()); err == nil {
		t.Fatal("the reserve is still there after the journal needed it")
	}
	sp.mu.Lock()
	gone := sp.reserveGone
	sp.mu.Unlock()
	if gone.IsZero() {
		t.Fatal("giving up the reserve raised no alarm")
	}
	// Without a reserve, appends fail cleanly until there is room.
	testkit.FillDisk(t, disk)
	big := &record{Op: opEvict, ID: 8, Reason: strings.Repeat("x", 200<<10)}
	if err := sp.j.append(big); err == nil {
		t.Fatal("an append that cannot fit succeeded")
	}
	if err := os.Remove(filepath.Join(disk, "filler")); err != nil {
		t.Fatal(err)
	}
	if err := sp.j.append(&record{Op: opEvict, ID: 9, Reason: "after"}); err != nil {
		t.Fatal(err)
	}
	sp.close()
	b, err := os.ReadFile(filepath.Join(dir, "journal"))
	if err != nil {
		t.Fatal(err)
	}
	recs, _, tail, err := parseJournal(b)
	if err != nil || tail != nil {
		t.Fatalf("journal after a failed append: %v, tail %v", err, tail)
	}
	if n := len(recs); n < 2 || recs[n-1].ID != 9 || recs[n-2].ID != 7 {
		t.Fatalf("journal records %+v: want 7 then 9 at the end", recs)
	}
}

// A graceful stop closes the segment being written and uploads everything
// within the grace; what a down site could not take is reported and
// uploaded at the next start.
func TestGracefulStop(t *testing.T) {
	a := &flakyStore{Store: newFS(t, "primary")}
	b := &flakyStore{Store: newFS(t, "offsite")}
	spool := filepath.Join(t.TempDir(), "spool")
	p := Params{SpoolDir: spool, Incident: "inc-1", Primary: a, Offsite: b, SegmentDuration: 2 * time.Second,
		PartDuration: 250 * time.Millisecond, RetryMin: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond, Log: testLog(t)}
	start := func() *Recorder {
		r, err := New(p)
		if err != nil {
			t.Fatal(err)
		}
		go r.Run(context.Background())
		return r
	}
	r := start()
	st := synthSource(t, "mic5", 200)
	if _, err := r.Record("mic5", st); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, "a segment and part of the next", func() bool { return srcStats(r, "mic5").Parts >= 12 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if left := r.Stop(ctx); left[primary].Segments != 0 || left[offsite].Segments != 0 {
		t.Fatalf("graceful stop left %+v", left)
	}
	segs, _ := checkSites(t, a, b, "inc-1", "mic5")
	if uint64(len(segs)) != srcStats(r, "mic5").Segments || len(segs) < 2 {
		t.Fatalf("%d segments at both sites, %d closed", len(segs), srcStats(r, "mic5").Segments)
	}

	// The off-site store is down: the stop ends at its grace and reports.
	b.down.Store(true)
	r = start()
	if _, err := r.Record("mic5", st); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, "a segment", func() bool { return srcStats(r, "mic5").Segments >= 1 })
	ctx2, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	left := r.Stop(ctx2)
	if left[offsite].Segments == 0 || left[primary].Segments != 0 {
		t.Fatalf("stop with the off-site store down left %+v", left)
	}
	b.down.Store(false)
	r = start()
	waitDelivered(t, r, 20*time.Second)
	r.Close()
	checkSites(t, a, b, "inc-1", "mic5")
}
