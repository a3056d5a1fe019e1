package recorder

import (
	"cmp"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"

	"fieldvideo/internal/mp4"
	"fieldvideo/internal/stream"
	fvsync "fieldvideo/internal/sync"
	"fieldvideo/internal/unit"
)

// The segmenter of a source turns its units into segment files:
//
//   - Units are depacketized into samples per track. Each sample gets a
//     wall-clock time t from its track's anchor: the capture time (or, when
//     the source is not aligned, the arrival time) of an earlier unit plus
//     the RTP time since. For video with B-frames t is the decode time plus
//     the reorder delay, which for keyframes is their presentation time.
//   - Samples of all tracks are processed in t order, waiting at most
//     interleaveDelay for a track that lags.
//   - A segment starts at a keyframe of the leading track (the first video
//     track; the first audio track for audio-only sources) and is cut at the
//     first keyframe after SegmentDuration. Its media time zero is the
//     keyframe's presentation (an edit list skips the reorder delay); every
//     track's samples are placed relative to it, with durations from RTP
//     time, so consecutive segments play back without gaps or overlaps.
//   - Anchors that drift from the units' times are moved only between
//     segments, and by at most anchorSlew each time unless the time base
//     changed, so that one segment's tracks share one time base and the
//     capture times of consecutive segments join.
//   - Samples are gathered into parts of PartDuration; each part is
//     appended to the segment file and fsynced.

const (
	interleaveDelay = 500 * time.Millisecond
	// maxSampleGap: a longer gap between two samples of a track is a
	// discontinuity (the source paused or restarted).
	maxSampleGap = 10 * time.Second
)

// segConfig is what a segmenter needs from the recorder.
type segConfig struct {
	segDur, partDur time.Duration
	idle            time.Duration
	onPart          func(PartInfo)
	now             func() time.Time
	// only lists the stream tracks to record; nil records all.
	only []int
	// layers, when set, are the stream tracks of one video's simulcast layers, lowest
	// first: they are recorded as one track, the best arriving layer at a time (layerPick).
	layers []int
	// keyframe, when set, asks the source for a keyframe of a stream track:
	// done when a segment is due, so that publishers that send keyframes
	// only on request (browsers) still get segments near segDur.
	keyframe func(track int)
}

// PartInfo tells about a part that was made durable in the spool.
type PartInfo struct {
	Source string
	// SegmentStart is the capture start of the segment the part belongs to;
	// DurableUntil the capture time up to which the segment's leading track
	// is now on disk.
	SegmentStart, DurableUntil time.Time
	Bytes                      int
}

type segmenter struct {
	cfg    segConfig
	sp     *spool
	source string
	log    *slog.Logger
	st     *sourceStats

	mu       sync.Mutex
	tracks   []*recTrack // by stream track index; nil when not recorded
	list     []*recTrack // recorded tracks, by MP4 track ID
	leader   *recTrack
	epoch    uint32
	started  bool
	newest   int64
	lastUnit time.Time
	discont  bool
	paused   bool
	seg      *openSeg
	buf      []*sample
	lastWarn time.Time
	keyAsked int64 // media time of the last keyframe request
	pick     *layerPick
	repairs  []*repair // by stream track index, for video
}

// openSeg is the segment being written.
type openSeg struct {
	g         *spoolSeg
	f         *segFile
	start     int64 // unix ns of media time zero
	aligned   bool
	init      []byte
	reserved  int64
	parts     int
	seq       uint32
	params    []int
	trk       []segTrack
	part      []*partTrack
	partStart int64
	partN     int
	maxErr    int64
	trust     uint8 // lowest sync.Trust of the segment's capture times
}

type segTrack struct {
	started        bool
	base, firstDTS int64 // the track's media time (in its units) at its first sample's decode time
	end            int64 // media time just past the last sample
	presEnd        int64 // presentation time just past the last sample (before the edit list)
	presWritten    int64 // presEnd of the parts written
	shift          int64 // the track's edit list: presentation delay of its first keyframe
	samples        int
	rebase         bool
}

// setPaused records whether recording of the source is paused because the
// spool is full.
func (s *segmenter) setPaused(v bool) {
	if v && !s.paused {
		s.st.pausedSince.Store(s.cfg.now().UnixNano())
	}
	s.paused = v
	s.st.paused.Store(v)
}

