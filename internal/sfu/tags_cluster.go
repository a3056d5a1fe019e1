package sfu

import "cmp"

// In a cluster each node shares the tags it holds (a source's reporter and
// kind from its publisher here, a position sent here) in its heartbeats, and
// lists the others' beside its own: a phone's position reaches every node's
// map whichever node its publisher or its position update went to, and a
// source relayed from another node is listed with its real reporter, not
// the relay.

// SourceTags are the tags of a source one node holds.
type SourceTags struct {
	Reporter string    `json:"reporter,omitempty"`
	Kind     string    `json:"kind,omitempty"`
	Incident string    `json:"incident,omitempty"`
	Note     string    `json:"note,omitempty"`
	Position *Position `json:"position,omitempty"`
}

func (t SourceTags) empty() bool { return t == SourceTags{} }

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
		if t := (SourceTags{Reporter: in.Reporter, Kind: in.Kind, Incident: in.Incident, Note: in.Note, Position: in.Position}); !t.empty() {
			out[name] = t
		}
	}
	return out
}

// MergeTags combines what several nodes hold of one source's tags: the
// newest position, and each other tag from the first that has it (the
// caller puts the node that publishes the source first).
func MergeTags(held ...SourceTags) SourceTags {
	var m SourceTags
	for _, t := range held {
		m.Reporter = cmp.Or(m.Reporter, t.Reporter)
		m.Kind = cmp.Or(m.Kind, t.Kind)
		m.Incident = cmp.Or(m.Incident, t.Incident)
		m.Note = cmp.Or(m.Note, t.Note)
		if t.Position != nil && (m.Position == nil || t.Position.At.After(m.Position.At)) {
			m.Position = t.Position
		}
	}
	return m
}

// remoteTags returns the tags the other nodes hold, by source.
func (s *Server) remoteTags() map[string]SourceTags {
	if s.p.RemoteTags == nil {
		return nil
	}
	return s.p.RemoteTags()
}

// addTags fills in what in lacks from rt, and takes rt's position when it
// is newer.
func addTags(in *SourceInfo, rt SourceTags) {
	m := MergeTags(SourceTags{Reporter: in.Reporter, Kind: in.Kind, Incident: in.Incident, Note: in.Note, Position: in.Position}, rt)
	in.Reporter, in.Kind, in.Incident, in.Note = m.Reporter, m.Kind, m.Incident, m.Note
	if m.Position != nil {
		pos := *m.Position
		in.Position = &pos
	}
}
