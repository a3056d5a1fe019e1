package testkit

import (
	"bytes"
	"cmp"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/liberrors"
	"github.com/pion/rtp"

	"fieldvideo/internal/stream"
)

// RTSPCameraParams describe a test camera.
type RTSPCameraParams struct {
	// User and Pass are the credentials the camera asks for; empty asks
	// for none.
	User, Pass string
	// Stream, when set, is served (its H.264 track, payload type 96): a
	// LiveStream gives a picture browsers decode. Else the camera sends a
	// synthetic H.264 pattern: an IDR every 25 frames, 100 frames a
	// second, parameter sets in the SDP only.
	Stream *stream.Stream
	// Addr is where the camera listens; empty is 127.0.0.1:0. A camera
	// restarted on the address of one stopped comes back where it was.
	Addr string
	// UDPRTPPort and UDPRTCPPort, when set, serve RTP over UDP on
	// 127.0.0.1 too; else the camera serves RTP over TCP only.
	UDPRTPPort, UDPRTCPPort int
}

// RTSPCamera is an RTSP server on 127.0.0.1 that plays one stream on any
// path, as an IP camera does, and counts the sessions that play it.
type RTSPCamera struct {
	p     RTSPCameraParams
	srv   *gortsplib.Server
	st    *gortsplib.ServerStream
	media *description.Media
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
	// paused stops the pattern while sessions stay up (a dead camera).
	paused atomic.Bool

	mu      sync.Mutex
	playing map[*gortsplib.ServerSession]bool
	plays   int // PLAY requests answered
	ended   int // sessions that had played and closed
	most    int // sessions playing at once, at most
}

// Parameter sets of the synthetic pattern (1280x720 constrained baseline).
var (
	cameraSPS = []byte{0x67, 0x42, 0xc0, 0x28, 0xd9, 0x00, 0x78, 0x02, 0x27, 0xe5, 0x84, 0x00,
		0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x60, 0xc9, 0x20}
	cameraPPS = []byte{0x68, 0xce, 0x3c, 0x80}
)

// StartRTSPCamera starts a test camera on 127.0.0.1:0; it stops when the
// test ends.
func StartRTSPCamera(t testing.TB, p RTSPCameraParams) *RTSPCamera {
	t.Helper()
	c := &RTSPCamera{p: p, stop: make(chan struct{}), done: make(chan struct{}), playing: map[*gortsplib.ServerSession]bool{}}
	c.srv = &gortsplib.Server{Handler: c, RTSPAddress: cmp.Or(p.Addr, "127.0.0.1:0")}
	if p.UDPRTPPort != 0 {
		c.srv.UDPRTPAddress = "127.0.0.1:" + strconv.Itoa(p.UDPRTPPort)
		c.srv.UDPRTCPAddress = "127.0.0.1:" + strconv.Itoa(p.UDPRTCPPort)
	}
	if err := c.srv.Start(); err != nil {
		t.Fatalf("start the test camera: %v", err)
	}
	forma := &format.H264{PayloadTyp: 96, PacketizationMode: 1}
	if p.Stream == nil {
		forma.SPS, forma.PPS = cameraSPS, cameraPPS
	}
	c.media = &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{forma}}
	// The server's goroutines read st when a request comes, which nothing orders after
	// this write but mu (a peer in another process may connect at once).
	st := &gortsplib.ServerStream{Server: c.srv, Desc: &description.Session{Medias: []*description.Media{c.media}}}
	if err := st.Initialize(); err != nil {
		c.srv.Close()
		t.Fatalf("start the test camera's stream: %v", err)
	}
	c.mu.Lock()
	c.st = st
	c.mu.Unlock()
	if p.Stream != nil {
		if err := c.relay(p.Stream); err != nil {
			c.st.Close()
			c.srv.Close()
			t.Fatal(err)
		}
	} else {
		enc, err := forma.CreateEncoder()
		if err != nil {
			t.Fatal(err)
		}
		go c.pattern(enc.Encode)
	}
	t.Cleanup(c.Close)
	return c
}

