package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
)

// PusherParams configures a Pusher.
type PusherParams struct {
	// URL is where to publish, such as rtsp://tok:TOKEN@127.0.0.1:8554/field1.
	URL string
	// Transport is "tcp" (the default) or "udp".
	Transport string
	// Clip is what to play; nil plays the embedded clip.
	Clip *Clip
	// Clock is the camera's clock model; the zero value has exact clocks.
	Clock ClockModel
	// MinBackoff and MaxBackoff bound the wait before reconnecting; they default to
	// 500 ms and 10 s.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Pusher publishes the clip as one camera to an RTSP server with ANNOUNCE and RECORD, as a
// field encoder does, and reconnects with backoff whenever the server goes away.
type Pusher struct {
	url        string
	redacted   string
	protocol   gortsplib.Protocol
	player     *player
	minBackoff time.Duration
	maxBackoff time.Duration
	log        *slog.Logger
}

// NewPusher checks the parameters. Nothing connects until Run.
func NewPusher(p PusherParams) (*Pusher, error) {
	u, err := base.ParseURL(p.URL)
	if err != nil {
		return nil, fmt.Errorf("democam: the push URL %q is not valid: %w (expected rtsp://[user:pass@]host:port/path)",
			redactURL(p.URL), err)
	}
	if u.Host == "" || u.Path == "" || u.Path == "/" {
		return nil, fmt.Errorf("democam: the push URL %q needs a host and a path, such as rtsp://127.0.0.1:8554/field1",
			redactURL(p.URL))
	}

	var protocol gortsplib.Protocol
	switch p.Transport {
	case "", "tcp":
		protocol = gortsplib.ProtocolTCP
	case "udp":
		protocol = gortsplib.ProtocolUDP
	default:
		return nil, fmt.Errorf("democam: transport %q is not supported: use tcp or udp", p.Transport)
	}

	clip := p.Clip
	if clip == nil {
		clip, err = EmbeddedClip()
		if err != nil {
			return nil, fmt.Errorf("democam: load the embedded clip: %w", err)
		}
	}
	pl, err := newPlayer(clip, 0, p.Clock)
	if err != nil {
		return nil, fmt.Errorf("democam: %w", err)
	}

	ps := &Pusher{
		url:        p.URL,
		redacted:   redactURL(p.URL),
		protocol:   protocol,
		player:     pl,
		minBackoff: p.MinBackoff,
		maxBackoff: p.MaxBackoff,
	}
	if ps.minBackoff <= 0 {
		ps.minBackoff = 500 * time.Millisecond
	}
	if ps.maxBackoff < ps.minBackoff {
		ps.maxBackoff = max(10*time.Second, ps.minBackoff)
	}
	logger := p.Logger
	if logger == nil {
		logger = slog.Default()
	}
	ps.log = logger.With("component", "democam", "url", ps.redacted)
	if p.Clock != (ClockModel{}) {
		ps.log.Info("camera clock", "model", p.Clock.String())
	}
	return ps, nil
}

// Run publishes until ctx is done, reconnecting after every failure. It returns nil when
// ctx is done.
func (p *Pusher) Run(ctx context.Context) error {
	p.player.begin(time.Now())
	backoff := p.minBackoff
	for {
		connected, err := p.publishOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if connected {
			backoff = p.minBackoff
		}
		p.log.Warn("publishing stopped; reconnecting", "error", err, "in", backoff)

		timer := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		}
		backoff = min(backoff*2, p.maxBackoff)
	}
}

// publishOnce connects, publishes until the connection fails or ctx is done, and tells
// whether the server accepted the stream.
func (p *Pusher) publishOnce(ctx context.Context) (bool, error) {
	protocol := p.protocol
	c := &gortsplib.Client{
		Protocol: &protocol,
		// packet loss and decode errors are the server's business; keep them out of the log.
		OnPacketsLost: func(uint64) {},
		OnDecodeError: func(error) {},
		// the player sends sender reports that carry the camera's own clocks.
		DisableRTCPSenderReports: true,
	}
	desc := p.player.newDescription()
	if err := c.StartRecording(p.url, desc); err != nil {
		return false, fmt.Errorf("start publishing: %w", err)
	}
	defer c.Close()
	p.log.Info("publishing", "transport", protocol.String())

	// the client records from the first packet on, so the video starts at the next keyframe.
	sink := &sessionSink{w: c, desc: desc}

	done := make(chan error, 1)
	go func() { done <- c.Wait() }()

	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case err := <-done:
			if err == nil {
				err = errors.New("connection closed")
			}
			return true, err
		case <-timer.C:
			if err := p.player.writeDue(time.Now(), sink); err != nil {
				return true, err
			}
			timer.Reset(min(time.Until(p.player.nextDue()), maxWait))
		}
	}
}

// redactURL hides the password (a token) of an RTSP URL for logs and errors.
func redactURL(raw string) string {
	u, err := base.ParseURL(raw)
	if err != nil || u.User == nil {
		if err != nil {
			return "(unparsable URL)"
		}
		return raw
	}
	if _, has := u.User.Password(); !has {
		return raw
	}
	return fmt.Sprintf("%s://%s:xxxxx@%s%s", u.Scheme, u.User.Username(), u.Host, u.Path)
}
