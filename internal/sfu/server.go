// Package sfu is the selective forwarding unit: it takes sources published by
// WHIP, fans each out through a stream hub, and serves viewers by WHEP, with
// the source list, health and metrics endpoints and the web console.
package sfu

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/conf"
	"fieldvideo/internal/metrics"
	"fieldvideo/internal/netlimit"
	"fieldvideo/internal/recorder"
	rooms "fieldvideo/internal/session"
	"fieldvideo/internal/whip"
)

// Params configures a Server.
type Params struct {
	Conf     conf.SFU
	Verifier *auth.Verifier
	Audit    *audit.Log
	Log      *slog.Logger
	// Console holds the web console's static files; nil serves none.
	Console fs.FS
	// Recorder records the sources published here, except those whose
	// publisher records them itself (auth.Claims.Recorded); nil records
	// nothing.
	Recorder *recorder.Recorder
	// Secret is the auth secret, from which TURN credentials are derived;
	// nil loads it from Conf.Auth when the embedded TURN server is on.
	Secret []byte
	// Listener, when set, is the HTTP listener (else Conf.HTTP.Address is
	// listened on).
	Listener net.Listener
	// Routes, when set, adds routes to the SFU's (the APIs every process
	// serves: revocations, holds, the recording state); they are audited
	// like the SFU's own. Metrics adds to /metrics.
	Routes  func(*http.ServeMux)
	Metrics func(*metrics.Writer)
	// Health, when set, answers /healthz (node.ServeHealth: draining or
	// out of the cluster is 503); else /healthz is always ok.
	Health http.HandlerFunc
	// Locate, when set (in a cluster), names the SFU node that publishes
	// a source and the base URL of its HTTP API, or "" when none does: a
	// viewer of a source not published here gets it relayed from there.
	// It prefers another node than avoid (one just lost). RelayToken is
	// the token relays view other nodes' sources with.
	Locate func(source, avoid string) (node, url string)
	// PlaceRoom and RoomClosed, when set (a cluster), give each call room
	// one home node (session.Params.Place and Closed).
	PlaceRoom  func(room string) (string, error)
	RoomClosed func(room string)
	// RoomUnplaced is told of a room joined here although PlaceRoom failed
	// (the cluster could not be asked): the caller settles its home later.
	RoomUnplaced func(room string)
	// Remote, when set, names the sources published on the other SFU
	// nodes (source → node): GET /v1/sources lists them too, live, with
	// the node they would be relayed from. Publishes tells whether a node
	// publishes a source. Both are set with Locate.
	Remote     func() map[string]string
	Publishes  func(node, source string) bool
	RelayToken func() (string, error)
	// RemoteTags, when set, returns the tags the other nodes hold (their
	// LocalTags, merged by source): GET /v1/sources lists a source with
	// them where this node's own are missing or older.
	RemoteTags func() map[string]SourceTags
}

// Server is the SFU.
type Server struct {
	p   Params
	log *slog.Logger
	api *webrtc.API
	// viewAPI makes WHEP viewers' peer connections, which only send
	viewAPI *webrtc.API
	mux     ice.UDPMux
	// media is the shared media socket the mux reads and writes
	media *whip.BatchConn
	ln    net.Listener
	http  *http.Server

	calls *rooms.Manager
	turn  *turnServer // nil when off

	// relayAPI makes the peer connections of relays (clients of other
	// nodes, on ports of their own).
	relayAPI *webrtc.API

	mu       sync.Mutex
	sources  map[string]*source
	sessions map[string]*session
	relays   map[string]*sourceRelay
	// pending counts sessions answered but not yet connected, by remote IP
	// address, and pendingTotal all of them.
	pending      map[string]int
	pendingTotal int

	// forward measures the time each unit spends in the SFU, from its first
	// packet's arrival to its last packet's write to a viewer.
	forward *metrics.Histogram

	closeOnce sync.Once
	done      chan struct{}
}

