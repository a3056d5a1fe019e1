//go:build measure

package ingest

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/conf"
	"fieldvideo/internal/testkit"
)

// These measurements drive ingest the way the attacker review did; run
// them one at a time:
//
//	go test -tags measure -count=1 -v -run 'TestMeasure<Name>$' ./internal/ingest/

// TestMeasureFlood: idle connections from another process (the flooder of
// flood_test.go) while a source is pushed and played. MEASURE_CONNS
// (default 2000) connections from MEASURE_SRCS source addresses (0:
// 127.0.0.1 only) observed for MEASURE_HOLD (default 10s); MEASURE_FDS
// lowers the descriptor limit of this process (the server's) for the flood;
// MEASURE_MAX and MEASURE_PER_ADDR set the connection limits (default: the
// shipped configuration).
func TestMeasureFlood(t *testing.T) {
	rc := conf.DefaultIngest().RTSP
	rc.Address, rc.UDPRTPAddress, rc.UDPRTCPAddress = "127.0.0.1:0", "", ""
	if v := envInt("MEASURE_MAX"); v > 0 {
		rc.MaxConnections = v
	}
	if v := envInt("MEASURE_PER_ADDR"); v > 0 {
		rc.MaxConnectionsPerAddress = v
	}
	srv, runErr := startMeasured(t, rc)
	tok := mint(t, testSecret, auth.Claims{Publish: []string{"cam"}, View: []string{"cam"}})
	url := "rtsp://" + srv.Addr() + "/cam?token=" + tok
	testkit.StartPush(t, t.Context(), testkit.PushParams{URL: url, Audio: testkit.AudioOpus})
	testkit.WaitFor(t, waitTimeout, "live", func() bool { in, _ := srv.Source("cam"); return in.State == StateLive })
	before, err := play(t, url)
	if err != nil {
		t.Fatal(err)
	}
	if fds := envInt("MEASURE_FDS"); fds > 0 {
		var old syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
			t.Fatal(err)
		}
		lim := syscall.Rlimit{Cur: uint64(fds), Max: old.Max}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
		t.Logf("descriptor limit %d (%d open before the flood)", fds, openFDs())
	}
	n := cmp.Or(envInt("MEASURE_CONNS"), 2000)
	hold, err := time.ParseDuration(cmp.Or(os.Getenv("MEASURE_HOLD"), "10s"))
	if err != nil {
		t.Fatal(err)
	}
	fl := startFlooder(t, srv.Addr(), n, envInt("MEASURE_SRCS"))
	start := time.Now()
	fl.start(t)
	packets := before.count("H264")
	maxOpen := 0
	var during string
	probed := make(chan string, 1)
	var closedAt []string
	lastClosed := -1
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for time.Since(start) < hold {
		select {
		case err := <-runErr:
			t.Fatalf("ingest Run returned %s into the flood: %v", time.Since(start).Round(time.Millisecond), err)
		case <-tick.C:
		}
		maxOpen = max(maxOpen, srv.Connections().Open)
		if c := fl.closed(); c != lastClosed {
			closedAt = append(closedAt, fmt.Sprintf("%s: %d", time.Since(start).Round(100*time.Millisecond), c))
			lastClosed = c
		}
		if during == "" && time.Since(start) > time.Second && envInt("MEASURE_FDS") == 0 {
			open := srv.Connections().Open
			go func() { // ffprobe, a process of its own: its descriptors are not the server's
				p0 := time.Now()
				ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
				defer cancel()
				streams, err := testkit.Probe(ctx, url, "tcp")
				probed <- fmt.Sprintf("%d streams, %v, after %s (started with %d connections open)",
					len(streams), err, time.Since(p0).Round(time.Millisecond), open)
			}()
			during = "started"
		}
	}
	t.Logf("%d idle connections observed for %s; ingest running; most open at once %d; %+v", n, hold, maxOpen, srv.Connections())
	t.Logf("closed by the server (time since the flood began: count): %s", strings.Join(closedAt, ", "))
	t.Logf("the player connected before the flood got %d video packets during it", before.count("H264")-packets)
	if during != "" {
		t.Logf("ffprobe 1 s into the flood: %s", <-probed)
	}
	p0 := time.Now()
	after, err := play(t, url)
	if err != nil {
		t.Fatalf("a new player after the flood: %v", err)
	}
	testkit.WaitFor(t, waitTimeout, "video", func() bool { return after.count("H264") > 0 })
	t.Logf("a new player after the flood: video after %s", time.Since(p0).Round(time.Millisecond))
}

func envInt(key string) int {
	v, _ := strconv.Atoi(os.Getenv(key))
	return v
}

