package recorder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"

	"fieldvideo/internal/mp4"
	"fieldvideo/internal/store"
	"fieldvideo/internal/stream"
	"fieldvideo/internal/testkit"
	"fieldvideo/internal/unit"
)

// synthSource is an Opus-only live source made in the test: a 20 ms packet
// every 20 ms of real time, arrival times from the clock. The recorder
// treats every Opus packet as a place where a segment may start, which
// makes the spool, upload and reconcile tests fast and independent of
// ffmpeg; the ffmpeg tests cover the media.
func synthSource(t testing.TB, name string, payload int) *stream.Stream {
	t.Helper()
	st := stream.New(stream.Params{Name: name, Tracks: []unit.Track{opusTrack}})
	stopFeed := synthFeed(st, 0, payload)
	t.Cleanup(func() {
		stopFeed()
		st.Close()
	})
	return st
}

var opusTrack = unit.Track{Kind: unit.KindAudio, Codec: unit.CodecOpus, ClockRate: 48000, Channels: 2, PayloadType: 111}

// synthFeed writes 20 ms Opus packets of payload bytes into track of st in
// real time, until the returned function is called.
func synthFeed(st *stream.Stream, track, payload int) (stop func()) {
	return synthFeedAligned(st, track, payload, nil)
}

// synthFeedAligned is synthFeed with capture times: capture, when not nil,
// sets each unit's capture time from its arrival.
func synthFeedAligned(st *stream.Stream, track, payload int, capture func(u *unit.Unit)) (stop func()) {
	a := unit.NewAssembler(track, opusTrack, func(u *unit.Unit) {
		if capture != nil {
			capture(u)
		}
		st.Write(u)
	})
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		var seq uint16 = 100
		var ts uint32 = 5000
		start := time.Now()
		// Packet i is due at start + i*20 ms, like a camera's clock; late
		// ones are sent at once, so the stream keeps its rate.
		for i := 0; ; i++ {
			t := time.NewTimer(time.Until(start.Add(time.Duration(i) * 20 * time.Millisecond)))
			select {
			case <-done:
				t.Stop()
				return
			case <-t.C:
			}
			b := make([]byte, payload)
			b[0] = 0xfc // CELT fullband, 20 ms, one frame
			for i := 1; i < len(b); i++ {
				b[i] = byte(seq) ^ byte(i)
			}
			a.Push(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq, Timestamp: ts, SSRC: 1}, Payload: b}, time.Now())
			seq++
			ts += 960
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}

func TestOffsiteOutageAndPrimaryOutage(t *testing.T) {
	t.Parallel()
	a := &flakyStore{Store: newFS(t, "primary")}
	b := &flakyStore{Store: newFS(t, "offsite")}
	r := startRecorder(t, Params{Primary: a, Offsite: b, SegmentDuration: time.Second, PartDuration: 250 * time.Millisecond})
	st := synthSource(t, "mic1", 200)
	stop, err := r.Record("mic1", st)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	testkit.WaitFor(t, 10*time.Second, "a segment off-site", func() bool { return r.Stats().Stores[1].Uploaded >= 1 })

	// Off-site down: the primary keeps up, the RPO grows, the spool holds
	// what waits.
	b.down.Store(true)
	testkit.WaitFor(t, 20*time.Second, "RPO above 4 s with the off-site store down", func() bool { return r.Stats().RPO > 4*time.Second })
	s := r.Stats()
	if s.Stores[1].Up || s.Stores[1].Backlog.Segments < 3 {
		t.Fatalf("off-site down: store stats %+v", s.Stores[1])
	}
	if !s.Stores[0].Up || s.Stores[0].Backlog.Segments > 2 {
		t.Fatalf("the primary is held back by the off-site outage: %+v", s.Stores[0])
	}
	if s.SpoolSegments < s.Stores[1].Backlog.Segments {
		t.Fatalf("spool has %d segments, off-site backlog %d: unconfirmed segments were evicted", s.SpoolSegments, s.Stores[1].Backlog.Segments)
	}
	b.down.Store(false)
	testkit.WaitFor(t, 20*time.Second, "RPO back under 3 s", func() bool {
		s := r.Stats()
		return s.RPO < 3*time.Second && s.Stores[1].Backlog.Segments <= 1
	})

	// Primary down: segments keep reaching the off-site store.
	a.down.Store(true)
	before := r.Stats().Stores[1].Uploaded
	testkit.WaitFor(t, 20*time.Second, "5 more segments off-site with the primary down", func() bool {
		s := r.Stats()
		return s.Stores[1].Uploaded >= before+5 && s.Stores[0].Backlog.Segments >= 4
	})
	if rpo := r.Stats().RPO; rpo > 3*time.Second {
		t.Errorf("RPO %s with only the primary down; the off-site copy is current", rpo)
	}
	a.down.Store(false)
	stop()
	waitDelivered(t, r, 20*time.Second)
	segs, _ := checkSites(t, a, b, "inc-1", "mic1")
	// Every second of the recording is there: the segments join up.
	var total time.Duration
	for i, k := range segs {
		ki, _ := ParseKey(k)
		total += ki.Duration
		if i > 0 {
			prev, _ := ParseKey(segs[i-1])
			if gap := ki.Start.Sub(prev.Start.Add(prev.Duration)); gap.Abs() > 25*time.Millisecond {
				t.Errorf("gap of %s before %s", gap, k)
			}
		}
	}
	if s := srcStats(r, "mic1"); total < time.Duration(s.Samples)*20*time.Millisecond-time.Second {
		t.Errorf("%s stored for %d samples of 20 ms", total, s.Samples)
	}
}

