package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	rtspauth "github.com/bluenviron/gortsplib/v5/pkg/auth"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/cluster"
	"fieldvideo/internal/conf"
	"fieldvideo/internal/netlimit"
	"fieldvideo/internal/stream"
)

// Defaults applied to zero Params fields.
const (
	defaultReadTimeout    = 10 * time.Second
	defaultRequestTimeout = 5 * time.Second
	defaultMaxConns       = 1000
	defaultMaxConnsPerIP  = 50
	defaultReconnectMin   = time.Second
	defaultReconnectMax   = 30 * time.Second
	// writeQueueSize is gortsplib's per-player packet queue; a keyframe of a
	// high-bitrate camera is a few hundred packets.
	writeQueueSize = 1024
	// fileHeadroom is the descriptors kept for all but RTSP connections:
	// camera pulls, the uplink, recording, the audit log, the API.
	fileHeadroom = 256
)

// Params configures a Server.
type Params struct {
	// RTSP is the listener for pushes and players. Empty UDP addresses mean
	// TCP only; zero timeouts and limits take the defaults of
	// conf.DefaultIngest.
	RTSP conf.RTSP
	// Cameras are the configuration's cameras (cameras: in the YAML).
	// With those of CamerasFile they are pulled for the life of the server,
	// except disabled ones; the cameras API (CameraRoutes, AddCamera,
	// UpdateCamera, RemoveCamera) changes the set at run time.
	Cameras []conf.Camera
	// CamerasFile keeps the cameras added at run time and the run-time
	// changes of the configuration's cameras (JSON, written atomically);
	// empty keeps them in memory only.
	CamerasFile string
	// MaxCameras bounds the cameras the API may bring the set to; 0 means
	// DefaultMaxCameras.
	MaxCameras int
	// Reconnect bounds the backoff between attempts to reach a camera.
	Reconnect conf.Reconnect
	// Stream configures every source's hub (GOP cache, keyframe interval)
	// and the queue of the RTSP output's reader.
	Stream conf.Stream
	// Verifier checks the tokens of publishers and players. Required.
	Verifier *auth.Verifier
	// Audit receives one event per RTSP request that grants or refuses
	// access, and one per publish or play session that ends. Required.
	Audit *audit.Log
	// Logger; nil means slog.Default().
	Logger *slog.Logger

	// OnLive is called each time a source goes live (its tracks are set on
	// s), and OnOffline each time it stops being live (camera lost,
	// publisher left, shutdown). Calls for one source come in order, from a
	// goroutine that holds no lock of this package, so they may call back
	// into the Server (but not Close). Calls for different sources may run
	// concurrently. Either may be nil.
	OnLive    func(name string, s *stream.Stream)
	OnOffline func(name string)
	// OnRemoved is called, after its last OnOffline, for a camera removed
	// for good (RemoveCamera) and for a pushed source pruned (see
	// MaxIdlePushes), on a goroutine of its own. May be nil.
	OnRemoved func(name string)
	// MaxIdlePushes bounds the pushed sources without a publisher that one
	// publisher (a token subject) keeps listed; past it the oldest leave the
	// list, their recordings kept. Zero means 32.
	MaxIdlePushes int

	// Leases, when set, shares the cameras with the other ingests of a
	// cluster: a camera is pulled only while this ingest holds its lease
	// (cluster.Cluster); meanwhile it is on standby, naming the holder.
	Leases Leaser
}

// Leaser grants the right to pull a camera to one ingest at a time
// (cluster.Cluster.Hold).
type Leaser interface {
	Hold(ctx context.Context, name string, run func(context.Context), wait func(cluster.Holder))
}

// Server is the RTSP ingest: it pulls cameras, accepts pushes and serves
// every source to RTSP players.
type Server struct {
	p     Params
	log   *slog.Logger
	reg   *registry
	rtsp  *gortsplib.Server
	conns *netlimit.Listener // the RTSP listener, set by rtsp.Start

	cams *cameraSet

	runOnce   sync.Once
	closeOnce sync.Once
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup // pullers
}

