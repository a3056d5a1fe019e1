package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/ntp"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// recordServer is an RTSP server that accepts one publisher and reports the payload of every
// H.264 RTP packet it receives.
type recordServer struct {
	srv     *gortsplib.Server
	packets chan []byte
	paths   chan string
	reports chan *rtcp.SenderReport
}

func (h *recordServer) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	select {
	case h.paths <- ctx.Path:
	default:
	}
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (h *recordServer) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if ctx.Session.State() == gortsplib.ServerSessionStateInitial {
		return &base.Response{StatusCode: base.StatusNotImplemented}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, nil, nil
}

func (h *recordServer) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (*base.Response, error) {
	ctx.Session.OnPacketRTPAny(func(_ *description.Media, forma format.Format, pkt *rtp.Packet) {
		if _, ok := forma.(*format.H264); !ok {
			return
		}
		select {
		case h.packets <- append([]byte(nil), pkt.Payload...):
		default:
		}
	})
	ctx.Session.OnPacketRTCPAny(func(_ *description.Media, pkt rtcp.Packet) {
		if sr, ok := pkt.(*rtcp.SenderReport); ok {
			select {
			case h.reports <- sr:
			default:
			}
		}
	})
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// startRecordServer listens on address (use 127.0.0.1:0 for a free port).
func startRecordServer(t *testing.T, address string) *recordServer {
	t.Helper()
	h := &recordServer{packets: make(chan []byte, 4096), paths: make(chan string, 4), reports: make(chan *rtcp.SenderReport, 64)}
	h.srv = &gortsplib.Server{Handler: h, RTSPAddress: address}
	if err := h.srv.Start(); err != nil {
		t.Fatalf("start the record server on %s: %v", address, err)
	}
	t.Cleanup(h.srv.Close)
	return h
}

// waitKeyframeStart waits for the first H.264 packet and requires it to begin a keyframe,
// then for n more packets.
func waitKeyframeStart(t *testing.T, h *recordServer, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for i := 0; i <= n; i++ {
		select {
		case p := <-h.packets:
			if i == 0 {
				typ := p[0] & 0x1f
				if typ != naluSPS && (typ != 24 || len(p) < 4 || p[3]&0x1f != naluSPS) {
					t.Fatalf("the first packet carries NAL type %d, want SPS ahead of an IDR", typ)
				}
			}
		case <-deadline:
			t.Fatalf("received %d of %d H.264 packets in 10 s", i, n+1)
		}
	}
}

// TestPusherReconnects publishes to a server, stops the server, starts another on the same
// address, and requires the pusher to publish again, starting at a keyframe each time.
func TestPusherReconnects(t *testing.T) {
	first := startRecordServer(t, "127.0.0.1:0")
	addr := first.srv.NetListener().Addr().String()

	p, err := NewPusher(PusherParams{
		URL:        "rtsp://tok:secret@" + addr + "/field1",
		MinBackoff: 20 * time.Millisecond,
		MaxBackoff: 200 * time.Millisecond,
		Logger:     testLogger(t),
	})
	if err != nil {
		t.Fatalf("NewPusher: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	select {
	case path := <-first.paths:
		if path != "/field1" {
			t.Errorf("announced path = %q, want /field1", path)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no ANNOUNCE in 10 s")
	}
	waitKeyframeStart(t, first, 50)

	first.srv.Close()
	second := startRecordServer(t, addr)
	waitKeyframeStart(t, second, 50)
}

// TestPusherSenderReports checks that a pushed camera's sender reports show its own wall
// clock, 5 s ahead here, every 200 ms.
func TestPusherSenderReports(t *testing.T) {
	srv := startRecordServer(t, "127.0.0.1:0")
	p, err := NewPusher(PusherParams{
		URL:    "rtsp://" + srv.srv.NetListener().Addr().String() + "/field1",
		Clock:  ClockModel{Offset: 5 * time.Second, SRInterval: 200 * time.Millisecond},
		Logger: testLogger(t),
	})
	if err != nil {
		t.Fatalf("NewPusher: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	deadline := time.After(15 * time.Second)
	for n := 0; n < 6; n++ {
		select {
		case sr := <-srv.reports:
			ahead := ntp.Decode(sr.NTPTime).Sub(time.Now())
			if ahead < 4*time.Second || ahead > 5*time.Second+100*time.Millisecond {
				t.Errorf("sender report %d shows a wall clock %v ahead, want 5s", n, ahead)
			}
			if sr.PacketCount == 0 {
				t.Errorf("sender report %d counts no packets", n)
			}
		case <-deadline:
			t.Fatalf("%d sender reports in 15 s, want 6 (3 per media at one every 200 ms)", n)
		}
	}
}

func TestNewPusherRejectsBadParams(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    PusherParams
		want string
	}{
		{"not rtsp", PusherParams{URL: "http://127.0.0.1:8554/x"}, "not valid"},
		{"no path", PusherParams{URL: "rtsp://127.0.0.1:8554"}, "needs a host and a path"},
		{"bad transport", PusherParams{URL: "rtsp://127.0.0.1:8554/x", Transport: "sctp"}, "transport"},
		{"bad clock", PusherParams{URL: "rtsp://127.0.0.1:8554/x", Clock: ClockModel{Jitter: -time.Second}}, "jitter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewPusher(tc.p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	got := redactURL("rtsp://tok:s3cret@127.0.0.1:8554/field1")
	if strings.Contains(got, "s3cret") || !strings.Contains(got, "127.0.0.1:8554/field1") {
		t.Errorf("redactURL = %q", got)
	}
}

// The push password can come from the environment, so the token is not in
// the process list; a URL that carries its own password keeps it.
func TestPushPasswordFromEnvironment(t *testing.T) {
	for _, c := range []struct{ raw, pw, want string }{
		{"rtsp://encoder@127.0.0.1:8554/field1", "tok.en-1", "rtsp://encoder:tok.en-1@127.0.0.1:8554/field1"},
		{"rtsp://encoder:own@127.0.0.1:8554/field1", "tok", "rtsp://encoder:own@127.0.0.1:8554/field1"},
		{"rtsp://127.0.0.1:8554/field1", "tok", "rtsp://127.0.0.1:8554/field1"},
		{"rtsp://encoder@127.0.0.1:8554/field1", "", "rtsp://encoder@127.0.0.1:8554/field1"},
		{"rtsp://encoder@127.0.0.1:8554/field1", "a/b?c", "rtsp://encoder:a%2Fb%3Fc@127.0.0.1:8554/field1"},
	} {
		if got := withPassword(c.raw, c.pw); got != c.want {
			t.Errorf("withPassword(%q, %q) = %q, want %q", c.raw, c.pw, got, c.want)
		}
	}
}
