package ingest

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/pion/rtp"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/stream"
	"fieldvideo/internal/testkit"
	"fieldvideo/internal/unit"
)

// TestAnnounceTrackBound: a push of maxMedias tracks is taken; one with a
// track more is refused with 400 naming both numbers, and audited.
func TestAnnounceTrackBound(t *testing.T) {
	env := newTestServer(t, nil)
	tok := mint(t, testSecret, auth.Claims{Publish: []string{"*"}})
	ok := &gortsplib.Client{}
	if err := ok.StartRecording(env.basicURL(tok, "eight"), medias(maxMedias)); err != nil {
		t.Fatalf("a push of %d tracks: %v", maxMedias, err)
	}
	defer ok.Close()
	if in := env.waitState(t, "eight", StateLive); len(in.Tracks) != maxMedias {
		t.Fatalf("%d tracks carried, want %d", len(in.Tracks), maxMedias)
	}

	refused := &gortsplib.Client{}
	err := refused.StartRecording(env.basicURL(tok, "nine"), medias(maxMedias+1))
	if err == nil {
		refused.Close()
		t.Fatalf("a push of %d tracks was taken", maxMedias+1)
	}
	want := fmt.Sprintf("the session has %d media; a source carries at most %d", maxMedias+1, maxMedias)
	if !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), want) {
		t.Fatalf("refusal %v: want 400 and %q", err, want)
	}
	ev := env.waitAudit(t, audit.Event{Action: actionPublish, Source: "nine", Result: "denied"})
	if ev.Actor != "tester" || ev.Status != 400 || !strings.Contains(ev.Reason, want) {
		t.Fatalf("audit event %+v: want the camera's refusal with the reason", ev)
	}
	if _, ok := env.srv.Source("nine"); ok {
		t.Fatal("the refused push created its source")
	}
}

// medias is a session of n H.264 tracks.
func medias(n int) *description.Session {
	d := &description.Session{}
	for range n {
		d.Medias = append(d.Medias, &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{
			&format.H264{PayloadTyp: 96, SPS: testSPS, PPS: testPPS, PacketizationMode: 1}}})
	}
	return d
}

// TestSelectTracksBound: of a camera's session with more media than
// maxMedias, the first maxMedias are carried and the others reported as
// one skipped entry that says why.
func TestSelectTracksBound(t *testing.T) {
	in, skipped := selectTracks(medias(700))
	want := fmt.Sprintf("the session has 700 media; a source carries at most %d, so the %d after", maxMedias, 700-maxMedias)
	if len(in) != maxMedias || len(skipped) != 1 || !strings.Contains(skipped[0].Note, want) {
		t.Fatalf("%d tracks carried, skipped %+v; want %d and one note %q", len(in), skipped, maxMedias, want)
	}
}

// rawPublisher speaks RTSP over TCP itself, so that it can send what
// RTSP client libraries do not: interleaved packets of up to 64 KiB.
type rawPublisher struct {
	nc    net.Conn
	tp    *textproto.Reader
	cseq  int
	url   string
	basic string // Authorization header value
}

