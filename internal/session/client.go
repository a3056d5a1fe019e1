package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"fieldvideo/internal/whip"
)

// ClientParams configures a call client.
type ClientParams struct {
	// URL is the room's WebSocket, e.g. ws://host:8889/v1/rooms/incident-7/ws.
	URL   string
	Token string
	API   *API
	Name  string
	// AutoSubscribe subscribes to every participant's track as it appears.
	AutoSubscribe bool
	// RelayOnly sends all media through the TURN servers of the join reply.
	RelayOnly bool
	// RemoteSDP, when set, rewrites the server's SDP before it is applied
	// (tests use it to steer media through a network shim).
	RemoteSDP func(string) string
	// LocalSDP, when set, rewrites the client's SDP before it is sent.
	LocalSDP func(string) string
	// OnPacket is called for every RTP packet received on a subscription,
	// from the track's reader goroutine.
	OnPacket func(track string, p *rtp.Packet)
	// OnRTCP, when set, receives the RTCP packets the SFU sends about received tracks.
	OnRTCP func(pkts []rtcp.Packet)
}

// Message is a server message as received.
type Message struct {
	Type string
	ID   int64
	Raw  json.RawMessage
	At   time.Time
}

// Decode parses the message into v.
func (m Message) Decode(v any) error { return json.Unmarshal(m.Raw, v) }

// RecvStats counts what a subscription delivered.
type RecvStats struct {
	Packets, Bytes uint64
	First, Last    time.Time
}

// Client is a participant in a call, speaking the signalling protocol: the
// Go counterpart of the browser call page, used by tests, the load
// generator and tools.
type Client struct {
	p      ClientParams
	joined Joined

	wmu    sync.Mutex
	ws     *websocket.Conn
	nextID atomic.Int64

	mu      sync.Mutex
	url     string // where the client joined (the room's node)
	msgs    []Message
	changed chan struct{}
	recv    map[string]*RecvStats
	exts    map[string]uint8 // header extension ids negotiated on the subscribe connection, by URI
	pub     *webrtc.PeerConnection
	sub     *webrtc.PeerConnection
	closed  bool
}

// LocalTrack is a track the client publishes: one RTP track per simulcast
// layer.
type LocalTrack struct {
	Source string
	layers []*webrtc.TrackLocalStaticRTP
	sender *webrtc.RTPSender
	// Level is the audio level sent in the RFC 6464 extension (0 loudest ..
	// 127 silence).
	Level   atomic.Int32
	levelID atomic.Uint32
	// Simulcast layers carry the mid and rid header extensions, which is
	// how the receiver tells them apart.
	mid          string
	rids         []string
	midID, ridID atomic.Uint32
}

// TrackSpec describes a track to publish.
type TrackSpec struct {
	Source string
	Codec  string   // H264, VP8 or opus
	RIDs   []string // simulcast layers, lowest first; none for one layer
}

// Dial joins a room and returns the client once the join is accepted.
func Dial(ctx context.Context, p ClientParams) (*Client, error) {
	c := &Client{p: p, changed: make(chan struct{}), recv: map[string]*RecvStats{}}
	if err := c.connect(ctx, ""); err != nil {
		return nil, err
	}
	return c, nil
}

// connect joins (or resumes session) at the room's URL, following the
// cluster to the node the room lives on (CodeElsewhere, at most 3 hops).
func (c *Client) connect(ctx context.Context, resume string) error {
	url := c.p.URL
	for hop := 0; ; hop++ {
		err := c.connectAt(ctx, url, resume)
		var e *Error
		if hop < 3 && errors.As(err, &e) && e.Code == CodeElsewhere && e.URL != "" {
			url = e.URL
			continue
		}
		if err == nil {
			c.mu.Lock()
			c.url = url
			c.mu.Unlock()
		}
		return err
	}
}

// URL returns the WebSocket URL the client joined at.
func (c *Client) URL() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.url
}

