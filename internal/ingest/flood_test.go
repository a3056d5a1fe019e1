package ingest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/testkit"
)

// idleConns are connections that send nothing; each notes when the server
// closed it.
type idleConns struct {
	mu       sync.Mutex
	dialled  []time.Time
	closedAt []time.Time // zero while open
	closed   atomic.Int64
}

// dialIdle opens n connections to addr from the local IP src ("" for any)
// and sends nothing on them.
func dialIdle(t *testing.T, addr, src string, n int) *idleConns {
	t.Helper()
	ic := &idleConns{dialled: make([]time.Time, n), closedAt: make([]time.Time, n)}
	d := net.Dialer{Timeout: 5 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	for i := range n {
		ic.dialled[i] = time.Now() // before the server can accept it
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("idle connection %d of %d from %q: %v", i+1, n, src, err)
		}
		t.Cleanup(func() { c.Close() })
		go func() {
			_, _ = c.Read(make([]byte, 1))
			ic.mu.Lock()
			ic.closedAt[i] = time.Now()
			ic.mu.Unlock()
			ic.closed.Add(1)
		}()
	}
	return ic
}

// lifetimes returns how long the closed connections stayed open.
func (ic *idleConns) lifetimes() []time.Duration {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	var out []time.Duration
	for i, at := range ic.closedAt {
		if !at.IsZero() {
			out = append(out, at.Sub(ic.dialled[i]))
		}
	}
	return out
}

// firstClosed returns when the first connection was closed, zero if none.
func (ic *idleConns) firstClosed() time.Time {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	var first time.Time
	for _, at := range ic.closedAt {
		if !at.IsZero() && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	return first
}

// idleBudget is how many idle connections a test may open in this process:
// want, or fewer when the descriptor limit would not allow both ends of
// each plus a margin for the rest of the test.
func idleBudget(t *testing.T, want int) int {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	n := min(want, (int(min(lim.Cur, 1<<20))-openFiles(t)-300)/2)
	if n < 100 {
		t.Fatalf("the open-file limit %d leaves room for %d idle connections; raise it (ulimit -n)", lim.Cur, n)
	}
	if n < want {
		t.Logf("open-file limit %d: opening %d idle connections instead of %d", lim.Cur, n, want)
	}
	return n
}

func openFiles(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("count open files: %v", err)
	}
	return len(ents)
}

// rtspOptions sends OPTIONS on a new connection from src and returns the
// status line of the answer.
func rtspOptions(t *testing.T, addr, src string) (string, error) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := fmt.Fprintf(c, "OPTIONS rtsp://%s/ RTSP/1.0\r\nCSeq: 1\r\n\r\n", addr); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// TestIdleConnectionsAreClosed: thousands of connections that send
// nothing do not stop ingest from serving a player, and the server closes
// each of them once the request timeout has passed.
func TestIdleConnectionsAreClosed(t *testing.T) {
	testkit.RequireBinary(t, testkit.FFmpegPath)
	// All n connections must be open before the first one's request timeout passes: on a busy
	// machine opening 2000 under the race detector took more than 4 s, and the server rightly
	// closed the first before the last was open.
	const timeout = 10 * time.Second
	n := idleBudget(t, 2000)
	env := newTestServer(t, func(p *Params) {
		p.RTSP.RequestTimeout = timeout
		p.RTSP.MaxConnections, p.RTSP.MaxConnectionsPerAddress = n+50, n+50
	})
	tok := mint(t, testSecret, auth.Claims{Publish: []string{"yard"}, View: []string{"yard"}})
	testkit.StartPush(t, t.Context(), testkit.PushParams{URL: env.url(tok, "yard"), Audio: testkit.AudioOpus})
	env.waitState(t, "yard", StateLive)

	idle := dialIdle(t, env.host, "127.0.0.1", n)
	testkit.WaitFor(t, waitTimeout, fmt.Sprintf("the server to hold %d idle connections", n), func() bool {
		return env.srv.Connections().Open >= n
	})
	p, err := play(t, env.url(tok, "yard"))
	if err != nil {
		t.Fatalf("play while %d idle connections are open: %v", n, err)
	}
	testkit.WaitFor(t, waitTimeout, "video and audio on the player", func() bool { return p.count("H264") >= 10 && p.count("opus") >= 5 })
	served := time.Now()
	if first := idle.firstClosed(); !first.IsZero() && first.Before(served) {
		t.Fatalf("an idle connection was closed before the player was served; cannot tell that the player was served while %d were open", n)
	}

	testkit.WaitFor(t, timeout+waitTimeout, "every idle connection to be closed by the server", func() bool {
		return idle.closed.Load() == int64(n)
	})
	shortest, longest := time.Duration(1<<62), time.Duration(0)
	for _, d := range idle.lifetimes() {
		if d < timeout || d > timeout+5*time.Second {
			t.Fatalf("an idle connection was closed %s after it was opened, want just after the request timeout %s", d, timeout)
		}
		shortest, longest = min(shortest, d), max(longest, d)
	}
	if st := env.srv.Connections(); st.RequestTimeouts < uint64(n) {
		t.Fatalf("connection stats %+v: want at least %d request timeouts", st, n)
	}
	before := p.count("H264")
	testkit.WaitFor(t, waitTimeout, "the player to go on receiving video", func() bool { return p.count("H264") > before+25 })
	t.Logf("%d idle connections held while a player was served; closed by the server %s to %s after opening (request timeout %s)",
		n, shortest.Round(time.Millisecond), longest.Round(time.Millisecond), timeout)
}

