package playback

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"

	"fieldvideo/internal/mp4"
	"fieldvideo/internal/recorder"
	"fieldvideo/internal/store"
)

// StreamRequest asks for sources over [Start, End) as one fMP4: one
// source, or several whose tracks go into one file (a call participant's
// camera and microphone, recorded as two sources).
type StreamRequest struct {
	Incident string
	Sources  []string
	Start    time.Time
	End      time.Time
	// parts asks for the fragments' list in StreamInfo (exports).
	parts bool
	// holder is the token holder whose stream slots it is charged to; none
	// when empty.
	holder string
}

// StreamInfo describes a stream: presentation time zero of the file is
// capture time Start on the common baseline.
type StreamInfo struct {
	Site  string
	Start time.Time
	// Keyframe is the capture time of the keyframe decoding starts at.
	Keyframe time.Time
	// Skipped lists damaged or unreadable segments left out; Ended says why
	// the stream stopped before End, when it did.
	Skipped []string
	Ended   string
	// InitSize and InitSHA256 describe the init (ftyp, moov); Parts the
	// fragments written (when asked), for an export's manifest.
	InitSize   int64
	InitSHA256 string
	Parts      []PartInfo
	// Segments are the recorded segments the stream is made of.
	Segments []SegmentInfo
}

// PartInfo is one fragment of a stream: prft, moof and mdat.
type PartInfo struct {
	Seq          uint32    `json:"seq"`
	Offset       int64     `json:"offset"`
	Size         int64     `json:"size"`
	SHA256       string    `json:"sha256"`
	CaptureStart time.Time `json:"capture_start"`
}

// SegmentInfo is a recorded segment used by a stream, with what its
// manifest says of its times.
type SegmentInfo struct {
	Source           string    `json:"source"`
	Key              string    `json:"key"`
	SHA256           string    `json:"sha256"`
	CaptureStart     time.Time `json:"capture_start"`
	CaptureEnd       time.Time `json:"capture_end"`
	TimeAligned      bool      `json:"time_aligned"`
	TimeTrust        string    `json:"time_trust,omitempty"`
	AlignmentErrorMS *float64  `json:"alignment_error_ms,omitempty"`
}

// maxSegmentBytes bounds a segment read from a store.
const maxSegmentBytes = 1 << 30

// partTarget is how much media one written fragment holds at most.
const partTarget = time.Second

// Stream writes the sources over [req.Start, req.End) to w as one
// fragmented MP4: from the keyframe at or before Start, with edit lists
// that start presentation at Start, every track (video and audio, of every
// source) interleaved by capture time, gaps kept as gaps in time. onStart
// is called once, just before the first byte, with what is known then;
// an error before it means nothing was written. The stream holds a stream
// slot while it runs, one of req's token holder's when it has one.
func (pb *Playback) Stream(ctx context.Context, w io.Writer, req StreamRequest, onStart func(StreamInfo)) (StreamInfo, error) {
	if err := pb.checkStream(req); err != nil {
		return StreamInfo{}, err
	}
	release, err := pb.acquire(req.holder)
	if err != nil {
		return StreamInfo{}, err
	}
	defer release()
	return pb.stream(ctx, w, req, onStart)
}

// checkStream refuses a request without a source, or whose window is
// reversed or too long.
func (pb *Playback) checkStream(req StreamRequest) error {
	if err := pb.checkWindow(req.Start, req.End); err != nil {
		return err
	}
	if len(req.Sources) == 0 {
		return badRequest("name a source")
	}
	return nil
}

// stream is Stream for a caller that holds a stream slot: an export, one
// slot for all its sources.
func (pb *Playback) stream(ctx context.Context, w io.Writer, req StreamRequest, onStart func(StreamInfo)) (StreamInfo, error) {
	info := StreamInfo{}
	if err := pb.checkStream(req); err != nil {
		return info, err
	}
	segs, name, err := pb.segmentsOf(ctx, req.Incident, req.Sources, req.Start, req.End)
	info.Site = name
	if err != nil {
		return info, err
	}
	pb.streams.Add(1)
	st := &stitcher{pb: pb, ctx: ctx, w: w, req: req, info: &info}
	for i, src := range req.Sources {
		if l := fromLastStart(segs[i], req.Start); len(l) > 0 {
			st.inputs = append(st.inputs, &input{source: src, segs: l})
		}
	}
	if len(st.inputs) == 0 {
		return info, st.nothing()
	}
	if err := st.run(onStart); err != nil {
		return info, err
	}
	if !st.started {
		return info, st.nothing()
	}
	return info, nil
}

