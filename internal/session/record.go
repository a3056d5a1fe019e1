package session

import (
	"strings"

	"fieldvideo/internal/stream"
)

// Recorder keeps publications; *recorder.Recorder is one.
type Recorder interface {
	RecordTracks(name string, st *stream.Stream, tracks []int) (stop func(), err error)
}

// recordingName is the recorded source name of a publication:
// <room>.<participant>.<source>, with characters that cannot appear in
// object keys replaced by '_', at most 64 characters.
func recordingName(room string, info TrackInfo) string {
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, room+"."+info.Participant+"."+info.Source)
	name = strings.TrimLeft(name, "._-")
	if len(name) > 64 {
		name = name[len(name)-64:]
		name = strings.TrimLeft(name, "._-")
	}
	if name == "" {
		name = "call"
	}
	return name
}

// record starts recording a publication when calls are recorded: the
// highest simulcast layer of video, audio as it is.
func (p *participant) record(up *uptrack) {
	rec := p.m.p.Recorder
	if rec == nil || !p.m.p.Conf.Record {
		return
	}
	var tracks []int
	if n := len(up.pub.layers); n > 1 {
		tracks = []int{up.pub.layers[n-1]}
	}
	name := recordingName(p.room.name, up.pub.info)
	stop, err := rec.RecordTracks(name, up.pub.stream, tracks)
	if err != nil {
		p.log.Warn("publication not recorded", "track", up.pub.info.ID, "error", err)
		return
	}
	up.stopRecording = stop
	p.log.Info("recording publication", "track", up.pub.info.ID, "as", name)
}