// relay serves the units of s.
func (c *RTSPCamera) relay(s *stream.Stream) error {
	r, err := s.AddReader(stream.ReaderParams{Name: "test-camera", OnUnit: func(d stream.Delivery) {
		if d.Unit.Track != 0 {
			return
		}
		for _, pk := range d.Unit.Packets {
			out := pk.Clone() // units are shared by every reader
			out.PayloadType = 96
			_ = c.st.WritePacketRTP(c.media, out)
		}
	}})
	if err != nil {
		return fmt.Errorf("test camera: read the stream: %w", err)
	}
	go func() {
		defer close(c.done)
		<-c.stop
		r.Close()
	}()
	return nil
}

// pattern sends the synthetic H.264 pattern until the camera stops.
func (c *RTSPCamera) pattern(encode func([][]byte) ([]*rtp.Packet, error)) {
	defer close(c.done)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	idr := append([]byte{0x65}, bytes.Repeat([]byte{0xab}, 3000)...)
	p := append([]byte{0x41}, bytes.Repeat([]byte{0xcd}, 300)...)
	for n := 0; ; n++ {
		select {
		case <-c.stop:
			return
		case <-tick.C:
		}
		if c.paused.Load() {
			continue
		}
		au := [][]byte{p}
		if n%25 == 0 {
			au = [][]byte{idr}
		}
		pkts, err := encode(au)
		if err != nil {
			continue
		}
		for _, pk := range pkts {
			pk.Timestamp = uint32(n * 900)
			_ = c.st.WritePacketRTP(c.media, pk)
		}
	}
}

// Pause stops (true) or resumes the synthetic pattern while the RTSP
// sessions stay up, as a camera whose encoder hangs.
func (c *RTSPCamera) Pause(on bool) { c.paused.Store(on) }

// Addr is the camera's host:port.
func (c *RTSPCamera) Addr() string { return c.srv.NetListener().Addr().String() }

// URL is the camera's address for path, with its credentials.
func (c *RTSPCamera) URL(path string) string {
	u := url.URL{Scheme: "rtsp", Host: c.Addr(), Path: "/" + path}
	if c.p.User != "" {
		u.User = url.UserPassword(c.p.User, c.p.Pass)
	}
	return u.String()
}

// Playing returns the sessions playing the camera now.
func (c *RTSPCamera) Playing() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.playing)
}

// Plays returns the PLAY requests answered so far, and Ended the sessions
// that played and have closed.
func (c *RTSPCamera) Plays() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.plays
}

// MostPlaying returns the most sessions that played the camera at once.
func (c *RTSPCamera) MostPlaying() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.most
}

// Ended returns how many sessions that played have closed.
func (c *RTSPCamera) Ended() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ended
}

// Close stops the camera; its sessions end.
func (c *RTSPCamera) Close() {
	c.once.Do(func() {
		close(c.stop)
		<-c.done
		c.st.Close()
		c.srv.Close()
	})
}

func (c *RTSPCamera) auth(conn *gortsplib.ServerConn, req *base.Request) (*base.Response, error) {
	if c.p.User == "" || conn.VerifyCredentials(req, c.p.User, c.p.Pass) {
		return nil, nil
	}
	return &base.Response{StatusCode: base.StatusUnauthorized}, liberrors.ErrServerAuth{}
}

// stream returns the stream served, or nil before it is set up.
func (c *RTSPCamera) stream() *gortsplib.ServerStream {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}

// OnDescribe implements gortsplib.ServerHandlerOnDescribe.
func (c *RTSPCamera) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if res, err := c.auth(ctx.Conn, ctx.Request); res != nil {
		return res, nil, err
	}
	st := c.stream()
	if st == nil {
		return &base.Response{StatusCode: base.StatusServiceUnavailable}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, st, nil
}

// OnSetup implements gortsplib.ServerHandlerOnSetup.
func (c *RTSPCamera) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if res, err := c.auth(ctx.Conn, ctx.Request); res != nil {
		return res, nil, err
	}
	st := c.stream()
	if st == nil {
		return &base.Response{StatusCode: base.StatusServiceUnavailable}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, st, nil
}

// OnPlay implements gortsplib.ServerHandlerOnPlay.
func (c *RTSPCamera) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	c.mu.Lock()
	c.playing[ctx.Session] = true
	c.plays++
	c.most = max(c.most, len(c.playing))
	c.mu.Unlock()
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnSessionClose implements gortsplib.ServerHandlerOnSessionClose.
func (c *RTSPCamera) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.playing[ctx.Session] {
		delete(c.playing, ctx.Session)
		c.ended++
	}
}
