package recorder

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"fieldvideo/internal/metrics"
	"fieldvideo/internal/mp4"
	"fieldvideo/internal/store"
)

// Store slots: every segment goes to both.
const (
	primary = 0
	offsite = 1
)

var storeRoles = [2]string{"primary", "offsite"}

// spoolSeg is one segment in the spool and where it is stored.
type spoolSeg struct {
	id      uint64
	source  string
	file    string // .mp4 path relative to the spool directory
	startNS int64
	aligned bool

	closed       bool
	key          string
	size         int64
	manifestSize int64
	sha          string
	durNS        int64
	recovered    bool
	closedAt     time.Time

	stored   [2]bool
	inflight [2]bool
	// conflict marks a store whose copy of the key holds other content:
	// the segment is not tried there again until the next start.
	conflict [2]bool
}

func (g *spoolSeg) diskBytes() int64 { return g.size + g.manifestSize }

// spool is the crash-safe local store of segments on their way to the two
// sites: segment files, their manifests, and the journal of their states.
// Its lock is never held across I/O other than journal appends.
type spool struct {
	dir      string
	max      int64
	incident string
	node     string
	rid      string // recorder id: random, kept in the spool directory
	log      *slog.Logger
	now      func() time.Time

	j         *journal
	lock      *os.File
	compactAt int // journal records past which it is compacted

	mu         sync.Mutex
	segs       map[uint64]*spoolSeg
	nextID     uint64
	bytes      int64 // segment files and manifests on disk
	full       bool
	fullDisk   bool // the disk, not max_spool_bytes, filled up
	fullSince  time.Time
	fullEvents uint64
	// reserveGone is when the reserve file was given up to the journal;
	// zero while it is in place.
	reserveGone time.Time
	// unclosed are segments whose closing failed (a full disk); they are
	// closed from their files once there is room.
	unclosed []*spoolSeg
	evicted  uint64
	lost     uint64

	changed   chan struct{} // closed and replaced when segments become ready to upload
	written   atomic.Uint64 // bytes written to segment files and manifests
	recovered atomic.Uint64
	lag       *metrics.Histogram // capture end to confirmed off-site
}

// LagBuckets bound the off-site lag histogram: from half a second to two
// hours (the RPO limit).
var LagBuckets = []time.Duration{
	500 * time.Millisecond, time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second,
	30 * time.Second, time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour, 2 * time.Hour,
}

// compactRecords is the journal length past which it is rewritten with only
// the records of segments still in the spool.
const compactRecords = 4096

