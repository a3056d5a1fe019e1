package main

import (
	"bufio"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/metrics"
	"fieldvideo/internal/stream"
	"fieldvideo/internal/whip"
	"fieldvideo/testbench/synth"
)

type params struct {
	sfuBin, ingestBin             string
	burn                          bool
	cameras, viewers, fps, gop    int
	packets                       int
	duration                      time.Duration
	cpuProfile, memProfile, trace string
}

type result struct {
	window                 time.Duration
	serverCPU              cpuTime
	ingestCPU              cpuTime // ingest's share of serverCPU
	sendFloor              time.Duration
	loadCPU                time.Duration     // the load generator's own CPU time
	sentPackets            uint64            // by the SFU to viewers, in the window
	resent                 uint64            // of them sent again on a NACK
	refused                map[string]uint64 // NACKed packets not sent again, by reason
	received, lost         uint64            // by viewers, in the window: arrivals, and gaps in arrival order
	unique, expected       uint64            // distinct packets received, and the span of sequence numbers
	made                   uint64            // packets the cameras made in the window, times their viewers
	latency                *histogram
	wire                   *histogram // up to the viewers' sockets
	forward50, forward99   string
	ttff                   []time.Duration
	answer, connect        []time.Duration // WHEP answer received, ICE and DTLS up; from the viewer's start
	viewersUp, viewersWant int
	rssBefore, rssAfter    int64 // the SFU's resident memory with the cameras only, and at the end
}

// sfuProcess is the sfu binary running on loopback.
type sfuProcess struct {
	cmd    *exec.Cmd
	base   string
	secret []byte
}

func startSFU(ctx context.Context, bin string) (*sfuProcess, error) {
	key := make([]byte, 24)
	_, _ = rand.Read(key)
	secret := hex.EncodeToString(key)
	dir, err := os.MkdirTemp("", "loadgen-")
	if err != nil {
		return nil, err
	}
	cmd, addrs, err := startServer(ctx, bin, "sfu", "FV_SFU_HTTP_ADDRESS=127.0.0.1:0", "FV_SFU_WEBRTC_UDP_ADDRESS=127.0.0.1:0",
		"FV_SFU_AUTH_SECRET="+secret, "FV_SFU_AUDIT_FILE="+dir+"/audit.log", "FV_SFU_AUDIT_SIGNING_KEY_FILE="+dir+"/audit.key", "FV_SFU_AUTH_REVOCATIONS_FILE="+dir+"/revocations.json",
		"FV_SFU_RECORD_SPOOL_DIR="+dir+"/spool", "FV_SFU_RECORD_PRIMARY_PATH="+dir+"/primary", "FV_SFU_RECORD_OFFSITE_PATH="+dir+"/offsite",
		"FV_SFU_LOG_FORMAT=json", "FV_SFU_LOG_LEVEL=info")
	if err != nil {
		return nil, err
	}
	return &sfuProcess{cmd: cmd, base: "http://" + addrs.HTTP, secret: []byte(secret)}, nil
}

// listening is what a server's "listening" log line says.
type listening struct{ Msg, HTTP, RTSP, API string }

// startServer starts one of our binaries with no config file and settings env, and
// returns once its JSON log says where it listens.
func startServer(ctx context.Context, bin, name string, env ...string) (*exec.Cmd, listening, error) {
	cmd := exec.CommandContext(ctx, bin, "-config", "/dev/null")
	cmd.Env = append(os.Environ(), env...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, listening{}, err
	}
	if err := cmd.Start(); err != nil {
		return nil, listening{}, fmt.Errorf("start %s: %w (build it with make build)", bin, err)
	}
	addr := make(chan listening, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line listening
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				addr <- line
			}
		}
	}()
	select {
	case a := <-addr:
		return cmd, a, nil
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		return nil, listening{}, fmt.Errorf("%s did not report its address within 10 s", name)
	}
}

// selfCPU returns this process's CPU time, user and system.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuTime is a process's CPU time split into user space and kernel.
type cpuTime struct{ user, kernel time.Duration }

func (c cpuTime) total() time.Duration { return c.user + c.kernel }