// New validates p, registers the cameras and starts listening for RTSP
// (Addr is valid on return). Cameras are pulled once Run is called.
func New(p Params) (*Server, error) {
	if p.Verifier == nil {
		return nil, errors.New("ingest: a token verifier is required (auth.NewVerifier)")
	}
	if p.Audit == nil {
		return nil, errors.New("ingest: an audit log is required (audit.Open, or audit.Discard in tests)")
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	if p.RTSP.Address == "" {
		return nil, errors.New("ingest: rtsp.address is empty; set host:port, e.g. :8554")
	}
	if (p.RTSP.UDPRTPAddress == "") != (p.RTSP.UDPRTCPAddress == "") {
		return nil, errors.New("ingest: set both rtsp.udp_rtp_address and rtsp.udp_rtcp_address, or neither (TCP only)")
	}
	if p.RTSP.ReadTimeout <= 0 {
		p.RTSP.ReadTimeout = defaultReadTimeout
	}
	if p.RTSP.RequestTimeout <= 0 {
		p.RTSP.RequestTimeout = defaultRequestTimeout
	}
	if p.RTSP.MaxConnections <= 0 {
		p.RTSP.MaxConnections = defaultMaxConns
	}
	if p.RTSP.MaxConnectionsPerAddress <= 0 {
		p.RTSP.MaxConnectionsPerAddress = min(defaultMaxConnsPerIP, p.RTSP.MaxConnections)
	}
	if p.Reconnect.Min <= 0 {
		p.Reconnect.Min = defaultReconnectMin
	}
	if p.Reconnect.Max < p.Reconnect.Min {
		p.Reconnect.Max = max(p.Reconnect.Min, defaultReconnectMax)
	}
	if p.MaxCameras <= 0 {
		p.MaxCameras = DefaultMaxCameras
	}
	log := p.Logger.With("component", "ingest")
	s := &Server{p: p, log: log, reg: newRegistry(log, p.Stream, p.OnLive, p.OnOffline)}
	var err error
	if s.cams, err = newCameraSet(s, p.Cameras, p.CamerasFile, p.MaxCameras); err != nil {
		return nil, err
	}

	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.rtsp = &gortsplib.Server{
		Handler:        newRTSPHandler(s),
		RTSPAddress:    p.RTSP.Address,
		UDPRTPAddress:  p.RTSP.UDPRTPAddress,
		UDPRTCPAddress: p.RTSP.UDPRTCPAddress,
		ReadTimeout:    p.RTSP.ReadTimeout,
		WriteQueueSize: writeQueueSize,
		// The token is the password and must be recovered to be verified,
		// which only Basic allows.
		AuthMethods: []rtspauth.VerifyMethod{rtspauth.VerifyMethodBasic},
		Listen:      s.listen,
	}
	if err := s.rtsp.Start(); err != nil {
		s.cancel()
		return nil, fmt.Errorf("ingest: start the RTSP server (rtsp.address %s, udp %q/%q): %w", p.RTSP.Address, p.RTSP.UDPRTPAddress, p.RTSP.UDPRTCPAddress, err)
	}
	log.Info("RTSP server listening", "address", s.Addr(), "udp", p.RTSP.UDPRTPAddress != "", "cameras", s.cams.count(),
		"max_connections", p.RTSP.MaxConnections, "max_connections_per_address", p.RTSP.MaxConnectionsPerAddress,
		"request_timeout", p.RTSP.RequestTimeout)
	if soft, _, err := netlimit.FileLimit(); err == nil && soft < uint64(p.RTSP.MaxConnections)+fileHeadroom {
		log.Warn("the open-file limit leaves too few descriptors for rtsp.max_connections: connections will fail to be accepted (EMFILE) before the limit is reached",
			"open_file_limit", soft, "max_connections", p.RTSP.MaxConnections,
			"fix", "raise the limit (ulimit -n, LimitNOFILE=) or lower rtsp.max_connections")
	}
	return s, nil
}

// listen opens the RTSP listener: connection limits, request deadlines,
// and accept errors (EMFILE) waited out instead of ending the server.
func (s *Server) listen(network, address string) (net.Listener, error) {
	ln, err := net.Listen(network, address)
	if err != nil {
		return nil, err
	}
	s.conns = netlimit.NewListener(ln, netlimit.Params{
		MaxConns:        s.p.RTSP.MaxConnections,
		MaxConnsPerAddr: s.p.RTSP.MaxConnectionsPerAddress,
		RequestTimeout:  s.p.RTSP.RequestTimeout,
		Logger:          s.log.With("listener", "rtsp"),
	})
	return newTunnelListener(s.conns, s.p.RTSP.RequestTimeout), nil
}

// Connections returns the counters of the RTSP listener: open connections,
// and those refused over the limits or closed for sending no request.
func (s *Server) Connections() netlimit.Stats { return s.conns.Stats() }

// Addr returns the RTSP listener's address, with the actual port.
func (s *Server) Addr() string {
	return s.rtsp.NetListener().Addr().String()
}

// Run pulls the cameras and serves until ctx is done or the RTSP server
// fails, then closes the server. It returns nil after ctx is done.
func (s *Server) Run(ctx context.Context) error {
	s.startPullers()
	failed := make(chan error, 1)
	go func() { failed <- s.rtsp.Wait() }()
	var err error
	select {
	case <-ctx.Done():
	case <-s.ctx.Done():
	case e := <-failed:
		if s.ctx.Err() == nil {
			err = fmt.Errorf("ingest: RTSP server stopped: %w", e)
		}
	}
	s.Close()
	return err
}

func (s *Server) startPullers() {
	s.runOnce.Do(func() {
		if s.ctx.Err() != nil {
			return
		}
		s.cams.start()
	})
}

// Close stops the pullers, disconnects publishers and players, delivers the
// last OnOffline calls and closes every stream (its readers end). It must
// not be called from OnLive or OnOffline.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.runOnce.Do(func() {}) // no pullers after Close
		s.cams.close()
		s.cancel()
		s.wg.Wait()
		s.rtsp.Close()
		for _, src := range s.reg.all() {
			s.reg.mu.Lock()
			o := src.out
			src.out = nil
			s.reg.mu.Unlock()
			if o != nil {
				o.close()
			}
			s.reg.setOffline(src, "ingest is shutting down")
		}
		s.reg.closeNotify()
		for _, src := range s.reg.all() {
			src.stream.Close()
		}
		s.log.Info("RTSP server closed")
	})
}

