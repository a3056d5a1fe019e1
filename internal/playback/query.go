package playback

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"fieldvideo/internal/recorder"
)

// Error is a question playback cannot answer, with the HTTP status that
// says whose fault it is.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

func badRequest(format string, a ...any) error {
	return &Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf(format, a...)}
}

func notFound(format string, a ...any) error {
	return &Error{Status: http.StatusNotFound, Msg: fmt.Sprintf(format, a...)}
}

// errDamaged marks a segment whose content does not match its manifest.
var errDamaged = errors.New("damaged segment")

// Range is a span of capture time.
type Range struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Coverage is what a source holds in a window.
type Coverage struct {
	Source   string  `json:"source"`
	Ranges   []Range `json:"ranges"`
	Gaps     []Range `json:"gaps"`
	Segments int     `json:"segments"`
	// Seconds is the recorded time in the window.
	Seconds float64 `json:"seconds"`
}

// contiguous is how far apart two segments may be and still count as one
// recording: their times are rounded to the millisecond in keys, and cut
// where a frame ends.
const contiguous = 250 * time.Millisecond

// checkWindow refuses reversed, empty and huge windows.
func (pb *Playback) checkWindow(from, to time.Time) error {
	switch {
	case from.IsZero() || to.IsZero():
		return badRequest("the time range needs a start and an end")
	case !to.After(from):
		return badRequest("the time range is empty or reversed: end %s is not after start %s", to.Format(time.RFC3339Nano), from.Format(time.RFC3339Nano))
	case to.Sub(from) > pb.p.MaxRange:
		return badRequest("the time range of %s is longer than the %s one question may cover; ask for a shorter range", to.Sub(from), pb.p.MaxRange)
	}
	return nil
}

// checkNames refuses an unknown incident or source: a clear 404 instead of
// an empty answer that looks like a gap.
func (pb *Playback) checkNames(ctx context.Context, s *site, incident string, sources []string) error {
	if err := s.idx.refresh(ctx, false); err != nil {
		return err
	}
	if !s.idx.has(incident, "") {
		if err := s.idx.refresh(ctx, true); err != nil {
			return err
		}
		if !s.idx.has(incident, "") {
			return notFound("no recordings of incident %q at site %s; GET /v1/recordings lists the incidents", incident, s.st.Name())
		}
	}
	for _, src := range sources {
		if !s.idx.has(incident, src) {
			if err := s.idx.refresh(ctx, true); err != nil {
				return err
			}
			if !s.idx.has(incident, src) {
				return notFound("no recordings of source %q in incident %q at site %s; GET /v1/recordings lists the sources", src, incident, s.st.Name())
			}
		}
	}
	return nil
}

// Incidents lists the incidents and their sources.
func (pb *Playback) Incidents(ctx context.Context) ([]IncidentSummary, string, error) {
	var out []IncidentSummary
	name, err := pb.with(ctx, func(s *site) error {
		if err := s.idx.refresh(ctx, false); err != nil {
			return err
		}
		out = s.idx.summary()
		return nil
	})
	return out, name, err
}

// Coverage returns each source's recorded ranges and gaps in [from, to).
func (pb *Playback) Coverage(ctx context.Context, incident string, sources []string, from, to time.Time) ([]Coverage, string, error) {
	if err := pb.checkWindow(from, to); err != nil {
		return nil, "", err
	}
	var out []Coverage
	name, err := pb.with(ctx, func(s *site) error {
		out = out[:0]
		if err := pb.checkNames(ctx, s, incident, sources); err != nil {
			return err
		}
		for _, src := range sources {
			segs, _, err := s.idx.segments(ctx, incident, src, from, to, pb.p.Refresh)
			if err != nil {
				return err
			}
			out = append(out, coverageOf(src, segs, from, to))
		}
		return nil
	})
	return out, name, err
}

