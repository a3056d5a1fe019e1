package whip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// ViewerParams configures View.
type ViewerParams struct {
	// Endpoint is the WHEP URL, e.g. http://sfu:8889/cam1/whep.
	Endpoint string
	Client   *Client
	API      *webrtc.API
	// NoAudio asks for video only.
	NoAudio bool
	// OnPacket receives every RTP packet, from one goroutine per track. The
	// packet is owned by the callee, unless Borrow is set.
	OnPacket func(kind webrtc.RTPCodecType, codec string, p *rtp.Packet, at time.Time)
	// Borrow lends OnPacket the packet only for the call: it is read into the
	// same memory each time, so that reading allocates nothing.
	Borrow bool
	// OnRTCP, when set, receives the RTCP packets the SFU sends about each track
	// (sender reports), from one goroutine per track.
	OnRTCP func(kind webrtc.RTPCodecType, pkts []rtcp.Packet)
	// LocalSDP and RemoteSDP, when set, rewrite the offer before it is sent
	// and the answer before it is applied (tests use them to steer media
	// through a network shim).
	LocalSDP, RemoteSDP func(string) string
}

// Viewer is a WHEP client session: the receiving end the load generator and
// tests use.
type Viewer struct {
	p         ViewerParams
	pc        *webrtc.PeerConnection
	res       Resource
	connected chan struct{}
	failed    chan struct{}

	mu    sync.Mutex
	ssrcs []uint32
	exts  map[string]uint8 // negotiated header extension ids by URI
}

// View opens a WHEP session and returns once the SFU has answered; packets
// arrive on OnPacket after the connection is up.
func View(ctx context.Context, p ViewerParams) (*Viewer, error) {
	if p.API == nil || p.Endpoint == "" {
		return nil, errors.New("whep viewer: API and Endpoint are required")
	}
	if p.Client == nil {
		p.Client = &Client{}
	}
	pc, err := p.API.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	v := &Viewer{p: p, pc: pc, connected: make(chan struct{}), failed: make(chan struct{})}
	var connOnce, failOnce sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		switch s {
		case webrtc.PeerConnectionStateConnected:
			connOnce.Do(func() { close(v.connected) })
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			failOnce.Do(func() { close(v.failed) })
		}
	})
	pc.OnTrack(v.onTrack)
	kinds := []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo}
	if !p.NoAudio {
		kinds = append(kinds, webrtc.RTPCodecTypeAudio)
	}
	for _, k := range kinds {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			pc.Close()
			return nil, err
		}
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		pc.Close()
		return nil, err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		pc.Close()
		return nil, err
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		pc.Close()
		return nil, ctx.Err()
	}
	local := pc.LocalDescription().SDP
	if p.LocalSDP != nil {
		local = p.LocalSDP(local)
	}
	v.res, err = p.Client.Offer(ctx, p.Endpoint, local)
	if err != nil {
		pc.Close()
		return nil, err
	}
	answer := v.res.Answer
	if p.RemoteSDP != nil {
		answer = p.RemoteSDP(answer)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		v.Close()
		return nil, fmt.Errorf("WHEP answer: %w", err)
	}
	return v, nil
}

func (v *Viewer) onTrack(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
	v.mu.Lock()
	v.ssrcs = append(v.ssrcs, uint32(t.SSRC()))
	if v.exts == nil {
		v.exts = map[string]uint8{}
	}
	for _, e := range r.GetParameters().HeaderExtensions {
		v.exts[e.URI] = uint8(e.ID)
	}
	v.mu.Unlock()
	go func() {
		for {
			pkts, _, err := r.ReadRTCP()
			if err != nil {
				return
			}
			if v.p.OnRTCP != nil {
				v.p.OnRTCP(t.Kind(), pkts)
			}
		}
	}()
	codec := CodecName(t.Codec().MimeType)
	// pion's ReadRTP allocates a buffer of the receive MTU per packet; read into
	// one, and keep only what arrived
	buf := make([]byte, ReceiveMTU)
	var lent rtp.Packet
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			return
		}
		if v.p.OnPacket == nil {
			continue
		}
		p, b := &lent, buf[:n]
		if !v.p.Borrow {
			p, b = &rtp.Packet{}, bytes.Clone(b)
		}
		if p.Unmarshal(b) != nil {
			continue
		}
		v.p.OnPacket(t.Kind(), codec, p, time.Now())
	}
}

// HeaderExtensionID returns the id negotiated for the RTP header extension
// uri, or 0; it is known once a track has arrived.
func (v *Viewer) HeaderExtensionID(uri string) uint8 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.exts[uri]
}

// Connected is closed once ICE and DTLS are up.
func (v *Viewer) Connected() <-chan struct{} { return v.connected }

// Failed is closed when the connection fails or closes.
func (v *Viewer) Failed() <-chan struct{} { return v.failed }

// Resource returns the session resource on the server.
func (v *Viewer) Resource() Resource { return v.res }

// RequestKeyframe sends a PLI for every received track.
func (v *Viewer) RequestKeyframe() error {
	v.mu.Lock()
	var pkts []rtcp.Packet
	for _, s := range v.ssrcs {
		pkts = append(pkts, &rtcp.PictureLossIndication{MediaSSRC: s})
	}
	v.mu.Unlock()
	if len(pkts) == 0 {
		return nil
	}
	return v.pc.WriteRTCP(pkts)
}

// Close ends the session on the server and closes the connection.
func (v *Viewer) Close() error {
	if v.res.URL != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = v.p.Client.Delete(ctx, v.res)
	}
	return v.pc.Close()
}
