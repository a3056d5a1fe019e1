package cluster

import (
	"context"
	"encoding/json"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/conf"
	"fieldvideo/internal/testkit"
)

const testTTL = time.Second

func join(t *testing.T, name, url string) *Cluster {
	t.Helper()
	cfg := conf.Cluster{NATS: []string{url}, Node: name, Advertise: "http://127.0.0.1:1", Replicas: 1,
		Heartbeat: 200 * time.Millisecond, LeaseTTL: testTTL}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Join(ctx, Params{Config: cfg, Role: "ingest", Load: func() Load { return Load{Cameras: 1} }})
	if err != nil {
		t.Fatalf("join %s: %v", name, err)
	}
	t.Cleanup(c.Close)
	return c
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// puller stands for a camera's puller: it counts who runs and how many at once.
type puller struct {
	mu      sync.Mutex
	running map[string]bool
	most    int
	waits   map[string]Holder
}

func newPuller() *puller {
	return &puller{running: map[string]bool{}, waits: map[string]Holder{}}
}

func (p *puller) hold(ctx context.Context, c *Cluster) {
	c.Hold(ctx, "cam1", func(ctx context.Context) {
		p.mu.Lock()
		p.running[c.Name()] = true
		p.most = max(p.most, len(p.running))
		p.mu.Unlock()
		<-ctx.Done()
		p.mu.Lock()
		delete(p.running, c.Name())
		p.mu.Unlock()
	}, func(h Holder) {
		p.mu.Lock()
		p.waits[c.Name()] = h
		p.mu.Unlock()
	})
}

func (p *puller) who() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for n := range p.running {
		return n
	}
	return ""
}

func (p *puller) runs(name string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running[name]
}

func (p *puller) waiting(name string) Holder {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waits[name]
}

func (p *puller) mostAtOnce() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.most
}

func TestLeaseOneHolderAndHandover(t *testing.T) {
	srv := testkit.StartNATS(t)
	a, b := join(t, "a", srv.URL), join(t, "b", srv.URL)
	p := newPuller()

	actx, stopA := context.WithCancel(context.Background())
	doneA := make(chan struct{})
	go func() { defer close(doneA); p.hold(actx, a) }()
	waitFor(t, "a holds cam1", 5*time.Second, func() bool { return p.who() == "a" })
	bctx, stopB := context.WithCancel(context.Background())
	defer stopB()
	doneB := make(chan struct{})
	go func() { defer close(doneB); p.hold(bctx, b) }()
	waitFor(t, "b told that a holds cam1", 5*time.Second, func() bool { return p.waiting("b").Node == "a" })
	if h, err := b.HolderOf(context.Background(), "cam1"); err != nil || h != "a" {
		t.Fatalf("HolderOf(cam1) = %q, %v; want a", h, err)
	}

	// a stops (a graceful shutdown): it releases the lease, and b takes it at once.
	stopA()
	<-doneA
	took := waitFor(t, "b takes cam1 after a released it", 5*time.Second, func() bool { return p.who() == "b" })
	t.Logf("handover after a release: %s", took)
	if took > testTTL {
		t.Errorf("b took a released lease after %s; want well within the TTL (%s): release must not wait for expiry", took, testTTL)
	}
	if m := p.mostAtOnce(); m != 1 {
		t.Errorf("%d nodes pulled cam1 at once; want 1", m)
	}
	stopB()
	<-doneB
}