// New opens the HTTP and UDP listeners and returns the server; Run serves.
func New(p Params) (*Server, error) {
	if err := p.Conf.Validate(); err != nil {
		return nil, err
	}
	if p.Verifier == nil || p.Audit == nil {
		return nil, errors.New("sfu: Verifier and Audit are required")
	}
	if p.Log == nil {
		p.Log = slog.Default()
	}
	s := &Server{
		p: p, log: p.Log.With("component", "sfu"),
		sources: map[string]*source{}, sessions: map[string]*session{}, pending: map[string]int{}, relays: map[string]*sourceRelay{},
		done: make(chan struct{}), forward: metrics.NewHistogram(metrics.LatencyBuckets),
	}
	udp, err := net.ListenPacket("udp", p.Conf.WebRTC.UDPAddress)
	if err != nil {
		return nil, fmt.Errorf("webrtc.udp_address %s: %w", p.Conf.WebRTC.UDPAddress, err)
	}
	if r, w := whip.SizeSocketBuffers(udp); r < whip.SocketBuffer || w < whip.SocketBuffer {
		s.log.Warn("the media socket's buffers are smaller than asked: packets are dropped when the server pauses; raise net.core.rmem_max and net.core.wmem_max",
			"receive_bytes", r, "send_bytes", w, "asked", whip.SocketBuffer)
	}
	s.media = whip.NewBatchConn(udp.(*net.UDPConn))
	s.mux = webrtc.NewICEUDPMux(nil, s.media)
	ap := whip.APIParams{
		UDPMux: s.mux, Loopback: p.Conf.WebRTC.Loopback, AdvertiseIPs: p.Conf.WebRTC.AdvertiseIPs,
		LoopbackOnly: isLoopback(udp.LocalAddr()),
	}
	s.api, err = whip.NewAPI(ap)
	if err == nil {
		ap.SendOnly = true
		s.viewAPI, err = whip.NewAPI(ap)
	}
	if err != nil {
		s.mux.Close()
		return nil, err
	}
	if p.Locate != nil {
		if p.RelayToken == nil || p.Remote == nil || p.Publishes == nil {
			s.mux.Close()
			return nil, errors.New("sfu: Locate needs RelayToken, Remote and Publishes")
		}
		if s.relayAPI, err = whip.NewAPI(whip.APIParams{Loopback: p.Conf.WebRTC.Loopback, LoopbackOnly: isLoopback(udp.LocalAddr())}); err != nil {
			s.mux.Close()
			return nil, err
		}
	}
	if err := s.startCalls(); err != nil {
		s.mux.Close()
		return nil, err
	}
	ln := p.Listener
	if ln == nil {
		ln, err = net.Listen("tcp", p.Conf.HTTP.Address)
	}
	if err != nil {
		s.mux.Close()
		if s.turn != nil {
			s.turn.close()
		}
		return nil, fmt.Errorf("http.address %s: %w", p.Conf.HTTP.Address, err)
	}
	s.ln = ln
	s.http = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ConnContext:       netlimit.ConnContext,
	}
	return s, nil
}

func isLoopback(a net.Addr) bool {
	u, ok := a.(*net.UDPAddr)
	return ok && u.IP.IsLoopback()
}

// HTTPAddr returns the address the HTTP listener is bound to.
func (s *Server) HTTPAddr() string { return s.ln.Addr().String() }

// UDPAddr returns the address of the shared ICE UDP port.
func (s *Server) UDPAddr() string { return s.media.LocalAddr().String() }

// Run serves until ctx is done or Close is called.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() {
		var err error
		if s.p.Conf.HTTP.TLSCert != "" {
			err = s.http.ServeTLS(s.ln, s.p.Conf.HTTP.TLSCert, s.p.Conf.HTTP.TLSKey)
		} else {
			err = s.http.Serve(s.ln)
		}
		errc <- err
	}()
	go s.measure(ctx)
	go s.calls.Run(ctx)
	if s.p.Locate != nil {
		go s.keepRelayed(ctx)
	}
	s.log.Info("listening", "http", s.HTTPAddr(), "ice_udp", s.UDPAddr())
	select {
	case <-ctx.Done():
		s.Close()
		return nil
	case <-s.done:
		return nil
	case err := <-errc:
		s.Close()
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}

// Close ends every session and stops listening.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = s.http.Shutdown(ctx)
		s.mu.Lock()
		sessions := make([]*session, 0, len(s.sessions))
		for _, ss := range s.sessions {
			sessions = append(sessions, ss)
		}
		s.mu.Unlock()
		for _, ss := range sessions {
			ss.close("server shutting down")
		}
		s.calls.Close()
		if s.turn != nil {
			s.turn.close()
		}
		s.mu.Lock()
		for _, src := range s.sources {
			if src.stream != nil {
				src.stream.Close()
			}
		}
		s.mu.Unlock()
		s.mux.Close()
	})
}

// measure updates per-source bitrates once a second.
func (s *Server) measure(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.done:
			return
		case now := <-t.C:
			dt := now.Sub(last).Seconds()
			last = now
			s.mu.Lock()
			for _, src := range s.sources {
				src.sample(dt)
			}
			s.mu.Unlock()
		}
	}
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
