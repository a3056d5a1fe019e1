package ingest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/pion/rtp"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/testkit"
)

// newSlowTestServer starts a server whose request and read timeouts are
// longer than any wait of a test, so that a connection the server closes
// within the wait was closed for what it sent, not for its time.
func newSlowTestServer(t *testing.T) *testEnv {
	t.Helper()
	return newTestServer(t, func(p *Params) {
		p.RTSP.RequestTimeout, p.RTSP.ReadTimeout = 3*waitTimeout, 3*waitTimeout
	})
}

// waitClosed reads nc until the server closes it, and returns what it
// read; it fails the test when nc is still open after waitTimeout.
func waitClosed(t *testing.T, nc net.Conn) []byte {
	t.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(waitTimeout))
	var got bytes.Buffer
	_, err := io.Copy(&got, nc)
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		t.Fatalf("the server kept the connection open for %s; it sent %q", waitTimeout, got.Bytes()[:min(got.Len(), 200)])
	}
	return got.Bytes()
}

// TestTunnelHeadBounded: an HTTP request head that goes on and on, on the
// RTSP port, is answered 431 and its connection closed once it is longer
// than maxTunnelHeader, whatever it would open; none of it reaches the
// RTSP server, which reads a head with no bound.
func TestTunnelHeadBounded(t *testing.T) {
	env := newSlowTestServer(t)
	for _, head := range []string{
		"GET /x HTTP/1.1\r\n",
		"GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Protocol: rtsp.onvif.org\r\n",
		"POST /cam HTTP/1.1\r\nContent-Type: " + tunnelMime + "\r\nX-Sessioncookie: c1\r\n",
		"GET /cam HTTP/1.1\n", // lines ended by LF alone
	} {
		t.Run(strings.Fields(head)[0]+" "+strings.Fields(head)[1], func(t *testing.T) {
			nc, err := net.Dial("tcp", env.host)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			var sent atomic.Int64
			go func() {
				if _, err := io.WriteString(nc, head); err != nil {
					return
				}
				line := []byte("X-Filler: " + strings.Repeat("a", 1000) + "\r\n")
				for {
					n, err := nc.Write(line)
					sent.Add(int64(n))
					if err != nil {
						return
					}
				}
			}()
			got := waitClosed(t, nc)
			if !bytes.HasPrefix(got, []byte("HTTP/1.1 431 ")) {
				t.Fatalf("after %d bytes of head the server answered %q, want 431", sent.Load(), got[:min(len(got), 200)])
			}
			testkit.WaitFor(t, waitTimeout, "the listener to count the connection closed", func() bool {
				return env.srv.Connections().Open == 0
			})
		})
	}
}

// wsUpgrade opens an RTSP-over-WebSocket connection by hand and returns it
// once the server switched protocols.
func wsUpgrade(t *testing.T, host string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	fmt.Fprintf(nc, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: rtsp.onvif.org\r\n\r\n", host)
	_ = nc.SetReadDeadline(time.Now().Add(waitTimeout))
	br := bufio.NewReader(nc)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("the WebSocket upgrade: %v", err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols || br.Buffered() != 0 {
		t.Fatalf("the WebSocket upgrade: %d, %d bytes more", res.StatusCode, br.Buffered())
	}
	return nc
}

// wsFrameHeader is the header of a masked client frame (RFC 6455, 5.2).
func wsFrameHeader(fin bool, opcode byte, length uint64) []byte {
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	var h []byte
	switch {
	case length < 126:
		h = []byte{b0, 0x80 | byte(length)}
	case length <= 0xffff:
		h = binary.BigEndian.AppendUint16([]byte{b0, 0x80 | 126}, uint16(length))
	default:
		h = binary.BigEndian.AppendUint64([]byte{b0, 0x80 | 127}, length)
	}
	return append(h, 1, 2, 3, 4)
}

// TestWebSocketMessageBounded: over RTSP over WebSocket, with no token, a
// frame that declares a message of ~1.5 GB, or frames of one message that
// add up past maxTunnelMessage, close the connection as soon as the header
// that crosses the bound is read; the payload after it is never read.
func TestWebSocketMessageBounded(t *testing.T) {
	env := newSlowTestServer(t)
	const part = maxTunnelMessage * 3 / 5
	cases := []struct {
		name string
		send []byte
	}{
		{"one frame of 1.5 GB", append(wsFrameHeader(true, 2, 1500<<20), make([]byte, 4096)...)},
		{"two fragments past the bound", bytes.Join([][]byte{wsFrameHeader(false, 2, part), make([]byte, part),
			wsFrameHeader(true, 0, part), make([]byte, 4096)}, nil)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nc := wsUpgrade(t, env.host)
			go func() { _, _ = nc.Write(tc.send) }() // fails once the server closes
			waitClosed(t, nc)
			testkit.WaitFor(t, waitTimeout, "the listener to count the connection closed", func() bool {
				return env.srv.Connections().Open == 0
			})
		})
	}
}

// TestWebSocketTunnel: a publisher and a player both over RTSP over
// WebSocket (gortsplib's client, ONVIF subprotocol) are served: the
// publisher's interleaved packets go through the bound on messages.
func TestWebSocketTunnel(t *testing.T) {
	env := newTestServer(t, func(p *Params) { p.RTSP.RequestTimeout = time.Second })
	tok := mint(t, testSecret, auth.Claims{Publish: []string{"ws"}, View: []string{"ws"}})
	video := &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{
		&format.H264{PayloadTyp: 96, SPS: testSPS, PPS: testPPS, PacketizationMode: 1}}}
	pub := &gortsplib.Client{Tunnel: gortsplib.TunnelWebSocket}
	if err := pub.StartRecording(env.basicURL(tok, "ws"), &description.Session{Medias: []*description.Media{video}}); err != nil {
		t.Fatalf("publish over WebSocket: %v", err)
	}
	defer pub.Close()
	env.waitState(t, "ws", StateLive)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	sent := make(chan error, 1)
	go func() { sent <- writeFrames(ctx, pub, video) }()

	_, packets := playTunnelled(t, env.basicURL(tok, "ws"), gortsplib.TunnelWebSocket)
	flowing := func() bool {
		select {
		case err := <-sent:
			t.Fatalf("the publisher stopped: %v", err)
		default:
		}
		return packets.Load() > 100
	}
	testkit.WaitFor(t, waitTimeout, "video from the WebSocket publisher on the WebSocket player", flowing)
	n, since := packets.Load(), time.Now()
	testkit.WaitFor(t, waitTimeout, "more video, past the request timeout", func() bool {
		return flowing() && packets.Load() > n+100 && time.Since(since) > 2*time.Second
	})
}