func TestLeaseTakenOverFromAPartitionedHolder(t *testing.T) {
	srv := testkit.StartNATS(t)
	link := testkit.NewLink(t, srv.URL[len("nats://"):])
	a, b := join(t, "a", "nats://"+link.Addr()), join(t, "b", srv.URL)
	p := newPuller()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Add(1)
	go func() { defer wg.Done(); p.hold(ctx, a) }()
	waitFor(t, "a holds cam1", 5*time.Second, func() bool { return p.who() == "a" })
	wg.Add(1)
	go func() { defer wg.Done(); p.hold(ctx, b) }()
	waitFor(t, "b told that a holds cam1", 5*time.Second, func() bool { return p.waiting("b").Node == "a" })
	waitFor(t, "each node sees the other", 5*time.Second, func() bool { return len(a.Nodes()) == 2 && len(b.Nodes()) == 2 })

	// a is cut off NATS: it goes on pulling (the edge never stops for the cluster's
	// sake), and b takes the camera once a's lease lapsed: both pull until it heals.
	link.Cut()
	took := waitFor(t, "b takes cam1 once the cut-off a's lease lapsed", 5*time.Second, func() bool { return p.runs("b") })
	t.Logf("takeover from a cut-off holder: %s (lease TTL %s)", took, testTTL)
	if !p.runs("a") {
		t.Errorf("the cut-off a stopped pulling cam1; want it to go on")
	}
	waitFor(t, "a knows it is out of the cluster", 5*testTTL, func() bool { return !a.Connected() })
	waitFor(t, "b sees a gone", 10*time.Second, func() bool { return len(b.Nodes()) == 1 })

	// healed: a learns that b holds the lease and stops; b keeps the camera.
	link.Mend()
	healed := waitFor(t, "a stopping once it learns b holds cam1", 10*time.Second, func() bool {
		return !p.runs("a") && p.waiting("a").Node == "b"
	})
	t.Logf("partition healed → the second puller stopped after %s", healed)
	if !p.runs("b") {
		t.Errorf("after the partition healed b does not pull cam1; want b kept it")
	}
	waitFor(t, "a back in the cluster", 10*time.Second, func() bool { return a.Connected() && len(a.Nodes()) == 2 })
}

// TestNodeWithoutNATSRunsAlone: a node whose NATS servers do not answer
// starts anyway and pulls its cameras (the edge never stops for the
// cluster's sake); when they answer it joins and takes the leases.
func TestNodeWithoutNATSRunsAlone(t *testing.T) {
	srv := testkit.StartNATS(t)
	link := testkit.NewLink(t, srv.URL[len("nats://"):])
	link.Cut()
	cfg := conf.Cluster{NATS: []string{"nats://" + link.Addr()}, Node: "a", Advertise: "http://127.0.0.1:1", Replicas: 1,
		Heartbeat: 200 * time.Millisecond, LeaseTTL: testTTL}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	a, err := Join(ctx, Params{Config: cfg, Role: "ingest"})
	cancel()
	if err != nil {
		t.Fatalf("Join with no NATS server answering: %v; want the node to start alone", err)
	}
	t.Cleanup(a.Close)
	if a.Connected() {
		t.Fatal("a node that never reached NATS says it is connected")
	}
	p := newPuller()
	hctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.hold(hctx, a) }()
	defer func() { stop(); <-done }()
	waitFor(t, "a pulling cam1 alone", 5*time.Second, func() bool { return p.runs("a") })

	link.Mend()
	b := join(t, "b", srv.URL)
	waitFor(t, "a joined and holding cam1's lease", 10*time.Second, func() bool {
		h, err := b.HolderOf(context.Background(), "cam1")
		return a.Connected() && err == nil && h == "a"
	})
	if !p.runs("a") {
		t.Error("a stopped pulling cam1 when it joined")
	}
}

func TestLeaseTakenBackAfterRestart(t *testing.T) {
	srv := testkit.StartNATS(t)
	a := join(t, "a", srv.URL)
	key := "lease.cam1"
	rev, who, err := a.take(context.Background(), key)
	if rev == 0 {
		t.Fatalf("take: %q %v", who, err)
	}
	// a dies without releasing; it comes back under the same name before the lease lapses.
	a2 := join(t, "a", srv.URL)
	if rev2, who, err := a2.take(context.Background(), key); rev2 == 0 {
		t.Fatalf("a restarted could not take back its own lease: %q %v", who, err)
	}
	b := join(t, "b", srv.URL)
	if rev3, who, err := b.take(context.Background(), key); rev3 != 0 || who != "a" || err != nil {
		t.Fatalf("b took a's lease (rev %d, %q, %v); want refused, held by a", rev3, who, err)
	}
}