// openSpool opens the spool at dir: it takes the directory's lock, replays
// the journal, and recovers what a crash left behind.
func openSpool(dir string, max int64, incident, node string, log *slog.Logger, now func() time.Time) (*spool, error) {
	if err := os.MkdirAll(filepath.Join(dir, "seg"), 0o750); err != nil {
		return nil, fmt.Errorf("create spool directory %s: %w", dir, err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("spool lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("spool directory %s is in use by another recorder process (%v); give each process its own spool_dir", dir, err)
	}
	os.RemoveAll(filepath.Join(dir, "tmp")) // copies a reconciler left unfinished
	rid, err := recorderID(dir)
	if err != nil {
		lock.Close()
		return nil, err
	}
	s := &spool{dir: dir, max: max, incident: incident, node: node, rid: rid, log: log, now: now, lock: lock, compactAt: compactRecords,
		segs: map[uint64]*spoolSeg{}, nextID: 1, lag: metrics.NewHistogram(LagBuckets)}
	s.changed = make(chan struct{})
	s.roomAtOpen()
	j, recs, tail, err := openJournal(filepath.Join(dir, "journal"))
	if err != nil {
		lock.Close()
		return nil, err
	}
	s.j = j
	j.onFull = s.releaseReserve
	if tail != nil {
		log.Warn("journal had a torn tail after an abrupt stop; it was cut at the last complete record", "reason", tail)
	}
	s.replay(recs)
	if err := s.recover(); err != nil {
		s.close()
		return nil, err
	}
	s.keepReserve()
	return s, nil
}

// recorderID returns the spool's recorder id, made at random when the spool
// is new. With the segment numbers the journal never reuses, it makes every
// segment key unique.
func recorderID(dir string) (string, error) {
	p := filepath.Join(dir, "recorder-id")
	b, err := os.ReadFile(p)
	if err == nil {
		if id := strings.TrimSpace(string(b)); validRecorderID(id) {
			return id, nil
		}
		return "", fmt.Errorf("spool %s: recorder-id holds %q, not %d hex digits: restore it or remove it (a new id is made)", dir, strings.TrimSpace(string(b)), recorderIDLen)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("spool %s: %w", dir, err)
	}
	raw := make([]byte, recorderIDLen/2)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	id := hex.EncodeToString(raw)
	if err := store.WriteFileAtomic(p, []byte(id+"\n"), 0o640); err != nil {
		return "", fmt.Errorf("spool %s: save the recorder id: %w", dir, err)
	}
	return id, nil
}

// replay rebuilds the segment table from journal records.
func (s *spool) replay(recs []record) {
	for i := range recs {
		r := &recs[i]
		if r.ID >= s.nextID {
			s.nextID = r.ID + 1
		}
		g := s.segs[r.ID]
		switch r.Op {
		case opOpen:
			s.segs[r.ID] = &spoolSeg{id: r.ID, source: r.Source, file: r.File, startNS: r.StartNS, aligned: r.Aligned}
		case opClose:
			if g != nil {
				g.closed, g.key, g.size, g.sha, g.durNS, g.manifestSize, g.recovered = true, r.Key, r.Size, r.SHA256, r.DurationNS, r.Manifest, r.Recovered
			}
		case opStored:
			if g != nil {
				for i, role := range storeRoles {
					if r.Store == role {
						g.stored[i] = true
					}
				}
			}
		case opEvict:
			delete(s.segs, r.ID)
		}
	}
}

// recover brings the spool directory and the segment table into agreement:
// segments cut short by a crash are closed at their last complete part,
// files the journal does not know are adopted (or removed when empty),
// and leftovers of evicted segments are deleted.
func (s *spool) recover() error {
	known := map[string]bool{}
	for _, g := range s.sortedSegs() {
		known[g.file] = true
		known[manifestFileName(g.file)] = true
		if !g.closed {
			if err := s.recoverSegment(g, false); err != nil {
				return err
			}
			continue
		}
		st, err := os.Stat(filepath.Join(s.dir, g.file))
		if err != nil || st.Size() != g.size {
			s.log.Error("a closed segment is missing from the spool or has the wrong size; it cannot be uploaded from here (the reconciler copies it between sites if one has it)",
				"key", g.key, "file", g.file, "stored_primary", g.stored[primary], "stored_offsite", g.stored[offsite])
			s.lost++
			if err := s.j.append(&record{Op: opEvict, ID: g.id, Reason: "missing from spool"}); err != nil {
				return err
			}
			delete(s.segs, g.id)
			continue
		}
		if _, err := os.Stat(filepath.Join(s.dir, manifestFileName(g.file))); err != nil {
			if err := s.rewriteManifest(g, false); err != nil {
				return err
			}
		}
		s.bytes += g.diskBytes()
	}
	// Files not in the journal: adopt segments, remove the rest.
	root := filepath.Join(s.dir, "seg")
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(s.dir, p)
		rel = filepath.ToSlash(rel)
		if known[rel] {
			return nil
		}
		source, id, startNS, aligned, ok := parseSpoolFileName(rel)
		if !ok {
			if strings.HasSuffix(rel, ".json") && known[strings.TrimSuffix(rel, ".json")+".mp4"] {
				return nil
			}
			s.log.Info("removing a file of an evicted or unfinished segment from the spool", "file", rel)
			return os.Remove(p)
		}
		if id >= s.nextID {
			s.nextID = id + 1
		}
		g := &spoolSeg{id: id, source: source, file: rel, startNS: startNS, aligned: aligned}
		if err := s.j.append(&record{Op: opOpen, ID: id, Source: source, File: rel, StartNS: startNS, Aligned: aligned}); err != nil {
			return err
		}
		s.segs[id] = g
		known[rel], known[manifestFileName(rel)] = true, true
		return s.recoverSegment(g, true)
	})
}