// Sources returns a snapshot of every source, sorted by name.
func (s *Server) Sources() []SourceInfo { return s.reg.snapshot() }

// Source returns one source's snapshot.
func (s *Server) Source(name string) (SourceInfo, bool) {
	src := s.reg.get(name)
	if src == nil {
		return SourceInfo{}, false
	}
	return s.reg.info(src), true
}

// Stream returns a source's stream. Streams of pulled cameras exist from
// New or AddCamera until RemoveCamera; those of pushed sources from their
// first ANNOUNCE.
func (s *Server) Stream(name string) (*stream.Stream, bool) {
	src := s.reg.get(name)
	if src == nil {
		return nil, false
	}
	return src.stream, true
}

// output returns the RTSP output of a live source, creating it on first use.
func (s *Server) output(src *source) (*rtspOut, error) {
	s.reg.mu.Lock()
	defer s.reg.mu.Unlock()
	if src.state != StateLive || len(src.inputs) == 0 {
		return nil, errNotLive
	}
	if src.out != nil {
		return src.out, nil
	}
	o, err := newRTSPOut(s.rtsp, src, src.inputs, s.p.Stream.QueueSize, s.log, s.outputEnded)
	if err != nil {
		return nil, err
	}
	src.out = o
	return o, nil
}

var errNotLive = errors.New("not live")

// outputEnded forgets an output whose reader ended by itself.
func (s *Server) outputEnded(o *rtspOut) {
	s.reg.mu.Lock()
	defer s.reg.mu.Unlock()
	if o.src.out == o {
		o.src.out = nil
	}
}

// playerJoined counts a player session of o.
func (s *Server) playerJoined(o *rtspOut) {
	s.reg.mu.Lock()
	defer s.reg.mu.Unlock()
	o.players++
}

// playerLeft uncounts a player session of o; the current output of a source
// nobody plays any more is closed, so that it stops costing a reader.
func (s *Server) playerLeft(o *rtspOut) {
	s.reg.mu.Lock()
	o.players--
	last := o.players <= 0 && o.src.out == o
	if last {
		o.src.out = nil
	}
	s.reg.mu.Unlock()
	if last {
		o.close()
	}
}

// redactURL returns u with its password and the secrets in its query hidden, for
// logs and the API (RedactURL).
func redactURL(u *url.URL) string { return RedactURL(u.String()) }
