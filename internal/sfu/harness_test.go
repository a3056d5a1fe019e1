package sfu

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/conf"
	"fieldvideo/internal/stream"
	"fieldvideo/internal/whip"
	"fieldvideo/testbench/synth"
)

var testSecret = []byte("test-secret-test-secret-test-secret!")

type harness struct {
	t     *testing.T
	srv   *Server
	base  string
	api   *webrtc.API
	audit string
}

func startSFU(t *testing.T) *harness { return startSFUWith(t, nil) }

// startSFUWith starts an SFU on loopback with the defaults, changed by set
// when it is not nil.
func startSFUWith(t *testing.T, set func(*conf.SFU)) *harness {
	t.Helper()
	c := conf.DefaultSFU()
	c.HTTP.Address = "127.0.0.1:0"
	c.WebRTC.UDPAddress = "127.0.0.1:0"
	c.Log.Level = "warn"
	dir := t.TempDir()
	c.Audit.File, c.Audit.KeyFile = filepath.Join(dir, "audit.log"), filepath.Join(dir, "audit.key")
	if set != nil {
		set(&c)
	}
	v, err := auth.NewVerifier(testSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	auditFile := c.Audit.File
	al, err := audit.Open(audit.Params{File: auditFile, KeyFile: c.Audit.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	routes := func(mux *http.ServeMux) {
		rev := auth.RevocationsHandler(v)
		mux.Handle("GET /v1/revocations", rev)
		mux.Handle("POST /v1/revocations", rev)
		mux.Handle("POST /v1/signout", auth.SignOutHandler(v))
	}
	srv, err := New(Params{Conf: c, Verifier: v, Audit: al, Log: c.Log.NewLogger(testWriter{t}), Routes: routes})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; al.Close() })
	api, err := whip.NewAPI(whip.APIParams{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, srv: srv, base: "http://" + srv.HTTPAddr(), api: api, audit: auditFile}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

func (h *harness) token(role auth.Role, pub, view []string) string {
	tok, err := auth.Mint(testSecret, auth.Claims{Role: role, Publish: pub, View: view}, time.Hour, time.Now())
	if err != nil {
		h.t.Fatal(err)
	}
	return tok
}

// publish starts a synthetic camera publishing to the SFU as name and waits
// until the SFU lists it live. The returned cancel stops it.
func (h *harness) publish(name string, p synth.Params) (*stream.Stream, context.CancelFunc) {
	h.t.Helper()
	return h.publishWith(name, p, nil)
}

// publishWith is publish with the publisher's parameters changed by set (nil: none).
func (h *harness) publishWith(name string, p synth.Params, set func(*whip.PublisherParams)) (*stream.Stream, context.CancelFunc) {
	h.t.Helper()
	cam := synth.New(p)
	st := stream.New(stream.Params{Name: name, Tracks: synth.Tracks(cam.Params())})
	ctx, cancel := context.WithCancel(context.Background())
	pp := whip.PublisherParams{
		Endpoint: whip.Endpoint(h.base, name, "whip"),
		Client:   &whip.Client{Token: h.token(auth.RoleCamera, []string{name}, nil)},
		API:      h.api, Stream: st, MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	}
	if set != nil {
		set(&pp)
	}
	pub, err := whip.NewPublisher(pp)
	if err != nil {
		h.t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); cam.Run(ctx, st) }()
	go func() { defer wg.Done(); pub.Run(ctx) }()
	stop := func() { cancel(); wg.Wait(); st.Close() }
	h.t.Cleanup(stop)
	h.waitFor("source "+name+" live", func() bool { return h.state(name) == "live" })
	return st, stop
}

func (h *harness) state(name string) string {
	for _, s := range h.srv.Sources() {
		if s.Name == name {
			return s.State
		}
	}
	return ""
}

func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// received collects what a WHEP viewer receives.
type received struct {
	mu      sync.Mutex
	video   []*rtp.Packet
	audio   int
	first   time.Time
	latency []time.Duration
	block   chan struct{}
}

func (r *received) on(kind webrtc.RTPCodecType, _ string, p *rtp.Packet, at time.Time) {
	if r.block != nil {
		<-r.block
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if kind == webrtc.RTPCodecTypeAudio {
		r.audio++
		return
	}
	if len(r.video) == 0 {
		r.first = at
	}
	r.video = append(r.video, p)
	if sent, ok := synth.Stamp(p.Payload); ok {
		r.latency = append(r.latency, at.Sub(sent))
	}
}

func (r *received) counts() (video, audio int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.video), r.audio
}

func (r *received) packets() []*rtp.Packet {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*rtp.Packet(nil), r.video...)
}

func (h *harness) view(name, token string, rec *received) *whip.Viewer {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := whip.View(ctx, whip.ViewerParams{
		Endpoint: whip.Endpoint(h.base, name, "whep"), Client: &whip.Client{Token: token}, API: h.api, OnPacket: rec.on,
	})
	if err != nil {
		h.t.Fatalf("view %s: %v", name, err)
	}
	h.t.Cleanup(func() { v.Close() })
	return v
}

func (h *harness) getJSON(path, token string, into any) int {
	h.t.Helper()
	req, _ := http.NewRequest("GET", h.base+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	if into != nil && res.StatusCode == 200 {
		if err := json.NewDecoder(res.Body).Decode(into); err != nil {
			h.t.Fatal(err)
		}
	}
	return res.StatusCode
}