func TestDrainingNodeTakesNoLease(t *testing.T) {
	srv := testkit.StartNATS(t)
	a := join(t, "a", srv.URL)
	a.SetDraining(true)
	waitFor(t, "a listed as draining", 5*time.Second, func() bool {
		n := a.Nodes()
		return len(n) == 1 && n[0].Draining
	})
	p := newPuller()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.hold(ctx, a) }()
	waitFor(t, "a says it is draining", 5*time.Second, func() bool { return p.waiting("a").Err != nil })
	if w := p.who(); w != "" {
		t.Errorf("a draining node pulls cam1 (%s)", w)
	}
	a.SetDraining(false)
	waitFor(t, "a takes cam1 once it no longer drains", 5*time.Second, func() bool { return p.who() == "a" })
	cancel()
	<-done
}

func TestNodesCarryLoad(t *testing.T) {
	srv := testkit.StartNATS(t)
	var beats atomic.Int64
	cfg := conf.Cluster{NATS: []string{srv.URL}, Node: "s1", Site: "eoc-north", Advertise: "http://127.0.0.1:8889", Replicas: 1,
		Heartbeat: 100 * time.Millisecond, LeaseTTL: testTTL}
	s, err := Join(context.Background(), Params{Config: cfg, Role: "sfu", Load: func() Load {
		return Load{Viewers: int(beats.Add(1)), Sources: 3}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	o := join(t, "other", srv.URL)
	var got Node
	waitFor(t, "other sees s1's load change", 5*time.Second, func() bool {
		for _, n := range o.Nodes() {
			if n.Name == "s1" && n.Load.Viewers > 2 {
				got = n
				return true
			}
		}
		return false
	})
	if got.Role != "sfu" || got.Site != "eoc-north" || got.URL != "http://127.0.0.1:8889" || got.Load.Sources != 3 {
		t.Errorf("s1 seen as %+v", got)
	}
	s.Close()
	waitFor(t, "s1 gone once it left", 2*time.Second, func() bool { return len(o.Nodes()) == 1 })
}

func TestClaimHasOneHomeAndMovesWhenItDies(t *testing.T) {
	srv := testkit.StartNATS(t)
	link := testkit.NewLink(t, srv.URL[len("nats://"):])
	a, b := join(t, "a", "nats://"+link.Addr()), join(t, "b", srv.URL)
	waitFor(t, "each node sees the other", 5*time.Second, func() bool { return len(a.Nodes()) == 2 && len(b.Nodes()) == 2 })
	var lostMu sync.Mutex
	var lost []string
	a.OnClaimLost(func(name string) {
		lostMu.Lock()
		lost = append(lost, name)
		lostMu.Unlock()
	})
	lostNames := func() []string {
		lostMu.Lock()
		defer lostMu.Unlock()
		return append([]string(nil), lost...)
	}
	ctx := context.Background()
	if node, _, err := a.Claim(ctx, "room-1"); node != "" || err != nil {
		t.Fatalf("a claims room-1: %q, %v; want a its home", node, err)
	}
	if node, url, err := b.Claim(ctx, "room-1"); node != "a" || url == "" || err != nil {
		t.Fatalf("b claims room-1: %q %q %v; want sent to a", node, url, err)
	}
	if node, _, err := a.Claim(ctx, "room-1"); node != "" || err != nil {
		t.Fatalf("a claims room-1 again: %q, %v; want still its home", node, err)
	}
	// a gives the room up: b becomes its home at once.
	a.Unclaim("room-1")
	if node, _, err := b.Claim(ctx, "room-1"); node != "" || err != nil {
		t.Fatalf("b claims room-1 after a gave it up: %q, %v", node, err)
	}
	// b's home room, a claims another; a is cut off: b takes a's room once the claim lapses.
	if node, _, err := a.Claim(ctx, "room-2"); node != "" || err != nil {
		t.Fatalf("a claims room-2: %q, %v", node, err)
	}
	link.Cut()
	// until a's heartbeats are missed b sends joiners to a (who fail and come back).
	took := waitFor(t, "b the home of the cut-off a's room", 10*time.Second, func() bool {
		node, _, err := b.Claim(ctx, "room-2")
		return node == "" && err == nil
	})
	t.Logf("a room of a cut-off node claimed by another after %s (TTL %s)", took.Round(time.Millisecond), testTTL)
	// a learnt it lost room-2 (it could not renew the claim), and only that:
	// giving room-1 up was no loss.
	waitFor(t, "a told it lost room-2", 5*time.Second, func() bool { return len(lostNames()) > 0 })
	if got := lostNames(); len(got) != 1 || got[0] != "room-2" {
		t.Errorf("a was told it lost %v; want [room-2]", got)
	}
	// healed: a asking again is sent to b, the room's home now.
	link.Mend()
	waitFor(t, "a sent to b for room-2 once healed", 15*time.Second, func() bool {
		node, url, err := a.Claim(ctx, "room-2")
		return node == "b" && url != "" && err == nil
	})
}

// Two revocations of one subject have two keys (a node sharing the older
// one again must not replace the newer); a token has one.
func TestRevocationKeys(t *testing.T) {
	at := time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)
	older := revocationKey(auth.Revocation{Subject: "phone 7/ü", At: at})
	newer := revocationKey(auth.Revocation{Subject: "phone 7/ü", At: at.Add(time.Second)})
	tok := revocationKey(auth.Revocation{TokenID: "a b", At: at})
	if older == newer || tok != revocationKey(auth.Revocation{TokenID: "a b", At: at.Add(time.Hour)}) {
		t.Fatalf("keys %q %q %q", older, newer, tok)
	}
	valid := regexp.MustCompile(`^[-/_=.a-zA-Z0-9]+$`)
	for _, k := range []string{older, newer, tok} {
		if !valid.MatchString(k) {
			t.Errorf("key %q is not a valid NATS key", k)
		}
	}
}

// The sweep removes revocations of tokens expired well before now, and
// leaves those still needed and those of subjects.
func TestPruneRevocations(t *testing.T) {
	srv := testkit.StartNATS(t)
	c := join(t, "a", srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := bucket(ctx, c.js, jetstream.KeyValueConfig{Bucket: RevocationsBucket, Storage: jetstream.MemoryStorage, History: 1})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	entries := map[string]auth.Revocation{
		"long expired": {TokenID: "t1", At: now.Add(-3 * time.Hour), Expires: now.Add(-2 * time.Hour)},
		"just expired": {TokenID: "t2", At: now.Add(-time.Hour), Expires: now.Add(-time.Minute)},
		"valid":        {TokenID: "t3", At: now, Expires: now.Add(time.Hour)},
		"subject":      {Subject: "phone-7", At: now.Add(-48 * time.Hour)},
	}
	for _, rv := range entries {
		b, _ := json.Marshal(rv)
		if _, err := kv.Put(ctx, revocationKey(rv), b); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.pruneRevocations(ctx, kv, now); n != 1 {
		t.Errorf("removed %d revocations, want 1", n)
	}
	for what, rv := range entries {
		_, err := kv.Get(ctx, revocationKey(rv))
		if gone := err != nil; gone != (what == "long expired") {
			t.Errorf("%s: gone %v (%v)", what, gone, err)
		}
	}
	if n := c.pruneRevocations(ctx, kv, now); n != 0 {
		t.Errorf("a second sweep removed %d", n)
	}
}