// sourceStats are counters of one recorded source.
type sourceStats struct {
	paused                     atomic.Bool
	pausedSince                atomic.Int64 // unix ns: when the pause began
	units, mediaBytes, samples atomic.Uint64
	waitKey, late, decodeErr   atomic.Uint64
	fullDrops, segments, parts atomic.Uint64
	written                    atomic.Uint64
	skipped                    atomic.Value // []string
	layered                    atomic.Bool
	layerSwitches              atomic.Uint64
	layer                      atomic.Int32 // stream track of the simulcast layer recorded, -1: none
	repaired, gapsGivenUp      atomic.Uint64
}

func newSegmenter(cfg segConfig, sp *spool, source string, tracks []unit.Track, st *sourceStats, log *slog.Logger) *segmenter {
	s := &segmenter{cfg: cfg, sp: sp, source: source, st: st, log: log}
	s.setTracks(tracks)
	return s
}

// setTracks (re)binds the segmenter to a stream's track list.
func (s *segmenter) setTracks(tracks []unit.Track) {
	s.tracks, s.list, s.leader, s.pick = make([]*recTrack, len(tracks)), nil, nil, nil
	if s.cfg.layers != nil {
		s.setLayers(tracks)
		return
	}
	var skipped []string
	for i, t := range tracks {
		if s.cfg.only != nil && !slices.Contains(s.cfg.only, i) {
			continue
		}
		rt, err := newRecTrack(i, t)
		if err != nil {
			skipped = append(skipped, err.Error())
			s.log.Warn("track not recorded", "reason", err)
			continue
		}
		rt.id = len(s.list) + 1
		s.tracks[i] = rt
		s.list = append(s.list, rt)
	}
	for _, k := range []unit.Kind{unit.KindVideo, unit.KindAudio} {
		for _, rt := range s.list {
			if s.leader == nil && rt.kind == k {
				s.leader = rt
			}
		}
	}
	if s.leader == nil {
		s.log.Warn("source has no track that can be recorded; nothing is stored until it changes its tracks")
	}
	s.st.skipped.Store(skipped)
}

// onUnit takes one delivery from the stream.
func (s *segmenter) onUnit(d stream.Delivery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := d.Unit
	if s.started && u.Epoch != s.epoch {
		s.flushRepairs()
		s.finish()
		for _, t := range s.list {
			t.reset()
		}
		s.newest = 0
	}
	s.epoch, s.started = u.Epoch, true
	if u.Track < 0 || u.Track >= len(s.tracks) || s.tracks[u.Track] == nil {
		return
	}
	s.lastUnit = s.cfg.now()
	s.repaired(u, d.Flags)
}

// take records unit u of a recorded track.
func (s *segmenter) take(u *unit.Unit, flags stream.Flags) {
	tr := s.tracks[u.Track]
	s.st.units.Add(1)
	s.st.mediaBytes.Add(uint64(u.Bytes()))
	if flags&stream.FlagDiscont != 0 && tr == s.leader {
		s.discont = true
	}
	samples, err := tr.decode(u, s.buf[:0])
	s.buf = samples[:0]
	if err != nil {
		if errors.Is(err, errSkip) {
			s.st.waitKey.Add(1)
		} else {
			s.st.decodeErr.Add(1)
			if now := s.cfg.now(); now.Sub(s.lastWarn) > 10*time.Second {
				s.lastWarn = now
				s.log.Warn("unit not recorded", "track", u.Track, "error", err)
			}
		}
	}
	wall, aligned, capErr := s.unitTime(u)
	for i, smp := range samples {
		smp.tr, smp.aligned, smp.capErr, smp.trust = tr, aligned, capErr, u.CaptureTrust
		if i == 0 {
			tr.place(smp, wall, aligned, u.CaptureTrust)
			smp.jump, tr.jumped = tr.jumped, false
		}
		smp.gen = tr.gen
		smp.t = tr.wallOf(smp.dts)
		tr.queue = append(tr.queue, smp)
		s.newest = max(s.newest, smp.t)
	}
	s.drain(false)
}

