package whip

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"fieldvideo/internal/unit"
)

var videoFeedback = []webrtc.RTCPFeedback{
	{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"},
}

// callVideoFeedback adds the congestion control feedback calls use.
var callVideoFeedback = append(slices.Clone(videoFeedback),
	webrtc.RTCPFeedback{Type: webrtc.TypeRTCPFBTransportCC}, webrtc.RTCPFeedback{Type: webrtc.TypeRTCPFBGoogREMB})

// opusFmtp turns on in-band forward error correction, and opusCallFmtp in calls also
// discontinuous transmission: a lost packet is rebuilt from the next, and silence costs
// almost nothing on a 4G uplink.
const (
	opusFmtp     = "minptime=10;useinbandfec=1"
	opusCallFmtp = opusFmtp + ";usedtx=1"
)

// H264Fmtp is the H.264 format every browser offers. It is announced whatever
// profile a camera sends: browser decoders take any profile in practice, and
// it is what lets a High-profile camera reach every browser.
const H264Fmtp = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"

// codecs are the codecs both binaries negotiate by WHIP and WHEP, in order of preference
// per kind. H.264 comes first: every browser decodes it and recordings keep it. Calls
// negotiate the ones CallCodecs lists, from this same table.
var codecs = []webrtc.RTPCodecParameters{
	{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: H264Fmtp, RTCPFeedback: videoFeedback}, PayloadType: 102},
	{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: videoFeedback}, PayloadType: 96},
	{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000, SDPFmtpLine: "profile-id=0", RTCPFeedback: videoFeedback}, PayloadType: 98},
	{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeAV1, ClockRate: 90000, RTCPFeedback: videoFeedback}, PayloadType: 45},
	{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH265, ClockRate: 90000, SDPFmtpLine: "level-id=93;profile-id=1;tier-flag=0;tx-mode=SRST", RTCPFeedback: videoFeedback}, PayloadType: 116},
	{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: opusFmtp}, PayloadType: 111},
	{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}, PayloadType: 0},
	{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMA, ClockRate: 8000}, PayloadType: 8},
}

// callRTX are the payload types of the RTX streams calls negotiate for a video codec's.
var callRTX = map[uint8]webrtc.PayloadType{102: 103, 96: 97}

// CallCodecs returns the codecs of calls, from the same table as WHIP and WHEP, in order of
// preference per kind: H.264 (hardware decoders on every phone, and what recordings keep),
// VP8, Opus; G.711 only so field cameras that send it can be heard. Video carries RTX and,
// like Opus, the congestion control feedback (transport-cc; REMB for video).
func CallCodecs() []webrtc.RTPCodecParameters {
	var out []webrtc.RTPCodecParameters
	for _, c := range codecs {
		switch c.MimeType {
		case webrtc.MimeTypeH264, webrtc.MimeTypeVP8:
			c.RTCPFeedback = callVideoFeedback
			out = append(out, c, webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
				MimeType: webrtc.MimeTypeRTX, ClockRate: c.ClockRate, SDPFmtpLine: fmt.Sprintf("apt=%d", c.PayloadType)},
				PayloadType: callRTX[uint8(c.PayloadType)]})
		case webrtc.MimeTypeOpus:
			c.SDPFmtpLine = opusCallFmtp
			c.RTCPFeedback = []webrtc.RTCPFeedback{{Type: webrtc.TypeRTCPFBTransportCC}}
			out = append(out, c)
		case webrtc.MimeTypePCMU, webrtc.MimeTypePCMA:
			out = append(out, c)
		}
	}
	return out
}

// CodecName returns the unit codec name of a MIME type such as "video/H264".
func CodecName(mime string) string {
	_, name, _ := strings.Cut(mime, "/")
	if strings.EqualFold(name, unit.CodecOpus) {
		return unit.CodecOpus
	}
	return strings.ToUpper(name)
}

// Kind returns the unit kind of a WebRTC codec type.
func Kind(k webrtc.RTPCodecType) unit.Kind {
	if k == webrtc.RTPCodecTypeAudio {
		return unit.KindAudio
	}
	return unit.KindVideo
}

// CodecType returns the WebRTC codec type of a unit kind.
func CodecType(k unit.Kind) webrtc.RTPCodecType {
	if k == unit.KindAudio {
		return webrtc.RTPCodecTypeAudio
	}
	return webrtc.RTPCodecTypeVideo
}

// CodecFor returns the negotiable codec that carries track t.
func CodecFor(t unit.Track) (webrtc.RTPCodecParameters, bool) {
	for _, c := range codecs {
		if CodecName(c.MimeType) == t.Codec && c.ClockRate == t.ClockRate {
			return c, true
		}
	}
	return webrtc.RTPCodecParameters{}, false
}

// TrackFor describes as a unit track what a negotiated codec carries.
func TrackFor(kind webrtc.RTPCodecType, c webrtc.RTPCodecParameters) unit.Track {
	return unit.Track{
		Kind: Kind(kind), Codec: CodecName(c.MimeType), ClockRate: c.ClockRate,
		Channels: c.Channels, Fmtp: c.SDPFmtpLine, PayloadType: uint8(c.PayloadType),
	}
}

// Offered returns the codec names an SDP media section offers, in its order.
func Offered(m *sdp.MediaDescription) []string {
	var names []string
	for _, a := range m.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		_, v, ok := strings.Cut(a.Value, " ")
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(v, "/")
		if n := CodecName("x/" + name); n != "" && !contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

// Preferred picks the codec to use for a media section of the given kind: the
// first of ours, in our order of preference, that the offer also has.
func Preferred(kind webrtc.RTPCodecType, offered []string) (webrtc.RTPCodecParameters, bool) {
	for _, c := range codecs {
		if CodecType(kindOfMime(c.MimeType)) == kind && contains(offered, CodecName(c.MimeType)) {
			return c, true
		}
	}
	return webrtc.RTPCodecParameters{}, false
}

func kindOfMime(mime string) unit.Kind {
	if strings.HasPrefix(mime, "audio/") {
		return unit.KindAudio
	}
	return unit.KindVideo
}

// Supported lists the codec names of a kind we negotiate, for error messages.
func Supported(kind webrtc.RTPCodecType) []string {
	var names []string
	for _, c := range codecs {
		if CodecType(kindOfMime(c.MimeType)) == kind {
			names = append(names, CodecName(c.MimeType))
		}
	}
	return names
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
