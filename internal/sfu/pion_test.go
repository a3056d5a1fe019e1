package sfu

import "github.com/pion/webrtc/v4"

func webrtcConfig() webrtc.Configuration { return webrtc.Configuration{} }

func kindOf(k string) webrtc.RTPCodecType { return webrtc.NewRTPCodecType(k) }

func recvonly() webrtc.RTPTransceiverInit {
	return webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}
}

func sendonly() webrtc.RTPTransceiverInit {
	return webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}
}
