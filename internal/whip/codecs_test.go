package whip

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"
)

// Calls negotiate, from the one codec table, H.264 and VP8 each with its RTX stream and
// congestion control feedback, Opus with DTX, and G.711.
func TestCallCodecs(t *testing.T) {
	var got []string
	for _, c := range CallCodecs() {
		var fb []string
		for _, f := range c.RTCPFeedback {
			fb = append(fb, strings.TrimSpace(f.Type+" "+f.Parameter))
		}
		got = append(got, fmt.Sprintf("%d %s %s [%s]", c.PayloadType, c.MimeType, c.SDPFmtpLine, strings.Join(fb, ",")))
	}
	want := []string{
		"102 video/H264 " + H264Fmtp + " [nack,nack pli,ccm fir,transport-cc,goog-remb]",
		"103 video/rtx apt=102 []",
		"96 video/VP8  [nack,nack pli,ccm fir,transport-cc,goog-remb]",
		"97 video/rtx apt=96 []",
		"111 audio/opus minptime=10;useinbandfec=1;usedtx=1 [transport-cc]",
		"0 audio/PCMU  []",
		"8 audio/PCMA  []",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("call codecs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// the WHIP/WHEP table is left as it was.
	if c, ok := CodecFor(TrackFor(webrtc.RTPCodecTypeVideo, codecs[0])); !ok || len(c.RTCPFeedback) != 3 {
		t.Errorf("WHEP's H.264 is %+v", c)
	}
}