// TestWSFrames: the frames of messages up to maxTunnelMessage pass
// unchanged, however the reads cut them; the header that takes a message
// past it, or a control frame past 125 bytes, is an error before any of
// its payload is passed on.
func TestWSFrames(t *testing.T) {
	frame := func(fin bool, opcode byte, n int) []byte {
		return append(wsFrameHeader(fin, opcode, uint64(n)), make([]byte, n)...)
	}
	join := func(fs ...[]byte) []byte { return bytes.Join(fs, nil) }
	head := []byte("GET / HTTP/1.1\r\n\r\n")
	cases := []struct {
		name string
		in   []byte
		bad  int // offset of the end of the header that is refused; 0: none
	}{
		{"small frames", join(frame(true, 2, 0), frame(true, 2, 125), frame(true, 2, 126), frame(true, 2, 70000)), 0},
		{"a message of exactly the bound", join(frame(false, 2, maxTunnelMessage-1000), frame(false, 0, 900), frame(true, 0, 100)), 0},
		{"pings within a message do not count", join(frame(false, 2, maxTunnelMessage-10), frame(true, 9, 125), frame(true, 0, 10),
			frame(true, 2, maxTunnelMessage)), 0},
		{"one frame past the bound", frame(true, 2, maxTunnelMessage+1), 14},
		{"a message past the bound", join(frame(false, 2, maxTunnelMessage-10), frame(true, 0, 11)), maxTunnelMessage - 10 + 20},
		{"a declared length of 2^63", wsFrameHeader(true, 2, 1<<63), 14},
		{"a control frame of 126 bytes", frame(true, 10, 126), 8},
	}
	for _, tc := range cases {
		for _, oneByte := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/one_byte_reads=%v", tc.name, oneByte), func(t *testing.T) {
				var r io.Reader = bytes.NewReader(join(head, tc.in))
				if oneByte {
					r = iotestHalf(r)
				}
				got, err := io.ReadAll(&wsFrames{r: r, head: len(head)})
				switch {
				case tc.bad == 0 && (err != nil || !bytes.Equal(got, join(head, tc.in))):
					t.Fatalf("passed %d of %d bytes: %v", len(got), len(head)+len(tc.in), err)
				case tc.bad != 0 && err == nil:
					t.Fatalf("passed %d bytes without an error", len(got))
				case tc.bad != 0 && len(got) >= len(head)+tc.bad:
					t.Fatalf("passed %d bytes, past the refused header ending at %d: %v", len(got), len(head)+tc.bad, err)
				}
			})
		}
	}
}

// FuzzWSFrames: whatever the bytes and however the reads cut them, the
// frames are refused or passed on alike, unchanged.
func FuzzWSFrames(f *testing.F) {
	f.Add(wsFrameHeader(true, 2, 3), uint8(0))
	f.Add(append(wsFrameHeader(false, 1, 2), 0, 0, 0x80, 0x82, 1, 1, 1, 1), uint8(1))
	f.Add(wsFrameHeader(true, 2, maxTunnelMessage+1), uint8(3))
	f.Fuzz(func(t *testing.T, in []byte, cut uint8) {
		orig := bytes.Clone(in)
		whole, werr := io.ReadAll(&wsFrames{r: bytes.NewReader(in)})
		pieces, perr := io.ReadAll(&wsFrames{r: &chunked{r: bytes.NewReader(in), n: int(cut%16) + 1}})
		if (werr == nil) != (perr == nil) {
			t.Fatalf("read whole: %v; read in pieces of %d: %v", werr, cut%16+1, perr)
		}
		if werr == nil && (!bytes.Equal(whole, in) || !bytes.Equal(pieces, in)) {
			t.Fatal("frames passed on changed")
		}
		if !bytes.Equal(in, orig) {
			t.Fatal("the input was modified")
		}
	})
}

// chunked hands out at most n bytes per read.
type chunked struct {
	r io.Reader
	n int
}

func (c *chunked) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

// writeFrames publishes H.264 frames of 8 packets (a keyframe every 25)
// at 100 a second until ctx is done or a write fails.
func writeFrames(ctx context.Context, c *gortsplib.Client, m *description.Media) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	seq := uint16(0)
	for frame := uint32(0); ; frame++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		nal := byte(0x01)
		if frame%25 == 0 {
			nal = 0x05
		}
		for i := range 8 {
			fu := nal
			switch i {
			case 0:
				fu |= 0x80
			case 7:
				fu |= 0x40
			}
			p := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: frame * 3600, Marker: i == 7},
				Payload: append([]byte{0x7c, fu}, make([]byte, 1200)...)}
			seq++
			if err := c.WritePacketRTP(m, p); err != nil {
				return err
			}
		}
	}
}
