package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
)

// maxCameras bounds ServerParams.Cameras.
const maxCameras = 64

// ServerParams configures a Server.
type ServerParams struct {
	// Listen is the RTSP (TCP) address, such as "127.0.0.1:8555" or "127.0.0.1:0".
	Listen string
	// UDPRTPAddress and UDPRTCPAddress, when both set, also offer the UDP transport
	// (for example ":8000" and ":8001"). Leave them empty for TCP only.
	UDPRTPAddress  string
	UDPRTCPAddress string
	// Cameras is how many camera paths to serve: /cam1 … /camN.
	Cameras int
	// Clip is what the cameras play; nil plays the embedded clip.
	Clip *Clip
	// Clocks are the clock models of /cam1, /cam2 …; a camera beyond the list has exact
	// clocks (the zero ClockModel).
	Clocks []ClockModel
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Server is a set of demo RTSP cameras: each path /camN plays the clip in a loop, starting
// at its own offset, to every reader that connects, as an IP camera does. Every reader's
// video starts at a keyframe.
type Server struct {
	log     *slog.Logger
	rtsp    *gortsplib.Server
	cameras []*camera
	byPath  map[string]*camera

	mu        sync.RWMutex // guards ready
	ready     bool
	closeOnce sync.Once
}

// NewServer starts listening and sets up the cameras. Frames flow once Run is called.
func NewServer(p ServerParams) (*Server, error) {
	if p.Listen == "" {
		return nil, errors.New("democam: the listen address is empty: use host:port, such as 127.0.0.1:8555")
	}
	if p.Cameras < 1 || p.Cameras > maxCameras {
		return nil, fmt.Errorf("democam: %d cameras requested: use 1 to %d", p.Cameras, maxCameras)
	}
	if (p.UDPRTPAddress == "") != (p.UDPRTCPAddress == "") {
		return nil, errors.New("democam: set both UDP RTP and RTCP addresses, or neither")
	}
	clip := p.Clip
	if clip == nil {
		var err error
		clip, err = EmbeddedClip()
		if err != nil {
			return nil, fmt.Errorf("democam: load the embedded clip: %w", err)
		}
	}
	logger := p.Logger
	if logger == nil {
		logger = slog.Default()
	}

	s := &Server{
		log:    logger.With("component", "democam"),
		byPath: make(map[string]*camera, p.Cameras),
	}
	for i := range p.Cameras {
		offset := clip.Duration() * time.Duration(i) / time.Duration(p.Cameras)
		var clock ClockModel
		if i < len(p.Clocks) {
			clock = p.Clocks[i]
		}
		pl, err := newPlayer(clip, offset, clock)
		if err != nil {
			return nil, fmt.Errorf("democam: camera %d: %w", i+1, err)
		}
		c := newCamera(fmt.Sprintf("cam%d", i+1), pl, logger)
		if clock != (ClockModel{}) {
			c.log.Info("camera clock", "model", clock.String())
		}
		s.cameras = append(s.cameras, c)
		s.byPath["/"+c.name] = c
	}

	s.rtsp = &gortsplib.Server{
		Handler:        &serverHandler{s: s},
		RTSPAddress:    p.Listen,
		UDPRTPAddress:  p.UDPRTPAddress,
		UDPRTCPAddress: p.UDPRTCPAddress,
		// the players send sender reports that carry each camera's own clocks.
		DisableRTCPSenderReports: true,
	}
	if err := s.rtsp.Start(); err != nil {
		return nil, fmt.Errorf("democam: listen for RTSP on %s: %w (is another program using the port?)", p.Listen, err)
	}

	for _, c := range s.cameras {
		if err := c.initialize(s.rtsp); err != nil {
			s.Close()
			return nil, fmt.Errorf("democam: set up %s: %w", c.name, err)
		}
	}

	s.mu.Lock()
	s.ready = true
	s.mu.Unlock()
	return s, nil
}

// Addr is the address the RTSP server listens on, with the real port when the requested
// port was 0.
func (s *Server) Addr() string {
	return s.rtsp.NetListener().Addr().String()
}

// URL returns the RTSP URL of camera n (1-based).
func (s *Server) URL(n int) string {
	return fmt.Sprintf("rtsp://%s/cam%d", s.Addr(), n)
}

// Run plays the cameras until ctx is done or the RTSP server fails, then closes the server.
func (s *Server) Run(ctx context.Context) error {
	defer s.Close()

	serverErr := make(chan error, 1)
	go func() { serverErr <- s.rtsp.Wait() }()

	now := time.Now()
	for _, c := range s.cameras {
		c.player.begin(now)
	}
	s.log.Info("demo cameras ready", "address", s.Addr(), "cameras", len(s.cameras),
		"first", s.URL(1))

	// wake up when the next frame of any camera is due, so that frames leave on time.
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-serverErr:
			return fmt.Errorf("democam: the RTSP server stopped: %w", err)
		case <-timer.C:
			now := time.Now()
			next := now.Add(maxWait)
			for _, c := range s.cameras {
				if err := c.player.writeDue(now, c); err != nil {
					return fmt.Errorf("democam: %s: %w", c.name, err)
				}
				if due := c.player.nextDue(); due.Before(next) {
					next = due
				}
			}
			timer.Reset(time.Until(next))
		}
	}
}

