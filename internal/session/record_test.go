package session

import (
	"strings"
	"testing"

	"fieldvideo/internal/conf"
)

func TestRecordingName(t *testing.T) {
	long := strings.Repeat("x", 80)
	tests := []struct {
		room, participant, source string
		want                      string // the whole name, or with a trailing '*' its start
	}{
		{"incident-7", "cmdr-7", "camera", "incident-7.cmdr-7.camera"},
		{"ops", "alice.smith", "camera", "ops.alice.smith.camera"},
		{"ops", "alice@eoc.example", "microphone", "ops.alice_eoc.example_*"},
		{"ops", "Zoë Ünal", "screen", "ops.Zo___nal_*"},
		{"ops.north", "alice", "camera", "ops.north.alice_*"},
		{"ops", long, "camera", "x*"},
		{"ops", "", "camera", "ops._*"},
	}
	for _, tc := range tests {
		got := recordingName(tc.room, TrackInfo{Participant: tc.participant, Source: tc.source})
		if want, prefix := strings.CutSuffix(tc.want, "*"); prefix {
			if !strings.HasPrefix(got, want) || !strings.HasSuffix(got, "."+tc.source) {
				t.Errorf("recordingName(%q, %q, %q) = %q, want %q…%q", tc.room, tc.participant, tc.source, got, want, "."+tc.source)
			}
		} else if got != tc.want {
			t.Errorf("recordingName(%q, %q, %q) = %q, want %q", tc.room, tc.participant, tc.source, got, tc.want)
		}
		if !conf.SourceName.MatchString(got) {
			t.Errorf("recordingName gave %q, which is not a valid source name", got)
		}
	}
}

// TestRecordingNamesNeverShared gives pairs of rooms and participants that
// the name's plain form, its character replacement or its cut would confuse:
// each pair gets recordings of its own, and a participant's camera and
// microphone share the part the playback API's participant= takes.
func TestRecordingNamesNeverShared(t *testing.T) {
	email := "firstname.lastname@agency-of-emergency-response.example.gov"
	pairs := [][2]string{
		{"ops.north", "alice"}, {"ops", "north.alice"},
		{"ops", "alice@x"}, {"ops", "alice_x"},
		{"ops", "Zoë"}, {"ops", "Zoé"},
		{"flood-riverside-command-north", email}, {"fire-hillside-command-north", email},
		{"ops", strings.Repeat("a", 70) + "1"}, {"ops", strings.Repeat("a", 70) + "2"},
		{"ops", "anonymous"}, {"ops", ""},
	}
	seen := map[string][2]string{}
	for _, p := range pairs {
		cam := recordingName(p[0], TrackInfo{Participant: p[1], Source: "camera"})
		mic := recordingName(p[0], TrackInfo{Participant: p[1], Source: "microphone"})
		if strings.TrimSuffix(cam, ".camera") != strings.TrimSuffix(mic, ".microphone") {
			t.Errorf("room %q participant %q: camera %q and microphone %q differ before the track", p[0], p[1], cam, mic)
		}
		for _, n := range []string{cam, mic} {
			if !conf.SourceName.MatchString(n) {
				t.Errorf("room %q participant %q: %q is not a valid source name", p[0], p[1], n)
			}
			if other, ok := seen[n]; ok {
				t.Errorf("room %q participant %q and room %q participant %q share the recording %q", p[0], p[1], other[0], other[1], n)
			}
			seen[n] = p
		}
	}
}