// fromLastStart drops the segments before the last one that starts by t:
// a segment starts at a keyframe, presented within the millisecond after
// its key's start, so decoding begins in that one even when the segment
// before reaches past t (its last audio packet, cut by the keyframe).
func fromLastStart(segs []seg, t time.Time) []seg {
	i := 0
	for i+1 < len(segs) && !segs[i+1].start.Add(time.Millisecond).After(t) {
		i++
	}
	return segs[i:]
}

func (st *stitcher) nothing() error {
	if len(st.info.Skipped) > 0 {
		return &Error{Status: http.StatusUnprocessableEntity, Msg: "every segment of the range is damaged or unreadable: " + st.info.Skipped[0]}
	}
	return notFound("%s of incident %q has no recording between %s and %s; GET /v1/recordings/coverage shows what there is",
		sourceList(st.req.Sources), st.req.Incident, st.req.Start.UTC().Format(time.RFC3339Nano), st.req.End.UTC().Format(time.RFC3339Nano))
}

func sourceList(s []string) string {
	if len(s) == 1 {
		return fmt.Sprintf("source %q", s[0])
	}
	return fmt.Sprintf("sources %q", s)
}

// fetch reads a segment and its manifest from the active site (failing
// over), and checks the content against the manifest's SHA-256. A copy
// that is damaged at one site is read from another.
func (pb *Playback) fetch(ctx context.Context, sg seg) ([]byte, *recorder.Manifest, string, error) {
	var b []byte
	var m *recorder.Manifest
	read := func(s *site) error {
		var err error
		if m, err = s.idx.manifest(ctx, sg); err != nil {
			return err
		}
		rc, info, err := s.st.Get(ctx, sg.key)
		if err != nil {
			return err
		}
		defer rc.Close()
		if b, err = io.ReadAll(io.LimitReader(rc, maxSegmentBytes)); err != nil {
			return err
		}
		want := info.SHA256
		if m != nil {
			want = m.SHA256
		}
		if want != "" {
			sum := sha256.Sum256(b)
			if got := hex.EncodeToString(sum[:]); got != want {
				return fmt.Errorf("%w at site %s: SHA-256 %s, the manifest says %s", errDamaged, s.st.Name(), got, want)
			}
		}
		return nil
	}
	name, err := pb.with(ctx, read)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// Not (yet) at this site: an outage's segments reach a recovered
		// site after it answers again.
	case errors.Is(err, errDamaged):
		pb.log.Error("EVIDENCE DAMAGED: a segment does not match its SHA-256; reading another site's copy", "key", sg.key, "error", err)
	default:
		return b, m, name, err
	}
	for _, s := range pb.sites {
		if s.st.Name() == name || !s.healthy.Load() {
			continue
		}
		if err2 := read(s); err2 == nil {
			return b, m, s.st.Name(), nil
		} else if !errors.Is(err2, errDamaged) && !errors.Is(err2, store.ErrNotFound) {
			err = fmt.Errorf("%w; the copy at site %s cannot be read: %v", err, s.st.Name(), err2)
		} else {
			err = fmt.Errorf("%w; and %v", err, err2)
		}
	}
	return nil, nil, name, err
}

// stitcher writes the segments of one or more sources as one fMP4.
type stitcher struct {
	pb      *Playback
	ctx     context.Context
	w       io.Writer
	req     StreamRequest
	info    *StreamInfo
	inputs  []*input
	tracks  []*outTrack
	started bool
	seq     uint32
	written int64
	t       time.Time // capture time of presentation zero
}

// input is one source: its segments, and the one being read.
type input struct {
	source string
	segs   []seg
	next   int // index in segs of the next segment to load
	cur    *loaded
	done   bool
	// out maps the source's track ids to output tracks.
	out map[uint32]*outTrack
	// entries are the sample entries of its tracks, to refuse a segment
	// that changed format.
	entries map[uint32]string
}

// loaded is a segment read and parsed, with a cursor per track.
type loaded struct {
	seg     seg
	sc      *mp4.Segment
	init    []byte
	samples map[uint32][]mp4.Sample
	pos     map[uint32]int
	cs      time.Time
}

type outTrack struct {
	id       uint32
	ts       uint32
	video    bool
	origin   time.Time // capture time of output decode time zero
	next     int64     // output decode time the next sample should have
	have     bool      // a sample was written
	waitSync bool      // skip to the next keyframe
	base     int64
	samples  []*fmp4.Sample
	pending  int64
}