// unitTime is a unit's capture time on the common baseline, or its arrival
// time when it has none.
func (s *segmenter) unitTime(u *unit.Unit) (int64, bool, int64) {
	if !u.Capture.IsZero() {
		e := int64(-1)
		if u.CaptureErr >= 0 {
			e = int64(u.CaptureErr)
		}
		return u.Capture.UnixNano(), true, e
	}
	if !u.Arrival.IsZero() {
		return u.Arrival.UnixNano(), false, -1
	}
	return s.cfg.now().UnixNano(), false, -1
}

// drain processes queued samples in wall-clock order. A sample waits while
// another track has nothing queued, unless it is interleaveDelay older than
// the newest sample; flush processes everything.
func (s *segmenter) drain(flush bool) {
	for {
		var best *recTrack
		all := true
		for _, t := range s.list {
			if len(t.queue) == 0 {
				all = false
				continue
			}
			if best == nil || t.queue[0].t < best.queue[0].t {
				best = t
			}
		}
		if best == nil {
			return
		}
		h := best.queue[0]
		if !flush && !all && h.t > s.newest-int64(interleaveDelay) {
			return
		}
		best.queue[0] = nil
		best.queue = best.queue[1:]
		s.process(h)
	}
}

// process takes the next sample in wall-clock order: the sample held before
// it on its track now has a duration and is emitted; a keyframe of the
// leading track may cut the segment.
func (s *segmenter) process(smp *sample) {
	tr := smp.tr
	if h := tr.held; h != nil {
		d := smp.dts - h.dts
		broken := d <= 0 || mp4.TicksToDuration(d, tr.clock) > maxSampleGap || smp.jump
		if broken {
			h.dur = tr.naturalDuration(h)
			s.discont = true
		} else {
			h.dur, tr.lastDelta = d, d
		}
		tr.held = nil
		s.emit(h)
		if broken && s.seg != nil {
			// The track's timeline broke between h and smp: smp starts a
			// new run at its own time.
			s.seg.trk[tr.id-1].rebase = true
		}
	}
	if tr == s.leader {
		if smp.sync {
			s.keyframe(smp)
		} else if s.seg != nil && s.cfg.keyframe != nil && time.Duration(smp.t-max(s.seg.start, s.keyAsked)) >= s.cfg.segDur {
			s.keyAsked = smp.t
			s.cfg.keyframe(tr.index)
			if s.pick != nil {
				if b := s.pick.below(s.lastUnit); b >= 0 {
					s.cfg.keyframe(b)
				}
			}
		}
	}
	tr.held = smp
}

// splitAt cuts a G.711 sample at wall-clock time at: smp keeps what comes
// before, and the rest is returned (nil when nothing is left over).
func (t *recTrack) splitAt(smp *sample, at int64) *sample {
	if t.entryType == "" || at <= smp.t {
		return nil
	}
	n := mp4.DurationToTicks(time.Duration(at-smp.t), t.clock)
	if n <= 0 || n >= smp.natural {
		return nil
	}
	rest := *smp
	cut := int(n) * t.channels
	smp.payload, smp.natural = smp.payload[:cut], n
	rest.payload, rest.natural, rest.dts = rest.payload[cut:], rest.natural-n, rest.dts+n
	rest.t = smp.t + int64(mp4.TicksToDuration(n, t.clock))
	return &rest
}

// naturalDuration is a sample's duration when no later sample tells it.
func (t *recTrack) naturalDuration(smp *sample) int64 {
	switch {
	case smp.natural > 0:
		return smp.natural
	case t.lastDelta > 0:
		return t.lastDelta
	}
	return int64(t.clock) / 25
}

