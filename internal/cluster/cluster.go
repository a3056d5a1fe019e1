// Package cluster joins a process (an SFU or an ingest) to the other nodes of
// a deployment through NATS: every node registers itself with its load and a
// heartbeat in a JetStream key-value bucket, sees the others there, and takes
// leases (the right to pull a camera) from another bucket, so that each
// camera is pulled by exactly one live ingest and another takes it over
// within a lease's TTL when that one dies or loses NATS.
//
// One node needs no NATS: with no servers configured the process runs alone
// and this package is not used.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"fieldvideo/internal/conf"
)

// The buckets every node of a cluster shares.
const (
	NodesBucket  = "fieldvideo_nodes"
	LeasesBucket = "fieldvideo_leases"
)

// errNotJoined: the NATS servers have not answered since the node started.
var errNotJoined = errors.New("cluster: not joined yet: no NATS server has answered")

// missedBeats is how many heartbeats a node may miss before the others take
// it for dead.
const missedBeats = 5

// Load is what a node reports of its work, for placement.
type Load struct {
	// CPU is the cores the process used over the last heartbeat.
	CPU              float64 `json:"cpu"`
	PacketsPerSecond float64 `json:"packets_per_second,omitempty"`
	Viewers          int     `json:"viewers,omitempty"`
	Rooms            int     `json:"rooms,omitempty"`
	Sources          int     `json:"sources,omitempty"`
	// Cameras is how many cameras the node pulls (ingest).
	Cameras int `json:"cameras,omitempty"`
	// MaxSources is the node's bound on the sources placed on it (0: none).
	MaxSources int `json:"max_sources,omitempty"`
	// Published names the sources published to the node itself (an SFU),
	// which the other nodes relay from it.
	Published []string `json:"published,omitempty"`
	// Tags are what the node holds of sources' tags (an SFU's sfu.SourceTags,
	// by source), for the others to list them with.
	Tags map[string]json.RawMessage `json:"tags,omitempty"`
}

// Node is a node as the others see it.
type Node struct {
	Name string `json:"name"`
	// Role is sfu or ingest.
	Role string `json:"role"`
	Site string `json:"site,omitempty"`
	// URL is the base URL of the node's HTTP API.
	URL string `json:"url"`
	// Draining nodes take no new work.
	Draining bool      `json:"draining,omitempty"`
	Load     Load      `json:"load"`
	Started  time.Time `json:"started"`
	Beat     time.Time `json:"beat"`
}

// Params configure Join.
type Params struct {
	Config conf.Cluster
	// Role is sfu or ingest; Name defaults to <host>-<role>.
	Role string
	// Load, when set, is called at each heartbeat (CPU is filled in).
	Load func() Load
	Log  *slog.Logger
}

// Cluster is this node's membership.
type Cluster struct {
	name, role string
	cfg        conf.Cluster
	log        *slog.Logger
	load       func() Load
	nc         *nats.Conn
	js         jetstream.JetStream
	nodes      jetstream.KeyValue
	leases     jetstream.KeyValue
	leaseTTL   time.Duration
	started    time.Time

	mu       sync.Mutex
	draining bool
	beatOK   time.Time // when the last heartbeat was stored
	seen     map[string]seenNode
	cpu      cpuMeter
	claims   map[string]*claim
	lost     func(name string) // told when a claim is lost (OnClaimLost)
	ready    chan struct{}     // closed once the node has joined

	ctx    context.Context // ends with Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

type seenNode struct {
	node Node
	at   time.Time // when this node last heard of it
}

// Join connects to the NATS servers, opens (or creates) the cluster's
// buckets, and starts heartbeats and watching the other nodes. It waits for
// that until ctx ends; when no server answers by then the node works alone
// (Connected is false, leases are not taken: see Hold) and joins as soon as
// one does, by itself, as it does after any outage. It fails only on
// settings that cannot work.
func Join(ctx context.Context, p Params) (*Cluster, error) {
	c := p.Config
	name := c.Node
	if name == "" {
		host, _ := os.Hostname()
		name = conf.NodeNameFrom(host, p.Role)
	}
	log := p.Log
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "cluster", "node", name)
	cl := &Cluster{
		name: name, role: p.Role, cfg: c, log: log, load: p.Load, started: time.Now(), leaseTTL: c.LeaseTTL,
		seen: map[string]seenNode{}, claims: map[string]*claim{}, ready: make(chan struct{}),
	}
	opts := []nats.Option{
		nats.Name("fieldvideo " + p.Role + " " + name),
		nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond), nats.RetryOnFailedConnect(true),
		nats.PingInterval(time.Second), nats.MaxPingsOutstanding(3),
		nats.Timeout(2 * time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("lost the NATS servers; taking no new work until they answer", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("NATS servers answer", "server", nc.ConnectedUrlRedacted())
		}),
	}
	switch {
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	case c.CredentialsFile != "":
		opts = append(opts, nats.UserCredentials(c.CredentialsFile))
	}
	if c.CAFile != "" {
		opts = append(opts, nats.RootCAs(c.CAFile))
	}
	nc, err := nats.Connect(joinURLs(c.NATS), opts...)
	if err != nil {
		return nil, fmt.Errorf("cluster: NATS servers %v: %w; check cluster.nats and the credentials", c.NATS, err)
	}
	cl.nc = nc
	if cl.js, err = jetstream.New(nc); err != nil {
		nc.Close()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	bctx, cancel := context.WithCancel(context.Background())
	cl.ctx, cl.cancel = bctx, cancel
	cl.wg.Add(1)
	go cl.open(bctx)
	select {
	case <-cl.ready:
	case <-ctx.Done():
		log.Warn("no NATS server answers yet; working alone until one does", "nats", c.NATS)
	}
	return cl, nil
}