// recoverSegment closes a segment that was being written when the recorder
// stopped: the file is cut after its last complete part and gets a
// manifest. A segment without a complete part is discarded.
func (s *spool) recoverSegment(g *spoolSeg, adopted bool) error {
	path := filepath.Join(s.dir, g.file)
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("recover segment %s: %w", g.file, err)
	}
	sc, scanErr := mp4.Scan(b)
	if scanErr != nil || sc.Parts == 0 {
		s.log.Info("discarding a segment that has no complete part", "file", g.file, "bytes", len(b))
		return s.discard(g, "no complete part after an abrupt stop")
	}
	cut := len(b) - sc.Valid
	if cut > 0 {
		if err := os.Truncate(path, int64(sc.Valid)); err != nil {
			return fmt.Errorf("cut torn segment %s: %w", g.file, err)
		}
		b = b[:sc.Valid]
	}
	if err := syncFile(path); err != nil {
		return fmt.Errorf("recover segment %s: %w", g.file, err)
	}
	size, sum := int64(len(b)), sha256Hex(b)
	dur := scanDuration(sc)
	m := s.manifest(g, dur, size, sum, sc.Parts, true)
	m.Tracks = scanManifestTracks(sc)
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := store.WriteFileAtomic(filepath.Join(s.dir, manifestFileName(g.file)), mb, 0o640); err != nil {
		return fmt.Errorf("write manifest of recovered segment: %w", err)
	}
	err = s.j.appendApply(func() {
		s.mu.Lock()
		g.closed, g.key, g.size, g.sha, g.durNS, g.manifestSize, g.recovered, g.closedAt = true, m.Key, size, sum, int64(dur), int64(len(mb)), true, s.now()
		s.bytes += g.diskBytes()
		s.mu.Unlock()
	}, &record{Op: opClose, ID: g.id, Key: m.Key, Size: size, SHA256: sum, DurationNS: int64(dur), Manifest: int64(len(mb)), Recovered: true})
	if err != nil {
		return err
	}
	s.recovered.Add(1)
	s.signal()
	s.log.Warn("closed a segment from what is on disk (after an abrupt stop or a full disk)", "key", m.Key, "parts", sc.Parts,
		"cut_bytes", cut, "adopted_without_journal", adopted)
	return nil
}

// rewriteManifest recreates a closed segment's missing or damaged manifest
// from the segment file. counted says whether the segment's bytes are in
// the spool's total already.
func (s *spool) rewriteManifest(g *spoolSeg, counted bool) error {
	b, err := os.ReadFile(filepath.Join(s.dir, g.file))
	if err != nil {
		return err
	}
	sc, err := mp4.Scan(b)
	if err != nil {
		return fmt.Errorf("segment %s: %w", g.file, err)
	}
	m := s.manifest(g, time.Duration(g.durNS), g.size, g.sha, sc.Parts, g.recovered)
	m.Key, m.Tracks = g.key, scanManifestTracks(sc)
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := store.WriteFileAtomic(filepath.Join(s.dir, manifestFileName(g.file)), mb, 0o640); err != nil {
		return err
	}
	s.mu.Lock()
	if counted {
		s.bytes += int64(len(mb)) - g.manifestSize
	}
	g.manifestSize = int64(len(mb))
	s.mu.Unlock()
	return nil
}

// manifest returns the manifest of a segment, without tracks.
func (s *spool) manifest(g *spoolSeg, dur time.Duration, size int64, sum string, parts int, recovered bool) *Manifest {
	start := time.Unix(0, g.startNS).UTC()
	return &Manifest{
		Version: 1, Incident: s.incident, Source: g.source,
		Key:          SegmentKey(s.incident, g.source, start, dur, s.rid, g.id),
		CaptureStart: start, CaptureEnd: start.Add(dur), DurationMS: dur.Milliseconds(),
		TimeAligned: g.aligned, Parts: parts, Size: size, SHA256: sum,
		Recovered: recovered, Node: s.node, Recorder: s.rid, Seq: g.id, Created: s.now().UTC(),
	}
}

// scanDuration is a scanned segment's duration: the end of the track that
// ends last, in media time.
func scanDuration(sc *mp4.Segment) time.Duration {
	var d time.Duration
	for _, t := range sc.Tracks {
		if t.Samples > 0 {
			d = max(d, mp4.TicksToDuration(int64(t.End), t.TimeScale))
		}
	}
	return d
}

