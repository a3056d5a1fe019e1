// Package whip holds what both binaries need to speak WHIP and WHEP (RFC 9725
// and its viewing counterpart): the negotiated codec set, the WebRTC API
// configuration, the HTTP and trickle-ICE helpers of the server side, a WHIP
// publisher that sends a stream to an SFU, and a WHEP viewer client.
package whip

import (
	"fmt"
	"net"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/transport/v5"
	"github.com/pion/webrtc/v4"

	tsync "fieldvideo/internal/sync"
)

// ReceiveMTU is the largest datagram a peer connection reads; sendOnlyReceiveMTU
// that of one that only sends (see APIParams.SendOnly).
const (
	ReceiveMTU         = 8192
	sendOnlyReceiveMTU = 1500
)

// SRTPReplayWindow is how far behind the newest packet received a packet may arrive and
// still be taken: as far back as a sender's history answers NACKs. A smaller window
// (pion's default is 64 packets, 40 ms of a keyframe at 4 Mb/s) rejects the
// retransmission of a packet lost early in a burst, and the receiver asks for it again
// and again to no avail.
const SRTPReplayWindow = historySize

// NACKs a receiver sends for one missing packet: every nackInterval, nackTries times at
// most (then it is given up: the frame waits for the next keyframe), as libwebrtc does,
// while it is among the last nackWindow packets (pion's default of 512 is under half a
// second of a 10 Mb/s stream: a packet whose retransmission was lost too was forgotten).
const (
	nackInterval = 100 * time.Millisecond
	nackTries    = 10
	nackWindow   = 2048
)

// DefaultKeepalive is how often a connected peer connection sends a STUN binding
// request on its path (consent, RFC 7675): often enough that a peer that sends nothing
// else is heard well within the 3 s disconnected timeout.
const DefaultKeepalive = time.Second

// APIParams configures NewAPI.
type APIParams struct {
	// UDPMux makes every peer connection share one UDP port; nil uses one
	// ephemeral port per connection.
	UDPMux ice.UDPMux
	// Loopback offers loopback candidates too.
	Loopback bool
	// LoopbackOnly gathers loopback candidates only (single-host setups and
	// tests, which must not send traffic anywhere else).
	LoopbackOnly bool
	// AdvertiseIPs replace host candidate addresses (server behind 1:1 NAT).
	AdvertiseIPs []string
	// DisconnectedTimeout and FailedTimeout tune how fast a dead peer is
	// noticed; zero keeps 3 s and 8 s.
	DisconnectedTimeout, FailedTimeout time.Duration
	// SendOnly leaves out what only receiving needs (NACK generation and receiver
	// reports, each a goroutine and a timer per peer connection, and read buffers
	// for large media datagrams): for WHEP viewers.
	SendOnly bool
	// Net, when set, is the network the peer connections listen on (the
	// load generator's notes when each datagram reached the kernel).
	Net transport.Net
	// Keepalive is how often a connected peer connection checks its path with a STUN
	// binding request; zero means DefaultKeepalive.
	Keepalive time.Duration
}