// cpu returns the process's CPU time from /proc.
func (s *sfuProcess) cpu() (cpuTime, error) { return procCPU(s.cmd.Process.Pid) }

// procRSS returns process pid's resident memory in bytes, from /proc.
func procRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// procCPU returns process pid's CPU time from /proc.
func procCPU(pid int) (cpuTime, error) {
	user, system, err := metrics.ProcessCPU(pid)
	return cpuTime{user: user, kernel: system}, err
}

// scrape is what the load generator reads from the SFU's metrics.
type scrape struct {
	sent    uint64            // fv_viewer_packets_sent_total, summed
	resent  uint64            // fv_viewer_packets_retransmitted_total, summed
	refused map[string]uint64 // fv_viewer_nacked_packets_refused_total by reason
	forward map[string]uint64 // fv_forward_latency_seconds buckets by le
}

func (s *sfuProcess) scrape(ctx context.Context) (scrape, error) {
	c := &whip.Client{Token: s.token(auth.RoleOperator, nil, nil)}
	body, err := c.Get(ctx, s.base+"/metrics")
	if err != nil {
		return scrape{}, err
	}
	sc := scrape{forward: map[string]uint64{}, refused: map[string]uint64{}}
	for _, line := range strings.Split(string(body), "\n") {
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, _ := strconv.ParseFloat(line[i+1:], 64)
		switch {
		case strings.HasPrefix(line, "fv_viewer_packets_sent_total{"):
			sc.sent += uint64(v)
		case strings.HasPrefix(line, "fv_viewer_packets_retransmitted_total{"):
			sc.resent += uint64(v)
		case strings.HasPrefix(line, "fv_viewer_nacked_packets_refused_total{"):
			if j := strings.Index(line, `reason="`); j >= 0 {
				reason := line[j+len(`reason="`):]
				sc.refused[reason[:strings.IndexByte(reason, '"')]] += uint64(v)
			}
		case strings.HasPrefix(line, `fv_forward_latency_seconds_bucket{le="`):
			le := strings.TrimSuffix(strings.TrimPrefix(line[:i], `fv_forward_latency_seconds_bucket{le="`), `"}`)
			sc.forward[le] = uint64(v)
		}
	}
	return sc, nil
}

// forwardQuantile estimates a quantile of the SFU's forwarding latency over
// the window between two scrapes, as the upper bound of its bucket.
func forwardQuantile(a, b scrape, q float64) string {
	type bucket struct {
		le  float64
		cum uint64
	}
	var bs []bucket
	for le, n := range b.forward {
		f, err := strconv.ParseFloat(le, 64)
		if le == "+Inf" {
			f, err = 1e9, nil
		}
		if err == nil {
			bs = append(bs, bucket{f, n - a.forward[le]})
		}
	}
	slices.SortFunc(bs, func(x, y bucket) int { return cmp.Compare(x.le, y.le) })
	if len(bs) == 0 || bs[len(bs)-1].cum == 0 {
		return "n/a"
	}
	target := uint64(q * float64(bs[len(bs)-1].cum))
	for _, x := range bs {
		if x.cum > target {
			if x.le >= 1e9 {
				return "> 1s"
			}
			return "≤ " + time.Duration(x.le*float64(time.Second)).String()
		}
	}
	return "n/a"
}

// profile saves the CPU profile over d of the server at base (the SFU, or ingest
// sharing its secret) to path.
func profile(ctx context.Context, base string, s *sfuProcess, path string, d time.Duration) error {
	return fetch(ctx, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, int(d.Seconds())), s, path)
}

// fetch saves what an operator GETs at url to path.
func fetch(ctx context.Context, url string, s *sfuProcess, path string) error {
	c := &whip.Client{Token: s.token(auth.RoleOperator, nil, nil)}
	body, err := c.Get(ctx, url)
	if err != nil {
		return err
	}
	return os.WriteFile(path, body, 0o644)
}

func (s *sfuProcess) token(role auth.Role, pub, view []string) string {
	tok, _ := auth.Mint(s.secret, auth.Claims{Role: role, Publish: pub, View: view}, time.Hour, time.Now())
	return tok
}