func scanManifestTracks(sc *mp4.Segment) []ManifestTrack {
	var ts []ManifestTrack
	for _, t := range sc.Tracks {
		kind := "audio"
		if t.Handler == "vide" {
			kind = "video"
		}
		codec := map[string]string{"avc1": "H264", "hvc1": "H265", "Opus": "opus", "mp4a": "MPEG4-GENERIC", "ulaw": "PCMU", "alaw": "PCMA"}[t.Entry]
		if codec == "" {
			codec = t.Entry
		}
		ts = append(ts, ManifestTrack{ID: int(t.ID), Kind: kind, Codec: codec, ClockRate: t.TimeScale, Samples: t.Samples})
	}
	return ts
}

// create starts a new segment file and journals it.
func (s *spool) create(source string, startNS int64, aligned bool) (*spoolSeg, *segFile, error) {
	s.mu.Lock()
	id := s.nextID
	s.nextID++
	s.mu.Unlock()
	g := &spoolSeg{id: id, source: source, file: spoolFileName(source, id, startNS, aligned), startNS: startNS, aligned: aligned}
	err := s.j.appendApply(func() {
		s.mu.Lock()
		s.segs[id] = g
		s.mu.Unlock()
	}, &record{Op: opOpen, ID: id, Source: source, File: g.file, StartNS: startNS, Aligned: aligned})
	if err != nil {
		return nil, nil, err
	}
	f, err := createSegFile(filepath.Join(s.dir, g.file))
	if err != nil {
		_ = s.discard(g, "could not create the file")
		return nil, nil, fmt.Errorf("create segment file: %w; check the spool disk", err)
	}
	return g, f, nil
}

// reserve accounts for n more bytes in the spool. It refuses when they do
// not fit under the limit, and raises the spool-full alarm.
func (s *spool) reserve(n int64) bool {
	jsize, _, _ := s.j.stats()
	free := s.freeBytes()
	s.mu.Lock()
	defer s.mu.Unlock()
	used := s.bytes + jsize
	if limit, disk := s.limit(used, free); used+n > limit {
		s.setFullLocked(disk, free)
		return false
	}
	s.bytes += n
	return true
}

// setFull raises the spool-full alarm; disk says the disk filled up rather
// than the spool reaching its limit.
func (s *spool) setFull(disk bool) {
	free := s.freeBytes()
	s.mu.Lock()
	s.setFullLocked(disk, free)
	s.mu.Unlock()
}

func (s *spool) setFullLocked(disk bool, free int64) {
	if s.full {
		s.fullDisk = s.fullDisk || disk
		return
	}
	s.full, s.fullDisk, s.fullSince = true, disk, s.now()
	s.fullEvents++
	b := s.backlogLocked()
	s.log.Error("ALARM: "+fullMessage(disk), "spool_bytes", s.bytes, "max_spool_bytes", s.max, "disk_free_bytes", free,
		"waiting_primary", b[primary].Segments, "waiting_offsite", b[offsite].Segments)
}

// unreserve returns bytes reserved but not written.
func (s *spool) unreserve(n int64) {
	s.mu.Lock()
	s.bytes -= n
	s.mu.Unlock()
}

// canResume reports whether recording may start again after the spool
// filled: once it is a tenth below its limit, and its disk has twice the
// headroom free.
func (s *spool) canResume() bool {
	jsize, _, _ := s.j.stats()
	free := s.freeBytes()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.full {
		return true
	}
	used := s.bytes + jsize
	if limit, _ := s.limit(used, free); used > limit-min(s.max/10, limit/10) || (s.fullDisk && free >= 0 && free < 2*spoolHeadroom) {
		return false
	}
	s.full, s.fullDisk = false, false
	s.log.Warn("spool has room again; recording resumes at the next keyframe", "full_for", s.now().Sub(s.fullSince).Round(time.Second))
	return true
}

// finish closes a segment: its manifest is written and fsynced, then the
// close is journaled and the uploaders are woken.
func (s *spool) finish(g *spoolSeg, key string, size int64, sum string, dur time.Duration, manifest []byte) error {
	mpath := filepath.Join(s.dir, manifestFileName(g.file))
	if err := store.WriteFileAtomic(mpath, manifest, 0o640); err != nil {
		return fmt.Errorf("write manifest: %w; check the spool disk", err)
	}
	s.written.Add(uint64(len(manifest)))
	err := s.j.appendApply(func() {
		s.mu.Lock()
		g.closed, g.key, g.size, g.sha, g.durNS, g.manifestSize, g.closedAt = true, key, size, sum, int64(dur), int64(len(manifest)), s.now()
		s.bytes += int64(len(manifest))
		s.mu.Unlock()
	}, &record{Op: opClose, ID: g.id, Key: key, Size: size, SHA256: sum, DurationNS: int64(dur), Manifest: int64(len(manifest))})
	if err != nil {
		return err
	}
	s.signal()
	return nil
}