// keyframe starts a segment at a keyframe of the leading track, or cuts the
// current one there once it is long enough or the stream changed.
func (s *segmenter) keyframe(k *sample) {
	if s.paused {
		if !s.sp.canResume() {
			s.st.fullDrops.Add(1)
			return
		}
		s.setPaused(false)
	}
	seg := s.seg
	if seg != nil {
		changed := false
		for i, t := range s.list {
			changed = changed || seg.params[i] != t.paramsGen
		}
		if !changed && !s.discont && time.Duration(k.t-seg.start) < s.cfg.segDur {
			return
		}
	}
	// A new segment: drifted anchors take effect now, and the cut is at the
	// keyframe's time on them.
	for _, t := range s.list {
		t.applyAnchor()
	}
	k.t = s.leader.timeOf(k)
	// The next segment is in the spool before the current one closes, so
	// the recovery point always counts what is not off-site yet.
	next := s.newSeg(k)
	var carry []*sample
	if seg != nil {
		// Other tracks' samples before the keyframe belong to the ending
		// segment, those after it to the next one (even when the
		// interleaving already put them in the part being built); a G.711
		// packet that runs across the cut is split there.
		for i, t := range s.list {
			if t == s.leader {
				continue
			}
			carry = append(carry, seg.takeFrom(i, k.t)...)
			if h := t.held; h != nil && h.t < k.t {
				t.held = t.splitAt(h, k.t)
				h.dur = t.naturalDuration(h)
				s.emit(h)
			}
		}
		s.closeSeg()
	}
	s.discont = false
	if s.paused && next != nil {
		// Closing filled the spool: the new segment stays empty.
		next.f.abandon()
		s.sp.discard(next.g, "spool full")
		next = nil
	}
	s.seg = next
	for _, x := range carry {
		s.emit(x)
	}
}

// takeFrom removes from the part being built the samples of track i from
// wall-clock time at on, and returns them.
func (seg *openSeg) takeFrom(i int, at int64) []*sample {
	pt, st := seg.part[i], &seg.trk[i]
	j := len(pt.src)
	for j > 0 {
		x := pt.src[j-1]
		if x.t = x.tr.timeOf(x); x.t < at {
			break
		}
		j--
	}
	if j == len(pt.src) {
		return nil
	}
	moved := append([]*sample(nil), pt.src[j:]...)
	for _, m := range moved {
		pt.dur -= m.dur
		pt.bytes -= len(m.payload)
		st.end -= m.dur
		st.samples--
		seg.partN--
	}
	pt.samples, pt.src = pt.samples[:j], pt.src[:j]
	return moved
}

// newSeg starts a segment file at keyframe k, or returns nil when it
// cannot (parameter sets missing, or a spool error).
func (s *segmenter) newSeg(k *sample) *openSeg {
	for _, t := range s.list {
		if !t.ready() {
			s.st.waitKey.Add(1)
			return nil
		}
	}
	init, err := marshalInit(s.list, func(t *recTrack) int64 { return t.reorder })
	if err != nil {
		s.log.Error("cannot write a segment init; recording of this source waits for the next keyframe", "error", err)
		return nil
	}
	g, f, err := s.sp.create(s.source, k.t, k.aligned)
	if err != nil {
		s.log.Error("cannot start a segment", "error", err)
		return nil
	}
	seg := &openSeg{g: g, f: f, start: k.t, aligned: k.aligned, init: init, seq: 1, maxErr: -1, trust: 255,
		params: make([]int, len(s.list)), trk: make([]segTrack, len(s.list)), part: make([]*partTrack, len(s.list))}
	for i, t := range s.list {
		seg.params[i] = t.paramsGen
		seg.part[i] = &partTrack{tr: t}
		seg.trk[i].shift = t.reorder
	}
	return seg
}

// emit adds a sample, with its duration, to the segment being written.
func (s *segmenter) emit(x *sample) {
	seg := s.seg
	if seg == nil {
		if s.paused {
			s.st.fullDrops.Add(1)
		} else {
			s.st.waitKey.Add(1)
		}
		return
	}
	i := x.tr.id - 1
	st := &seg.trk[i]
	if st.started && st.rebase {
		if len(seg.part[i].samples) > 0 {
			s.writePart()
			if s.seg != seg {
				return
			}
		}
		st.started, st.rebase = false, false
	}
	if !st.started {
		base := mp4.DurationToTicks(time.Duration(x.t-seg.start), x.tr.clock)
		if base < st.end {
			if st.end-base > x.dur {
				s.st.late.Add(1)
				return // earlier than the segment start, or overlapping what is written
			}
			base = st.end
		}
		st.base, st.firstDTS, st.started = base, x.dts, true
	}
	dec := st.base + x.dts - st.firstDTS
	if dec < st.end {
		s.st.late.Add(1)
		return
	}
	if seg.partN > 0 && time.Duration(x.t-seg.partStart) >= s.cfg.partDur {
		s.writePart()
		if s.seg != seg {
			return
		}
	}
	pt := seg.part[i]
	if len(pt.samples) == 0 {
		pt.base = uint64(dec)
	} else if dec != int64(pt.base)+pt.dur {
		// A gap in the track (a sample dropped): start a new part so that
		// the next run begins at its own decode time.
		s.writePart()
		if s.seg != seg {
			return
		}
		pt.base = uint64(dec)
	}
	pt.samples = append(pt.samples, &fmp4.Sample{Duration: uint32(x.dur), PTSOffset: x.ptsOff, IsNonSyncSample: !x.sync, Payload: x.payload})
	x.pos = dec
	pt.src = append(pt.src, x)
	pt.dur += x.dur
	pt.bytes += len(x.payload)
	st.end = dec + x.dur
	st.presEnd = max(st.presEnd, dec+int64(x.ptsOff)+x.dur)
	st.samples++
	if seg.partN == 0 {
		seg.partStart = x.t
	}
	seg.partN++
	seg.aligned = seg.aligned && x.aligned
	seg.maxErr = max(seg.maxErr, x.capErr)
	seg.trust = min(seg.trust, x.trust)
	s.st.samples.Add(1)
}