// rawPublish announces one H.264 track on name, sets it up interleaved on
// channel 0 and records.
func rawPublish(t *testing.T, env *testEnv, name, token string) *rawPublisher {
	t.Helper()
	nc, err := net.Dial("tcp", env.host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	p := &rawPublisher{nc: nc, tp: textproto.NewReader(bufio.NewReader(nc)), url: "rtsp://" + env.host + "/" + name,
		basic: "Basic " + base64.StdEncoding.EncodeToString([]byte("user:"+token))}
	sdp := "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=raw\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:trackID=0\r\n"
	p.request(t, "ANNOUNCE", p.url, "Content-Type: application/sdp\r\n", sdp)
	h := p.request(t, "SETUP", p.url+"/trackID=0", "Transport: RTP/AVP/TCP;unicast;interleaved=0-1;mode=record\r\n", "")
	session, _, _ := strings.Cut(h.Get("Session"), ";")
	p.request(t, "RECORD", p.url, "Session: "+session+"\r\n", "")
	return p
}

// request sends one request and fails the test unless it is answered 200.
func (p *rawPublisher) request(t *testing.T, method, url, headers, body string) textproto.MIMEHeader {
	t.Helper()
	p.cseq++
	if body != "" {
		headers += "Content-Length: " + strconv.Itoa(len(body)) + "\r\n"
	}
	_ = p.nc.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := fmt.Fprintf(p.nc, "%s %s RTSP/1.0\r\nCSeq: %d\r\nAuthorization: %s\r\n%s\r\n%s", method, url, p.cseq, p.basic, headers, body); err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	status, err := p.tp.ReadLine()
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	h, err := p.tp.ReadMIMEHeader()
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	if n, _ := strconv.Atoi(h.Get("Content-Length")); n > 0 {
		if _, err := p.tp.R.Discard(n); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.HasPrefix(status, "RTSP/1.0 200") {
		t.Fatalf("%s: %q", method, status)
	}
	_ = p.nc.SetDeadline(time.Time{})
	return h
}

// packet sends one RTP packet interleaved on channel 0.
func (p *rawPublisher) packet(t *testing.T, seq uint16, ts uint32, marker bool, payload []byte) {
	t.Helper()
	b, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: ts, Marker: marker, SSRC: 1},
		Payload: payload}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	frame := binary.BigEndian.AppendUint16([]byte{'$', 0}, uint16(len(b)))
	if _, err := p.nc.Write(append(frame, b...)); err != nil {
		t.Fatalf("packet %d: %v", seq, err)
	}
}

// TestOversizedFrameDropped: a publisher that sends 65,000-byte packets
// with one timestamp and no marker has that frame dropped once it holds
// more than unit.MaxFrameBytes, with a warning that counts it; no reader
// gets a unit larger than that, and the next frame comes through.
func TestOversizedFrameDropped(t *testing.T) {
	logs := &lockedBuffer{}
	env := newTestServer(t, func(p *Params) {
		p.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	tok := mint(t, testSecret, auth.Claims{Publish: []string{"big"}})
	pub := rawPublish(t, env, "big", tok)
	env.waitState(t, "big", StateLive)
	s, _ := env.srv.Stream("big")
	var largest atomic.Int64
	var next atomic.Bool
	r, err := s.AddReader(stream.ReaderParams{Name: "sizes", OnUnit: func(d stream.Delivery) {
		if n := int64(d.Unit.Bytes()); n > largest.Load() {
			largest.Store(n)
		}
		if d.Unit.Packets[0].Timestamp == 9000 {
			next.Store(true)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	const size = 65000
	n := unit.MaxFrameBytes/size + 60
	payload := make([]byte, size)
	for i := range n {
		payload[0], payload[1] = 0x7c, 0x05 // FU-A of an IDR
		if i == 0 {
			payload[1] |= 0x80
		}
		pub.packet(t, uint16(i), 1000, false, payload)
	}
	testkit.WaitFor(t, waitTimeout, "the server to take every packet", func() bool { return env.source("big").Packets >= uint64(n) })
	pub.packet(t, uint16(n), 9000, true, []byte{0x65, 0x88, 0x84})
	testkit.WaitFor(t, waitTimeout, "the next frame on the reader", next.Load)
	if l := largest.Load(); l > unit.MaxFrameBytes {
		t.Fatalf("a reader got a unit of %d bytes, more than %d", l, unit.MaxFrameBytes)
	}
	want := fmt.Sprintf("max_frame_bytes=%d frames_dropped=1", unit.MaxFrameBytes)
	if out := logs.String(); strings.Count(out, "larger than ingest takes") != 1 || !strings.Contains(out, want) {
		t.Fatalf("want one warning with %q; log:\n%s", want, tail(out))
	}
	if in := env.source("big"); in.State != StateLive {
		t.Fatalf("source %+v: want it still live", in)
	}
}
