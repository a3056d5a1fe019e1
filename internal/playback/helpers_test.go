package playback

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/recorder"
	"fieldvideo/internal/store"
	"fieldvideo/internal/testkit"
)

var testSecret = []byte("playback-test-secret-playback-test-secret")

const incident = "inc-1"

type tlog struct {
	mu sync.Mutex
	t  testing.TB
}

func (w *tlog) Write(b []byte) (int, error) {
	defer func() { _ = recover() }()
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func testLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(&tlog{t: t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func s3Store(t testing.TB, name string, s *testkit.S3Server) store.Store {
	t.Helper()
	st, err := store.NewS3(store.S3Params{Name: name, Endpoint: s.Endpoint, Bucket: s.Bucket, Region: s.Region,
		AccessKey: s.AccessKey, SecretKey: s.SecretKey, Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// session records sources into both stores with one recorder (one spool,
// one recorder id) until stop.
type session struct {
	r      *recorder.Recorder
	cancel context.CancelFunc
	done   chan struct{}
}

func startSession(t testing.TB, primary, offsite store.Store) *session {
	t.Helper()
	r, err := recorder.New(recorder.Params{SpoolDir: filepath.Join(t.TempDir(), "spool"), Incident: incident,
		SegmentDuration: 2 * time.Second, PartDuration: 500 * time.Millisecond, Primary: primary, Offsite: offsite,
		RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond, UploadTimeout: 10 * time.Second, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{r: r, cancel: cancel, done: make(chan struct{})}
	go func() { _ = r.Run(ctx); close(s.done) }()
	t.Cleanup(s.close)
	return s
}

// stop closes the segments being written and waits until both sites hold
// every one.
func (s *session) stop(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if left := s.r.Stop(ctx); left[0].Segments+left[1].Segments != 0 {
		t.Fatalf("segments left in the spool at stop: %+v", left)
	}
	s.close()
}

func (s *session) close() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	<-s.done
	s.r.Close()
	s.cancel = nil
}

// server serves the playback API as the processes do, behind the audit
// middleware.
type server struct {
	pb       *Playback
	base     string
	auditLog string
	reviewer string
	exporter *Exporter
	// rev is the verifier's revocation list.
	rev *auth.Revocations
}

// serverOption sets a test server's Params, or its HTTP server, before it
// starts.
type serverOption func(*Params, *httptest.Server)

func startServer(t testing.TB, sites ...store.Store) *server {
	t.Helper()
	return startServerWith(t, sites)
}

func startServerWith(t testing.TB, sites []store.Store, opts ...serverOption) *server {
	t.Helper()
	dir := t.TempDir()
	al, err := audit.Open(audit.Params{File: filepath.Join(dir, "audit.log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { al.Close() })
	v, err := auth.NewVerifier(testSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := auth.OpenRevocations("", nil)
	if err != nil {
		t.Fatal(err)
	}
	v.UseRevocations(rev)
	mux := http.NewServeMux()
	ts := httptest.NewUnstartedServer(audit.HTTP(al, v.Identify, mux))
	p := Params{Sites: sites, Refresh: 200 * time.Millisecond, FullRefresh: time.Second, HealthInterval: 200 * time.Millisecond, Log: testLog(t)}
	for _, o := range opts {
		o(&p, ts)
	}
	pb, err := New(p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = pb.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	key, err := audit.LoadKey(filepath.Join(dir, "export.key"), "export signing key", "test", testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	ex := NewExporter(pb, key, al.Write)
	pb.Routes(mux, v, incident, "", ex)
	ts.Start()
	t.Cleanup(ts.Close)
	return &server{pb: pb, base: ts.URL, auditLog: filepath.Join(dir, "audit.log"), reviewer: mint(t, auth.Claims{Role: auth.RoleReviewer}), exporter: ex, rev: rev}
}

func mint(t testing.TB, c auth.Claims) string {
	t.Helper()
	if c.Subject == "" {
		c.Subject = "test-" + string(c.Role)
	}
	tok, err := auth.Mint(testSecret, c, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// get asks the API with tok and returns the status, headers and body.
func (s *server) get(t testing.TB, tok, path string, q url.Values) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.base+path+"?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the answer: %v", path, err)
	}
	for k, v := range res.Trailer {
		res.Header[k] = v
	}
	return res.StatusCode, res.Header, b
}

// getJSON asks the API as a reviewer and decodes a 200 answer.
func (s *server) getJSON(t testing.TB, path string, q url.Values, v any) http.Header {
	t.Helper()
	code, h, b := s.get(t, s.reviewer, path, q)
	if code != http.StatusOK {
		t.Fatalf("GET %s?%s: %d %s", path, q.Encode(), code, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, b)
	}
	return h
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// probeFrame is a decoded frame as ffprobe reports it.
type probeFrame struct {
	MediaType string `json:"media_type"`
	PTSTime   string `json:"pts_time"`
	KeyFrame  int    `json:"key_frame"`
}

type probeOut struct {
	Streams []struct {
		CodecType string `json:"codec_type"`
		CodecName string `json:"codec_name"`
	} `json:"streams"`
	Frames []probeFrame `json:"frames"`
}

// ffprobe decodes a file and fails the test on any error ffprobe reports.
func ffprobe(t testing.TB, path string) probeOut {
	t.Helper()
	testkit.RequireBinary(t, testkit.FFprobePath)
	cmd := exec.Command(testkit.FFprobePath, "-v", "error", "-show_streams", "-show_frames",
		"-show_entries", "frame=media_type,pts_time,key_frame:stream=codec_type,codec_name", "-of", "json", path)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || strings.TrimSpace(stderr.String()) != "" {
		t.Fatalf("ffprobe %s: %v: %s", path, err, stderr.String())
	}
	var p probeOut
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func ptime(s string) float64 {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return -1e9
	}
	return v
}

func writeFile(t testing.TB, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "out.mp4")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// auditEvents reads the audit log.
func (s *server) auditEvents(t testing.TB) []audit.Event {
	t.Helper()
	b, err := os.ReadFile(s.auditLog)
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Event
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var ev audit.Event
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Method != "" {
			out = append(out, ev)
		}
	}
	return out
}
