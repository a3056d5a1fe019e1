package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/liberrors"

	"fieldvideo/internal/cluster"
	"fieldvideo/internal/conf"
)

// puller keeps one camera connected: connect, DESCRIBE, SETUP, PLAY, write
// units; on any failure report it and retry with capped exponential backoff.
type puller struct {
	s        *Server
	cam      conf.Camera
	src      *source
	url      *base.URL
	redacted string   // camera URL without its password
	secrets  []string // strings that must never appear in logs or reasons
	log      *slog.Logger
}

func newPuller(s *Server, cam conf.Camera) (*puller, error) {
	if !conf.SourceName.MatchString(cam.Name) {
		return nil, fmt.Errorf("name %q: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", cam.Name)
	}
	u, err := base.ParseURL(cam.URL)
	if err != nil || u.Host == "" {
		// The parse error quotes the URL, password included: do not echo it.
		return nil, fmt.Errorf("camera %s: url is not a valid rtsp:// or rtsps:// URL (rtsp://user:password@host:port/path)", cam.Name)
	}
	switch cam.Transport {
	case "", "auto", "tcp", "udp":
	default:
		return nil, fmt.Errorf("camera %s: transport %q: use tcp, udp or auto", cam.Name, cam.Transport)
	}
	pl := &puller{s: s, cam: cam, url: u, redacted: redactURL((*url.URL)(u))}
	if u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			pl.secrets = append(pl.secrets, u.User.String()+"@", pw, url.QueryEscape(pw), url.PathEscape(pw))
		}
	}
	keep := func(_, raw string) string {
		if v, err := url.QueryUnescape(raw); err == nil && v != raw {
			pl.secrets = append(pl.secrets, v)
		}
		pl.secrets = append(pl.secrets, raw)
		return raw
	}
	mapSecrets(u.RawQuery, keep)
	mapPathSecrets((*url.URL)(u).EscapedPath(), keep)
	pl.log = s.log.With("source", cam.Name, "url", pl.redacted)
	return pl, nil
}

// redact removes the camera's credentials from a message. Passwords shorter
// than 4 characters are only removed as part of user:password@.
func (pl *puller) redact(msg string) string {
	for i, sec := range pl.secrets {
		if i > 0 && len(sec) < 4 {
			continue
		}
		if sec != "" {
			msg = strings.ReplaceAll(msg, sec, RedactMark)
		}
	}
	return msg
}

// run pulls until ctx is done.
func (pl *puller) run(ctx context.Context) {
	rp := pl.s.p.Reconnect
	base := rp.Min
	failures := 0
	lastReason := ""
	for {
		pl.s.reg.setConnecting(pl.src, pl.connectingReason(failures))
		liveFor, err := pl.session(ctx)
		if ctx.Err() != nil {
			pl.s.reg.setOffline(pl.src, stopReason(ctx))
			return
		}
		if liveFor > 0 {
			// A new outage: count failures and warn from scratch. The
			// delay starts over only after a long enough live period, so
			// that a flapping camera keeps backing off.
			failures, lastReason = 0, ""
			if liveFor >= rp.Max {
				base = rp.Min
			}
		}
		failures++
		delay := jitter(base)
		reason := pl.redact(err.Error())
		pl.s.reg.setFailed(pl.src, reason, failures, delay)
		level := slog.LevelWarn
		if reason == lastReason {
			level = slog.LevelDebug // the same failure again: logged once at warn
		}
		lastReason = reason
		pl.log.Log(ctx, level, "camera failed; retrying", "reason", reason, "failures", failures, "retry_in", delay.Round(time.Millisecond))
		base = min(base*2, rp.Max)

		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			pl.s.reg.setOffline(pl.src, stopReason(ctx))
			return
		case <-t.C:
		}
	}
}

// pullerStop is the cause a puller's context is cancelled with when its
// camera is changed, disabled or removed; any other cause is a shutdown.
type pullerStop struct{ reason string }

func (e *pullerStop) Error() string { return e.reason }

