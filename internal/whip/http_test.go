package whip

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"
)

const fragment = "a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\n" +
	"a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw network-id 1\r\n" +
	"a=candidate:3471623853 1 udp 2122194687 198.51.100.2 61765 typ host generation 0 ufrag EsAw network-id 2\r\n" +
	"a=end-of-candidates\r\n"

func TestParseFragment(t *testing.T) {
	f, err := ParseFragment([]byte(fragment))
	if err != nil {
		t.Fatal(err)
	}
	if f.UFrag != "EsAw" || f.Pwd != "P2uYro0UCOQ4zxjKXaWCBui1" || len(f.Candidates) != 2 || !f.End {
		t.Fatalf("%+v", f)
	}
	if c := f.Candidates[1]; c.Mid != "0" || !strings.HasPrefix(c.Value, "candidate:3471623853") {
		t.Fatalf("candidate %+v", c)
	}
	back, err := ParseFragment(f.Marshal([]string{"0"}))
	if err != nil || len(back.Candidates) != 2 || back.UFrag != f.UFrag {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	for _, bad := range []string{
		"a=candidate:1 1 udp 1 192.0.2.1 1 typ host\r\n",    // before any m= line
		"m=audio 9 RTP/AVP 0\r\na=candidate:1 1 udp\r\n",    // too short
		"m=audio 9 RTP/AVP 0\r\nnot an sdp line at all\r\n", // garbage
	} {
		if _, err := ParseFragment([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestParseOfferAndCodecs(t *testing.T) {
	api, err := NewAPI(APIParams{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseOffer([]byte(offer.SDP))
	if err != nil {
		t.Fatal(err)
	}
	video := Offered(s.MediaDescriptions[0])
	if c, ok := Preferred(webrtc.RTPCodecTypeVideo, video); !ok || CodecName(c.MimeType) != "H264" {
		t.Fatalf("preferred video of %v: %v %v", video, c.MimeType, ok)
	}
	if c, ok := Preferred(webrtc.RTPCodecTypeAudio, Offered(s.MediaDescriptions[1])); !ok || CodecName(c.MimeType) != "opus" {
		t.Fatalf("preferred audio: %v", c.MimeType)
	}
	if _, ok := Preferred(webrtc.RTPCodecTypeVideo, []string{"H261"}); ok {
		t.Fatal("H261 accepted")
	}
	for _, bad := range []string{"", "v=0\r\n", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n",
		"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"} {
		if _, err := ParseOffer([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	many := "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n" + strings.Repeat("m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n", MaxMediaSections+1)
	if _, err := ParseOffer([]byte(many)); err == nil || !strings.Contains(err.Error(), "media sections") {
		t.Errorf("an offer of %d media sections: %v", MaxMediaSections+1, err)
	}
}

func TestReadBody(t *testing.T) {
	r := httptest.NewRequest("POST", "/x", strings.NewReader("v=0"))
	if _, err := ReadBody(r, ContentTypeSDP); err == nil || err.(*Error).Status != http.StatusUnsupportedMediaType {
		t.Fatalf("no content type: %v", err)
	}
	r = httptest.NewRequest("POST", "/x", bytes.NewReader(make([]byte, MaxBody+1)))
	r.Header.Set("Content-Type", "application/sdp; charset=utf-8")
	if _, err := ReadBody(r, ContentTypeSDP); err == nil || err.(*Error).Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("large body: %v", err)
	}
}

func FuzzParseFragment(f *testing.F) {
	f.Add([]byte(fragment))
	f.Add([]byte("m=video 9 UDP/TLS/RTP/SAVPF 96\na=mid:1\na=candidate:x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		frag, err := ParseFragment(b)
		if !bytes.Equal(orig, b) {
			t.Fatal("input modified")
		}
		if err == nil {
			if _, err := ParseFragment(frag.Marshal([]string{"0", "1"})); err != nil {
				t.Fatalf("cannot parse own output: %v", err)
			}
		}
	})
}

func FuzzParseOffer(f *testing.F) {
	f.Add([]byte("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:0\r\na=rtpmap:102 H264/90000\r\n"))
	f.Add([]byte("v=0\r\nm=audio"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseOffer(b)
		if err != nil {
			return
		}
		for _, m := range s.MediaDescriptions {
			Offered(m)
		}
	})
}

// An offer may carry MaxCandidates distinct candidates, however often a
// bundled offer repeats them in its media sections; one more is refused.
func TestOfferCandidatesBounded(t *testing.T) {
	offer := func(distinct, sections int) string {
		var b strings.Builder
		b.WriteString("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n")
		for m := range sections {
			fmt.Fprintf(&b, "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:%d\r\na=rtpmap:96 H264/90000\r\n", m)
			for i := range distinct {
				fmt.Fprintf(&b, "a=candidate:%d 1 udp %d 10.0.%d.%d %d typ host\r\n", i, 2130706431-i, i/200, i%200+1, 40000+i)
			}
		}
		return b.String()
	}
	if _, err := ParseOffer([]byte(offer(MaxCandidates, MaxMediaSections))); err != nil {
		t.Fatalf("%d candidates repeated in %d sections: %v", MaxCandidates, MaxMediaSections, err)
	}
	_, err := ParseOffer([]byte(offer(MaxCandidates+1, 1)))
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%d ICE candidates", MaxCandidates+1)) {
		t.Fatalf("%d candidates: %v", MaxCandidates+1, err)
	}
}

func TestOfferUfragBounded(t *testing.T) {
	offer := func(ufrag string) string {
		return "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\n" +
			"a=mid:0\r\na=ice-ufrag:" + ufrag + "\r\na=rtpmap:96 H264/90000\r\n"
	}
	if _, err := ParseOffer([]byte(offer(strings.Repeat("u", MaxUfrag)))); err != nil {
		t.Fatalf("a %d-character ufrag: %v", MaxUfrag, err)
	}
	if _, err := ParseOffer([]byte(offer(strings.Repeat("u", 490)))); err == nil || !strings.Contains(err.Error(), "490 characters") {
		t.Fatalf("a 490-character ufrag: %v", err)
	}
}