func TestReconcilerRepairsBothSites(t *testing.T) {
	t.Parallel()
	a, b := newFS(t, "primary"), newFS(t, "offsite")
	r := startRecorder(t, Params{Primary: a, Offsite: b, SegmentDuration: time.Second, PartDuration: 250 * time.Millisecond,
		ReconcileInterval: time.Hour})
	st := synthSource(t, "mic2", 200)
	stop, err := r.Record("mic2", st)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, "4 segments", func() bool { return srcStats(r, "mic2").Segments >= 4 })
	stop()
	waitDelivered(t, r, 10*time.Second)
	segs, ms := checkSites(t, a, b, "inc-1", "mic2")
	ctx := context.Background()
	// A site loses copies the spool no longer has: one segment at the
	// off-site store, another's segment and manifest at the primary.
	lostOff, lostPrim := segs[0], segs[1]
	for _, op := range []struct {
		s   store.Store
		key string
	}{{b, lostOff}, {a, lostPrim}, {a, ManifestKey(lostPrim)}} {
		if err := op.s.Delete(ctx, op.key); err != nil {
			t.Fatal(err)
		}
	}
	r.rec.grace = 0
	r.rec.pass(ctx, true)
	s := r.Stats().Reconcile
	if s.RepairedOffsite != 1 || s.RepairedPrimary != 2 || s.Failures != 0 {
		t.Fatalf("reconcile stats %+v", s)
	}
	checkSites(t, a, b, "inc-1", "mic2")

	// A segment whose only copy does not match its manifest is reported,
	// not copied.
	k := segs[2]
	rc, _, err := a.Get(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(rc)
	rc.Close()
	data[len(data)-1] ^= 0xff
	sum := sha256.Sum256(data)
	if err := a.Delete(ctx, k); err != nil { // the store never overwrites: damage it as a disk would
		t.Fatal(err)
	}
	if err := a.Put(ctx, k, bytes.NewReader(data), int64(len(data)), hex.EncodeToString(sum[:])); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, k); err != nil {
		t.Fatal(err)
	}
	r.rec.pass(ctx, true)
	s = r.Stats().Reconcile
	if s.Mismatches != 1 || s.Failures != 1 || s.PendingOffsite != 1 {
		t.Fatalf("damaged copy: reconcile stats %+v", s)
	}
	if _, err := b.Stat(ctx, k); err == nil {
		t.Fatal("the damaged copy was spread to the off-site store")
	}
	if rpo := r.Stats().RPO; rpo < time.Since(ms[k].CaptureStart)-time.Second {
		t.Fatalf("RPO %s does not count the segment missing off-site (captured %s ago)", rpo, time.Since(ms[k].CaptureStart))
	}
}