func openFDs() int {
	ents, _ := os.ReadDir("/proc/self/fd")
	return len(ents)
}

// TestMeasureGStreamer: playbin with ?token= against a pushed source with
// H.264 video and Opus audio.
func TestMeasureGStreamer(t *testing.T) {
	env := newTestServer(t, nil)
	tok := mint(t, testSecret, auth.Claims{Publish: []string{"gst"}, View: []string{"gst"}})
	testkit.StartPush(t, t.Context(), testkit.PushParams{URL: env.url(tok, "gst"), Audio: testkit.AudioOpus})
	env.waitState(t, "gst", StateLive)
	start := time.Now()
	got := gstDecode(t, env.url(tok, "gst"), 50)
	t.Logf("playbin decoded %d video and %d audio buffers in %s", got["vsink"], got["asink"], time.Since(start).Round(time.Millisecond))
}

// TestMeasureExpiry: a pushing ffmpeg and a playing client with a 3 s
// token; how long they go on after the token expired.
func TestMeasureExpiry(t *testing.T) {
	env := newTestServer(t, nil)
	now := time.Now()
	cl := auth.Claims{Role: auth.RoleCamera, Publish: []string{"exp"}, View: []string{"exp"}}
	cl.Subject = "phone"
	tok, err := auth.Mint(testSecret, cl, 3*time.Second, now)
	if err != nil {
		t.Fatal(err)
	}
	c, err := env.srv.p.Verifier.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	exp := c.ExpiresAt.Time
	ff := testkit.StartPush(t, t.Context(), testkit.PushParams{URL: env.url(tok, "exp"), Audio: testkit.AudioOpus})
	env.waitState(t, "exp", StateLive)
	p, err := play(t, env.basicURL(tok, "exp"))
	if err != nil {
		t.Fatal(err)
	}
	var pubEnd, playEnd time.Duration
	deadline := time.After(time.Until(exp) + 60*time.Second)
	ffDone := ff.Done()
	for pubEnd == 0 || playEnd == 0 {
		select {
		case <-ffDone:
			pubEnd, ffDone = time.Since(exp), nil
		case <-p.ended:
			playEnd = time.Since(exp)
		case <-deadline:
			t.Logf("after 60 s past expiry: publisher ended %v, player ended %v (0 = still going)", pubEnd, playEnd)
			return
		}
	}
	t.Logf("after expiry: publisher ended %s, player ended %s", pubEnd.Round(time.Millisecond), playEnd.Round(time.Millisecond))
}

func startMeasured(t *testing.T, rc conf.RTSP) (*Server, <-chan error) {
	v, err := auth.NewVerifier(testSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Params{
		RTSP:     rc,
		Stream:   conf.DefaultIngest().Stream,
		Verifier: v,
		Audit:    audit.Discard(),
		Logger:   slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { errc <- srv.Run(ctx) }()
	t.Cleanup(cancel)
	return srv, errc
}

// TestMeasureRevoke: a pushing ffmpeg and a playing client of a subject
// that is then revoked; how long they go on.
func TestMeasureRevoke(t *testing.T) {
	rev, err := auth.OpenRevocations("", nil)
	if err != nil {
		t.Fatal(err)
	}
	env := newTestServer(t, func(p *Params) { p.Verifier.UseRevocations(rev) })
	cl := auth.Claims{Role: auth.RoleCamera, Publish: []string{"rev"}, View: []string{"rev"}}
	cl.Subject = "lost-phone"
	tok, err := auth.Mint(testSecret, cl, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ff := testkit.StartPush(t, t.Context(), testkit.PushParams{URL: env.url(tok, "rev"), Audio: testkit.AudioOpus})
	env.waitState(t, "rev", StateLive)
	p, err := play(t, env.basicURL(tok, "rev"))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	if _, err := rev.Add(auth.Revocation{Subject: "lost-phone", By: "measure"}); err != nil {
		t.Fatal(err)
	}
	var pubEnd, playEnd time.Duration
	deadline := time.After(15 * time.Second)
	ffDone := ff.Done()
	for pubEnd == 0 || playEnd == 0 {
		select {
		case <-ffDone:
			pubEnd, ffDone = time.Since(at), nil
		case <-p.ended:
			playEnd = time.Since(at)
		case <-deadline:
			t.Logf("15 s after the revocation: publisher ended %v, player ended %v (0 = still going)", pubEnd, playEnd)
			return
		}
	}
	t.Logf("after the revocation: publisher ended %s, player ended %s", pubEnd.Round(100*time.Microsecond), playEnd.Round(100*time.Microsecond))
}