func (c *Client) connectAt(ctx context.Context, url, resume string) error {
	ws, res, err := websocket.DefaultDialer.DialContext(ctx, url, http.Header{})
	if err != nil {
		if res != nil {
			return fmt.Errorf("dial %s: %w (HTTP %d)", url, err, res.StatusCode)
		}
		return fmt.Errorf("dial %s: %w", url, err)
	}
	ws.SetReadLimit(MaxMessageBytes)
	id := c.nextID.Add(1)
	// pion stops a media section the offer makes inactive and never takes it back.
	j := Join{Header: Header{Type: TypeJoin, ID: id}, Token: c.p.Token, Resume: resume, AutoSubscribe: c.p.AutoSubscribe, Name: c.p.Name, NewSections: true}
	b, _ := json.Marshal(j)
	if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
		ws.Close()
		return fmt.Errorf("send join: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = ws.SetReadDeadline(dl)
	}
	_, b, err = ws.ReadMessage()
	if err != nil {
		ws.Close()
		return fmt.Errorf("join: no reply: %w", err)
	}
	_ = ws.SetReadDeadline(time.Time{})
	var h Header
	_ = json.Unmarshal(b, &h)
	if h.Type == TypeError {
		var e ErrorMessage
		_ = json.Unmarshal(b, &e)
		ws.Close()
		return &Error{Code: e.Code, Reason: e.Reason, URL: e.URL}
	}
	if h.Type != TypeJoined {
		ws.Close()
		return fmt.Errorf("join: unexpected reply %s", b)
	}
	if err := json.Unmarshal(b, &c.joined); err != nil {
		ws.Close()
		return err
	}
	c.wmu.Lock()
	c.ws = ws
	c.wmu.Unlock()
	c.record(b)
	go c.readLoop(ws)
	return nil
}

// Joined returns the join reply.
func (c *Client) Joined() Joined { return c.joined }

func (c *Client) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.ws == nil {
		return errors.New("not connected")
	}
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

func (c *Client) record(b []byte) Message {
	var h Header
	_ = json.Unmarshal(b, &h)
	m := Message{Type: h.Type, ID: h.ID, Raw: append(json.RawMessage(nil), b...), At: time.Now()}
	c.mu.Lock()
	c.msgs = append(c.msgs, m)
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	return m
}

func (c *Client) readLoop(ws *websocket.Conn) {
	for {
		_, b, err := ws.ReadMessage()
		if err != nil {
			return
		}
		m := c.record(b)
		if m.Type == TypeOffer {
			var o Offer
			if json.Unmarshal(b, &o) == nil && o.PC == PCSubscribe {
				if err := c.answerSubscribe(o.SDP); err != nil {
					c.record([]byte(fmt.Sprintf(`{"type":"client_error","reason":%q}`, err.Error())))
				}
			}
		}
	}
}

// WaitFor returns the first message, old or new, that match accepts.
func (c *Client) WaitFor(ctx context.Context, match func(Message) bool) (Message, error) {
	seen := 0
	for {
		c.mu.Lock()
		msgs, ch := c.msgs[seen:], c.changed
		seen = len(c.msgs)
		c.mu.Unlock()
		for _, m := range msgs {
			if match(m) {
				return m, nil
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return Message{}, fmt.Errorf("waiting for a message: %w", ctx.Err())
		}
	}
}

// Messages returns every message received so far.
func (c *Client) Messages() []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Message(nil), c.msgs...)
}

// request sends a message and waits for the reply with the same id: want,
// or an error.
func (c *Client) request(ctx context.Context, msg any, id int64, want string) (Message, error) {
	if err := c.send(msg); err != nil {
		return Message{}, err
	}
	m, err := c.WaitFor(ctx, func(m Message) bool { return m.ID == id && (m.Type == want || m.Type == TypeError) })
	if err != nil {
		return m, err
	}
	if m.Type == TypeError {
		var e ErrorMessage
		_ = m.Decode(&e)
		return m, &Error{Code: e.Code, Reason: e.Reason}
	}
	return m, nil
}