// open opens the buckets (creating them when no node has yet), registers
// the node and starts its heartbeats and watch, trying until ctx ends.
func (c *Cluster) open(ctx context.Context) {
	defer c.wg.Done()
	cfg := c.cfg
	nodes, err := bucket(ctx, c.js, jetstream.KeyValueConfig{
		Bucket: NodesBucket, Description: "fieldvideo nodes and their load",
		TTL: missedBeats * cfg.Heartbeat, Storage: jetstream.MemoryStorage, Replicas: cfg.Replicas, History: 1,
	})
	if err != nil {
		return // ctx ended
	}
	leases, err := bucket(ctx, c.js, jetstream.KeyValueConfig{
		Bucket: LeasesBucket, Description: "fieldvideo leases: which node pulls which camera",
		TTL: cfg.LeaseTTL, Storage: jetstream.MemoryStorage, Replicas: cfg.Replicas, History: 1,
	})
	if err != nil {
		return
	}
	if st, err := leases.Status(ctx); err == nil && st.TTL() != cfg.LeaseTTL {
		c.log.Warn("the cluster's leases keep the TTL they were created with, not this node's lease_ttl: set the same on every node",
			"lease_ttl", cfg.LeaseTTL, "cluster_lease_ttl", st.TTL())
	}
	c.mu.Lock()
	c.nodes, c.leases = nodes, leases
	c.mu.Unlock()
	for ctx.Err() == nil {
		bctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err = c.beat(bctx)
		cancel()
		if err == nil {
			break
		}
	}
	if ctx.Err() != nil {
		return
	}
	close(c.ready)
	c.wg.Add(2)
	go c.heartbeats(ctx)
	go c.watch(ctx)
	c.log.Info("joined the cluster", "role", c.role, "site", cfg.Site, "url", cfg.Advertise, "nats", c.nc.ConnectedUrlRedacted(),
		"lease_ttl", c.leaseTTL)
}

// kv returns the buckets, nil until the node has joined.
func (c *Cluster) kv() (nodes, leases jetstream.KeyValue) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes, c.leases
}

func joinURLs(s []string) string {
	out := ""
	for i, u := range s {
		if i > 0 {
			out += ","
		}
		out += u
	}
	return out
}

// bucket opens a key-value bucket, creating it when no node has yet. A
// JetStream cluster that is starting (no meta leader yet) drops requests:
// each try is bounded, and tried again until ctx ends.
func bucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	for {
		tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		kv, err := openBucket(tctx, js, cfg)
		cancel()
		if err == nil || ctx.Err() != nil {
			return kv, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func openBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if err == nil || !errors.Is(err, jetstream.ErrBucketNotFound) {
		return kv, err
	}
	kv, err = js.CreateKeyValue(ctx, cfg)
	if err != nil {
		// another node may have created it meanwhile
		if kv2, err2 := js.KeyValue(ctx, cfg.Bucket); err2 == nil {
			return kv2, nil
		}
	}
	return kv, err
}

// SetLoad sets what the heartbeats report of the node's work (CPU is
// measured here).
func (c *Cluster) SetLoad(f func() Load) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.load = f
}

// Name is this node's name in the cluster.
func (c *Cluster) Name() string { return c.name }