// discard drops a segment that holds no media (or could not be finished).
func (s *spool) discard(g *spoolSeg, reason string) error {
	err := s.j.appendApply(func() {
		s.mu.Lock()
		delete(s.segs, g.id)
		s.mu.Unlock()
	}, &record{Op: opEvict, ID: g.id, Reason: reason})
	if err != nil {
		return err
	}
	os.Remove(filepath.Join(s.dir, g.file))
	os.Remove(filepath.Join(s.dir, manifestFileName(g.file)))
	return nil
}

// signal wakes every uploader waiting on waitCh.
func (s *spool) signal() {
	s.mu.Lock()
	s.signalLocked()
	s.mu.Unlock()
}

func (s *spool) signalLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// waitCh returns a channel closed at the next signal.
func (s *spool) waitCh() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// next claims the oldest closed segment not yet stored at store slot i.
func (s *spool) next(i int) *spoolSeg {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best *spoolSeg
	for _, g := range s.segs {
		if g.closed && !g.stored[i] && !g.inflight[i] && !g.conflict[i] && (best == nil || g.startNS < best.startNS || (g.startNS == best.startNS && g.id < best.id)) {
			best = g
		}
	}
	if best != nil {
		best.inflight[i] = true
	}
	return best
}

// conflict gives back a claim on a segment that store slot i refused as a
// conflict, and keeps it from being claimed there again.
func (s *spool) conflict(g *spoolSeg, i int) {
	s.mu.Lock()
	g.inflight[i], g.conflict[i] = false, true
	s.mu.Unlock()
}

// release gives back a claim after a failed upload.
func (s *spool) release(g *spoolSeg, i int) {
	s.mu.Lock()
	g.inflight[i] = false
	s.mu.Unlock()
}

// markStored records that a segment is verified at store slot i, and
// evicts it once both sites have it.
func (s *spool) markStored(g *spoolSeg, i int) error {
	var both bool
	err := s.j.appendApply(func() {
		s.mu.Lock()
		g.stored[i] = true
		both = g.stored[primary] && g.stored[offsite]
		s.mu.Unlock()
	}, &record{Op: opStored, ID: g.id, Store: storeRoles[i]})
	s.release(g, i)
	if err != nil {
		return err
	}
	if i == offsite {
		s.lag.Observe(s.now().Sub(time.Unix(0, g.startNS+g.durNS)))
	}
	if both {
		return s.evict(g)
	}
	return nil
}

// evict removes a segment confirmed at both sites from the spool.
func (s *spool) evict(g *spoolSeg) error {
	err := s.j.appendApply(func() {
		s.mu.Lock()
		if s.segs[g.id] == g {
			delete(s.segs, g.id)
			s.bytes -= g.diskBytes()
			s.evicted++
		}
		s.mu.Unlock()
	}, &record{Op: opEvict, ID: g.id, Reason: "confirmed at both sites"})
	if err != nil {
		return err
	}
	os.Remove(filepath.Join(s.dir, g.file))
	os.Remove(filepath.Join(s.dir, manifestFileName(g.file)))
	return s.maybeCompact()
}

// unstore forgets that the segment at key is stored at slot i, after the
// reconciler found it missing there; it reports whether the spool has it.
func (s *spool) unstore(key string, i int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.segs {
		if g.key == key || (g.closed && ManifestKey(g.key) == key) {
			if g.stored[i] {
				g.stored[i] = false
				s.log.Warn("a segment confirmed earlier is missing at a site; uploading it again", "key", g.key, "store", storeRoles[i])
				s.signalLocked()
			}
			return true
		}
	}
	return false
}

// keys returns the object keys (segments and manifests) of closed segments
// still in the spool.
func (s *spool) keys() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string]bool{}
	for _, g := range s.segs {
		if g.closed {
			m[g.key], m[ManifestKey(g.key)] = true, true
		}
	}
	return m
}