func (c *Client) config() webrtc.Configuration {
	cfg := webrtc.Configuration{}
	for _, s := range c.joined.ICEServers {
		cfg.ICEServers = append(cfg.ICEServers, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	if c.p.RelayOnly {
		cfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	return cfg
}

func (c *Client) remote(s string) string {
	c.mu.Lock()
	f := c.p.RemoteSDP
	c.mu.Unlock()
	if f != nil {
		return f(s)
	}
	return s
}

func (c *Client) answerSubscribe(offer string) error {
	c.mu.Lock()
	pc := c.sub
	c.mu.Unlock()
	if pc == nil {
		var err error
		if pc, _, err = c.p.API.NewPeerConnection(c.config()); err != nil {
			return err
		}
		pc.OnTrack(c.onTrack)
		c.mu.Lock()
		c.sub = pc
		c.mu.Unlock()
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: c.remote(offer)}); err != nil {
		return err
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return err
	}
	s, err := localDescription(pc, ans)
	if err != nil {
		return err
	}
	return c.send(Answer{Header: Header{Type: TypeAnswer}, PC: PCSubscribe, SDP: c.local(s)})
}

func (c *Client) onTrack(t *webrtc.TrackRemote, rcv *webrtc.RTPReceiver) {
	id := t.ID()
	c.mu.Lock()
	if c.exts == nil {
		c.exts = map[string]uint8{}
	}
	for _, e := range rcv.GetParameters().HeaderExtensions {
		c.exts[e.URI] = uint8(e.ID)
	}
	c.mu.Unlock()
	go func() {
		for {
			pkts, _, err := rcv.ReadRTCP()
			if err != nil {
				return
			}
			if c.p.OnRTCP != nil {
				c.p.OnRTCP(pkts)
			}
		}
	}()
	for {
		p, _, err := t.ReadRTP()
		if err != nil {
			return
		}
		now := time.Now()
		c.mu.Lock()
		st := c.recv[id]
		if st == nil {
			st = &RecvStats{First: now}
			c.recv[id] = st
		}
		st.Packets++
		st.Bytes += uint64(len(p.Payload))
		st.Last = now
		c.mu.Unlock()
		if c.p.OnPacket != nil {
			c.p.OnPacket(id, p)
		}
	}
}

// HeaderExtensionID returns the id of RTP header extension uri on received tracks, or 0;
// it is known once a track has arrived.
func (c *Client) HeaderExtensionID(uri string) uint8 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.exts[uri]
}

// SendREMB reports a receiver-estimated maximum bitrate for every received
// track, as a receiver without transport-wide feedback does.
func (c *Client) SendREMB(bps float32) error {
	c.mu.Lock()
	pc := c.sub
	c.mu.Unlock()
	if pc == nil {
		return errors.New("nothing is subscribed yet")
	}
	remb := &rtcp.ReceiverEstimatedMaximumBitrate{Bitrate: bps}
	for _, r := range pc.GetReceivers() {
		if t := r.Track(); t != nil && t.SSRC() != 0 {
			remb.SSRCs = append(remb.SSRCs, uint32(t.SSRC()))
		}
	}
	if len(remb.SSRCs) == 0 {
		return errors.New("no track has been received yet")
	}
	return pc.WriteRTCP([]rtcp.Packet{remb})
}

// Received returns what a subscription delivered so far.
func (c *Client) Received(track string) RecvStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.recv[track]; st != nil {
		return *st
	}
	return RecvStats{}
}