// Connected tells whether the node is in touch with the cluster: connected
// to a NATS server, its last heartbeat stored within the time the others
// wait for it.
func (c *Cluster) Connected() bool {
	if !c.nc.IsConnected() {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Since(c.beatOK) < missedBeats*c.cfg.Heartbeat
}

// SetDraining drains the node (true): it tells the others and the load
// balancer to send no new work, and keeps what it has; false takes work again.
func (c *Cluster) SetDraining(on bool) {
	c.mu.Lock()
	changed := c.draining != on
	c.draining = on
	c.mu.Unlock()
	if changed {
		c.log.Info("draining", "on", on)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = c.beat(ctx)
	}
}

// Draining tells whether the node is draining.
func (c *Cluster) Draining() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.draining
}

// Nodes returns the live nodes, this one included, sorted by name.
func (c *Cluster) Nodes() []Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	limit := missedBeats * c.cfg.Heartbeat
	out := make([]Node, 0, len(c.seen))
	for _, s := range c.seen {
		if time.Since(s.at) < limit {
			out = append(out, s.node)
		}
	}
	slices.SortFunc(out, func(a, b Node) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}

// Close leaves the cluster: it removes this node from the list (so that
// the others see it gone at once) and closes the connection. Leases still
// held are released by their Hold.
func (c *Cluster) Close() {
	c.once.Do(func() {
		c.mu.Lock()
		for _, cl := range c.claims {
			cl.cancel()
		}
		c.mu.Unlock()
		c.cancel()
		c.wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if nodes, _ := c.kv(); nodes != nil {
			_ = nodes.Delete(ctx, c.name)
		}
		_ = c.nc.Drain()
	})
}

func (c *Cluster) heartbeats(ctx context.Context) {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		bctx, cancel := context.WithTimeout(ctx, c.cfg.Heartbeat)
		if err := c.beat(bctx); err != nil && ctx.Err() == nil {
			c.log.Debug("heartbeat not stored", "err", err)
		}
		cancel()
	}
}

// beat stores this node's entry.
func (c *Cluster) beat(ctx context.Context) error {
	c.mu.Lock()
	load := c.load
	c.mu.Unlock()
	var l Load
	if load != nil {
		l = load()
	}
	c.mu.Lock()
	l.CPU = c.cpu.cores()
	n := Node{Name: c.name, Role: c.role, Site: c.cfg.Site, URL: c.cfg.Advertise, Draining: c.draining,
		Load: l, Started: c.started, Beat: time.Now().UTC()}
	c.mu.Unlock()
	b, err := json.Marshal(n)
	if err != nil {
		return err
	}
	nodes, _ := c.kv()
	if nodes == nil {
		return errNotJoined
	}
	if _, err := nodes.Put(ctx, c.name, b); err != nil {
		return err
	}
	c.mu.Lock()
	c.beatOK = time.Now()
	c.seen[c.name] = seenNode{node: n, at: c.beatOK}
	c.mu.Unlock()
	return nil
}

// watch follows the nodes bucket, reopening the watch when NATS comes back.
func (c *Cluster) watch(ctx context.Context) {
	defer c.wg.Done()
	for ctx.Err() == nil {
		nodes, _ := c.kv()
		w, err := nodes.WatchAll(ctx)
		if err == nil {
			c.follow(ctx, w)
			_ = w.Stop()
		}
		select {
		case <-ctx.Done():
		case <-time.After(c.cfg.Heartbeat):
		}
	}
}

func (c *Cluster) follow(ctx context.Context, w jetstream.KeyWatcher) {
	idle := time.NewTimer(missedBeats * c.cfg.Heartbeat)
	defer idle.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-idle.C:
			return // nothing heard for long: the watch may be gone with a lost connection
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			idle.Reset(missedBeats * c.cfg.Heartbeat)
			if e == nil {
				continue // the initial values are all in
			}
			c.mu.Lock()
			if e.Operation() != jetstream.KeyValuePut {
				delete(c.seen, e.Key())
			} else {
				var n Node
				if json.Unmarshal(e.Value(), &n) == nil && n.Name == e.Key() {
					c.seen[n.Name] = seenNode{node: n, at: time.Now()}
				}
			}
			c.mu.Unlock()
		}
	}
}

// cpuMeter measures the process's CPU use between two calls.
type cpuMeter struct {
	last   time.Duration
	lastAt time.Time
}

func (m *cpuMeter) cores() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	used := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	now := time.Now()
	var out float64
	if !m.lastAt.IsZero() {
		if dt := now.Sub(m.lastAt); dt > 0 {
			out = float64(used-m.last) / float64(dt)
		}
	}
	m.last, m.lastAt = used, now
	return out
}