// listLagStore is a site whose listing is older than the uploads it takes
// while listing: List reads the site, runs during (once), then reports what
// it read. holdPuts refuses uploads until during lets them in.
type listLagStore struct {
	store.Store
	holdPuts atomic.Bool
	during   atomic.Pointer[func()]
}

func (s *listLagStore) Put(ctx context.Context, key string, r io.Reader, size int64, sum string) error {
	if s.holdPuts.Load() {
		return errDown
	}
	return s.Store.Put(ctx, key, r, size, sum)
}

func (s *listLagStore) List(ctx context.Context, prefix string, fn func(store.Info) error) error {
	var read []store.Info
	if err := s.Store.List(ctx, prefix, func(in store.Info) error {
		read = append(read, in)
		return nil
	}); err != nil {
		return err
	}
	if f := s.during.Swap(nil); f != nil {
		(*f)()
	}
	for _, in := range read {
		if err := fn(in); err != nil {
			return err
		}
	}
	return nil
}

// Segments that reach the off-site store and leave the spool while a
// reconcile pass lists the sites are neither copied again nor counted as
// repaired: the spool is read before the listings.
func TestReconcilerSkipsSegmentsDeliveredWhileListing(t *testing.T) {
	t.Parallel()
	a := newFS(t, "primary")
	b := &listLagStore{Store: newFS(t, "offsite")}
	b.holdPuts.Store(true)
	r := startRecorder(t, Params{Primary: a, Offsite: b, SegmentDuration: time.Second, PartDuration: 250 * time.Millisecond,
		ReconcileInterval: time.Hour})
	st := synthSource(t, "mic5", 200)
	stop, err := r.Record("mic5", st)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, "3 segments waiting for the off-site store", func() bool {
		return r.Stats().Stores[1].Backlog.Segments >= 3 && r.Stats().Stores[0].Uploaded >= 3
	})
	stop()
	deliver := func() {
		b.holdPuts.Store(false)
		waitDelivered(t, r, 20*time.Second)
	}
	b.during.Store(&deliver)
	r.rec.grace = 0
	r.rec.pass(context.Background(), true)
	if b.during.Load() != nil {
		t.Fatal("the pass did not list the off-site store")
	}
	if s := r.Stats().Reconcile; s.RepairedOffsite != 0 || s.RepairedPrimary != 0 || s.Failures != 0 || s.PendingOffsite != 0 {
		t.Fatalf("segments the uploader delivered during the listing: reconcile stats %+v, want nothing repaired, failed or pending", s)
	}
	checkSites(t, a, b, "inc-1", "mic5")
}

func TestSpoolFullStopsRecordingWithoutLosingData(t *testing.T) {
	t.Parallel()
	a := &flakyStore{Store: newFS(t, "primary")}
	b := &flakyStore{Store: newFS(t, "offsite")}
	a.down.Store(true)
	b.down.Store(true)
	const max = 1 << 20
	r := startRecorder(t, Params{Primary: a, Offsite: b, SegmentDuration: time.Second, PartDuration: 250 * time.Millisecond,
		MaxSpoolBytes: max})
	st := synthSource(t, "mic3", 2000) // 100 kB/s: the spool fills in about 10 s
	stop, err := r.Record("mic3", st)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	testkit.WaitFor(t, 30*time.Second, "the spool-full alarm", func() bool { return r.Stats().SpoolFull })
	s := r.Stats()
	if s.SpoolBytes > max || s.Evicted != 0 || s.SpoolFullEvents != 1 {
		t.Fatalf("spool full: bytes %d of %d, evicted %d, events %d", s.SpoolBytes, max, s.Evicted, s.SpoolFullEvents)
	}
	// closed segments are what was accepted: the segment opened at the cut that filled the
	// spool holds nothing and is dropped, and so is each one opened while paused.
	closed := func() int {
		r.sp.mu.Lock()
		defer r.sp.mu.Unlock()
		n := 0
		for _, g := range r.sp.segs {
			if g.closed {
				n++
			}
		}
		return n
	}
	// the segment being written when the spool filled is closed just after the alarm: count
	// once units are being refused, and again after many more.
	testkit.WaitFor(t, 10*time.Second, "units refused while full", func() bool { return srcStats(r, "mic3").DroppedSpoolFull > 20 })
	segsAtFull := closed()
	testkit.WaitFor(t, 10*time.Second, "more units refused while full", func() bool { return srcStats(r, "mic3").DroppedSpoolFull > 60 })
	if got := closed(); got != segsAtFull || r.Stats().Evicted != 0 {
		t.Fatalf("spool went from %d to %d closed segments while full (evicted %d)", segsAtFull, got, r.Stats().Evicted)
	}
	a.down.Store(false)
	b.down.Store(false)
	testkit.WaitFor(t, 30*time.Second, "recording to resume", func() bool {
		s := r.Stats()
		return !s.SpoolFull && srcStats(r, "mic3").Segments > uint64(segsAtFull)+2
	})
	stop()
	waitDelivered(t, r, 20*time.Second)
	segs, _ := checkSites(t, a, b, "inc-1", "mic3")
	if len(segs) < segsAtFull+2 {
		t.Fatalf("%d segments stored; %d were spooled when it filled", len(segs), segsAtFull)
	}
}

