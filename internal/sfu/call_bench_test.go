package sfu

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/metrics"
	rooms "fieldvideo/internal/session"
)

// startSFUProcess builds cmd/sfu and runs it on loopback, so its CPU time
// can be measured apart from the clients'. It returns the HTTP address and
// the process id.
func startSFUProcess(b *testing.B) (string, int) {
	b.Helper()
	dir := b.TempDir()
	bin := filepath.Join(dir, "sfu")
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "fieldvideo/cmd/sfu").CombinedOutput(); err != nil {
		b.Fatalf("build sfu: %v\n%s", err, out)
	}
	cmd := exec.CommandContext(ctx, bin, "-config", os.DevNull)
	cmd.Dir = dir // what it records and keeps stays out of the source tree
	cmd.Env = append(os.Environ(), "FV_SFU_HTTP_ADDRESS=127.0.0.1:0", "FV_SFU_WEBRTC_UDP_ADDRESS=127.0.0.1:0",
		"FV_SFU_AUTH_SECRET="+string(testSecret), "FV_SFU_AUDIT_FILE="+filepath.Join(dir, "audit.log"),
		"FV_SFU_AUDIT_SIGNING_KEY_FILE="+filepath.Join(dir, "audit.key"), "FV_SFU_AUTH_REVOCATIONS_FILE="+filepath.Join(dir, "revocations.json"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cancel(); _ = cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`msg=listening .*\bhttp=(\S+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	select {
	case a := <-addr:
		return a, cmd.Process.Pid
	case <-time.After(20 * time.Second):
		b.Fatal("the SFU did not start listening")
	}
	return "", 0
}

// cpuTime returns the user+system CPU time of a process.
func cpuTime(b *testing.B, pid int) time.Duration {
	user, system, err := metrics.ProcessCPU(pid)
	if err != nil {
		b.Fatal(err)
	}
	return user + system
}

// BenchmarkCallRoom6x6 runs a room of six participants, each publishing a
// three-layer simulcast camera and a microphone and subscribing to the
// other five, and prints the SFU's CPU use, the packets it forwards per
// CPU-second, and the time from joining to the first remote frame.
// Run it alone: go test -run '^$' -bench CallRoom6x6 -benchtime 1x ./internal/sfu
func BenchmarkCallRoom6x6(b *testing.B) {
	const n = 6
	addr, pid := startSFUProcess(b)
	capi, err := rooms.NewAPI(rooms.APIParams{LoopbackOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	first := map[string]time.Time{} // subscriber|track → first packet
	var received int64
	clients := make([]*rooms.Client, n)
	ready := make([]time.Time, n) // joined and publishing
	joinAt := make([]time.Time, n)
	for i := range clients {
		who := fmt.Sprintf("p%d", i)
		role := auth.RoleResponder
		if i == 0 {
			role = auth.RoleCommander
		}
		c := auth.Claims{Role: role, Room: "bench", RoomPublish: true, RoomSubscribe: true}
		c.Subject = who
		tok, err := auth.Mint(testSecret, c, time.Hour, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		joinAt[i] = time.Now()
		cl, err := rooms.Dial(ctx, rooms.ClientParams{
			URL: "ws://" + addr + "/v1/rooms/bench/ws", Token: tok, API: capi, AutoSubscribe: true,
			OnPacket: func(track string, _ *rtp.Packet) {
				mu.Lock()
				received++
				if k := who + "|" + track; strings.HasSuffix(track, "/camera") && first[k].IsZero() {
					first[k] = time.Now()
				}
				mu.Unlock()
			},
		})
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = cl.Close() })
		clients[i] = cl
		publishSynthB(b, cl)
		ready[i] = time.Now()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		got := len(first)
		mu.Unlock()
		if got == n*(n-1) {
			break
		}
		if time.Now().After(deadline) {
			mu.Lock()
			var missing []string
			for s := range n {
				for p := range n {
					if k := fmt.Sprintf("p%d|p%d/camera", s, p); s != p && first[k].IsZero() {
						missing = append(missing, k)
					}
				}
			}
			mu.Unlock()
			b.Fatalf("only %d of %d remote videos arrived; missing %v", got, n*(n-1), missing)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var ttff []time.Duration
	for s := range n {
		for p := range n {
			if s == p {
				continue
			}
			start := joinAt[s]
			if ready[p].After(start) {
				start = ready[p]
			}
			ttff = append(ttff, first[fmt.Sprintf("p%d|p%d/camera", s, p)].Sub(start))
		}
	}
	slices.Sort(ttff)

	b.ResetTimer()
	const window = 10 * time.Second
	cpu0, at0 := cpuTime(b, pid), time.Now()
	mu.Lock()
	pk0 := received
	mu.Unlock()
	if path := os.Getenv("FV_BENCH_CPUPROFILE"); path != "" {
		profileSFU(b, addr, window, path)
	} else {
		time.Sleep(window) // the measuring window, not a synchronisation
	}
	cpu1, at1 := cpuTime(b, pid), time.Now()
	mu.Lock()
	pk1 := received
	mu.Unlock()
	b.StopTimer()

	cpu := (cpu1 - cpu0).Seconds()
	wall := at1.Sub(at0).Seconds()
	pps := float64(pk1-pk0) / wall
	b.ReportMetric(100*cpu/wall, "sfu-cpu-%")
	b.ReportMetric(float64(pk1-pk0)/cpu, "pkts/cpu-s")
	b.ReportMetric(float64(ttff[len(ttff)/2].Milliseconds()), "ttff-p50-ms")
	b.ReportMetric(float64(ttff[len(ttff)-1].Milliseconds()), "ttff-max-ms")
	fmt.Printf("room 6x6 simulcast: SFU CPU %.1f%% of one core, %.0f packets/s delivered, %.0f packets per CPU-second; "+
		"join to first remote frame p50 %s, max %s\n", 100*cpu/wall, pps, float64(pk1-pk0)/cpu,
		ttff[len(ttff)/2].Round(time.Millisecond), ttff[len(ttff)-1].Round(time.Millisecond))
}

// profileSFU writes the SFU's CPU profile over d to path (FV_BENCH_CPUPROFILE=path).
func profileSFU(b *testing.B, addr string, d time.Duration, path string) {
	c := auth.Claims{Role: auth.RoleOperator}
	c.Subject = "bench"
	tok, err := auth.Mint(testSecret, c, time.Hour, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds())), nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("profile: %s %v %s", resp.Status, err, body)
	}
	if err := os.WriteFile(path, body, 0o644); err != nil {
		b.Fatal(err)
	}
}

// publishSynthB is publishSynth for benchmarks.
func publishSynthB(b *testing.B, c *rooms.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tracks, err := c.Publish(ctx, rooms.TrackSpec{Source: rooms.SourceCamera, Codec: "H264", RIDs: []string{"q", "h", "f"}},
		rooms.TrackSpec{Source: rooms.SourceMicrophone, Codec: "opus"})
	if err != nil {
		b.Fatalf("publish: %v", err)
	}
	stop := runSynth(tracks[0], tracks[1], 127, 3)
	b.Cleanup(stop)
}