// writePart appends the part being built to the segment file and fsyncs
// it. When the spool has no room, the segment ends and recording pauses.
func (s *segmenter) writePart() {
	seg := s.seg
	if seg == nil || seg.partN == 0 {
		return
	}
	var ref *partTrack
	for _, pt := range seg.part {
		if len(pt.samples) > 0 && (ref == nil || pt.tr == s.leader) {
			ref = pt
		}
	}
	b, err := marshalPart(seg.seq, seg.part, ref, time.Unix(0, seg.start), seg.aligned)
	for i, pt := range seg.part {
		for _, x := range pt.src {
			seg.trk[i].presWritten = max(seg.trk[i].presWritten, x.pos+int64(x.ptsOff)+x.dur)
		}
		clear(pt.src)
		pt.samples, pt.src, pt.dur, pt.bytes = pt.samples[:0], pt.src[:0], 0, 0
	}
	seg.partN = 0
	if err != nil {
		s.st.decodeErr.Add(1)
		s.log.Error("cannot write a part", "error", err)
		return
	}
	if seg.parts == 0 {
		b = append(append(make([]byte, 0, len(seg.init)+len(b)), seg.init...), b...)
	}
	if !s.sp.reserve(int64(len(b))) {
		s.setPaused(true)
		s.st.fullDrops.Add(1)
		s.closeSeg()
		return
	}
	seg.reserved += int64(len(b))
	if err := seg.f.append(b); err != nil {
		s.log.Error("cannot write to the spool; the segment ends at its last complete part", "error", err)
		if isDiskFull(err) {
			s.sp.setFull(true)
			s.setPaused(true)
			s.st.fullDrops.Add(1)
		}
		s.closeSeg()
		return
	}
	seg.parts++
	seg.seq++
	s.st.parts.Add(1)
	s.st.written.Add(uint64(len(b)))
	s.sp.written.Add(uint64(len(b)))
	if s.cfg.onPart != nil {
		end := mp4.TicksToDuration(seg.trk[s.leader.id-1].end, s.leader.clock)
		start := time.Unix(0, seg.start)
		s.cfg.onPart(PartInfo{Source: s.source, SegmentStart: start, DurableUntil: start.Add(end), Bytes: len(b)})
	}
}