// viewerStats is what one viewer measured; guarded by its own mutex.
type viewerStats struct {
	mu        sync.Mutex
	measuring bool
	started   time.Time
	first     time.Duration
	answer    time.Duration
	connect   time.Duration
	lastSeq   uint16
	have      bool
	received  uint64
	lost      uint64 // gaps in arrival order, repaired or not
	latency   histogram
	// up to the viewer's socket: when the kernel received each packet
	book *arrivals
	wire histogram

	// What arrived in the window, repairs included: a bit per sequence number, the
	// number of distinct packets and the first and newest (unwrapped).
	seen        [1 << 16 / 64]uint64
	unique      uint64
	low, newest int64
	spanned     bool
}

// mark notes that sequence number seq arrived while measuring.
func (v *viewerStats) mark(seq uint16) {
	if !v.spanned {
		v.low, v.newest, v.spanned = int64(seq), int64(seq), true
	}
	x := v.newest + int64(int16(seq-uint16(v.newest)))
	if x > v.newest {
		v.newest = x
	}
	if x < v.low || v.newest-v.low >= 1<<16 {
		return
	}
	if w, b := seq/64, uint64(1)<<(seq%64); v.seen[w]&b == 0 {
		v.seen[w] |= b
		v.unique++
	}
}

// expected is the span of sequence numbers seen while measuring.
func (v *viewerStats) expected() uint64 {
	if !v.spanned {
		return 0
	}
	return uint64(min(v.newest-v.low+1, 1<<16))
}

