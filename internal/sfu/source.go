package sfu

import (
	"sort"
	"sync/atomic"
	"time"

	"fieldvideo/internal/stream"
	tsync "fieldvideo/internal/sync"
	"fieldvideo/internal/unit"
)

// source is a named slot that publishers come and go on. Its stream outlives
// each publisher, so viewers stay attached across a publisher's reconnection
// and carry on when it returns with compatible tracks. Fields other than the
// atomics are guarded by Server.mu.
type source struct {
	name   string
	stream *stream.Stream
	pub    atomic.Pointer[publisher]
	since  time.Time
	// viewers are the WHEP sessions reading this source.
	viewers map[*viewer]struct{}

	// lost counts packets missing upstream, over all publishers; it can go
	// down when retransmissions fill gaps.
	lost atomic.Int64

	lastBytes uint64
	bitrate   float64 // bits per second over the last sample

	// tags are who reported the source, its kind, incident and position.
	tags sourceTags
	// person is the subject of its last publisher when that was a person
	// (not a camera or a relay), for maxOfflinePerPerson.
	person string
}

// maxOfflinePerPerson is how many offline sources one person's token keeps
// listed (a responder's reports): past it, the oldest leave the list (their
// recordings stay), so one token cannot grow the list without end.
// Cameras' sources are kept whatever their number.
const maxOfflinePerPerson = 32

// pruneLocked takes the oldest offline sources of person off the list past
// maxOfflinePerPerson, and returns their streams for the caller to close
// once it has let go of Server.mu.
func (s *Server) pruneLocked(person string) []*stream.Stream {
	var mine []*source
	for _, src := range s.sources {
		if src.person == person && !src.live() {
			mine = append(mine, src)
		}
	}
	if len(mine) <= maxOfflinePerPerson {
		return nil
	}
	sort.Slice(mine, func(i, j int) bool { return mine[i].since.Before(mine[j].since) })
	var gone []*stream.Stream
	for _, src := range mine[:len(mine)-maxOfflinePerPerson] {
		delete(s.sources, src.name)
		if src.stream != nil {
			gone = append(gone, src.stream)
		}
	}
	return gone
}

func (src *source) live() bool { return src.pub.Load() != nil }

func (src *source) state() string {
	if src.live() {
		return "live"
	}
	return "offline"
}

// requestKeyframe forwards a keyframe request to the current publisher.
func (src *source) requestKeyframe(track int) {
	if p := src.pub.Load(); p != nil {
		p.up.RequestKeyframe(track)
	}
}

func (src *source) sample(dt float64) {
	if src.stream == nil || dt <= 0 {
		return
	}
	b := src.stream.Stats().Bytes
	src.bitrate = float64(b-src.lastBytes) * 8 / dt
	src.lastBytes = b
}

// SourceInfo is a source as the API lists it.
type SourceInfo struct {
	Name       string      `json:"name"`
	State      string      `json:"state"` // live or offline
	Since      time.Time   `json:"since"`
	Tracks     []TrackInfo `json:"tracks"`
	Viewers    int         `json:"viewers"`
	BitrateBPS float64     `json:"bitrate_bps"`
	Packets    uint64      `json:"packets"`
	Bytes      uint64      `json:"bytes"`
	Lost       uint64      `json:"lost"`
	Publisher  string      `json:"publisher,omitempty"`
	// Relay names the node a source is relayed from (published there).
	Relay string `json:"relay,omitempty"`
	// Reporter is who published the source (its token's subject), kept
	// while it is offline; Kind (camera, report, …), Incident and Note
	// are set with its position (PUT /v1/sources/{source}/position).
	Reporter string `json:"reporter,omitempty"`
	Kind     string `json:"kind,omitempty"`
	Incident string `json:"incident,omitempty"`
	Note     string `json:"note,omitempty"`
	// Position is where the source last said it is, kept while offline.
	Position *Position `json:"position,omitempty"`
	// labelled is when Kind, Incident and Note were set, to merge them
	// with other nodes' (newest wins).
	labelled labelTimes
	// Clock is the alignment of the first video track (else the first
	// track) onto the common time baseline.
	Clock *tsync.ClockInfo `json:"clock,omitempty"`
}

// TrackInfo describes a source's track.
type TrackInfo struct {
	Kind      string `json:"kind"`
	Codec     string `json:"codec"`
	ClockRate uint32 `json:"clock_rate"`
	Relayable bool   `json:"relayable"`
	// Clock is the track's alignment onto the common time baseline.
	Clock *tsync.ClockInfo `json:"clock,omitempty"`
}

// clockIsVideo reports whether the source's clock is a video track's.
func clockIsVideo(in SourceInfo) bool {
	for _, t := range in.Tracks {
		if t.Clock != nil && t.Clock == in.Clock {
			return t.Kind == "video"
		}
	}
	return false
}

func trackInfos(ts []unit.Track) []TrackInfo {
	out := make([]TrackInfo, len(ts))
	for i, t := range ts {
		out[i] = TrackInfo{Kind: t.Kind.String(), Codec: t.Codec, ClockRate: t.ClockRate, Relayable: t.Relayable()}
	}
	return out
}

// info snapshots the source; called with Server.mu held.
func (src *source) info() SourceInfo {
	in := SourceInfo{Name: src.name, State: src.state(), Since: src.since, Viewers: len(src.viewers), BitrateBPS: src.bitrate, Tracks: []TrackInfo{}}
	if src.stream != nil {
		st := src.stream.Stats()
		in.Packets, in.Bytes = st.Packets, st.Bytes
		in.Tracks = trackInfos(src.stream.Tracks())
	}
	in.Lost = uint64(max(0, src.lost.Load()))
	src.tags.fill(&in, src.pub.Load())
	if p := src.pub.Load(); p != nil {
		in.Publisher, in.Relay = p.who, p.relay
		now := time.Now()
		for i := range in.Tracks {
			if tc := p.up.Clock(i); tc != nil {
				in.Tracks[i].Clock = tc.Info(now)
				if in.Clock == nil || (in.Tracks[i].Kind == "video" && !clockIsVideo(in)) {
					in.Clock = in.Tracks[i].Clock
				}
			}
		}
	}
	return in
}
