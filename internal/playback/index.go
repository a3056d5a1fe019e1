package playback

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"fieldvideo/internal/recorder"
	"fieldvideo/internal/store"
)

// The index of one site: its segment keys, which carry incident, source,
// capture start and duration, and the manifests read so far. It is built by
// listing the store and kept fresh by listing again: the whole store every
// fullEvery, and the recent hours of a source when a question reaches them.

// seg is one recorded segment.
type seg struct {
	key        string
	start, end time.Time // from the key, to the millisecond
	manifest   bool      // the store holds its manifest
	stored     bool      // the store holds the segment
}

type sourceIndex struct {
	segs []seg // by start, then key
	// listed is when each hour folder was last listed.
	listed map[string]time.Time
}

type index struct {
	st        store.Store
	fullEvery time.Duration
	recent    time.Duration

	mu        sync.Mutex
	incidents map[string]map[string]*sourceIndex
	full      time.Time // when the store was last listed whole

	// listing serialises full listings.
	listing sync.Mutex

	mmu       sync.Mutex
	manifests map[string]*recorder.Manifest
}

func newIndex(st store.Store, fullEvery, recent time.Duration) *index {
	return &index{st: st, fullEvery: fullEvery, recent: recent, incidents: map[string]map[string]*sourceIndex{},
		manifests: map[string]*recorder.Manifest{}}
}

// refresh lists the whole store when the last full listing is older than
// fullEvery (or force).
func (x *index) refresh(ctx context.Context, force bool) error {
	x.listing.Lock()
	defer x.listing.Unlock()
	x.mu.Lock()
	fresh := !x.full.IsZero() && time.Since(x.full) < x.fullEvery
	x.mu.Unlock()
	if fresh && !force {
		return nil
	}
	began := time.Now()
	all := map[string]map[string]*sourceIndex{}
	err := x.st.List(ctx, "rec/", func(in store.Info) error {
		k, err := recorder.ParseKey(in.Key)
		if err != nil {
			return nil
		}
		srcs := all[k.Incident]
		if srcs == nil {
			srcs = map[string]*sourceIndex{}
			all[k.Incident] = srcs
		}
		si := srcs[k.Source]
		if si == nil {
			si = &sourceIndex{listed: map[string]time.Time{}}
			srcs[k.Source] = si
		}
		addKey(si, in.Key, k)
		return nil
	})
	if err != nil {
		return err
	}
	for _, srcs := range all {
		for _, si := range srcs {
			finish(si)
		}
	}
	x.mu.Lock()
	x.incidents, x.full = all, began
	x.mu.Unlock()
	return nil
}

// addKey adds a segment or manifest key; finish sorts and merges.
func addKey(si *sourceIndex, key string, k recorder.KeyInfo) {
	segKey := key
	if k.Manifest {
		segKey = strings.TrimSuffix(key, ".json") + ".mp4"
	}
	si.segs = append(si.segs, seg{key: segKey, start: k.Start, end: k.Start.Add(k.Duration), manifest: k.Manifest, stored: !k.Manifest})
}

func finish(si *sourceIndex) {
	sort.SliceStable(si.segs, func(i, j int) bool {
		a, b := si.segs[i], si.segs[j]
		if !a.start.Equal(b.start) {
			return a.start.Before(b.start)
		}
		return a.key < b.key
	})
	// A segment appears once for its .mp4 and once for its .json; a
	// manifest without its segment is not a recording.
	out := si.segs[:0]
	for i := 0; i < len(si.segs); {
		j, hasSeg, hasMan := i, false, false
		for ; j < len(si.segs) && si.segs[j].key == si.segs[i].key; j++ {
			hasSeg = hasSeg || si.segs[j].stored
			hasMan = hasMan || si.segs[j].manifest
		}
		if hasSeg {
			s := si.segs[i]
			s.manifest, s.stored = hasMan, true
			out = append(out, s)
		}
		i = j
	}
	si.segs = out
}

// hourPrefix is the folder of a source's segments that start in hour h.
func hourPrefix(incident, source string, h time.Time) string {
	return "rec/" + incident + "/" + source + "/" + h.UTC().Format("2006/01/02/15") + "/"
}