// copyDir copies a directory tree, as a crash would leave it on disk.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if info.IsDir() {
			return os.MkdirAll(dst, 0o750)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o640)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRecoverTornSpool(t *testing.T) {
	t.Parallel()
	a := &flakyStore{Store: newFS(t, "primary")}
	b := &flakyStore{Store: newFS(t, "offsite")}
	a.down.Store(true)
	b.down.Store(true)
	dir := filepath.Join(t.TempDir(), "spool")
	r := startRecorder(t, Params{SpoolDir: dir, Primary: a, Offsite: b, SegmentDuration: time.Second, PartDuration: 250 * time.Millisecond})
	st := synthSource(t, "mic4", 300)
	stop, err := r.Record("mic4", st)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	testkit.WaitFor(t, 20*time.Second, "3 segments", func() bool { return srcStats(r, "mic4").Segments >= 3 })
	// The disk as a crash leaves it: a copy taken while recording, when the
	// segment being written has at least two parts.
	crash := filepath.Join(t.TempDir(), "crashed")
	var (
		jb       []byte
		closed   map[string]bool
		lastOpen uint64
		open     string
		ob       []byte
		sc       *mp4.Segment
	)
	testkit.WaitFor(t, 20*time.Second, "a snapshot with a segment of two parts being written", func() bool {
		os.RemoveAll(crash)
		copyDir(t, dir, crash)
		os.Remove(filepath.Join(crash, "lock"))
		var err error
		if jb, err = os.ReadFile(filepath.Join(crash, "journal")); err != nil {
			t.Fatal(err)
		}
		recs, _, _, err := parseJournal(jb)
		if err != nil {
			t.Fatal(err)
		}
		closed = map[string]bool{}
		for _, rc := range recs {
			if rc.Op == opClose {
				closed[rc.Key] = true
			}
			if rc.Op == opOpen {
				lastOpen = rc.ID
			}
		}
		open = ""
		filepath.Walk(filepath.Join(crash, "seg"), func(p string, info os.FileInfo, err error) error {
			if err == nil && strings.HasPrefix(filepath.Base(p), strconv.FormatUint(lastOpen, 10)+"-") && strings.HasSuffix(p, ".mp4") {
				open = p
			}
			return nil
		})
		if ob, err = os.ReadFile(open); err != nil {
			return false
		}
		sc, err = mp4.Scan(ob)
		return err == nil && sc.Parts >= 2
	})

	// Tear it further: the journal loses its last open record (the segment
	// being written becomes a file the journal does not know) and ends in
	// half a record; the segment file ends in half a part.
	cut := len(journalHeader)
	for off := len(journalHeader); off < len(jb); {
		n := 8 + int(jb[off])<<24 | int(jb[off+1])<<16 | int(jb[off+2])<<8 | int(jb[off+3])
		var rc record
		if err := json.Unmarshal(jb[off+8:off+n], &rc); err == nil && rc.Op == opOpen && rc.ID == lastOpen {
			cut = off
			jb = append(jb[:off:off], jb[off:off+n/2]...)
			break
		}
		off += n
	}
	if cut == len(journalHeader) {
		t.Fatal("no open record found")
	}
	if err := os.WriteFile(filepath.Join(crash, "journal"), jb, 0o640); err != nil {
		t.Fatal(err)
	}
	// Segments closed in what is left of the journal.
	recs, _, _, _ := parseJournal(jb)
	closed = map[string]bool{}
	for _, rc := range recs {
		if rc.Op == opClose {
			closed[rc.Key] = true
		}
	}
	if err := os.WriteFile(open, append(ob, ob[sc.InitEnd:sc.InitEnd+(sc.Valid-sc.InitEnd)/sc.Parts/2]...), 0o640); err != nil {
		t.Fatal(err)
	}
	_, _, orphanStart, _, _ := parseSpoolFileName(strings.TrimPrefix(open, crash+"/"))

	// A recorder on the crashed spool delivers every closed segment and
	// the adopted one, cut at its last complete part.
	a2, b2 := newFS(t, "primary2"), newFS(t, "offsite2")
	r2 := startRecorder(t, Params{SpoolDir: crash, Primary: a2, Offsite: b2, SegmentDuration: time.Second, PartDuration: 250 * time.Millisecond})
	waitDelivered(t, r2, 20*time.Second)
	if s := r2.Stats(); s.Recovered < 1 {
		t.Fatalf("stats %+v", s)
	}
	segs, ms := checkSites(t, a2, b2, "inc-1", "mic4")
	for k := range closed {
		if ms[k] == nil {
			t.Errorf("closed segment %s was not delivered", k)
		}
	}
	recovered, orphan := 0, false
	for _, k := range segs {
		if ms[k].Recovered {
			recovered++
			data, _ := os.ReadFile(fetch(t, a2, k, t.TempDir()))
			sc2, err := mp4.Scan(data)
			if err != nil || sc2.Valid != len(data) {
				t.Errorf("recovered %s: valid %d of %d, %v", k, sc2.Valid, len(data), err)
			}
			if ms[k].CaptureStart.UnixNano() == orphanStart {
				orphan = true
				if sc2.Parts != sc.Parts {
					t.Errorf("recovered %s has %d parts; the file had %d complete parts", k, sc2.Parts, sc.Parts)
				}
			}
		}
	}
	if !orphan || len(segs) != len(closed)+recovered {
		t.Fatalf("%d segments delivered, %d closed before the crash, %d recovered", len(segs), len(closed), recovered)
	}
}

