package sfu

import (
	"cmp"
	"time"
)

// In a cluster each node shares the tags it holds (a source's reporter and
// kind from its publisher here, a position sent here) in its heartbeats, and
// lists the others' beside its own: a phone's position reaches every node's
// map whichever node its publisher or its position update went to, and a
// source relayed from another node is listed with its real reporter, not
// the relay.

// SourceTags are the tags of a source one node holds, with when its kind,
// incident and note were set there (zero: not by an update).
type SourceTags struct {
	Reporter   string    `json:"reporter,omitempty"`
	Kind       string    `json:"kind,omitempty"`
	Incident   string    `json:"incident,omitempty"`
	Note       string    `json:"note,omitempty"`
	Position   *Position `json:"position,omitempty"`
	KindAt     time.Time `json:"kind_at,omitzero"`
	IncidentAt time.Time `json:"incident_at,omitzero"`
	NoteAt     time.Time `json:"note_at,omitzero"`
}

func (t SourceTags) empty() bool { return t == SourceTags{} }

// tagsOf returns in's tags.
func tagsOf(in SourceInfo) SourceTags {
	return SourceTags{Reporter: in.Reporter, Kind: in.Kind, Incident: in.Incident, Note: in.Note, Position: in.Position,
		KindAt: in.labelled.kind, IncidentAt: in.labelled.incident, NoteAt: in.labelled.note}
}

// LocalTags returns, by source, the tags set on this node (by a publisher
// here, not a relay, and by position updates sent here) of the sources the
// other nodes list: those live here or published on another node.
func (s *Server) LocalTags() map[string]SourceTags {
	var elsewhere map[string]string
	if s.p.Remote != nil {
		elsewhere = s.p.Remote()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]SourceTags{}
	for name, src := range s.sources {
		if !src.live() && elsewhere[name] == "" {
			continue
		}
		var in SourceInfo
		src.tags.fill(&in, src.pub.Load())
		if t := tagsOf(in); !t.empty() {
			out[name] = t
		}
	}
	return out
}

// MergeTags combines what several nodes hold of one source's tags: the
// newest position; the kind, incident and note set last (an operator's
// edit on any node, a note cleared), else from the first that has one; the
// reporter from the first that has it (the caller puts the node that
// publishes the source first).
func MergeTags(held ...SourceTags) SourceTags {
	var m SourceTags
	for _, t := range held {
		m.Reporter = cmp.Or(m.Reporter, t.Reporter)
		newest(&m.Kind, &m.KindAt, t.Kind, t.KindAt)
		newest(&m.Incident, &m.IncidentAt, t.Incident, t.IncidentAt)
		newest(&m.Note, &m.NoteAt, t.Note, t.NoteAt)
		if t.Position != nil && (m.Position == nil || t.Position.At.After(m.Position.At)) {
			m.Position = t.Position
		}
	}
	return m
}

// newest merges one label: a value set later wins, even when empty (it was
// cleared); one never set by an update only fills a gap.
func newest(v *string, at *time.Time, tv string, tat time.Time) {
	switch {
	case !tat.IsZero() && tat.After(*at):
		*v, *at = tv, tat
	case at.IsZero() && *v == "":
		*v = tv
	}
}

// remoteTags returns the tags the other nodes hold, by source.
func (s *Server) remoteTags() map[string]SourceTags {
	if s.p.RemoteTags == nil {
		return nil
	}
	return s.p.RemoteTags()
}

// addTags merges rt into in (MergeTags, in first): what in lacks, rt's
// position when newer, and the labels rt's node set later.
func addTags(in *SourceInfo, rt SourceTags) {
	m := MergeTags(tagsOf(*in), rt)
	in.Reporter, in.Kind, in.Incident, in.Note = m.Reporter, m.Kind, m.Incident, m.Note
	in.labelled = labelTimes{kind: m.KindAt, incident: m.IncidentAt, note: m.NoteAt}
	if m.Position != nil {
		pos := *m.Position
		in.Position = &pos
	}
}