// load reads the input's next usable segment; false when there is none
// left before the end.
func (st *stitcher) load(in *input) (bool, error) {
	for in.next < len(in.segs) {
		sg := in.segs[in.next]
		in.next++
		if !sg.start.Before(st.req.End) {
			break
		}
		b, m, site, err := st.pb.fetch(st.ctx, sg)
		if err != nil {
			if st.ctx.Err() != nil {
				return false, st.ctx.Err()
			}
			if errors.Is(err, errNoSite) && !st.started {
				return false, err
			}
			st.skip(sg, err)
			continue
		}
		sc, err := mp4.Scan(b)
		if err != nil {
			st.skip(sg, err)
			continue
		}
		samples, err := mp4.ReadSamples(b, sc)
		if err != nil {
			st.skip(sg, err)
			continue
		}
		st.info.Site = site
		in.cur = &loaded{seg: sg, sc: sc, init: b[:sc.InitEnd], samples: samples, pos: map[uint32]int{}, cs: captureStart(sg, m)}
		st.info.Segments = append(st.info.Segments, segmentInfo(in.source, sg, m, in.cur.cs))
		return true, nil
	}
	in.cur, in.done = nil, true
	return false, nil
}

func (st *stitcher) skip(sg seg, err error) {
	st.pb.skipped.Add(1)
	st.info.Skipped = append(st.info.Skipped, sg.key+": "+err.Error())
	st.pb.log.Warn("playback: segment left out", "key", sg.key, "error", err)
}

func segmentInfo(source string, sg seg, m *recorder.Manifest, cs time.Time) SegmentInfo {
	si := SegmentInfo{Source: source, Key: sg.key, CaptureStart: cs.UTC(), CaptureEnd: sg.end}
	if m != nil {
		si.SHA256, si.CaptureEnd, si.TimeAligned, si.TimeTrust, si.AlignmentErrorMS = m.SHA256, m.CaptureEnd.UTC(), m.TimeAligned, m.TimeTrust, m.AlignmentErrorMS
	}
	return si
}

// run loads the first segment of every input, writes the init, then
// writes every track's samples in order of capture time.
func (st *stitcher) run(onStart func(StreamInfo)) error {
	var live []*input
	for _, in := range st.inputs {
		ok, err := st.load(in)
		if err != nil {
			return err
		}
		if ok {
			live = append(live, in)
		}
	}
	st.inputs = live
	if len(live) == 0 || !st.begin() {
		return nil
	}
	init, err := st.initSegment()
	if err != nil {
		return err
	}
	sum := sha256.Sum256(init)
	st.info.InitSize, st.info.InitSHA256 = int64(len(init)), hex.EncodeToString(sum[:])
	onStart(*st.info)
	st.started = true
	if err := st.write(init); err != nil {
		return err
	}
	for {
		if err := st.ctx.Err(); err != nil {
			return err
		}
		in, tr := st.earliest()
		if in == nil {
			break
		}
		if tr == nil {
			// The input's segment is used up: on to its next one.
			ok, err := st.load(in)
			if err != nil {
				return err
			}
			if ok {
				if why := st.compatible(in); why != "" {
					// A segment of another format may begin before what was written ends (a
					// call camera's lower layer recorded from its last keyframe): ask from
					// where this stream ends, and decoding starts at that keyframe.
					from := in.cur.cs
					for _, ot := range in.out {
						if end := ot.origin.Add(mp4.TicksToDuration(ot.next, ot.ts)); ot.have && end.After(from) {
							from = end
						}
					}
					st.info.Ended = fmt.Sprintf("source %s changed format at %s (%s); ask again from there", in.source, from.UTC().Format(time.RFC3339Nano), why)
					in.cur, in.done = nil, true
				}
			}
			continue
		}
		if err := st.place(in, tr); err != nil {
			return err
		}
	}
	return st.flush()
}

// earliest returns the track whose next sample is decoded first, of the
// input that has it; a nil track means that input's segment is used up.
func (st *stitcher) earliest() (*input, *mp4.Track) {
	var bestIn *input
	var bestTr *mp4.Track
	var bestAt time.Time
	for _, in := range st.inputs {
		if in.done {
			continue
		}
		l := in.cur
		if l == nil {
			return in, nil
		}
		left := false
		for i := range l.sc.Tracks {
			tr := &l.sc.Tracks[i]
			k := l.pos[tr.ID]
			ss := l.samples[tr.ID]
			if k >= len(ss) || in.out[tr.ID] == nil {
				continue
			}
			left = true
			at := decodedAt(l.cs, tr, &ss[k])
			if bestTr == nil || at.Before(bestAt) {
				bestIn, bestTr, bestAt = in, tr, at
			}
		}
		if !left {
			return in, nil
		}
	}
	return bestIn, bestTr
}

