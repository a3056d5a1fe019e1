package session

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/cc"
	"github.com/pion/interceptor/pkg/gcc"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	tsync "fieldvideo/internal/sync"
	"fieldvideo/internal/unit"
	"fieldvideo/internal/whip"
)

// roomCodecs are the codecs of calls (see whip.CallCodecs).
var roomCodecs = whip.CallCodecs()

// publishable are the codecs a participant may publish, best first.
var publishable = []string{unit.CodecH264, unit.CodecVP8, unit.CodecOpus}

// codecFor returns the call codec that carries t.
func codecFor(t unit.Track) (webrtc.RTPCodecParameters, bool) {
	for _, c := range roomCodecs {
		if c.MimeType != webrtc.MimeTypeRTX && whip.CodecName(c.MimeType) == t.Codec && c.ClockRate == t.ClockRate {
			return c, true
		}
	}
	return webrtc.RTPCodecParameters{}, false
}

// APIParams configures NewAPI.
type APIParams struct {
	// UDPMux makes every peer connection share one UDP port; nil uses
	// ephemeral ports (clients).
	UDPMux ice.UDPMux
	// Loopback offers loopback candidates too; LoopbackOnly offers nothing
	// else (tests).
	Loopback, LoopbackOnly bool
	// AdvertiseIPs replace host candidate addresses (server behind 1:1 NAT).
	AdvertiseIPs []string
	// StartBitrate, MinBitrate and MaxBitrate bound each connection's send
	// bandwidth estimate; zero uses 800 kb/s, 100 kb/s and 20 Mb/s.
	StartBitrate, MinBitrate, MaxBitrate int
	// DisconnectedTimeout and FailedTimeout tune ICE; zero keeps 3 s and 10 s.
	DisconnectedTimeout, FailedTimeout time.Duration
	// Server is set for the SFU's rooms: subscriptions carry their own sender reports
	// and capture stamps, on the common time baseline. A client API (tools, tests)
	// leaves sender reports to pion and reads the stamps of what it receives.
	Server bool
}

// API builds the peer connections of calls: NACK, sender and receiver
// reports, transport-wide congestion control (the header extension on what it
// sends, feedback on what it receives) feeding a Google congestion control
// estimator per connection, the simulcast stream-id extensions, the audio
// level extension (RFC 6464) and the capture stamps (abs-capture-time and
// capture-quality). On the server, subscriptions send their sender reports
// themselves (see APIParams.Server).
type API struct {
	api *webrtc.API

	mu         sync.Mutex
	estimators map[string]cc.BandwidthEstimator // peer connection id → estimator
}

// NewAPI returns the API for call peer connections.
func NewAPI(p APIParams) (*API, error) {
	if p.StartBitrate == 0 {
		p.StartBitrate = 800_000
	}
	if p.MinBitrate == 0 {
		p.MinBitrate = 100_000
	}
	if p.MaxBitrate == 0 {
		p.MaxBitrate = 20_000_000
	}
	a := &API{estimators: map[string]cc.BandwidthEstimator{}}
	me := &webrtc.MediaEngine{}
	for _, c := range roomCodecs {
		kind := webrtc.RTPCodecTypeVideo
		if strings.HasPrefix(c.MimeType, "audio/") {
			kind = webrtc.RTPCodecTypeAudio
		}
		if err := me.RegisterCodec(c, kind); err != nil {
			return nil, fmt.Errorf("register codec %s: %w", c.MimeType, err)
		}
	}
	ir := &interceptor.Registry{}
	// The congestion controller comes first, so it sees every packet after the
	// transport-wide sequence number is added, retransmissions included.
	ccf, err := cc.NewInterceptor(func() (cc.BandwidthEstimator, error) {
		return gcc.NewSendSideBWE(
			gcc.SendSideBWEInitialBitrate(p.StartBitrate), gcc.SendSideBWEMinBitrate(p.MinBitrate),
			gcc.SendSideBWEMaxBitrate(p.MaxBitrate),
			// Layer selection keeps what is sent under the estimate; a
			// pacing queue would only add delay (and memory) on top.
			gcc.SendSideBWEPacer(gcc.NewNoOpPacer()))
	})
	if err != nil {
		return nil, err
	}
	ccf.OnNewPeerConnection(func(id string, e cc.BandwidthEstimator) {
		a.mu.Lock()
		a.estimators[id] = e
		a.mu.Unlock()
	})
	ir.Add(ccf)
	// The server answers its subscribers' NACKs itself, from each subscription's
	// history within whip's retransmission rules; pion's responder (a copy of every
	// packet per subscriber, no budget) serves only a client's own publications.
	if p.Server {
		gen, err := whip.NACKGenerator()
		if err != nil {
			return nil, err
		}
		ir.Add(gen)
	} else if err := webrtc.ConfigureNack(me, ir); err != nil {
		return nil, err
	}
	if err := whip.RTCPReports(ir, p.Server); err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureTWCCHeaderExtensionSender(me, ir); err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureTWCCSender(me, ir); err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(me); err != nil {
		return nil, err
	}
	if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	// Subscribers get each frame's capture time on the common baseline and its quality,
	// as WHEP viewers do. The server negotiates them only on what it sends: a browser's
	// own abs-capture-time is on its clock, not on the baseline, and published tracks
	// are aligned by their arrival and sender reports.
	stampDir := webrtc.RTPTransceiverDirectionRecvonly
	if p.Server {
		stampDir = webrtc.RTPTransceiverDirectionSendonly
	}
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		for _, uri := range []string{tsync.AbsCaptureTimeURI, tsync.CaptureQualityURI} {
			if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: uri}, kind, stampDir); err != nil {
				return nil, fmt.Errorf("register header extension %s: %w", uri, err)
			}
		}
	}

	failed := p.FailedTimeout
	if failed == 0 {
		failed = 10 * time.Second
	}
	se := whip.SettingEngine(whip.ICEParams{UDPMux: p.UDPMux, Loopback: p.Loopback, LoopbackOnly: p.LoopbackOnly,
		AdvertiseIPs: p.AdvertiseIPs, DisconnectedTimeout: p.DisconnectedTimeout, FailedTimeout: failed})
	a.api = webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	return a, nil
}

// NewPeerConnection returns a peer connection and its send-side bandwidth
// estimator.
func (a *API) NewPeerConnection(c webrtc.Configuration) (*webrtc.PeerConnection, cc.BandwidthEstimator, error) {
	pc, err := a.api.NewPeerConnection(c)
	if err != nil {
		return nil, nil, err
	}
	a.mu.Lock()
	e := a.estimators[pc.ID()]
	delete(a.estimators, pc.ID())
	a.mu.Unlock()
	if e == nil {
		_ = pc.Close()
		return nil, nil, errors.New("session: the congestion controller was not set up for the peer connection")
	}
	return pc, e, nil
}
