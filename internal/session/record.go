package session

import (
	"cmp"
	"crypto/sha256"
	"encoding/base32"
	"slices"
	"strings"

	"fieldvideo/internal/conf"
	"fieldvideo/internal/stream"
)

// Recorder keeps publications; *recorder.Recorder is one.
type Recorder interface {
	RecordTracks(name string, st *stream.Stream, tracks []int) (stop func(), err error)
	RecordLayers(name string, st *stream.Stream, layers []int) (stop func(), err error)
}

// recordingName is the recorded source name of a publication.
func recordingName(room string, info TrackInfo) string {
	return RecordingName(room, info.Participant, info.Source)
}

// RecordingName is the recorded source name of a participant's track in a
// call room: <room>.<participant>.<track> when that says which room and
// participant unambiguously: the room has no '.', neither has a character a
// source name cannot carry, and it fits a source name's 64 characters with
// any of conf.CallTracks after it. Otherwise the part before the track is a
// readable stem ('_' for the other characters, its end kept), '_' and a hash
// of the room and participant, so that two participants, or one participant
// in two rooms, never share a recording.
func RecordingName(room, participant, track string) string {
	prefix := room + "." + participant
	// the prefix is the same whatever the track, so that a participant's tracks
	// share it (the playback API's participant=<prefix>)
	fit := maxRecordingName - 1 - longestCallTrack
	if plainPrefix(room, participant) && len(prefix) <= fit {
		return prefix + "." + track
	}
	sum := sha256.Sum256([]byte(room + "\x00" + participant))
	tag := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:])[:recordingTag])
	stem := strings.Map(func(r rune) rune {
		if keyRune(r) {
			return r
		}
		return '_'
	}, prefix)
	if keep := fit - len(tag) - 1; len(stem) > keep {
		stem = stem[len(stem)-keep:]
	}
	stem = strings.TrimLeft(stem, "._-")
	if stem == "" {
		return tag + "." + track
	}
	return stem + "_" + tag + "." + track
}

// The bounds of a recording's name: a source name's 64 characters, of which a
// hashed one spends 10 (50 bits) on its hash.
const (
	maxRecordingName = 64
	recordingTag     = 10
)

// longestCallTrack is the length of the longest of conf.CallTracks.
var longestCallTrack = len(slices.MaxFunc(conf.CallTracks, func(a, b string) int { return cmp.Compare(len(a), len(b)) }))

// plainPrefix reports whether <room>.<participant> names the two alone.
func plainPrefix(room, participant string) bool {
	if room == "" || participant == "" || strings.ContainsRune(room, '.') || strings.ContainsAny(room[:1], "_-") {
		return false
	}
	for _, r := range room + participant {
		if !keyRune(r) {
			return false
		}
	}
	return true
}

// keyRune reports whether r may appear in a source name.
func keyRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
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
