package ingest

import (
	"log/slog"
	"strings"
	"testing"

	"fieldvideo/internal/conf"
)

// A puller's messages never carry the camera's secrets: its password, and the
// secret parameters of its query and of its path (XMEye, Dahua).
func TestPullerRedactsSecrets(t *testing.T) {
	s := &Server{log: slog.New(slog.DiscardHandler)}
	pl, err := newPuller(s, conf.Camera{Name: "dvr",
		URL: "rtsp://admin:UserPw-1@10.0.0.9/user=admin&password=PathPw-2&channel=1&stream=0.sdp?token=QueryPw-3"})
	if err != nil {
		t.Fatal(err)
	}
	msg := pl.redact("describe rtsp://admin:UserPw-1@10.0.0.9/user=admin&password=PathPw-2&channel=1?token=QueryPw-3: 401")
	for _, secret := range []string{"UserPw-1", "PathPw-2", "QueryPw-3"} {
		if strings.Contains(msg, secret) {
			t.Errorf("%q shows %s", msg, secret)
		}
	}
}