// NewAPI returns a WebRTC API with our codecs, NACK generation, RTCP
// receiver reports (sender reports are SendReports'), the abs-capture-time and capture-quality
// header extensions, and the given ICE settings. Multicast DNS is
// off: candidates carry addresses, and nothing is sent to multicast groups.
func NewAPI(p APIParams) (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	for _, c := range codecs {
		if err := me.RegisterCodec(c, CodecType(kindOfMime(c.MimeType))); err != nil {
			return nil, fmt.Errorf("register codec %s: %w", c.MimeType, err)
		}
	}
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		for _, uri := range []string{tsync.AbsCaptureTimeURI, tsync.CaptureQualityURI} {
			if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: uri}, kind); err != nil {
				return nil, fmt.Errorf("register header extension %s: %w", uri, err)
			}
		}
	}
	// NACKs are generated for what is received; those received for what
	// is sent are answered by LocalTrack.ServeRTCP from its history.
	ir := &interceptor.Registry{}
	if !p.SendOnly {
		gen, err := NACKGenerator()
		if err != nil {
			return nil, err
		}
		ir.Add(gen)
		// Everything sent through this API goes out on LocalTracks, whose sender reports
		// SendReports sends (on the common time baseline).
		if err := RTCPReports(ir, true); err != nil {
			return nil, err
		}
	}

	se := SettingEngine(ICEParams{UDPMux: p.UDPMux, Loopback: p.Loopback, LoopbackOnly: p.LoopbackOnly,
		AdvertiseIPs: p.AdvertiseIPs, DisconnectedTimeout: p.DisconnectedTimeout, FailedTimeout: p.FailedTimeout, Net: p.Net, Keepalive: p.Keepalive})
	if p.SendOnly {
		// only RTCP, STUN and DTLS come back: no read buffer need be larger
		// than an Ethernet frame (each peer connection holds several)
		se.SetReceiveMTU(sendOnlyReceiveMTU)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// NACKGenerator returns the interceptor that asks senders again for what was lost, within
// the limits above; every peer connection that receives media uses it.
func NACKGenerator() (*nack.GeneratorInterceptorFactory, error) {
	return nack.NewGeneratorInterceptor(nack.GeneratorSize(nackWindow), nack.GeneratorInterval(nackInterval),
		nack.GeneratorMaxNacksPerPacket(nackTries))
}

// RTCPReports adds receiver reports to ir, and sender reports unless own says the caller
// sends them (SendReports).
func RTCPReports(ir *interceptor.Registry, own bool) error {
	if !own {
		return webrtc.ConfigureRTCPReports(ir)
	}
	rr, err := report.NewReceiverInterceptor()
	if err != nil {
		return err
	}
	ir.Add(rr)
	return nil
}

// ICEParams are the network settings of a WebRTC API.
type ICEParams struct {
	UDPMux                             ice.UDPMux
	Loopback, LoopbackOnly             bool
	AdvertiseIPs                       []string
	DisconnectedTimeout, FailedTimeout time.Duration // zero: 3 s and 8 s
	Net                                transport.Net // nil: the host's
	Keepalive                          time.Duration // zero: DefaultKeepalive
}

// SettingEngine returns the settings every peer connection of this system
// uses: UDP only, multicast DNS off (candidates carry addresses and nothing
// is sent to multicast groups), the shared UDP port when given, loopback as
// asked, datagrams up to ReceiveMTU, and an SRTP replay window of SRTPReplayWindow.
func SettingEngine(p ICEParams) webrtc.SettingEngine {
	se := webrtc.SettingEngine{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	se.SetIncludeLoopbackCandidate(p.Loopback || p.LoopbackOnly)
	if p.LoopbackOnly {
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	}
	if p.UDPMux != nil {
		se.SetICEUDPMux(p.UDPMux)
	}
	if p.Net != nil {
		se.SetNet(p.Net)
	}
	if len(p.AdvertiseIPs) > 0 {
		se.SetNAT1To1IPs(p.AdvertiseIPs, webrtc.ICECandidateTypeHost)
	}
	disc, failed := p.DisconnectedTimeout, p.FailedTimeout
	if disc == 0 {
		disc = 3 * time.Second
	}
	if failed == 0 {
		failed = 8 * time.Second
	}
	keep := p.Keepalive
	if keep == 0 {
		keep = DefaultKeepalive
	}
	se.SetICETimeouts(disc, failed, keep)
	// Take whole datagrams up to the largest a path can carry unfragmented
	// (and more: RTSP cameras over TCP send large payloads), so that no
	// packet is cut short and dropped.
	se.SetReceiveMTU(ReceiveMTU)
	se.SetSRTPReplayProtectionWindow(SRTPReplayWindow)
	return se
}