// TestConnectionLimits: a flood from one address is cut at the per-address
// bound while another address still gets answers; the total bound cuts
// every address.
func TestConnectionLimits(t *testing.T) {
	cases := []struct {
		name             string
		max, perAddr     int
		flood            map[string]int // source IP → idle connections
		refused          map[string]int // of them, closed at once
		other            string         // an address that then sends OPTIONS
		otherAnswered    bool
		refusedMax, addr uint64
		evicted          uint64         // closed to make room at the total
		closedAfter      map[string]int // closed once the other address was answered
	}{
		{"per address", 1000, 20, map[string]int{"127.0.0.1": 30}, map[string]int{"127.0.0.1": 10}, "127.0.0.2", true, 0, 10, 0,
			map[string]int{"127.0.0.1": 10}},
		// At the total, newcomers take the places of the oldest connections
		// not yet granted access (all of 127.0.0.1's are idle).
		{"total", 25, 20, map[string]int{"127.0.0.1": 20, "127.0.0.3": 10}, map[string]int{"127.0.0.1": 5}, "127.0.0.2", true, 0, 0, 6,
			map[string]int{"127.0.0.1": 6}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestServer(t, func(p *Params) {
				p.RTSP.RequestTimeout = time.Minute // refusals must not be mistaken for timeouts
				p.RTSP.MaxConnections, p.RTSP.MaxConnectionsPerAddress = tc.max, tc.perAddr
			})
			start := time.Now()
			conns := map[string]*idleConns{}
			dialled := 0
			for _, src := range []string{"127.0.0.1", "127.0.0.3"} {
				if tc.flood[src] == 0 {
					continue
				}
				conns[src] = dialIdle(t, env.host, src, tc.flood[src])
				dialled += tc.flood[src]
				testkit.WaitFor(t, waitTimeout, "every connection from "+src+" accepted or refused", func() bool {
					st := env.srv.Connections()
					return int(st.Accepted+st.RefusedMax+st.RefusedPerAddr) == dialled
				})
			}
			for src, ic := range conns {
				want := int64(tc.refused[src])
				testkit.WaitFor(t, waitTimeout, fmt.Sprintf("%d connections from %s closed at once", want, src), func() bool {
					return ic.closed.Load() >= want
				})
			}
			if d := time.Since(start); d > 30*time.Second {
				t.Fatalf("refusals took %s", d)
			}
			status, err := rtspOptions(t, env.host, tc.other)
			if answered := err == nil && status == "RTSP/1.0 200 OK"; answered != tc.otherAnswered {
				t.Fatalf("OPTIONS from %s: %q, %v; want answered=%v", tc.other, status, err, tc.otherAnswered)
			}
			for src, ic := range conns {
				want := int64(tc.closedAfter[src])
				testkit.WaitFor(t, waitTimeout, fmt.Sprintf("%d connections from %s closed", want, src), func() bool { return ic.closed.Load() >= want })
			}
			st := env.srv.Connections()
			if st.RefusedMax != tc.refusedMax || st.RefusedPerAddr != tc.addr || st.Evicted != tc.evicted {
				t.Fatalf("stats %+v: want %d refused over max_connections, %d over the per-address bound, %d evicted", st, tc.refusedMax, tc.addr, tc.evicted)
			}
			for src, ic := range conns {
				if got, want := ic.closed.Load(), int64(tc.closedAfter[src]); got != want {
					t.Fatalf("%d connections from %s closed, want only the %d over the bound", got, src, want)
				}
			}
		})
	}
}