// closeSeg writes what is left of the segment, then closes it: manifest,
// journal, and a wake-up for the uploaders.
func (s *segmenter) closeSeg() {
	seg := s.seg
	if seg == nil {
		return
	}
	s.writePart()
	if s.seg != seg {
		return // closed while writing the part
	}
	s.seg = nil
	if seg.parts == 0 {
		seg.f.abandon()
		s.sp.unreserve(seg.reserved)
		if err := s.sp.discard(seg.g, "no media"); err != nil {
			s.log.Error("cannot discard an empty segment", "error", err)
		}
		return
	}
	size, sum, err := seg.f.finish()
	if err != nil {
		s.log.Error("cannot close a segment file; it is closed from what is on disk once the spool has room", "error", err)
		s.sp.unreserve(seg.reserved)
		s.sp.closeLater(seg.g)
		return
	}
	s.sp.unreserve(seg.reserved - size)
	// The segment lasts until the end of the track that ends last, on the
	// players' timeline (decode times after the edit list).
	var dur time.Duration
	for i, t := range s.list {
		if st := &seg.trk[i]; st.samples > 0 {
			dur = max(dur, mp4.TicksToDuration(st.end-st.shift, t.clock))
		}
	}
	m := s.sp.manifest(seg.g, dur, size, sum, seg.parts, false)
	m.TimeAligned = seg.aligned
	if seg.aligned && seg.maxErr >= 0 {
		ms := float64(seg.maxErr) / 1e6
		m.AlignmentErrorMS = &ms
	}
	if seg.aligned && seg.trust != 255 {
		m.TimeTrust = fvsync.Trust(seg.trust).String()
	}
	for i, t := range s.list {
		m.Tracks = append(m.Tracks, ManifestTrack{ID: t.id, Kind: t.kind.String(), Codec: t.codecName, ClockRate: t.clock,
			Channels: t.channels, Width: t.width, Height: t.height, Samples: seg.trk[i].samples})
	}
	mb, err := json.MarshalIndent(m, "", "  ")
	if err == nil {
		err = s.sp.finish(seg.g, m.Key, size, sum, dur, mb)
	}
	if err != nil {
		s.log.Error("cannot close a segment; it is closed from what is on disk once the spool has room", "key", m.Key, "error", err)
		if isDiskFull(err) {
			s.sp.setFull(true)
		}
		s.sp.unreserve(size)
		s.sp.closeLater(seg.g)
		return
	}
	s.st.segments.Add(1)
	s.log.Debug("segment closed", "key", m.Key, "bytes", size, "parts", seg.parts)
}

// finish writes out everything queued and closes the segment.
func (s *segmenter) finish() {
	s.drain(true)
	for _, t := range s.list {
		if h := t.held; h != nil {
			h.dur = t.naturalDuration(h)
			t.held = nil
			s.emit(h)
		}
	}
	s.trimTail()
	s.closeSeg()
}

// trimTail drops the last frames (in decode order) of the part being built
// on the leading track until its presentation has no hole: a recording that
// ends in the middle of a group of B-frames would otherwise show frames
// after ones that never arrived.
func (s *segmenter) trimTail() {
	seg := s.seg
	if seg == nil {
		return
	}
	i := s.leader.id - 1
	pt, st := seg.part[i], &seg.trk[i]
	for len(pt.src) > 1 && presentationHole(pt.src) {
		x := pt.src[len(pt.src)-1]
		pt.src[len(pt.src)-1] = nil
		pt.src, pt.samples = pt.src[:len(pt.src)-1], pt.samples[:len(pt.samples)-1]
		pt.dur -= x.dur
		pt.bytes -= len(x.payload)
		st.end -= x.dur
		st.samples--
		seg.partN--
		s.st.late.Add(1)
	}
	st.presEnd = st.presWritten
	for _, x := range pt.src {
		st.presEnd = max(st.presEnd, x.pos+int64(x.ptsOff)+x.dur)
	}
}

// presentationHole reports whether samples, presented in order, leave a gap.
func presentationHole(src []*sample) bool {
	iv := make([][2]int64, len(src))
	for i, x := range src {
		iv[i] = [2]int64{x.pos + int64(x.ptsOff), x.pos + int64(x.ptsOff) + x.dur}
	}
	slices.SortFunc(iv, func(a, b [2]int64) int { return cmp.Compare(a[0], b[0]) })
	end := iv[0][1]
	for _, v := range iv[1:] {
		if v[0] > end {
			return true
		}
		end = max(end, v[1])
	}
	return false
}

// stop ends the recording of the source.
func (s *segmenter) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushRepairs()
	s.finish()
}

// checkIdle closes the segment of a source that sent nothing for a while,
// so that what it recorded goes off-site.
func (s *segmenter) checkIdle(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seg != nil && now.Sub(s.lastUnit) > s.cfg.idle {
		s.log.Info("source is idle; closing its segment", "idle", now.Sub(s.lastUnit).Round(time.Millisecond))
		s.flushRepairs()
		s.finish()
	}
}

// retrack binds the segmenter to a new track list, after the source came
// back with different tracks.
func (s *segmenter) retrack(tracks []unit.Track) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushRepairs()
	s.finish()
	s.setTracks(tracks)
	s.started, s.newest, s.discont = false, 0, false
}
