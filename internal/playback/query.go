package playback

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"fieldvideo/internal/recorder"
	"fieldvideo/internal/store"
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

// knownAt reports whether site s has recordings of the incident (and of
// source, when not empty), listing the store again before saying no.
func knownAt(ctx context.Context, s *site, incident, source string) (bool, error) {
	if err := s.idx.refresh(ctx, false); err != nil {
		return false, err
	}
	if s.idx.has(incident, source) {
		return true, nil
	}
	if err := s.idx.refresh(ctx, true); err != nil {
		return false, err
	}
	return s.idx.has(incident, source), nil
}

// segmentsOf returns each source's segments overlapping [from, to), merged
// from every site that answers, and the active site's name. An incident or
// source no site knows is a clear 404, not an empty answer that looks like
// a gap.
func (pb *Playback) segmentsOf(ctx context.Context, incident string, sources []string, from, to time.Time) ([][]seg, string, error) {
	out := make([][]seg, len(sources))
	knownInc := false
	known := make([]bool, len(sources))
	name, err := pb.gather(ctx, func(s *site) error {
		ok, err := knownAt(ctx, s, incident, "")
		if err != nil || !ok {
			return err
		}
		knownInc = true
		for i, src := range sources {
			ok, err := knownAt(ctx, s, incident, src)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			known[i] = true
			segs, _, err := s.idx.segments(ctx, incident, src, from, to, pb.p.Refresh)
			if err != nil {
				return err
			}
			out[i] = merge(out[i], segs)
		}
		return nil
	})
	if err != nil {
		return nil, name, err
	}
	if !knownInc {
		return nil, name, notFound("no recordings of incident %q at any site; GET /v1/recordings lists the incidents", incident)
	}
	for i, src := range sources {
		if !known[i] {
			return nil, name, notFound("no recordings of source %q in incident %q at any site; GET /v1/recordings lists the sources", src, incident)
		}
	}
	return out, name, nil
}

// manifestOf reads a segment's manifest from the first site that has it.
func (pb *Playback) manifestOf(ctx context.Context, sg seg) (*recorder.Manifest, error) {
	var m *recorder.Manifest
	_, err := pb.gather(ctx, func(s *site) error {
		if m != nil {
			return nil
		}
		got, err := s.idx.manifest(ctx, sg)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err == nil {
			m = got
		}
		return err
	})
	return m, err
}

// Incidents lists the incidents and their sources.
func (pb *Playback) Incidents(ctx context.Context) ([]IncidentSummary, string, error) {
	var lists [][]IncidentSummary
	name, err := pb.gather(ctx, func(s *site) error {
		if err := s.idx.refresh(ctx, false); err != nil {
			return err
		}
		lists = append(lists, s.idx.summary())
		return nil
	})
	return mergeSummaries(lists), name, err
}

// Coverage returns each source's recorded ranges and gaps in [from, to).
func (pb *Playback) Coverage(ctx context.Context, incident string, sources []string, from, to time.Time) ([]Coverage, string, error) {
	if err := pb.checkWindow(from, to); err != nil {
		return nil, "", err
	}
	segs, name, err := pb.segmentsOf(ctx, incident, sources, from, to)
	if err != nil {
		return nil, name, err
	}
	out := make([]Coverage, len(sources))
	for i, src := range sources {
		out[i] = coverageOf(src, segs[i], from, to)
	}
	return out, name, nil
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
	segs, name, err := pb.segmentsOf(ctx, incident, sources, t.Add(-nearby), t.Add(nearby))
	if err != nil {
		return nil, name, err
	}
	out := make([]SourceAt, len(sources))
	for i, src := range sources {
		if out[i], err = pb.at(ctx, src, segs[i], t); err != nil {
			return nil, name, err
		}
	}
	return out, name, nil
}

// nearby is how far from an absent instant At looks for the recordings
// around it.
const nearby = 6 * time.Hour

func (pb *Playback) at(ctx context.Context, src string, segs []seg, t time.Time) (SourceAt, error) {
	a := SourceAt{Source: src}
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
	m, err := pb.manifestOf(ctx, *hit)
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

// mergeSummaries joins the incident lists of several sites.
func mergeSummaries(lists [][]IncidentSummary) []IncidentSummary {
	type key struct{ inc, src string }
	srcs := map[key]SourceSummary{}
	incs := map[string]bool{}
	for _, l := range lists {
		for _, is := range l {
			incs[is.Incident] = true
			for _, s := range is.Sources {
				k := key{is.Incident, s.Source}
				if o, ok := srcs[k]; ok {
					s.First, s.Last, s.Segments = minTime(o.First, s.First), maxTime(o.Last, s.Last), max(o.Segments, s.Segments)
				}
				srcs[k] = s
			}
		}
	}
	out := []IncidentSummary{}
	for inc := range incs {
		is := IncidentSummary{Incident: inc, Sources: []SourceSummary{}}
		for k, s := range srcs {
			if k.inc == inc {
				is.Sources = append(is.Sources, s)
			}
		}
		slices.SortFunc(is.Sources, func(a, b SourceSummary) int { return strings.Compare(a.Source, b.Source) })
		out = append(out, is)
	}
	slices.SortFunc(out, func(a, b IncidentSummary) int { return strings.Compare(a.Incident, b.Incident) })
	return out
}