// begin picks where decoding starts: in each input's first segment, the
// last keyframe presented at or before the asked start (or its first
// keyframe, when the recording starts later; the start then moves to the
// earliest such keyframe). It returns false when there is nothing to play.
func (st *stitcher) begin() bool {
	t := st.req.Start
	starts := make([]*time.Time, len(st.inputs)) // per input: capture time decoding starts at
	var earliest *time.Time
	for n, in := range st.inputs {
		l := in.cur
		var key *time.Time
		for i := range l.sc.Tracks {
			tr := &l.sc.Tracks[i]
			if tr.Handler != "vide" {
				continue
			}
			var pick, first int = -1, -1
			for k := range l.samples[tr.ID] {
				s := &l.samples[tr.ID][k]
				if !s.Sync {
					continue
				}
				if first < 0 {
					first = k
				}
				if !presentedAt(l.cs, tr, s).After(t) {
					pick = k
				}
			}
			if pick < 0 {
				pick = first
			}
			if pick < 0 {
				continue
			}
			d := decodedAt(l.cs, tr, &l.samples[tr.ID][pick])
			key = &d
			// Samples of the input before the keyframe are not needed.
			for j := range l.sc.Tracks {
				o := &l.sc.Tracks[j]
				for l.pos[o.ID] < len(l.samples[o.ID]) && decodedAt(l.cs, o, &l.samples[o.ID][l.pos[o.ID]]).Before(d) {
					l.pos[o.ID]++
				}
			}
			break
		}
		if key == nil {
			// No video: from the first sample presented at or after t.
			for i := range l.sc.Tracks {
				tr := &l.sc.Tracks[i]
				for l.pos[tr.ID] < len(l.samples[tr.ID])-1 && presentedAt(l.cs, tr, &l.samples[tr.ID][l.pos[tr.ID]]).Before(t) {
					l.pos[tr.ID]++
				}
				if k := l.pos[tr.ID]; k < len(l.samples[tr.ID]) {
					d := decodedAt(l.cs, tr, &l.samples[tr.ID][k])
					if key == nil || d.Before(*key) {
						key = &d
					}
				}
			}
		}
		starts[n] = key
		if key != nil && (earliest == nil || key.Before(*earliest)) {
			earliest = key
		}
	}
	if earliest == nil {
		return false
	}
	if earliest.After(t) {
		t = *earliest
	}
	if !t.Before(st.req.End) {
		return false
	}
	st.t = t
	st.info.Start, st.info.Keyframe = t.UTC(), earliest.UTC()
	for n, in := range st.inputs {
		in.out, in.entries = map[uint32]*outTrack{}, map[uint32]string{}
		for i := range in.cur.sc.Tracks {
			tr := &in.cur.sc.Tracks[i]
			origin := t
			if starts[n] != nil && starts[n].Before(t) {
				origin = *starts[n]
			}
			ot := &outTrack{id: uint32(len(st.tracks) + 1), ts: tr.TimeScale, video: tr.Handler == "vide", origin: origin}
			st.tracks = append(st.tracks, ot)
			in.out[tr.ID], in.entries[tr.ID] = ot, tr.SampleEntry
		}
	}
	return true
}

// initSegment is the first segments' inits made one, with the output's
// track ids and edit lists that present capture time t at time zero.
func (st *stitcher) initSegment() ([]byte, error) {
	inits := make([][]byte, len(st.inputs))
	ids := make([]map[uint32]uint32, len(st.inputs))
	for i, in := range st.inputs {
		inits[i], ids[i] = in.cur.init, map[uint32]uint32{}
		for old, ot := range in.out {
			ids[i][old] = ot.id
		}
	}
	init, err := mp4.MergeInits(inits, ids)
	if err != nil {
		return nil, err
	}
	edits := map[uint32]int64{}
	for _, ot := range st.tracks {
		edits[ot.id] = mp4.DurationToTicks(st.t.Sub(ot.origin), ot.ts)
	}
	return mp4.WithEditLists(init, edits)
}

// presentedAt and decodedAt are a sample's capture times: when it is
// presented, and when it is decoded.
func presentedAt(cs time.Time, tr *mp4.Track, s *mp4.Sample) time.Time {
	return cs.Add(mp4.TicksToDuration(int64(s.DTS)+int64(s.PTSOffset)-tr.EditMediaTime, tr.TimeScale))
}

