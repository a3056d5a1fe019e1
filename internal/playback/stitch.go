package playback

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"

	"fieldvideo/internal/mp4"
	"fieldvideo/internal/recorder"
)

// StreamRequest asks for one source over [Start, End) as one fMP4.
type StreamRequest struct {
	Incident, Source string
	Start, End       time.Time
	// parts asks for the fragments' list in StreamInfo (exports).
	parts bool
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

// Stream writes the source over [req.Start, req.End) to w as one
// fragmented MP4: the keyframe at or before Start and what follows, with
// edit lists that start presentation at Start, every track (video and
// audio) together, gaps kept as gaps in time. onStart is called once, just
// before the first byte, with what is known then; errors before it mean
// nothing was written.
func (pb *Playback) Stream(ctx context.Context, w io.Writer, req StreamRequest, onStart func(StreamInfo)) (StreamInfo, error) {
	info := StreamInfo{}
	if err := pb.checkWindow(req.Start, req.End); err != nil {
		return info, err
	}
	var segs []seg
	name, err := pb.with(ctx, func(s *site) error {
		if err := pb.checkNames(ctx, s, req.Incident, []string{req.Source}); err != nil {
			return err
		}
		var err error
		segs, _, err = s.idx.segments(ctx, req.Incident, req.Source, req.Start, req.End, pb.p.Refresh)
		return err
	})
	info.Site = name
	if err != nil {
		return info, err
	}
	if len(segs) == 0 {
		return info, notFound("source %q of incident %q has no recording between %s and %s; GET /v1/recordings/coverage shows what there is",
			req.Source, req.Incident, req.Start.UTC().Format(time.RFC3339Nano), req.End.UTC().Format(time.RFC3339Nano))
	}
	st := &stitcher{w: w, req: req, info: &info}
	for _, sg := range segs {
		if err := ctx.Err(); err != nil {
			return info, err
		}
		b, m, site, err := pb.fetch(ctx, sg)
		if err != nil {
			if ctx.Err() != nil {
				return info, ctx.Err()
			}
			info.Skipped = append(info.Skipped, sg.key+": "+err.Error())
			pb.log.Warn("playback: segment left out", "key", sg.key, "error", err)
			if errors.Is(err, errNoSite) && !st.started {
				return info, err
			}
			continue
		}
		info.Site = site
		done, err := st.add(sg, b, m, onStart)
		if err != nil {
			return info, err
		}
		if done {
			break
		}
	}
	if err := st.flush(); err != nil {
		return info, err
	}
	if !st.started {
		if len(info.Skipped) > 0 {
			return info, &Error{Status: 422, Msg: "every segment of the range is damaged or unreadable: " + info.Skipped[0]}
		}
		return info, notFound("source %q of incident %q has no recording between %s and %s", req.Source, req.Incident,
			req.Start.UTC().Format(time.RFC3339Nano), req.End.UTC().Format(time.RFC3339Nano))
	}
	return info, nil
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
	if !errors.Is(err, errDamaged) {
		return b, m, name, err
	}
	pb.log.Error("EVIDENCE DAMAGED: a segment does not match its SHA-256; reading another site's copy", "key", sg.key, "error", err)
	for _, s := range pb.sites {
		if s.st.Name() == name || !s.healthy.Load() {
			continue
		}
		if err2 := read(s); err2 == nil {
			return b, m, s.st.Name(), nil
		} else if !errors.Is(err2, errDamaged) {
			err = fmt.Errorf("%w; the copy at site %s cannot be read: %v", err, s.st.Name(), err2)
		} else {
			err = fmt.Errorf("%w; and %v", err, err2)
		}
	}
	return nil, nil, name, err
}

// stitcher writes segments one after another as one fMP4.
type stitcher struct {
	w       io.Writer
	req     StreamRequest
	info    *StreamInfo
	started bool
	tracks  []*outTrack
	seq     uint32
	written int64
	t       time.Time // capture time of presentation zero
}

type outTrack struct {
	id        uint32
	ts        uint32
	video     bool
	entry     string    // sample entry, to refuse a segment that changed format
	origin    time.Time // capture time of output decode time zero
	next      int64     // output decode time the next sample should have
	have      bool      // a sample was written
	base      int64
	samples   []*fmp4.Sample
	pendingTS int64
}

func (st *stitcher) add(sg seg, b []byte, m *recorder.Manifest, onStart func(StreamInfo)) (bool, error) {
	sc, err := mp4.Scan(b)
	if err != nil {
		st.info.Skipped = append(st.info.Skipped, sg.key+": "+err.Error())
		return false, nil
	}
	samples, err := mp4.ReadSamples(b, sc)
	if err != nil {
		st.info.Skipped = append(st.info.Skipped, sg.key+": "+err.Error())
		return false, nil
	}
	cs := captureStart(sg, m)
	if !st.started {
		if !st.begin(b[:sc.InitEnd], sc, samples, cs) {
			return false, nil
		}
		init, err := mp4.WithEditLists(b[:sc.InitEnd], st.edits())
		if err != nil {
			return false, err
		}
		sum := sha256.Sum256(init)
		st.info.InitSize, st.info.InitSHA256 = int64(len(init)), hex.EncodeToString(sum[:])
		onStart(*st.info)
		st.started = true
		if err := st.write(init); err != nil {
			return false, err
		}
	} else if why := st.compatible(sc); why != "" {
		st.info.Ended = fmt.Sprintf("the source's format changed at %s (%s); ask again from there", cs.UTC().Format(time.RFC3339Nano), why)
		return true, nil
	}
	st.info.Segments = append(st.info.Segments, segmentInfo(sg, m, cs))
	for i := range sc.Tracks {
		tr := &sc.Tracks[i]
		ot := st.track(tr.ID)
		if ot == nil {
			continue
		}
		if err := st.place(ot, tr, samples[tr.ID], cs); err != nil {
			return false, err
		}
	}
	return !sg.end.Before(st.req.End), st.flush()
}

func segmentInfo(sg seg, m *recorder.Manifest, cs time.Time) SegmentInfo {
	si := SegmentInfo{Key: sg.key, CaptureStart: cs.UTC(), CaptureEnd: sg.end}
	if m != nil {
		si.SHA256, si.CaptureEnd, si.TimeAligned, si.TimeTrust, si.AlignmentErrorMS = m.SHA256, m.CaptureEnd.UTC(), m.TimeAligned, m.TimeTrust, m.AlignmentErrorMS
	}
	return si
}

// begin picks where decoding starts in the first segment: the last
// keyframe presented at or before the asked start (or the first keyframe,
// when the recording starts later, which then becomes the start). It
// returns false when the segment holds nothing to start at.
func (st *stitcher) begin(init []byte, sc *mp4.Segment, samples map[uint32][]mp4.Sample, cs time.Time) bool {
	t := st.req.Start
	var key *time.Time // decode capture time of the starting keyframe
	for i := range sc.Tracks {
		tr := &sc.Tracks[i]
		if tr.Handler != "vide" {
			continue
		}
		var pick, first *mp4.Sample
		for k := range samples[tr.ID] {
			s := &samples[tr.ID][k]
			if !s.Sync {
				continue
			}
			if first == nil {
				first = s
			}
			if !presentedAt(cs, tr, s).After(t) {
				pick = s
			}
		}
		if pick == nil {
			pick = first
		}
		if pick == nil {
			continue
		}
		d := decodedAt(cs, tr, pick)
		if p := presentedAt(cs, tr, pick); p.After(t) {
			t = p
		}
		key = &d
		break
	}
	if key == nil {
		// No video: start at the first sample presented at or after t.
		for i := range sc.Tracks {
			tr := &sc.Tracks[i]
			for k := range samples[tr.ID] {
				if p := presentedAt(cs, tr, &samples[tr.ID][k]); !p.Before(t) || k == len(samples[tr.ID])-1 {
					d := decodedAt(cs, tr, &samples[tr.ID][k])
					if key == nil || d.Before(*key) {
						key = &d
					}
					break
				}
			}
		}
		if key == nil {
			return false
		}
		if key.After(t) {
			t = *key
		}
	}
	if !t.Before(st.req.End) {
		return false
	}
	st.t = t
	st.info.Start, st.info.Keyframe = t.UTC(), key.UTC()
	for i := range sc.Tracks {
		tr := &sc.Tracks[i]
		origin := *key
		if origin.After(t) {
			origin = t
		}
		st.tracks = append(st.tracks, &outTrack{id: tr.ID, ts: tr.TimeScale, video: tr.Handler == "vide", entry: tr.SampleEntry, origin: origin})
	}
	return true
}

// presentedAt and decodedAt are a sample's capture times: when it is
// presented, and when it is decoded.
func presentedAt(cs time.Time, tr *mp4.Track, s *mp4.Sample) time.Time {
	return cs.Add(mp4.TicksToDuration(int64(s.DTS)+int64(s.PTSOffset)-tr.EditMediaTime, tr.TimeScale))
}

func decodedAt(cs time.Time, tr *mp4.Track, s *mp4.Sample) time.Time {
	return cs.Add(mp4.TicksToDuration(int64(s.DTS)-tr.EditMediaTime, tr.TimeScale))
}

// edits returns each track's edit list start: presentation zero at t.
func (st *stitcher) edits() map[uint32]int64 {
	out := map[uint32]int64{}
	for _, ot := range st.tracks {
		out[ot.id] = mp4.DurationToTicks(st.t.Sub(ot.origin), ot.ts)
	}
	return out
}

func (st *stitcher) track(id uint32) *outTrack {
	for _, ot := range st.tracks {
		if ot.id == id {
			return ot
		}
	}
	return nil
}

// compatible says why a segment cannot continue the stream, or "".
func (st *stitcher) compatible(sc *mp4.Segment) string {
	if len(sc.Tracks) != len(st.tracks) {
		return fmt.Sprintf("%d tracks instead of %d", len(sc.Tracks), len(st.tracks))
	}
	for i := range sc.Tracks {
		ot := st.track(sc.Tracks[i].ID)
		if ot == nil || ot.ts != sc.Tracks[i].TimeScale || ot.entry != sc.Tracks[i].SampleEntry {
			return fmt.Sprintf("track %d has another codec or picture size", sc.Tracks[i].ID)
		}
	}
	return ""
}

// place adds a segment's samples of one track at their output times,
// dropping what lies before the start, at or after the end, or under what
// an overlapping earlier segment already gave.
func (st *stitcher) place(ot *outTrack, tr *mp4.Track, samples []mp4.Sample, cs time.Time) error {
	shift := mp4.DurationToTicks(cs.Sub(ot.origin), ot.ts) - tr.EditMediaTime
	waitSync := ot.video
	for k := range samples {
		s := &samples[k]
		dts := shift + int64(s.DTS)
		if !presentedAt(cs, tr, s).Before(st.req.End) {
			break
		}
		if dts < 0 {
			continue
		}
		if ot.have && dts+int64(s.Duration)/2 < ot.next {
			waitSync = ot.video // overlap: resume at a keyframe past it
			continue
		}
		if waitSync && (!s.Sync || (ot.have && dts < ot.next-int64(s.Duration))) {
			continue
		}
		waitSync = false
		if ot.have && dts < ot.next {
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
		ot.samples = append(ot.samples, &fmp4.Sample{Duration: s.Duration, PTSOffset: s.PTSOffset, IsNonSyncSample: !s.Sync, Payload: s.Data})
		ot.pendingTS += int64(s.Duration)
		ot.next, ot.have = dts+int64(s.Duration), true
		if mp4.TicksToDuration(ot.pendingTS, ot.ts) >= partTarget {
			if err := st.flush(); err != nil {
				return err
			}
		}
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
		ot.samples, ot.pendingTS = ot.samples[:0], 0
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