// segments returns a source's segments that overlap [from, to), after
// listing again the hour folders of the window that are recent (they may
// still be growing) and were last listed more than fresh ago.
func (x *index) segments(ctx context.Context, incident, source string, from, to time.Time, fresh time.Duration) ([]seg, bool, error) {
	if err := x.refresh(ctx, false); err != nil {
		return nil, false, err
	}
	now := time.Now()
	// A segment is in the folder of its start hour, which can be up to a
	// segment's length before from.
	first := from.Add(-maxSegment).UTC().Truncate(time.Hour)
	for h := first; h.Before(to) && !h.After(now); h = h.Add(time.Hour) {
		if h.Add(time.Hour).Before(now.Add(-x.recent)) {
			continue
		}
		prefix := hourPrefix(incident, source, h)
		x.mu.Lock()
		si := x.source(incident, source, false)
		last := time.Time{}
		if si != nil {
			last = si.listed[prefix]
		}
		x.mu.Unlock()
		if !last.IsZero() && now.Sub(last) < fresh {
			continue
		}
		if err := x.listHour(ctx, incident, source, prefix); err != nil {
			return nil, false, err
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	si := x.source(incident, source, false)
	if si == nil {
		return nil, false, nil
	}
	i := sort.Search(len(si.segs), func(i int) bool { return !si.segs[i].start.Before(first) })
	j := sort.Search(len(si.segs), func(i int) bool { return !si.segs[i].start.Before(to) })
	out := make([]seg, 0, max(j-i, 0))
	for ; i < j; i++ {
		if si.segs[i].end.After(from) {
			out = append(out, si.segs[i])
		}
	}
	return out, true, nil
}

// maxSegment bounds how long a segment can be, for finding those that
// start before a window and reach into it.
const maxSegment = 10 * time.Minute

// listHour lists one hour folder of a source and replaces what the index
// holds for it.
func (x *index) listHour(ctx context.Context, incident, source, prefix string) error {
	began := time.Now()
	fresh := &sourceIndex{}
	err := x.st.List(ctx, prefix, func(in store.Info) error {
		if k, err := recorder.ParseKey(in.Key); err == nil && k.Incident == incident && k.Source == source {
			addKey(fresh, in.Key, k)
		}
		return nil
	})
	if err != nil {
		return err
	}
	finish(fresh)
	x.mu.Lock()
	defer x.mu.Unlock()
	si := x.source(incident, source, len(fresh.segs) > 0)
	if si == nil {
		return nil
	}
	kept := si.segs[:0:0]
	for _, s := range si.segs {
		if !strings.HasPrefix(s.key, prefix) {
			kept = append(kept, s)
		}
	}
	si.segs = append(kept, fresh.segs...)
	finish(si)
	si.listed[prefix] = began
	return nil
}

// source returns the index of a source, creating it when create is set.
// x.mu is held.
func (x *index) source(incident, source string, create bool) *sourceIndex {
	srcs := x.incidents[incident]
	if srcs == nil {
		if !create {
			return nil
		}
		srcs = map[string]*sourceIndex{}
		x.incidents[incident] = srcs
	}
	si := srcs[source]
	if si == nil && create {
		si = &sourceIndex{listed: map[string]time.Time{}}
		srcs[source] = si
	}
	return si
}

// SourceSummary is a source's recordings in brief.
type SourceSummary struct {
	Source   string    `json:"source"`
	First    time.Time `json:"first"`
	Last     time.Time `json:"last"`
	Segments int       `json:"segments"`
}

// IncidentSummary lists an incident's sources.
type IncidentSummary struct {
	Incident string          `json:"incident"`
	Sources  []SourceSummary `json:"sources"`
}

func (x *index) summary() []IncidentSummary {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := []IncidentSummary{}
	for inc, srcs := range x.incidents {
		is := IncidentSummary{Incident: inc, Sources: []SourceSummary{}}
		for name, si := range srcs {
			if len(si.segs) == 0 {
				continue
			}
			last := si.segs[0].end
			for _, s := range si.segs {
				if s.end.After(last) {
					last = s.end
				}
			}
			is.Sources = append(is.Sources, SourceSummary{Source: name, First: si.segs[0].start, Last: last, Segments: len(si.segs)})
		}
		slices.SortFunc(is.Sources, func(a, b SourceSummary) int { return strings.Compare(a.Source, b.Source) })
		out = append(out, is)
	}
	slices.SortFunc(out, func(a, b IncidentSummary) int { return strings.Compare(a.Incident, b.Incident) })
	return out
}

// has reports whether the index knows the incident (and the source, when
// not empty).
func (x *index) has(incident, source string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	srcs, ok := x.incidents[incident]
	if !ok || source == "" {
		return ok
	}
	_, ok = srcs[source]
	return ok
}

// maxManifest bounds a manifest read from a store.
const maxManifest = 1 << 20

// manifest returns a segment's manifest, read once and then kept: a
// manifest, like its segment, is never rewritten.
func (x *index) manifest(ctx context.Context, s seg) (*recorder.Manifest, error) {
	x.mmu.Lock()
	m, ok := x.manifests[s.key]
	x.mmu.Unlock()
	if ok {
		return m, nil
	}
	if !s.manifest {
		return nil, nil
	}
	rc, _, err := x.st.Get(ctx, recorder.ManifestKey(s.key))
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxManifest))
	if err != nil {
		return nil, err
	}
	m, err = recorder.ParseManifest(b)
	if err != nil {
		return nil, err
	}
	if m.Key != s.key {
		return nil, fmt.Errorf("%w: the manifest of %s is stored as that of %s", errDamaged, m.Key, s.key)
	}
	x.mmu.Lock()
	x.manifests[s.key] = m
	x.mmu.Unlock()
	return m, nil
}