func decodedAt(cs time.Time, tr *mp4.Track, s *mp4.Sample) time.Time {
	return cs.Add(mp4.TicksToDuration(int64(s.DTS)-tr.EditMediaTime, tr.TimeScale))
}

// compatible says why an input's newly loaded segment cannot continue the
// stream, or "".
func (st *stitcher) compatible(in *input) string {
	sc := in.cur.sc
	if len(sc.Tracks) != len(in.out) {
		return fmt.Sprintf("%d tracks instead of %d", len(sc.Tracks), len(in.out))
	}
	for i := range sc.Tracks {
		tr := &sc.Tracks[i]
		ot := in.out[tr.ID]
		if ot == nil || ot.ts != tr.TimeScale || in.entries[tr.ID] != tr.SampleEntry {
			return fmt.Sprintf("track %d has another codec or picture size", tr.ID)
		}
	}
	for _, ot := range in.out {
		ot.waitSync = ot.video
	}
	return ""
}

// place writes the next sample of a track at its output time, dropping it
// when it lies before the start, at or after the end, or under what an
// overlapping earlier segment already gave.
func (st *stitcher) place(in *input, tr *mp4.Track) error {
	l := in.cur
	ot := in.out[tr.ID]
	k := l.pos[tr.ID]
	l.pos[tr.ID]++
	s := &l.samples[tr.ID][k]
	if !presentedAt(l.cs, tr, s).Before(st.req.End) {
		l.pos[tr.ID] = len(l.samples[tr.ID])
		return nil
	}
	dts := mp4.DurationToTicks(l.cs.Sub(ot.origin), ot.ts) - tr.EditMediaTime + int64(s.DTS)
	switch {
	case dts < 0:
		return nil
	case ot.have && dts+int64(s.Duration)/2 < ot.next:
		ot.waitSync = ot.video // overlap: resume at a keyframe past it
		return nil
	case ot.waitSync && (!s.Sync || (ot.have && dts < ot.next-int64(s.Duration))):
		return nil
	}
	ot.waitSync = false
	dur := int64(s.Duration)
	if ot.have && dts < ot.next {
		if ot.video {
			// The segment joins a fraction of a frame early (the recorder moves a
			// drifting anchor by up to anchorSlew between segments): the frame starts
			// where the last one ended and still ends where it would have, so that the
			// track stays on its capture times. Moving the rest of the segment instead
			// carries the shift on; the next joins add to it until one is over half a
			// frame, and the case above drops that whole segment to its next keyframe.
			dur -= ot.next - dts
		}
		dts = ot.next
	}
	if len(ot.samples) > 0 && dts != ot.next {
		if err := st.flush(); err != nil {
			return err
		}
	}
	if len(ot.samples) == 0 {
		ot.base = dts
	}
	ot.samples = append(ot.samples, &fmp4.Sample{Duration: uint32(dur), PTSOffset: s.PTSOffset, IsNonSyncSample: !s.Sync, Payload: s.Data})
	ot.pending += dur
	ot.next, ot.have = dts+dur, true
	if mp4.TicksToDuration(ot.pending, ot.ts) >= partTarget {
		return st.flush()
	}
	return nil
}

// flush writes what is pending as one fragment: prft, moof, mdat.
func (st *stitcher) flush() error {
	part := fmp4.Part{SequenceNumber: st.seq + 1}
	var first *outTrack
	for _, ot := range st.tracks {
		if len(ot.samples) == 0 {
			continue
		}
		if first == nil {
			first = ot
		}
		part.Tracks = append(part.Tracks, &fmp4.PartTrack{ID: int(ot.id), BaseTime: uint64(ot.base), Samples: ot.samples})
	}
	if first == nil {
		return nil
	}
	st.seq++
	wall := first.origin.Add(mp4.TicksToDuration(first.base, first.ts))
	var buf seekablebuffer.Buffer
	if _, err := buf.Write(mp4.AppendPRFT(nil, first.id, wall, uint64(first.base), mp4.PRFTCapture)); err != nil {
		return err
	}
	if err := part.Marshal(&buf); err != nil {
		return fmt.Errorf("write fragment: %w", err)
	}
	for _, ot := range st.tracks {
		ot.samples, ot.pending = ot.samples[:0], 0
	}
	b := buf.Bytes()
	if st.req.parts {
		sum := sha256.Sum256(b)
		st.info.Parts = append(st.info.Parts, PartInfo{Seq: st.seq, Offset: st.written, Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:]), CaptureStart: wall.UTC()})
	}
	return st.write(b)
}

func (st *stitcher) write(b []byte) error {
	n, err := st.w.Write(b)
	st.written += int64(n)
	return err
}
