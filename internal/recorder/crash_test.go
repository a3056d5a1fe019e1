package recorder

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"fieldvideo/internal/store"
	"fieldvideo/internal/stream"
	"fieldvideo/internal/testkit"
	"fieldvideo/internal/unit"
)

// childEnv selects the recorder-process mode of the test binary: it holds
// a childConfig in JSON.
const childEnv = "FV_RECORDER_CHILD"

// childConfig configures a recorder process.
type childConfig struct {
	Spool            string
	Primary, Offsite storeConfig
	// Record runs ffmpeg (H.264 and Opus) as source cam1; otherwise the
	// process only delivers what its spool holds.
	Record          bool
	SegmentDuration time.Duration
	PartDuration    time.Duration
}

type storeConfig struct {
	Dir                                      string // a filesystem store when set
	Endpoint, Bucket, Region, Access, Secret string
}

func (c storeConfig) open(name string) (store.Store, error) {
	if c.Dir != "" {
		return store.NewFS(name, c.Dir)
	}
	return store.NewS3(store.S3Params{Name: name, Endpoint: c.Endpoint, Bucket: c.Bucket, Region: c.Region,
		AccessKey: c.Access, SecretKey: c.Secret, Timeout: 5 * time.Second})
}

func s3Config(s *testkit.S3Server) storeConfig {
	return storeConfig{Endpoint: s.Endpoint, Bucket: s.Bucket, Region: s.Region, Access: s.AccessKey, Secret: s.SecretKey}
}

func TestMain(m *testing.M) {
	if cfg := os.Getenv(childEnv); cfg != "" {
		if err := runChild(cfg); err != nil {
			fmt.Fprintln(os.Stderr, "recorder process:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runChild is the recorder process: it records (or only delivers) until
// SIGTERM or SIGKILL, printing a line for every durable part:
// PART <segment start unix ns> <durable until unix ns>.
func runChild(js string) error {
	var c childConfig
	if err := json.Unmarshal([]byte(js), &c); err != nil {
		return err
	}
	a, err := c.Primary.open("primary")
	if err != nil {
		return err
	}
	b, err := c.Offsite.open("offsite")
	if err != nil {
		return err
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	r, err := New(Params{SpoolDir: c.Spool, Incident: "drill", Primary: a, Offsite: b,
		SegmentDuration: c.SegmentDuration, PartDuration: c.PartDuration, RetryMin: 100 * time.Millisecond, RetryMax: time.Second,
		Log: slog.New(slog.NewTextHandler(os.Stderr, nil)),
		OnPart: func(p PartInfo) {
			mu.Lock()
			fmt.Fprintf(out, "PART %d %d\n", p.SegmentStart.UnixNano(), p.DurableUntil.UnixNano())
			out.Flush()
			mu.Unlock()
		}})
	if err != nil {
		return err
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer cancel()
	if c.Record {
		st, stopSrc, err := childSource(ctx)
		if err != nil {
			return err
		}
		defer stopSrc()
		if _, err := r.Record("cam1", st); err != nil {
			return err
		}
	}
	mu.Lock()
	fmt.Fprintln(out, "READY")
	out.Flush()
	mu.Unlock()
	err = r.Run(ctx)
	r.Close()
	return err
}

// childSource runs ffmpeg (H.264 and Opus over RTP) into a stream. ffmpeg
// dies with the process (parent-death signal), even on SIGKILL.
func childSource(ctx context.Context) (*stream.Stream, func(), error) {
	var conns []net.PacketConn
	var ports []int
	for range 2 {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		conns, ports = append(conns, c), append(ports, c.LocalAddr().(*net.UDPAddr).Port)
	}
	dir, err := os.MkdirTemp("", "recchild")
	if err != nil {
		return nil, nil, err
	}
	sdp := filepath.Join(dir, "s.sdp")
	cmd := exec.CommandContext(ctx, testkit.FFmpegPath, ffmpegArgs(sourceOpts{Video: "h264", Audio: "opus"}, ports, sdp)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	stop := func() {
		cmd.Process.Kill()
		cmd.Wait()
		for _, c := range conns {
			c.Close()
		}
		os.RemoveAll(dir)
	}
	var tracks []unit.Track
	for deadline := time.Now().Add(20 * time.Second); len(tracks) != 2; {
		if time.Now().After(deadline) {
			stop()
			return nil, nil, fmt.Errorf("ffmpeg wrote no SDP")
		}
		if b, err := os.ReadFile(sdp); err == nil {
			tracks = parseSDP(string(b))
		}
		time.Sleep(20 * time.Millisecond) // polling a file another process writes
	}
	st := stream.New(stream.Params{Name: "cam1", Tracks: tracks})
	for i, c := range conns {
		go testkit.FeedRTP(c, unit.NewAssembler(i, tracks[i], st.Write))
	}
	return st, stop, nil
}

// child is a recorder process run by a test.
type child struct {
	kill, term func()

	mu    sync.Mutex
	parts [][2]int64 // segment start, durable until (unix ns)
	ready bool
}

func (c *child) snapshot() [][2]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][2]int64(nil), c.parts...)
}

func startChild(t *testing.T, c childConfig) *child {
	t.Helper()
	js, _ := json.Marshal(c)
	ch := &child{}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(js))
	cmd.Stdout = pw
	var stderr strings.Builder
	var emu sync.Mutex
	cmd.Stderr = writerFunc(func(b []byte) (int, error) {
		emu.Lock()
		defer emu.Unlock()
		return stderr.Write(b)
	})
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		emu.Lock()
		t.Logf("recorder process output (end):\n%s", tail(stderr.String(), 4000))
		emu.Unlock()
	})
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			ch.mu.Lock()
			switch {
			case len(f) == 3 && f[0] == "PART":
				a, _ := strconv.ParseInt(f[1], 10, 64)
				b, _ := strconv.ParseInt(f[2], 10, 64)
				ch.parts = append(ch.parts, [2]int64{a, b})
			case len(f) == 1 && f[0] == "READY":
				ch.ready = true
			}
			ch.mu.Unlock()
		}
	}()
	ch.kill = func() { cmd.Process.Signal(syscall.SIGKILL); <-done }
	ch.term = func() { cmd.Process.Signal(syscall.SIGTERM); <-done }
	return ch
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// spoolSegments counts the segment files in a spool directory.
func spoolSegments(t *testing.T, dir string) int {
	n := 0
	filepath.Walk(filepath.Join(dir, "seg"), func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, ".mp4") {
			n++
		}
		return nil
	})
	return n
}

