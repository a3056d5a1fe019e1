package ingest

import (
	"strings"
	"testing"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/conf"
)

// TestNewRejectsBadParams: bad input gets an error that names the setting,
// and a camera URL's password never appears in it.
func TestNewRejectsBadParams(t *testing.T) {
	v, err := auth.NewVerifier(testSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	ok := Params{RTSP: conf.RTSP{Address: "127.0.0.1:0"}, Verifier: v, Audit: audit.Discard()}
	cases := []struct {
		name string
		edit func(*Params)
		want string
	}{
		{"no verifier", func(p *Params) { p.Verifier = nil }, "verifier"},
		{"no audit", func(p *Params) { p.Audit = nil }, "audit"},
		{"no address", func(p *Params) { p.RTSP.Address = "" }, "rtsp.address"},
		{"one UDP port", func(p *Params) { p.RTSP.UDPRTPAddress = "127.0.0.1:8000" }, "udp_rtcp_address"},
		{"odd RTP port", func(p *Params) {
			p.RTSP.UDPRTPAddress, p.RTSP.UDPRTCPAddress = "127.0.0.1:0", "127.0.0.1:0"
		}, "RTCP"},
		{"bad camera name", func(p *Params) { p.Cameras = []conf.Camera{{Name: "a b", URL: "rtsp://h/x"}} }, "name"},
		{"bad camera URL", func(p *Params) {
			p.Cameras = []conf.Camera{{Name: "c", URL: "http://admin:topsecret@h/x"}}
		}, "rtsp://"},
		{"bad transport", func(p *Params) { p.Cameras = []conf.Camera{{Name: "c", URL: "rtsp://h/x", Transport: "quic"}} }, "transport"},
		{"camera twice", func(p *Params) {
			p.Cameras = []conf.Camera{{Name: "c", URL: "rtsp://h/x"}, {Name: "c", URL: "rtsp://h/y"}}
		}, "twice"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := ok
			tc.edit(&p)
			s, err := New(p)
			if err == nil {
				s.Close()
				t.Fatal("New accepted bad params")
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "topsecret") {
				t.Fatalf("error %q: want it to mention %q and no password", err, tc.want)
			}
		})
	}
}