// Close stops the server and disconnects every reader. It is safe to call more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.ready = false
		s.mu.Unlock()
		s.rtsp.Close()
		for _, c := range s.cameras {
			c.close()
		}
	})
}

// lookup returns the camera serving path, or nil.
func (s *Server) lookup(path string) *camera {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.ready {
		return nil
	}
	return s.byPath[path]
}

// serverHandler answers RTSP requests for a Server.
type serverHandler struct {
	s *Server
}

func (h *serverHandler) camera(path, method string, conn *gortsplib.ServerConn) (*camera, *base.Response, error) {
	c := h.s.lookup(path)
	if c == nil {
		h.s.log.Warn("unknown camera path", "method", method, "path", path,
			"remote", conn.NetConn().RemoteAddr().String())
		return nil, &base.Response{StatusCode: base.StatusNotFound},
			fmt.Errorf("no camera at %q: use /cam1 to /cam%d", path, len(h.s.cameras))
	}
	return c, &base.Response{StatusCode: base.StatusOK}, nil
}

// OnDescribe implements gortsplib.ServerHandlerOnDescribe.
func (h *serverHandler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	c, res, err := h.camera(ctx.Path, "DESCRIBE", ctx.Conn)
	if c == nil {
		return res, nil, err
	}
	return res, c.describe, nil
}

// OnSetup implements gortsplib.ServerHandlerOnSetup.
func (h *serverHandler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	c, res, err := h.camera(ctx.Path, "SETUP", ctx.Conn)
	if c == nil {
		return res, nil, err
	}
	st, err := c.readerStream(h.s.rtsp, ctx.Session)
	if err != nil {
		return &base.Response{StatusCode: base.StatusInternalServerError}, nil, err
	}
	return res, st, nil
}

// OnPlay implements gortsplib.ServerHandlerOnPlay.
func (h *serverHandler) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	h.s.log.Info("reader started", "path", ctx.Path, "remote", ctx.Conn.NetConn().RemoteAddr().String())
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnAnnounce implements gortsplib.ServerHandlerOnAnnounce: demo cameras only send.
func (h *serverHandler) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusMethodNotAllowed},
		fmt.Errorf("%s is a demo camera and accepts no publishing", ctx.Path)
}

// OnSessionClose implements gortsplib.ServerHandlerOnSessionClose.
func (h *serverHandler) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	for _, c := range h.s.cameras {
		c.removeReader(ctx.Session)
	}
	h.s.log.Info("session closed", "path", ctx.Session.Path(), "reason", ctx.Error)
}