func (v *viewerStats) on(kind webrtc.RTPCodecType, _ string, p *rtp.Packet, at time.Time) {
	if kind != webrtc.RTPCodecTypeVideo {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.first == 0 {
		v.first = at.Sub(v.started)
	}
	if v.have && v.measuring {
		if d := p.SequenceNumber - v.lastSeq; d > 1 && d < 1<<15 {
			v.lost += uint64(d - 1)
		}
	}
	v.lastSeq, v.have = p.SequenceNumber, true
	if !v.measuring {
		return
	}
	v.received++
	v.mark(p.SequenceNumber)
	if sent, ok := synth.Stamp(p.Payload); ok {
		v.latency.add(at.Sub(sent))
		if in, ok := v.book.when(p.SSRC, p.SequenceNumber); ok {
			v.wire.add(in.Sub(sent))
		}
	}
}

func run(ctx context.Context, p params) (*result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	floor, err := sendFloor(20000, 1200)
	if err != nil {
		return nil, fmt.Errorf("loopback send: %w", err)
	}
	sfu, err := startSFU(ctx, p.sfuBin)
	if err != nil {
		return nil, err
	}
	var in *ingestProcess
	if p.ingestBin != "" {
		if in, err = startIngest(ctx, p.ingestBin, sfu); err != nil {
			return nil, err
		}
	}
	var wg sync.WaitGroup
	var viewers []*whip.Viewer
	defer func() {
		for _, v := range viewers {
			_ = v.Close()
		}
		cancel()
		wg.Wait()
		if in != nil {
			_ = in.cmd.Wait()
		}
		_ = sfu.cmd.Wait()
	}()
	api, err := whip.NewAPI(whip.APIParams{LoopbackOnly: true, Keepalive: browserKeepalive})
	if err != nil {
		return nil, err
	}

	var cams []*stream.Stream
	for i := 0; i < p.cameras; i++ {
		name := fmt.Sprintf("load%d", i+1)
		cam := synth.New(synth.Params{FPS: p.fps, GOP: p.gop, PacketsPerFrame: p.packets, SSRC: uint32(1000 + i)})
		if in != nil {
			st, err := pushCamera(ctx, in, sfu, name, cam)
			if err != nil {
				return nil, err
			}
			cams = append(cams, st)
			if err := waitLive(ctx, sfu, name); err != nil {
				return nil, err
			}
			continue
		}
		st := stream.New(stream.Params{Name: name, Tracks: synth.Tracks(cam.Params())})
		pub, err := whip.NewPublisher(whip.PublisherParams{
			Endpoint: whip.Endpoint(sfu.base, name, "whip"),
			Client:   &whip.Client{Token: sfu.token(auth.RoleCamera, []string{name}, nil)},
			API:      api, Stream: st, QueueSize: 4096,
		})
		if err != nil {
			return nil, err
		}
		cams = append(cams, st)
		wg.Add(2)
		go func() { defer wg.Done(); cam.Run(ctx, st) }()
		go func() { defer wg.Done(); pub.Run(ctx) }()
		// Let the camera reach the SFU and the keyframe cache fill before the
		// viewers arrive at random points of the GOP.
		if err := waitLive(ctx, sfu, name); err != nil {
			return nil, err
		}
	}

	rssBefore := procRSS(sfu.cmd.Process.Pid)
	tok := sfu.token(auth.RoleWall, nil, []string{"*"})
	var stats []*viewerStats
	for i := 0; i < p.cameras; i++ {
		for j := 0; j < p.viewers; j++ {
			vs := &viewerStats{started: time.Now(), book: &arrivals{}}
			vapi, err := stampedAPI(vs.book)
			if err != nil {
				return nil, err
			}
			vctx, vcancel := context.WithTimeout(ctx, 10*time.Second)
			v, err := whip.View(vctx, whip.ViewerParams{
				Endpoint: whip.Endpoint(sfu.base, fmt.Sprintf("load%d", i+1), "whep"),
				Client:   &whip.Client{Token: tok}, API: vapi, NoAudio: true, OnPacket: vs.on, Borrow: true,
			})
			vcancel()
			if err != nil {
				return nil, fmt.Errorf("viewer %d of camera %d: %w", j+1, i+1, err)
			}
			vs.mu.Lock()
			vs.answer = time.Since(vs.started)
			vs.mu.Unlock()
			go func() {
				select {
				case <-v.Connected():
					vs.mu.Lock()
					vs.connect = time.Since(vs.started)
					vs.mu.Unlock()
				case <-ctx.Done():
				}
			}()
			viewers = append(viewers, v)
			stats = append(stats, vs)
		}
	}
	// Warm up until every viewer has its first frame (or 10 s pass).
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && countUp(stats) < len(stats) {
		time.Sleep(50 * time.Millisecond)
	}

	r := &result{viewersWant: len(stats), viewersUp: countUp(stats), latency: &histogram{}, wire: &histogram{}, sendFloor: floor, rssBefore: rssBefore}
	scrape0, err := sfu.scrape(ctx)
	if err != nil {
		return nil, err
	}
	if p.burn {
		if err := burn(ctx); err != nil {
			return nil, fmt.Errorf("CPU burner: %w", err)
		}
	}
	cpu0, in0, _ := r.serverCPUNow(sfu, in)
	self0 := selfCPU()
	start := time.Now()
	made0 := madePackets(cams)
	setMeasuring(stats, true)
	profiled := make(chan error, 4)
	if p.cpuProfile != "" {
		go func() { profiled <- profile(ctx, sfu.base, sfu, p.cpuProfile, p.duration) }()
	} else {
		profiled <- nil
	}
	if p.cpuProfile != "" && in != nil {
		go func() { profiled <- profile(ctx, in.api, sfu, p.cpuProfile+".ingest", p.duration) }()
	} else {
		profiled <- nil
	}
	traces := 0
	if p.trace != "" {
		traces++
		go func() { profiled <- fetch(ctx, sfu.base+"/debug/pprof/trace?seconds=5", sfu, p.trace) }()
		if in != nil {
			traces++
			go func() { profiled <- fetch(ctx, in.api+"/debug/pprof/trace?seconds=5", sfu, p.trace+".ingest") }()
		}
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(p.duration):
	}
	setMeasuring(stats, false)
	r.made = (madePackets(cams) - made0) * uint64(p.viewers)
	r.window = time.Since(start)
	r.rssAfter = procRSS(sfu.cmd.Process.Pid)
	if p.memProfile != "" {
		if err := fetch(ctx, sfu.base+"/debug/pprof/heap", sfu, p.memProfile); err != nil {
			return nil, fmt.Errorf("heap profile: %w", err)
		}
		if err := fetch(ctx, sfu.base+"/debug/pprof/goroutine?debug=1", sfu, p.memProfile+".goroutines"); err != nil {
			return nil, fmt.Errorf("goroutines: %w", err)
		}
	}
	r.loadCPU = selfCPU() - self0
	cpu1, in1, _ := r.serverCPUNow(sfu, in)
	scrape1, err := sfu.scrape(ctx)
	if err != nil {
		return nil, err
	}
	for range 2 + traces {
		if err := <-profiled; err != nil {
			return nil, fmt.Errorf("cpu profile or trace: %w", err)
		}
	}
	r.serverCPU = cpuTime{user: cpu1.user - cpu0.user, kernel: cpu1.kernel - cpu0.kernel}
	r.ingestCPU = cpuTime{user: in1.user - in0.user, kernel: in1.kernel - in0.kernel}
	r.sentPackets = scrape1.sent - scrape0.sent
	r.resent, r.refused = scrape1.resent-scrape0.resent, map[string]uint64{}
	for k, v := range scrape1.refused {
		r.refused[k] = v - scrape0.refused[k]
	}
	r.forward50, r.forward99 = forwardQuantile(scrape0, scrape1, 0.5), forwardQuantile(scrape0, scrape1, 0.99)
	for _, vs := range stats {
		vs.mu.Lock()
		r.received += vs.received
		r.lost += vs.lost
		r.unique += vs.unique
		r.expected += vs.expected()
		r.latency.merge(&vs.latency)
		r.wire.merge(&vs.wire)
		if vs.first > 0 {
			r.ttff = append(r.ttff, vs.first)
		}
		r.answer = append(r.answer, vs.answer)
		if vs.connect > 0 {
			r.connect = append(r.connect, vs.connect)
		}
		vs.mu.Unlock()
	}
	return r, nil
}

// madePackets returns how many packets the cameras have made so far.
func madePackets(cams []*stream.Stream) uint64 {
	var n uint64
	for _, st := range cams {
		n += st.Stats().Packets
	}
	return n
}

// serverCPUNow returns the server's CPU time so far: the SFU's, and ingest's when it
// runs; and ingest's alone.
func (r *result) serverCPUNow(sfu *sfuProcess, in *ingestProcess) (total, ingest cpuTime, err error) {
	c, err := sfu.cpu()
	if err != nil || in == nil {
		return c, cpuTime{}, err
	}
	i, err := in.cpu()
	return cpuTime{user: c.user + i.user, kernel: c.kernel + i.kernel}, i, err
}

func waitLive(ctx context.Context, s *sfuProcess, name string) error {
	c := &whip.Client{Token: s.token(auth.RoleOperator, nil, []string{name})}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		body, err := c.Get(ctx, s.base+"/v1/sources")
		if err == nil && strings.Contains(string(body), `"state":"live"`) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("camera %s never went live", name)
}

func countUp(stats []*viewerStats) int {
	n := 0
	for _, vs := range stats {
		vs.mu.Lock()
		if vs.first > 0 {
			n++
		}
		vs.mu.Unlock()
	}
	return n
}

func setMeasuring(stats []*viewerStats, on bool) {
	for _, vs := range stats {
		vs.mu.Lock()
		vs.measuring = on
		vs.mu.Unlock()
	}
}

func (r *result) print(w io.Writer, p params) {
	secs := r.window.Seconds()
	path := "WHIP into the SFU"
	if p.ingestBin != "" {
		path = "RTSP push into ingest, WHIP to the SFU; server CPU is ingest's and the SFU's"
	}
	if p.burn {
		path += "; a CPU burner holds one core"
	}
	fmt.Fprintf(w, "load: %d cameras x %d viewers (%d fps, keyframe every %d frames), window %.1f s, %d/%d viewers up\n",
		p.cameras, p.viewers, p.fps, p.gop, secs, r.viewersUp, r.viewersWant)
	fmt.Fprintf(w, "path:                             %s\n", path)
	fmt.Fprintf(w, "packets out (SFU → viewers):      %.0f /s\n", float64(r.sentPackets)/secs)
	fmt.Fprintf(w, "retransmitted on NACKs:           %d (%.2f%% of packets out); refused: %v\n", r.resent, 100*float64(r.resent)/float64(max(r.sentPackets, 1)), r.refused)
	fmt.Fprintf(w, "server CPU:                       %.3f CPU-s/s (user space %.3f, kernel %.3f)\n",
		r.serverCPU.total().Seconds()/secs, r.serverCPU.user.Seconds()/secs, r.serverCPU.kernel.Seconds()/secs)
	if p.ingestBin != "" {
		fmt.Fprintf(w, "  of which ingest:                %.3f CPU-s/s (user space %.3f, kernel %.3f)\n",
			r.ingestCPU.total().Seconds()/secs, r.ingestCPU.user.Seconds()/secs, r.ingestCPU.kernel.Seconds()/secs)
	}
	if r.serverCPU.total() > 0 {
		fmt.Fprintf(w, "packets per server CPU-second:    %.0f\n", float64(r.sentPackets)/r.serverCPU.total().Seconds())
	}
	if r.serverCPU.user > 0 {
		fmt.Fprintf(w, "packets per user-space CPU-second: %.0f (the kernel's share includes loopback delivery to the viewers)\n",
			float64(r.sentPackets)/r.serverCPU.user.Seconds())
	}
	fmt.Fprintf(w, "load generator CPU (same machine): %.3f CPU-s/s of %d cores\n", r.loadCPU.Seconds()/secs, runtime.NumCPU())
	if r.sendFloor > 0 {
		fmt.Fprintf(w, "this machine's loopback send:     %s per 1200-byte datagram, a floor of %.0f packets per CPU-second for any server here\n",
			r.sendFloor.Round(10*time.Nanosecond), float64(time.Second)/float64(r.sendFloor))
	}
	loss := 0.0
	if r.received+r.lost > 0 {
		loss = 100 * float64(r.lost) / float64(r.received+r.lost)
	}
	delivered := 100.0
	if r.expected > 0 {
		delivered = 100 * float64(r.unique) / float64(r.expected)
	}
	made := 0.0
	if r.made > 0 {
		made = 100 * float64(r.unique) / float64(r.made)
	}
	fmt.Fprintf(w, "delivered to viewers:             %.3f %% of what the cameras made in the window, %.3f %% of what the SFU sent (repairs included); gaps in arrival %.3f %%\n",
		made, delivered, loss)
	fmt.Fprintf(w, "added latency in the SFU:         p50 %s  p99 %s  (first packet in → last packet out, per frame)\n", r.forward50, r.forward99)
	fmt.Fprintf(w, "latency camera → viewer:          p50 %s  p99 %s  (over %d packets, as the viewers saw it)\n",
		r.latency.quantile(0.50), r.latency.quantile(0.99), r.latency.n)
	fmt.Fprintf(w, "latency camera → viewer's socket:  p50 %s  p99 %s  (kernel arrival: what the servers and loopback add, without the load generator's own reading)\n",
		r.wire.quantile(0.50), r.wire.quantile(0.99))
	fmt.Fprintf(w, "joining (from the viewer's start): WHEP answer p50 %s p95 %s; connected p50 %s p95 %s\n",
		quantile(r.answer, 0.50), quantile(r.answer, 0.95), quantile(r.connect, 0.50), quantile(r.connect, 0.95))
	fmt.Fprintf(w, "time to first frame:              p50 %s  p95 %s\n", quantile(r.ttff, 0.50), quantile(r.ttff, 0.95))
	if r.rssAfter > 0 && r.viewersWant > 0 {
		fmt.Fprintf(w, "SFU memory (resident):            %.0f MiB with the cameras only, %.0f MiB at the end: %.0f KiB per viewer\n",
			float64(r.rssBefore)/(1<<20), float64(r.rssAfter)/(1<<20), float64(r.rssAfter-r.rssBefore)/1024/float64(r.viewersWant))
	}
}