// maybeCompact rewrites the journal with only the live segments' records
// once it has grown long.
func (s *spool) maybeCompact() error {
	_, n, _ := s.j.stats()
	if n < s.compactAt {
		return nil
	}
	return s.j.rewrite(func() []*record {
		s.mu.Lock()
		defer s.mu.Unlock()
		var rs []*record
		for _, g := range s.sortedSegsLocked() {
			rs = append(rs, &record{Op: opOpen, ID: g.id, Source: g.source, File: g.file, StartNS: g.startNS, Aligned: g.aligned})
			if g.closed {
				rs = append(rs, &record{Op: opClose, ID: g.id, Key: g.key, Size: g.size, SHA256: g.sha, DurationNS: g.durNS, Manifest: g.manifestSize, Recovered: g.recovered})
			}
			for i, ok := range g.stored {
				if ok {
					rs = append(rs, &record{Op: opStored, ID: g.id, Store: storeRoles[i]})
				}
			}
		}
		// Keep the next id so that ids are never reused.
		return append(rs, &record{Op: opNextID, ID: s.nextID})
	})
}

func (s *spool) sortedSegs() []*spoolSeg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sortedSegsLocked()
}

func (s *spool) sortedSegsLocked() []*spoolSeg {
	gs := make([]*spoolSeg, 0, len(s.segs))
	for _, g := range s.segs {
		gs = append(gs, g)
	}
	sort.Slice(gs, func(a, b int) bool { return gs[a].id < gs[b].id })
	return gs
}

// Backlog counts segments waiting for one store.
type Backlog struct {
	Segments int
	Bytes    int64
	// Oldest is the capture start of the oldest segment waiting, zero when
	// none is.
	Oldest time.Time
}

func (s *spool) backlog() [2]Backlog {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.backlogLocked()
}

// quarantine takes a damaged segment out of the upload path: its files move
// to quarantine/ (kept for inspection; the recorder never deletes them) and
// the journal drops it.
func (s *spool) quarantine(g *spoolSeg, cause error) {
	s.mu.Lock()
	live := s.segs[g.id] == g
	s.mu.Unlock()
	if !live {
		return
	}
	s.log.Error("ALARM: a spooled segment is damaged and cannot be uploaded from here; it is moved to quarantine (the reconciler copies it from the other site if that has it)",
		"key", g.key, "file", g.file, "error", cause)
	q := filepath.Join(s.dir, "quarantine")
	if err := os.MkdirAll(q, 0o750); err == nil {
		base := fmt.Sprintf("%d-%s", g.id, filepath.Base(g.file))
		os.Rename(filepath.Join(s.dir, g.file), filepath.Join(q, base))
		os.Rename(filepath.Join(s.dir, manifestFileName(g.file)), filepath.Join(q, manifestFileName(base)))
	}
	err := s.j.appendApply(func() {
		s.mu.Lock()
		if s.segs[g.id] == g {
			delete(s.segs, g.id)
			s.bytes -= g.diskBytes()
			s.lost++
		}
		s.mu.Unlock()
	}, &record{Op: opEvict, ID: g.id, Reason: "damaged in the spool: " + cause.Error()})
	if err != nil {
		s.log.Error("cannot journal a quarantined segment", "error", err)
	}
}

func (s *spool) backlogLocked() [2]Backlog {
	var b [2]Backlog
	for _, g := range s.segs {
		if !g.closed {
			continue
		}
		for i := range b {
			if !g.stored[i] {
				b[i].Segments++
				b[i].Bytes += g.diskBytes()
				if t := time.Unix(0, g.startNS); b[i].Oldest.IsZero() || t.Before(b[i].Oldest) {
					b[i].Oldest = t
				}
			}
		}
	}
	return b
}

// oldestUnconfirmed returns, per source, the capture start of the oldest
// segment in the spool not yet confirmed off-site, the segment being
// written included.
func (s *spool) oldestUnconfirmed() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string]int64{}
	for _, g := range s.segs {
		if g.stored[offsite] {
			continue
		}
		if old, ok := m[g.source]; !ok || g.startNS < old {
			m[g.source] = g.startNS
		}
	}
	return m
}

func (s *spool) close() {
	s.j.close()
	s.lock.Close()
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
