package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/conf"
	"fieldvideo/internal/recorder"
	"fieldvideo/internal/sfu"
	"fieldvideo/internal/store"
	"fieldvideo/internal/testkit"
	"fieldvideo/web/console"
)

// callRoom is the room of the call tests.
const callRoom = "incident-1"

// callResumeWindow is how long the SFU of the call tests keeps a participant whose connection
// broke: short, so a test can outlast it.
const callResumeWindow = 6 * time.Second

// callMinBitrate floors the SFU's downlink estimate in the call tests. Loopback has bandwidth
// to spare, but two browsers encoding and decoding on a busy test machine delay their
// transport-cc feedback, which the congestion controller reads as a congested link and answers
// by pausing video; the floor keeps the layer choice out of what the tests check.
const callMinBitrate = 8_000_000

// startCallSFU starts an in-process SFU serving the console, like startSFU, with the
// calls' estimate floored at callMinBitrate and a resume window of callResumeWindow.
func startCallSFU(t *testing.T) *wallSFU {
	t.Helper()
	h := &wallSFU{t: t, auditDir: t.TempDir(), serves: 1}
	c := conf.DefaultSFU()
	c.HTTP.Address = "127.0.0.1:0"
	c.WebRTC.UDPAddress = "127.0.0.1:0"
	c.Log.Level = "warn"
	c.Calls.MinBitrate = callMinBitrate
	c.Calls.ResumeWindow = callResumeWindow
	c.Calls.StartBitrate = max(c.Calls.StartBitrate, callMinBitrate)
	v, err := auth.NewVerifier(testSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	al, err := audit.Open(audit.Params{File: filepath.Join(h.auditDir, "audit-1.log"), KeyFile: filepath.Join(h.auditDir, "audit.key")})
	if err != nil {
		t.Fatal(err)
	}
	rec := startRecorder(t, h)
	srv, err := sfu.New(sfu.Params{Conf: c, Verifier: v, Audit: al, Log: c.Log.NewLogger(testWriter{t}), Console: console.FS(), Recorder: rec})
	if err != nil {
		al.Close()
		t.Fatalf("start the SFU: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Run(ctx); close(done) }()
	go func() { _ = rec.Run(ctx) }()
	h.srv = srv
	h.stop = func() { cancel(); <-done; rec.Close(); al.Close() }
	h.httpAddr = srv.HTTPAddr()
	h.base = "http://" + h.httpAddr
	t.Cleanup(h.close)
	return h
}

// startRecorder returns a recorder to two filesystem stores, the off-site
// one at h.recDir, with short segments.
func startRecorder(t *testing.T, h *wallSFU) *recorder.Recorder {
	t.Helper()
	h.recDir = t.TempDir()
	primary, err := store.NewFS("primary", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	offsite, err := store.NewFS("offsite", h.recDir)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := recorder.New(recorder.Params{SpoolDir: t.TempDir(), Incident: "drill", SegmentDuration: 2 * time.Second,
		PartDuration: 500 * time.Millisecond, Primary: primary, Offsite: offsite})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// callToken mints a token for who to join room, publish and subscribe there, and view every
// field camera.
func (h *wallSFU) callToken(who string, role auth.Role, room string) string {
	h.t.Helper()
	c := auth.Claims{Role: role, Room: room, RoomPublish: true, RoomSubscribe: true, View: []string{"*"}}
	c.Subject = who
	return h.token(c)
}

// callURL is the call page of room on the server at base, with the token in the address.
func callURL(base, room, token string) string {
	return base + "/call.html?" + url.Values{"room": {room}, "token": {token}}.Encode()
}

// callShotPath is where a call test saves a screenshot: under FIELDVIDEO_SCREENSHOT_DIR when
// set, else in the test's temporary directory.
func callShotPath(t *testing.T, name string) string {
	dir := os.Getenv("FIELDVIDEO_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	return filepath.Join(dir, name)
}

// callPage is one browser on the call page.
type callPage struct {
	*testkit.Page
	t    *testing.T
	name string
}

// openCall opens the call page in a page of its own and waits until it is in the call.
func openCall(t *testing.T, name, pageURL string) *callPage {
	t.Helper()
	p := &callPage{Page: testkit.PooledPage(t), t: t, name: name}
	p.Open(pageURL)
	p.waitFor("in the call", `document.body.dataset.call === 'in-call'`, 20*time.Second)
	return p
}

func (p *callPage) waitFor(what, expr string, timeout time.Duration) json.RawMessage {
	p.t.Helper()
	v, err := p.Try("waitFor", timeout, map[string]any{"expr": expr})
	if err != nil {
		p.LogConsole()
		var state any
		p.Eval(pageStateExpr, &state)
		p.t.Fatalf("%s: waiting for %s: %v\npage state: %+v", p.name, what, err, state)
	}
	return v
}

// waitPlaying waits until the page plays at least frames new frames of the video of source
// (a room track id), and fails the test with the page's state when it does not, and the
// video statistics of this page and of senders (the pages sending source).
func (p *callPage) waitPlaying(source string, frames int, timeout time.Duration, senders ...*callPage) testkit.PlayedTile {
	p.t.Helper()
	raw, err := p.Try("waitPlaying", timeout, map[string]any{"source": source, "frames": frames})
	if err != nil {
		p.LogConsole()
		var state any
		p.Eval(pageStateExpr, &state)
		for _, q := range append([]*callPage{p}, senders...) {
			q.logVideoStats()
		}
		p.t.Fatalf("%s: %s does not play: %v\npage state: %+v", p.name, source, err, state)
	}
	var played testkit.PlayedTile
	if err := json.Unmarshal(raw, &played); err != nil {
		p.t.Fatal(err)
	}
	return played
}

// logVideoStats writes the page's WebRTC video statistics to the test log: what its
// encoders made and sent, what its decoders got, lost, asked again for and froze on.
func (p *callPage) logVideoStats() {
	p.t.Helper()
	raw, err := p.Try("eval", 10*time.Second, map[string]any{"expr": videoStatsExpr})
	if err != nil {
		p.t.Logf("%s: no video statistics: %v", p.name, err)
		return
	}
	p.t.Logf("%s: video statistics: %s", p.name, raw)
}

const videoStatsExpr = `(async () => {
	const out = [];
	for (const [pc, side] of [['publish', window.fieldvideoCall?.publisher], ['subscribe', window.fieldvideoCall?.subscriber]]) {
		if (!side?.pc) continue;
		(await side.pc.getStats()).forEach((s) => {
			if (s.kind !== 'video' || (s.type !== 'outbound-rtp' && s.type !== 'inbound-rtp')) return;
			out.push({ pc, type: s.type, mid: s.mid, rid: s.rid, width: s.frameWidth, fps: s.framesPerSecond,
				encoded: s.framesEncoded, sent: s.framesSent, limited: s.qualityLimitationReason,
				received: s.framesReceived, decoded: s.framesDecoded, dropped: s.framesDropped,
				packets: s.packetsSent ?? s.packetsReceived, lost: s.packetsLost, nacks: s.nackCount,
				plis: s.pliCount, freezes: s.freezeCount });
		});
	}
	return out;
})()`

// pageStateExpr sums up the page for a failure message.
const pageStateExpr = `(() => ({
	phase: document.body.dataset.call,
	status: document.getElementById('status').textContent,
	tiles: [...document.querySelectorAll('.tile')].map((t) => ({ ...t.dataset })),
	videos: [...document.querySelectorAll('video')].map((v) => ({ source: v.dataset.source, width: v.videoWidth, time: v.currentTime, stream: !!v.srcObject })),
	publish: window.fieldvideoCall?.publisher?.state, subscribe: window.fieldvideoCall?.subscriber?.state,
	received: [...(window.fieldvideoCall?.subscriber?.tracks.keys() ?? [])],
	tracks: [...(window.fieldvideoCall?.tracks.keys() ?? [])],
	stage: document.getElementById('stage').hidden ? '' : document.getElementById('stage-reason').textContent,
}))()`

func (p *callPage) click(selector string) {
	p.t.Helper()
	p.Do("click", 10*time.Second, map[string]any{"selector": selector})
}

// tile is a participant tile as the page shows it.
type tile struct {
	Mic     string `json:"mic"`
	Camera  string `json:"camera"`
	Layer   string `json:"layer"`
	State   string `json:"state"`
	Name    string `json:"name"`
	Role    string `json:"role"`
	Reason  string `json:"reason"`
	Present bool   `json:"present"`
}

// tileExpr is a JavaScript expression giving the tile of key, as a tile.
func tileExpr(key string) string {
	return fmt.Sprintf(`(() => { const t = document.querySelector('[data-tile=%q]');
		if (!t) return { present: false };
		return { present: true, mic: t.dataset.mic, camera: t.dataset.camera, layer: t.dataset.layer, state: t.dataset.state,
			name: t.querySelector('.name').textContent, role: t.querySelector('.role').textContent,
			reason: t.querySelector('.reason').textContent }; })()`, key)
}

func (p *callPage) tile(key string) tile {
	p.t.Helper()
	var tl tile
	p.Eval(tileExpr(key), &tl)
	return tl
}

// enableSound clicks "click to enable sound" when the browser blocked autoplay.
func (p *callPage) enableSound() {
	p.t.Helper()
	var blocked bool
	p.Eval(`!document.getElementById('sound').hidden`, &blocked)
	if blocked {
		p.click("#sound")
	}
}

// dropProxy is a TCP proxy to the SFU's HTTP port that plays a phone's network changes on
// the signalling connection: cut closes every connection at once, freeze makes the open ones
// silent without closing them (a path that went dead), and pause refuses connections until
// unpause.
type dropProxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	pipes  map[*pipe]bool
	paused bool
}

// pipe is one proxied connection.
type pipe struct {
	client, server net.Conn
	frozen         atomic.Bool
}

func startDropProxy(t *testing.T, target string) *dropProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &dropProxy{ln: ln, target: target, pipes: map[*pipe]bool{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go d.serve(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		d.cut()
	})
	return d
}

func (d *dropProxy) base() string { return "http://" + d.ln.Addr().String() }

func (d *dropProxy) serve(c net.Conn) {
	d.mu.Lock()
	paused := d.paused
	d.mu.Unlock()
	if paused {
		c.Close()
		return
	}
	up, err := net.Dial("tcp", d.target)
	if err != nil {
		c.Close()
		return
	}
	p := &pipe{client: c, server: up}
	d.mu.Lock()
	d.pipes[p] = true
	d.mu.Unlock()
	go p.copy(up, c)
	p.copy(c, up)
}

// copy forwards from src to dst until either closes; a frozen pipe drops what it reads.
func (p *pipe) copy(dst, src net.Conn) {
	defer p.close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.frozen.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *pipe) close() {
	p.client.Close()
	p.server.Close()
}

// cut closes every open connection in both directions at once.
func (d *dropProxy) cut() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for p := range d.pipes {
		p.close()
	}
	d.pipes = map[*pipe]bool{}
}

// freeze silences the open connections: nothing they carry arrives any more, and neither
// end learns of it. New connections work.
func (d *dropProxy) freeze() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for p := range d.pipes {
		p.frozen.Store(true)
	}
}

// pause cuts the open connections and refuses new ones until unpause.
func (d *dropProxy) pause() {
	d.mu.Lock()
	d.paused = true
	d.mu.Unlock()
	d.cut()
}

func (d *dropProxy) unpause() {
	d.mu.Lock()
	d.paused = false
	d.mu.Unlock()
}
