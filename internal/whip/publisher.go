package whip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"fieldvideo/internal/stream"
)

// PublisherParams configures a Publisher.
type PublisherParams struct {
	// Endpoint is the WHIP URL, e.g. http://sfu:8889/cam1/whip.
	Endpoint string
	// Place, when set, chooses the WHIP URL of each attempt instead (an
	// SFU of the cluster): it is told the URL of the attempt that failed,
	// empty at the first, to choose another SFU; an empty answer uses
	// Endpoint.
	Place  func(failed string) string
	Client *Client
	API    *webrtc.API
	Stream *stream.Stream
	// QueueSize is the stream reader's queue; zero means the default.
	QueueSize int
	// MinBackoff and MaxBackoff bound the wait between attempts.
	MinBackoff, MaxBackoff time.Duration
	// ConnectTimeout bounds one attempt's ICE and DTLS setup.
	ConnectTimeout time.Duration
	// TokenRefresh is how often a live session sends the client's current
	// token (an empty PATCH), so that the SFU, which ends a session when its
	// token expires, keeps it; zero means every 10 minutes when the client
	// has a TokenSource, never otherwise.
	TokenRefresh time.Duration
	Log          *slog.Logger
	// LocalSDP and RemoteSDP, when set, rewrite the offer before it is sent and the
	// answer before it is applied (tests use them to steer media through a network shim).
	LocalSDP, RemoteSDP func(string) string
}

// PublisherState is what a publisher is doing.
type PublisherState struct {
	State    string    `json:"state"` // connecting, live, retrying
	Reason   string    `json:"reason,omitempty"`
	Endpoint string    `json:"endpoint,omitempty"`
	Since    time.Time `json:"since"`
	Sessions int       `json:"sessions"`
}

// Publisher sends a stream to an SFU by WHIP and keeps it there: when the
// session fails (the SFU restarted, the network dropped) it publishes again,
// with capped exponential backoff.
type Publisher struct {
	p PublisherParams

	mu    sync.Mutex
	state PublisherState
}

// NewPublisher checks params and returns a publisher; Run starts it.
func NewPublisher(p PublisherParams) (*Publisher, error) {
	if (p.Endpoint == "" && p.Place == nil) || p.API == nil || p.Stream == nil {
		return nil, errors.New("whip publisher: Endpoint (or Place), API and Stream are required")
	}
	if p.Client == nil {
		p.Client = &Client{}
	}
	if p.MinBackoff <= 0 {
		p.MinBackoff = time.Second
	}
	if p.MaxBackoff < p.MinBackoff {
		p.MaxBackoff = 30 * time.Second
	}
	if p.ConnectTimeout <= 0 {
		p.ConnectTimeout = 10 * time.Second
	}
	if p.TokenRefresh <= 0 && p.Client.TokenSource != nil {
		p.TokenRefresh = 10 * time.Minute
	}
	if p.Log == nil {
		p.Log = slog.Default()
	}
	p.Log = p.Log.With("component", "whip-publisher")
	return &Publisher{p: p, state: PublisherState{State: "connecting", Since: time.Now()}}, nil
}

// State returns the publisher's current state.
func (p *Publisher) State() PublisherState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

func (p *Publisher) set(state, reason, endpoint string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.state.Endpoint = endpoint
	if p.state.State != state || p.state.Reason != reason {
		p.state.State, p.state.Reason, p.state.Since = state, reason, time.Now()
	}
	if state == "live" {
		p.state.Sessions++
	}
}