func TestKillRecorderProcessMidSegment(t *testing.T) {
	testkit.RequireBinary(t, testkit.FFmpegPath)
	prim := testkit.StartMinIO(t, testkit.S3ServerParams{})
	off := testkit.StartVersityGW(t, testkit.S3ServerParams{})
	cfg := childConfig{Spool: filepath.Join(t.TempDir(), "spool"), Primary: s3Config(prim), Offsite: s3Config(off),
		Record: true, SegmentDuration: 2 * time.Second, PartDuration: 500 * time.Millisecond}
	c1 := startChild(t, cfg)
	testkit.WaitFor(t, 60*time.Second, "two segments and half of a third made durable", func() bool {
		ps := c1.snapshot()
		starts := map[int64]int{}
		for _, p := range ps {
			starts[p[0]]++
		}
		return len(starts) >= 3 && starts[ps[len(ps)-1][0]] >= 2
	})
	killed := time.Now()
	c1.kill()
	parts := c1.snapshot()
	last := parts[len(parts)-1]
	// What the process had accepted up to its last durable part is kept;
	// only the part in flight (and the interleaving delay) can be lost.
	if lost := killed.Sub(time.Unix(0, last[1])); lost > cfg.PartDuration+interleaveDelay+time.Second {
		t.Errorf("the last durable part ended %s before the kill", lost)
	}
	if n := spoolSegments(t, cfg.Spool); n == 0 {
		t.Fatal("nothing left in the spool after the kill")
	}

	// A new process on the same spool recovers the cut segment and delivers
	// everything.
	cfg.Record = false
	c2 := startChild(t, cfg)
	a, err := cfg.Primary.open("primary")
	if err != nil {
		t.Fatal(err)
	}
	b, err := cfg.Offsite.open("offsite")
	if err != nil {
		t.Fatal(err)
	}
	starts := map[int64]int64{} // segment start -> durable until
	for _, p := range parts {
		starts[p[0]] = max(starts[p[0]], p[1])
	}
	testkit.WaitFor(t, 60*time.Second, "every segment at both sites", func() bool {
		if spoolSegments(t, cfg.Spool) != 0 {
			return false
		}
		sa, _ := segmentsOf(t, a, "drill", "cam1")
		sb, _ := segmentsOf(t, b, "drill", "cam1")
		return len(sa) >= len(starts) && len(sb) >= len(starts)
	})
	c2.term()
	segs, ms := checkSites(t, a, b, "drill", "cam1")
	for start, until := range starts {
		found := false
		for _, m := range ms {
			if m.CaptureStart.Sub(time.Unix(0, start)).Abs() < time.Millisecond {
				found = true
				if end := time.Unix(0, until); m.CaptureEnd.Before(end.Add(-40 * time.Millisecond)) {
					t.Errorf("%s ends at %s, but the recorder had made it durable up to %s", m.Key, m.CaptureEnd, end)
				}
			}
		}
		if !found {
			t.Errorf("no stored segment starts at %s, which had durable parts before the kill", time.Unix(0, start))
		}
	}
	if m := ms[segs[len(segs)-1]]; !m.Recovered {
		t.Errorf("the segment cut by the kill is not marked recovered: %+v", m)
	}
	for _, k := range segs[:len(segs)-1] {
		if ms[k].Recovered {
			t.Errorf("%s is marked recovered but was closed before the kill", k)
		}
	}
	checkPlayback(t, a, segs, ms, []string{"h264", "opus"}, 40*time.Millisecond)
}