// Publish adds tracks to the publish connection and negotiates them.
func (c *Client) Publish(ctx context.Context, specs ...TrackSpec) ([]*LocalTrack, error) {
	c.mu.Lock()
	pc := c.pub
	c.mu.Unlock()
	if pc == nil {
		var err error
		if pc, _, err = c.p.API.NewPeerConnection(c.config()); err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.pub = pc
		c.mu.Unlock()
	}
	var out []*LocalTrack
	var trs []*webrtc.RTPTransceiver
	for _, s := range specs {
		var codec webrtc.RTPCodecParameters
		for _, rc := range roomCodecs {
			if whip.CodecName(rc.MimeType) == s.Codec {
				codec = rc
				break
			}
		}
		if codec.MimeType == "" {
			return nil, fmt.Errorf("codec %q: use H264, VP8 or opus", s.Codec)
		}
		lt := &LocalTrack{Source: s.Source, rids: s.RIDs}
		lt.Level.Store(127)
		rids := s.RIDs
		if len(rids) == 0 {
			rids = []string{""}
		}
		for _, rid := range rids {
			var opts []func(*webrtc.TrackLocalStaticRTP)
			if rid != "" {
				opts = append(opts, webrtc.WithRTPStreamID(rid))
			}
			t, err := webrtc.NewTrackLocalStaticRTP(codec.RTPCodecCapability, s.Source, c.joined.Participant.ID, opts...)
			if err != nil {
				return nil, err
			}
			lt.layers = append(lt.layers, t)
		}
		tr, err := pc.AddTransceiverFromTrack(lt.layers[0], webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return nil, err
		}
		for _, t := range lt.layers[1:] {
			if err := tr.Sender().AddEncoding(t); err != nil {
				return nil, err
			}
		}
		lt.sender = tr.Sender()
		out = append(out, lt)
		trs = append(trs, tr)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return nil, err
	}
	sdpText, err := localDescription(pc, offer)
	if err != nil {
		return nil, err
	}
	id := c.nextID.Add(1)
	msg := Offer{Header: Header{Type: TypeOffer, ID: id}, PC: PCPublish, SDP: c.local(sdpText)}
	for i, tr := range trs {
		msg.Tracks = append(msg.Tracks, TrackMeta{Mid: tr.Mid(), Source: out[i].Source})
	}
	if err := c.publishOffer(ctx, pc, msg); err != nil {
		return nil, err
	}
	for i, lt := range out {
		lt.mid = trs[i].Mid()
		for _, e := range lt.sender.GetParameters().HeaderExtensions {
			switch e.URI {
			case sdp.AudioLevelURI:
				lt.levelID.Store(uint32(e.ID))
			case sdp.SDESMidURI:
				lt.midID.Store(uint32(e.ID))
			case sdp.SDESRTPStreamIDURI:
				lt.ridID.Store(uint32(e.ID))
			}
		}
		go func(s *webrtc.RTPSender) {
			for {
				if _, _, err := s.ReadRTCP(); err != nil {
					return
				}
			}
		}(lt.sender)
	}
	return out, nil
}

func (c *Client) publishOffer(ctx context.Context, pc *webrtc.PeerConnection, msg Offer) error {
	m, err := c.request(ctx, msg, msg.ID, TypeAnswer)
	if err != nil {
		return err
	}
	var a Answer
	if err := m.Decode(&a); err != nil {
		return err
	}
	return pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: c.remote(a.SDP)})
}

// WriteRTP sends a packet on a layer (0 without simulcast); audio packets
// get the audio level extension.
func (t *LocalTrack) WriteRTP(layer int, p *rtp.Packet) error {
	if id := t.levelID.Load(); id != 0 {
		b, _ := rtp.AudioLevelExtension{Level: uint8(t.Level.Load()), Voice: t.Level.Load() < 127}.Marshal()
		if err := p.Header.SetExtension(uint8(id), b); err != nil {
			return err
		}
	}
	if len(t.rids) > 0 {
		if id := t.midID.Load(); id != 0 {
			if err := p.Header.SetExtension(uint8(id), []byte(t.mid)); err != nil {
				return err
			}
		}
		if id := t.ridID.Load(); id != 0 {
			if err := p.Header.SetExtension(uint8(id), []byte(t.rids[layer])); err != nil {
				return err
			}
		}
	}
	return t.layers[layer].WriteRTP(p)
}

// Subscribe subscribes to a track and waits for the confirmation.
func (c *Client) Subscribe(ctx context.Context, track string, pinned bool) error {
	id := c.nextID.Add(1)
	_, err := c.request(ctx, Subscribe{Header: Header{Type: TypeSubscribe, ID: id}, Track: track, Pinned: pinned}, id, TypeSubscribed)
	return err
}

// Unsubscribe ends a subscription and waits for the confirmation.
func (c *Client) Unsubscribe(ctx context.Context, track string) error {
	id := c.nextID.Add(1)
	_, err := c.request(ctx, Unsubscribe{Header: Header{Type: TypeUnsubscribe, ID: id}, Track: track}, id, TypeUnsubscribed)
	return err
}

