package session

import (
	"strings"

	"fieldvideo/internal/stream"
)

// Recorder keeps publications; *recorder.Recorder is one.
type Recorder interface {
	RecordTracks(name string, st *stream.Stream, tracks []int) (stop func(), err error)
	RecordLayers(name string, st *stream.Stream, layers []int) (stop func(), err error)
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

// record starts recording a publication when calls are recorded: of a simulcast video the
// best layer arriving (the recording switches layers as the publisher's uplink allows),
// anything else as it is. A participant's camera and microphone are recorded as two
// sources, <room>.<participant>.camera and .microphone; playback serves them as one
// (participant=<room>.<participant>).
func (p *participant) record(up *uptrack) {
	rec := p.m.p.Recorder
	if rec == nil || !p.m.p.Conf.Record {
		return
	}
	name := recordingName(p.room.name, up.pub.info)
	var stop func()
	var err error
	if len(up.pub.layers) > 1 {
		stop, err = rec.RecordLayers(name, up.pub.stream, up.pub.layers)
	} else {
		stop, err = rec.RecordTracks(name, up.pub.stream, nil)
	}
	if err != nil {
		p.log.Warn("publication not recorded", "track", up.pub.info.ID, "error", err)
		return
	}
	up.stopRecording = stop
	p.log.Info("recording publication", "track", up.pub.info.ID, "as", name)
}