// Run publishes until ctx is done.
func (p *Publisher) Run(ctx context.Context) {
	backoff := p.p.MinBackoff
	failed := ""
	for ctx.Err() == nil {
		endpoint := p.p.Endpoint
		if p.p.Place != nil {
			if e := p.p.Place(failed); e != "" {
				endpoint = e
			}
		}
		if endpoint == "" {
			p.set("retrying", errNoEndpoint.Error(), "")
		} else {
			p.set("connecting", "", endpoint)
		}
		start := time.Now()
		err := errNoEndpoint
		if endpoint != "" {
			err = p.session(ctx, endpoint)
		}
		failed = endpoint
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > 30*time.Second {
			backoff = p.p.MinBackoff
		}
		reason := "session ended"
		if err != nil {
			reason = err.Error()
		}
		p.set("retrying", reason, endpoint)
		wait := backoff/2 + rand.N(backoff/2+1)
		p.p.Log.Warn("publishing failed; retrying", "endpoint", endpoint, "reason", reason, "in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(backoff*2, p.p.MaxBackoff)
	}
}

// errNoEndpoint: Place found no SFU and there is no fixed endpoint.
var errNoEndpoint = errors.New("no SFU to publish to: the cluster lists none that takes work, and uplink.url is empty")

func (p *Publisher) session(ctx context.Context, endpoint string) error {
	tracks := p.p.Stream.Tracks()
	pc, err := p.p.API.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return err
	}
	defer pc.Close()

	failed := make(chan struct{})
	connected := make(chan struct{})
	var once, connOnce sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		switch s {
		case webrtc.PeerConnectionStateConnected:
			connOnce.Do(func() { close(connected) })
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed, webrtc.PeerConnectionStateDisconnected:
			once.Do(func() { close(failed) })
		}
	})

	locals := make([]*LocalTrack, len(tracks))
	var wanted []int
	for i, t := range tracks {
		c, ok := CodecFor(t)
		if !ok || !t.Relayable() {
			continue
		}
		lt := NewLocalTrack(fmt.Sprintf("%s%d", t.Kind, i), p.p.Stream.Name(), i, t, c)
		tr, err := pc.AddTransceiverFromTrack(lt, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return fmt.Errorf("add %s track: %w", t.Codec, err)
		}
		if err := tr.SetCodecPreferences([]webrtc.RTPCodecParameters{c}); err != nil {
			return fmt.Errorf("set %s codec: %w", t.Codec, err)
		}
		locals[i] = lt
		wanted = append(wanted, i)
		go lt.ServeRTCP(tr.Sender(), func() { p.p.Stream.RequestKeyframe(i) }, nil)
	}
	if len(wanted) == 0 {
		return fmt.Errorf("source %s has no track browsers can play (tracks: %v)", p.p.Stream.Name(), tracks)
	}
	reportsDone := make(chan struct{})
	defer close(reportsDone)
	go SendReports(pc, reportsDone, Reporters(locals))

	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return err
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return ctx.Err()
	}
	local := pc.LocalDescription().SDP
	if p.p.LocalSDP != nil {
		local = p.p.LocalSDP(local)
	}
	res, err := p.p.Client.Offer(ctx, endpoint, local)
	if err != nil {
		return fmt.Errorf("WHIP offer: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = p.p.Client.Delete(dctx, res)
	}()
	answer := res.Answer
	if p.p.RemoteSDP != nil {
		answer = p.p.RemoteSDP(answer)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return fmt.Errorf("SFU answer: %w", err)
	}
	timer := time.NewTimer(p.p.ConnectTimeout)
	defer timer.Stop()
	select {
	case <-connected:
	case <-failed:
		return errors.New("ICE/DTLS connection to the SFU failed")
	case <-timer.C:
		return fmt.Errorf("no ICE/DTLS connection to the SFU within %s", p.p.ConnectTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}

	ended := make(chan error, 1)
	r, err := p.p.Stream.AddReader(stream.ReaderParams{
		Name:      "whip-uplink",
		QueueSize: p.p.QueueSize,
		MaxLag:    stream.LiveLag,
		Tracks:    wanted,
		// live units go out on the writer's goroutine while the uplink keeps up:
		// its sends are UDP writes that do not wait for the SFU
		Inline: true,
		OnUnit: func(d stream.Delivery) {
			if lt := locals[d.Unit.Track]; lt != nil {
				_ = lt.Write(d)
			}
		},
		OnEnd: func(err error) { ended <- err },
	})
	if err != nil {
		return err
	}
	defer r.Close()
	p.set("live", "", endpoint)
	p.p.Log.Info("publishing", "endpoint", endpoint, "tracks", len(wanted))

	var refresh <-chan time.Time
	if p.p.TokenRefresh > 0 {
		t := time.NewTicker(p.p.TokenRefresh)
		defer t.Stop()
		refresh = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-failed:
			return errors.New("connection to the SFU lost")
		case err := <-ended:
			return fmt.Errorf("source: %w", err)
		case <-refresh:
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := p.p.Client.Trickle(rctx, res, nil)
			cancel()
			if err != nil {
				p.p.Log.Warn("could not refresh the session's token; the SFU ends the session when the old one expires, and it is published again", "error", err)
			}
		}
	}
}
