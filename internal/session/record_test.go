package session

import (
	"strings"
	"testing"

	"fieldvideo/internal/conf"
)

func TestRecordingName(t *testing.T) {
	long := strings.Repeat("x", 80)
	tests := []struct {
		room, participant, source, want string
	}{
		{"incident-7", "cmdr-7", "camera", "incident-7.cmdr-7.camera"},
		{"ops", "alice@eoc.example", "microphone", "ops.alice_eoc.example.microphone"},
		{"ops", "Zoë Ünal", "screen", "ops.Zo___nal.screen"},
		{"_x", "a", "camera", "x.a.camera"},
		{"ops", long, "camera", strings.Repeat("x", 57) + ".camera"},
	}
	for _, tc := range tests {
		got := recordingName(tc.room, TrackInfo{Participant: tc.participant, Source: tc.source})
		if got != tc.want {
			t.Errorf("recordingName(%q, %q, %q) = %q, want %q", tc.room, tc.participant, tc.source, got, tc.want)
		}
		if !conf.SourceName.MatchString(got) {
			t.Errorf("recordingName gave %q, which is not a valid source name", got)
		}
	}
}