// A source paused for a full spool is not recorded at all: its recovery point counts
// from the pause, even when everything written before is at both sites.
func TestPausedSourceCountsInTheRecoveryPoint(t *testing.T) {
	t.Parallel()
	r := startRecorder(t, Params{Primary: newFS(t, "primary"), Offsite: newFS(t, "offsite"), SegmentDuration: time.Second,
		PartDuration: 250 * time.Millisecond})
	stop, err := r.Record("mic4", synthSource(t, "mic4", 200))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	testkit.WaitFor(t, 20*time.Second, "a segment at both sites", func() bool {
		s := r.Stats()
		return s.Stores[0].Uploaded > 0 && s.Stores[1].Uploaded > 0
	})
	r.mu.Lock()
	st := r.stats["mic4"]
	r.mu.Unlock()
	pausedAt := time.Now().Add(-time.Minute)
	st.pausedSince.Store(pausedAt.UnixNano())
	st.paused.Store(true)
	s := r.Stats()
	if len(s.Sources) != 1 || !s.Sources[0].Paused || s.Sources[0].RPO < time.Minute || s.RPO < time.Minute {
		t.Fatalf("paused a minute ago: %+v, RPO %s; want at least a minute", s.Sources, s.RPO)
	}
	st.paused.Store(false)
	if s := r.Stats(); s.RPO >= time.Minute {
		t.Fatalf("RPO %s once recording again; want the pause forgotten", s.RPO)
	}
}