// TestAcceptSurvivesFileLimit: with the process out of file descriptors,
// ingest keeps accepting once descriptors are free again: the idle
// connections that used them up are closed after the request timeout, and
// a player is served with the limit still in force.
func TestAcceptSurvivesFileLimit(t *testing.T) {
	testkit.RequireBinary(t, testkit.FFmpegPath)
	env := newTestServer(t, func(p *Params) {
		p.RTSP.RequestTimeout = time.Second
		p.RTSP.MaxConnections, p.RTSP.MaxConnectionsPerAddress = 1000, 1000
	})
	tok := mint(t, testSecret, auth.Claims{Publish: []string{"yard"}, View: []string{"yard"}})
	testkit.StartPush(t, t.Context(), testkit.PushParams{URL: env.url(tok, "yard")})
	env.waitState(t, "yard", StateLive)

	const flood = 200
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	fl := startFlooder(t, env.host, flood, 0) // before the limit is lowered: it raises its own
	limit := uint64(openFiles(t) + 64)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: limit, Max: old.Max}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
	fl.start(t)

	testkit.WaitFor(t, waitTimeout, "accept to run out of descriptors (EMFILE)", func() bool {
		return env.srv.Connections().AcceptErrors > 0
	})
	testkit.WaitFor(t, 3*waitTimeout, "the server to close every idle connection", func() bool {
		return fl.closed() == flood
	})
	p, err := play(t, env.url(tok, "yard"))
	if err != nil {
		t.Fatalf("play after the flood, open-file limit %d: %v", limit, err)
	}
	testkit.WaitFor(t, waitTimeout, "video on the player", func() bool { return p.count("H264") >= 10 })
	t.Logf("open-file limit %d, %d idle connections: %+v", limit, flood, env.srv.Connections())
}

// flooder is a child process that holds idle connections (see
// TestFloodHelperProcess), so that they cost the server's process only its
// own ends.
type flooder struct {
	cmd     *exec.Cmd
	mu      sync.Mutex
	nclosed int
}

// startFlooder prepares a flooder of n connections to addr from srcs
// source addresses (0: the default one); start runs it.
func startFlooder(t *testing.T, addr string, n, srcs int) *flooder {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFloodHelperProcess$")
	cmd.Env = append(os.Environ(), "INGEST_FLOOD_ADDR="+addr, "INGEST_FLOOD_CONNS="+strconv.Itoa(n),
		"INGEST_FLOOD_SRCS="+strconv.Itoa(srcs))
	return &flooder{cmd: cmd}
}

func (f *flooder) start(t *testing.T) {
	t.Helper()
	out, err := f.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	in, err := f.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	f.cmd.Stderr = os.Stderr
	if err := f.cmd.Start(); err != nil {
		t.Fatalf("start the flooder: %v", err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		in.Close() // the flooder exits when its input ends
		<-done
		_ = f.cmd.Wait()
	})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "closed="); ok {
				n, _ := strconv.Atoi(v)
				f.mu.Lock()
				f.nclosed = n
				f.mu.Unlock()
			}
		}
	}()
}

// closed is how many of the flooder's connections the server has closed.
func (f *flooder) closed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nclosed
}

// TestFloodHelperProcess is the flooder's process: it opens
// INGEST_FLOOD_CONNS connections to INGEST_FLOOD_ADDR (spread over
// INGEST_FLOOD_SRCS source addresses from 127.0.0.2), sends nothing, prints
// closed=N each time the server has closed N of them, and exits when its
// standard input ends.
func TestFloodHelperProcess(t *testing.T) {
	addr := os.Getenv("INGEST_FLOOD_ADDR")
	if addr == "" {
		t.Skip("the flooding process of other tests")
	}
	n, _ := strconv.Atoi(os.Getenv("INGEST_FLOOD_CONNS"))
	srcs, _ := strconv.Atoi(os.Getenv("INGEST_FLOOD_SRCS"))
	var (
		mu     sync.Mutex
		closed int
	)
	d := net.Dialer{Timeout: 10 * time.Second}
	for i := range n {
		if srcs > 0 {
			j := i % srcs
			d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, byte(j/250), byte(2+j%250))}
		}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "flooder: connection %d: %v\n", i, err)
			os.Exit(1)
		}
		go func() {
			_, _ = c.Read(make([]byte, 1))
			mu.Lock()
			closed++
			fmt.Printf("closed=%d\n", closed)
			mu.Unlock()
		}()
	}
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	os.Exit(0)
}