func coverageOf(src string, segs []seg, from, to time.Time) Coverage {
	c := Coverage{Source: src, Ranges: []Range{}, Gaps: []Range{}, Segments: len(segs)}
	for _, s := range segs {
		st, en := maxTime(s.start, from), minTime(s.end, to)
		if !en.After(st) {
			continue
		}
		if n := len(c.Ranges); n > 0 && !st.After(c.Ranges[n-1].End.Add(contiguous)) {
			if en.After(c.Ranges[n-1].End) {
				c.Ranges[n-1].End = en
			}
			continue
		}
		c.Ranges = append(c.Ranges, Range{Start: st, End: en})
	}
	at := from
	for _, r := range c.Ranges {
		if r.Start.After(at) {
			c.Gaps = append(c.Gaps, Range{Start: at, End: r.Start})
		}
		c.Seconds += r.End.Sub(r.Start).Seconds()
		at = r.End
	}
	if to.After(at) {
		c.Gaps = append(c.Gaps, Range{Start: at, End: to})
	}
	return c
}

// SourceAt is what one source holds at an instant, and how to show it.
type SourceAt struct {
	Source string `json:"source"`
	// Present is set when a segment holds the instant.
	Present bool   `json:"present"`
	Segment string `json:"segment,omitempty"`
	// CaptureStart is the capture time of the segment's media time zero;
	// OffsetMS is where in the segment the instant is (media time). A
	// stream asked to start at the instant presents it at time zero.
	CaptureStart *time.Time `json:"capture_start,omitempty"`
	CaptureEnd   *time.Time `json:"capture_end,omitempty"`
	OffsetMS     *float64   `json:"offset_ms,omitempty"`
	// TimeAligned, TimeTrust and AlignmentErrorMS say how far the segment's
	// capture times can be trusted on the common baseline.
	TimeAligned      bool     `json:"time_aligned"`
	TimeTrust        string   `json:"time_trust,omitempty"`
	AlignmentErrorMS *float64 `json:"alignment_error_ms,omitempty"`
	// PreviousEnd and NextStart bound the gap an absent instant falls in.
	PreviousEnd *time.Time `json:"previous_end,omitempty"`
	NextStart   *time.Time `json:"next_start,omitempty"`
}

// At says what each source holds at instant t.
func (pb *Playback) At(ctx context.Context, incident string, sources []string, t time.Time) ([]SourceAt, string, error) {
	if t.IsZero() {
		return nil, "", badRequest("the instant t is missing")
	}
	var out []SourceAt
	name, err := pb.with(ctx, func(s *site) error {
		out = out[:0]
		if err := pb.checkNames(ctx, s, incident, sources); err != nil {
			return err
		}
		for _, src := range sources {
			a, err := pb.at(ctx, s, incident, src, t)
			if err != nil {
				return err
			}
			out = append(out, a)
		}
		return nil
	})
	return out, name, err
}

// nearby is how far from an absent instant At looks for the recordings
// around it.
const nearby = 6 * time.Hour

func (pb *Playback) at(ctx context.Context, s *site, incident, src string, t time.Time) (SourceAt, error) {
	a := SourceAt{Source: src}
	segs, _, err := s.idx.segments(ctx, incident, src, t.Add(-nearby), t.Add(nearby), pb.p.Refresh)
	if err != nil {
		return a, err
	}
	var hit *seg
	for i := range segs {
		sg := &segs[i]
		switch {
		case !sg.end.After(t):
			e := sg.end
			a.PreviousEnd = &e
		case sg.start.After(t):
			if a.NextStart == nil {
				n := sg.start
				a.NextStart = &n
			}
		default:
			if hit == nil {
				hit = sg
			}
		}
	}
	if hit == nil {
		return a, nil
	}
	a.Present, a.Segment, a.PreviousEnd, a.NextStart = true, hit.key, nil, nil
	cs, ce := hit.start, hit.end
	m, err := s.idx.manifest(ctx, *hit)
	if err != nil {
		return a, err
	}
	if m != nil {
		cs, ce = m.CaptureStart.UTC(), m.CaptureEnd.UTC()
		a.TimeAligned, a.TimeTrust, a.AlignmentErrorMS = m.TimeAligned, m.TimeTrust, m.AlignmentErrorMS
	}
	off := float64(t.Sub(cs)) / float64(time.Millisecond)
	a.CaptureStart, a.CaptureEnd, a.OffsetMS = &cs, &ce, &off
	return a, nil
}

// captureStart is a segment's capture start: its manifest's, or its key's.
func captureStart(s seg, m *recorder.Manifest) time.Time {
	if m != nil {
		return m.CaptureStart
	}
	return s.start
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