// Renew hands the server a newer token of the same participant and returns
// until when the participation now lasts.
func (c *Client) Renew(ctx context.Context, token string) (Renewed, error) {
	id := c.nextID.Add(1)
	m, err := c.request(ctx, Renew{Header: Header{Type: TypeRenew, ID: id}, Token: token}, id, TypeRenewed)
	var r Renewed
	if err == nil {
		err = m.Decode(&r)
	}
	return r, err
}

// Mute tells the room a published track is muted or not.
func (c *Client) Mute(track string, muted bool) error {
	return c.send(Mute{Header: Header{Type: TypeMute, ID: c.nextID.Add(1)}, Track: track, Muted: muted})
}

// RestartICE restarts ICE on both connections: the client re-offers the
// publish connection with new credentials, and asks the server to re-offer
// the subscribe connection likewise.
func (c *Client) RestartICE(ctx context.Context) error {
	c.mu.Lock()
	pub, sub := c.pub, c.sub
	c.mu.Unlock()
	if pub != nil {
		offer, err := pub.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
		if err != nil {
			return err
		}
		s, err := localDescription(pub, offer)
		if err != nil {
			return err
		}
		id := c.nextID.Add(1)
		if err := c.publishOffer(ctx, pub, Offer{Header: Header{Type: TypeOffer, ID: id}, PC: PCPublish, SDP: c.local(s)}); err != nil {
			return fmt.Errorf("publish ICE restart: %w", err)
		}
	}
	if sub != nil {
		return c.send(RestartICE{Header: Header{Type: TypeRestartICE, ID: c.nextID.Add(1)}})
	}
	return nil
}

// Reconnect drops the WebSocket without a goodbye, as a network change
// does, and resumes the session on a new one.
func (c *Client) Reconnect(ctx context.Context) error {
	c.wmu.Lock()
	old := c.ws
	c.ws = nil
	c.wmu.Unlock()
	if old != nil {
		_ = old.NetConn().Close()
	}
	return c.connect(ctx, c.joined.Session)
}

func (c *Client) local(s string) string {
	if c.p.LocalSDP != nil {
		return c.p.LocalSDP(s)
	}
	return s
}

// SetRemoteSDP replaces the SDP rewriter (a network change in tests).
func (c *Client) SetRemoteSDP(f func(string) string) {
	c.mu.Lock()
	c.p.RemoteSDP = f
	c.mu.Unlock()
}

// ConnectionStates returns the publish and subscribe connection states.
func (c *Client) ConnectionStates() (pub, sub webrtc.PeerConnectionState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pub != nil {
		pub = c.pub.ConnectionState()
	}
	if c.sub != nil {
		sub = c.sub.ConnectionState()
	}
	return pub, sub
}

// Close leaves the room and closes the connections.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	pub, sub := c.pub, c.sub
	c.mu.Unlock()
	_ = c.send(Leave{Header: Header{Type: TypeLeave}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, _ = c.WaitFor(ctx, func(m Message) bool { return m.Type == TypeBye })
	cancel()
	c.wmu.Lock()
	if c.ws != nil {
		_ = c.ws.Close()
	}
	c.wmu.Unlock()
	var errs []error
	for _, pc := range []*webrtc.PeerConnection{pub, sub} {
		if pc != nil {
			errs = append(errs, pc.Close())
		}
	}
	return errors.Join(errs...)
}

// RewriteCandidates returns an SDP rewriter that replaces the address of
// every candidate at from with to (host:port each).
func RewriteCandidates(from, to string) func(string) string {
	fh, fp, _ := strings.Cut(from, ":")
	th, tp, _ := strings.Cut(to, ":")
	return func(s string) string {
		return strings.ReplaceAll(s, " "+fh+" "+fp+" typ", " "+th+" "+tp+" typ")
	}
}

// StripCandidates removes the candidates from an SDP, so the other side
// learns the client's address only from the connectivity checks it receives
// (tests use it to keep every packet on a shimmed path).
func StripCandidates(s string) string {
	lines := strings.SplitAfter(s, "\n")
	out := lines[:0]
	for _, l := range lines {
		if !strings.HasPrefix(l, "a=candidate:") && !strings.HasPrefix(l, "a=end-of-candidates") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}