// stopReason says why a puller whose context is done stopped.
func stopReason(ctx context.Context) string {
	var ps *pullerStop
	if errors.As(context.Cause(ctx), &ps) {
		return ps.reason
	}
	if errors.Is(context.Cause(ctx), cluster.ErrLeaseLost) {
		return "handed over: " + cluster.ErrLeaseLost.Error()
	}
	return "ingest is shutting down"
}

func (pl *puller) connectingReason(failures int) string {
	if failures == 0 {
		return ""
	}
	return fmt.Sprintf("retrying (attempt %d)", failures+1)
}

// jitter returns a delay in [3/4 d, d], so that cameras behind one lost link
// do not all reconnect at once.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d - time.Duration(rand.Int64N(int64(d)/4+1))
}

// session runs one connection to the camera. It returns how long the camera
// was live and why the session ended (never nil).
func (pl *puller) session(ctx context.Context) (time.Duration, error) {
	src := pl.src
	var lastDecodeLog atomic.Int64
	c := &gortsplib.Client{
		Scheme:      pl.url.Scheme,
		Host:        pl.url.Host,
		ReadTimeout: pl.s.p.RTSP.ReadTimeout,
		OnTransportSwitch: func(err error) {
			pl.log.Info("camera transport switched", "detail", pl.redact(err.Error()))
		},
		OnPacketsLost: func(uint64) {}, // counted by the assemblers
		OnDecodeError: func(err error) {
			src.decodeErrs.Add(1)
			now := time.Now().UnixNano()
			if last := lastDecodeLog.Load(); now-last > int64(10*time.Second) && lastDecodeLog.CompareAndSwap(last, now) {
				pl.log.Warn("camera sent packets that cannot be decoded", "error", pl.redact(err.Error()))
			}
		},
	}
	switch pl.cam.Transport {
	case "tcp":
		c.Protocol = new(gortsplib.ProtocolTCP)
	case "udp":
		c.Protocol = new(gortsplib.ProtocolUDP)
	}
	if err := c.Start(); err != nil {
		return 0, fmt.Errorf("start RTSP client: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, c.Close)
	defer stop()

	desc, res, err := c.Describe(pl.url)
	if err != nil {
		return 0, fmt.Errorf("describe: %w", err)
	}
	in, skipped := selectTracks(desc)
	for _, sk := range skipped {
		pl.log.Warn("camera track skipped", "kind", sk.Kind, "reason", sk.Note)
	}
	if len(in) == 0 {
		return 0, fmt.Errorf("describe: the camera offers no usable track (%d skipped); set it to H.264 or H.265 video", len(skipped))
	}
	for _, it := range in {
		if _, err := c.Setup(desc.BaseURL, it.media, 0, 0); err != nil {
			return 0, fmt.Errorf("setup %s track: %w", it.track.Codec, err)
		}
	}
	var sdp []byte
	if res != nil {
		sdp = res.Body
	}
	ws := newTrackWriters(src, in, refClocks(desc, sdp))
	for i, it := range in {
		c.OnPacketRTP(it.media, it.format, ws[i].onPacket)
	}
	c.OnPacketRTCPAny(onRTCP(ws))
	pl.s.reg.prepare(src, in, skipped, ws)
	if _, err := c.Play(nil); err != nil {
		return 0, fmt.Errorf("play: %w", err)
	}
	transport := "unknown"
	if tr := c.Transport(); tr != nil && tr.Session != nil {
		transport = tr.Session.Protocol.String()
	}
	pl.s.reg.setLive(src, transport)
	start := time.Now()
	pl.log.Info("camera live", "tracks", len(in), "transport", transport)
	err = c.Wait()
	liveFor := time.Since(start)
	switch {
	case err == nil || errors.Is(err, io.EOF):
		err = errors.New("the camera closed the connection")
	case errors.As(err, new(liberrors.ErrClientTCPTimeout)), errors.As(err, new(liberrors.ErrClientUDPTimeout)):
		err = fmt.Errorf("no media for %s (rtsp.read_timeout): the camera stalled or the link is down (%w)",
			pl.s.p.RTSP.ReadTimeout, err)
	}
	return liveFor, fmt.Errorf("stream ended after %s: %w", liveFor.Round(time.Second), err)
}
