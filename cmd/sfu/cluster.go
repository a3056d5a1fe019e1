package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"time"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/cluster"
	"fieldvideo/internal/node"
	"fieldvideo/internal/sfu"
)

// What the SFU gives and takes in a cluster: its load and published sources
// in the heartbeats, where other nodes' sources are (relays), where call
// rooms live.

// placeRoom makes this node the home of a call room unless another node
// is, or should be: then it returns the room's WebSocket URL there. A new
// room goes to the SFU node taking work with the fewest rooms and least CPU
// — this one, unless it drains or another is clearly less loaded.
func placeRoom(cl *cluster.Cluster) func(string) (string, error) {
	return func(room string) (string, error) {
		if !cl.Connected() {
			return "", errors.New("this node is cut off from the cluster")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if home, err := cl.HomeOf(ctx, room); err == nil && home == "" {
			if n := lighterNode(cl); n != nil {
				return roomURL(n.Name, n.URL, room)
			}
		}
		node, base, err := cl.Claim(ctx, room)
		if err != nil || node == "" {
			return "", err
		}
		return roomURL(node, base, room)
	}
}

// rehomer settles the home of call rooms held here without a claim: this
// node lost the claim without giving it up (it was cut off from the
// cluster, and another node may have become the room's home meanwhile), or
// a room was opened here while the cluster could not be asked. The call goes
// on here meanwhile; once the cluster answers, this node claims the room, or,
// when another node is its home now, moves the participants there, so that a
// partition never leaves one call split in two after it healed.
type rehomer struct {
	ctx context.Context
	cl  *cluster.Cluster
	srv func() *sfu.Server

	mu       sync.Mutex
	watching map[string]bool
}

func newRehomer(ctx context.Context, cl *cluster.Cluster, srv func() *sfu.Server) *rehomer {
	return &rehomer{ctx: ctx, cl: cl, srv: srv, watching: map[string]bool{}}
}

// watch settles room's home, once the cluster answers.
func (h *rehomer) watch(room string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.watching[room] {
		return
	}
	h.watching[room] = true
	go func() {
		h.settle(room)
		h.mu.Lock()
		delete(h.watching, room)
		h.mu.Unlock()
	}()
}

func (h *rehomer) settle(room string) {
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-time.After(time.Second):
		}
		srv := h.srv()
		if srv == nil || !srv.HostsRoom(room) {
			return
		}
		ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
		node, base, err := h.cl.Claim(ctx, room)
		cancel()
		switch {
		case err != nil:
			continue // the cluster cannot be asked yet: the call goes on here
		case node == "":
			if !srv.HostsRoom(room) {
				h.cl.Unclaim(room) // it ended meanwhile
			}
			return // its home is here
		}
		u, err := roomURL(node, base, room)
		if err != nil {
			continue
		}
		srv.MoveRoom(room, u, "the call moved to its home on node "+node+" (the cluster was split); joining it there")
		return
	}
}

// lighterNode returns the SFU node a new room should live on when it is not
// this one, or nil.
func lighterNode(cl *cluster.Cluster) *cluster.Node {
	score := func(n cluster.Node) float64 { return float64(n.Load.Rooms) + 2*n.Load.CPU }
	var best, me *cluster.Node
	for _, n := range cl.Nodes() {
		if n.Name == cl.Name() {
			me = &n
		}
		if n.Role == "sfu" && !n.Draining && n.URL != "" && (best == nil || score(n) < score(*best)) {
			best = &n
		}
	}
	switch {
	case best == nil || best.Name == cl.Name():
		return nil
	case !cl.Draining() && me != nil && score(*best)+1 > score(*me):
		return nil // not clearly lighter: no hop
	}
	return best
}

// roomURL is the room's WebSocket on the node whose HTTP API is at base.
func roomURL(node, base, room string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("node %s advertises %q: %w", node, base, err)
	}
	u.Scheme = map[string]string{"https": "wss"}[u.Scheme]
	if u.Scheme == "" {
		u.Scheme = "ws"
	}
	u.Path = "/v1/rooms/" + room + "/ws"
	return u.String(), nil
}

// remote lists the sources the other SFU nodes publish, by the node.
func remote(cl *cluster.Cluster) func() map[string]string {
	return func() map[string]string {
		out := map[string]string{}
		for _, n := range cl.Nodes() {
			if n.Role == "sfu" && n.Name != cl.Name() {
				for _, name := range n.Load.Published {
					out[name] = n.Name
				}
			}
		}
		return out
	}
}

// remoteTags returns the tags the other SFU nodes hold, merged by source:
// the node that publishes a source is heard first.
func remoteTags(cl *cluster.Cluster) func() map[string]sfu.SourceTags {
	return func() map[string]sfu.SourceTags {
		held := map[string][]sfu.SourceTags{}
		for _, n := range cl.Nodes() {
			if n.Role != "sfu" || n.Name == cl.Name() {
				continue
			}
			for name, raw := range n.Load.Tags {
				var t sfu.SourceTags
				if json.Unmarshal(raw, &t) != nil {
					continue
				}
				if slices.Contains(n.Load.Published, name) {
					held[name] = append([]sfu.SourceTags{t}, held[name]...)
				} else {
					held[name] = append(held[name], t)
				}
			}
		}
		out := make(map[string]sfu.SourceTags, len(held))
		for name, ts := range held {
			out[name] = sfu.MergeTags(ts...)
		}
		return out
	}
}

// publishes tells whether the SFU node called node publishes source itself.
func publishes(cl *cluster.Cluster) func(string, string) bool {
	return func(node, source string) bool {
		for _, n := range cl.Nodes() {
			if n.Name == node {
				return slices.Contains(n.Load.Published, source)
			}
		}
		return false
	}
}

// relayToken returns the token this node's relays view other nodes'
// sources with (the cluster shares auth.secret), minted anew before it
// expires.
func relayToken(n *node.Node) func() (string, error) {
	var mu sync.Mutex
	var tok string
	var until time.Time
	return func() (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if time.Now().Before(until) {
			return tok, nil
		}
		c := auth.Claims{Role: auth.RoleWall, View: []string{"*"}}
		c.Subject = "relay@" + n.Cluster.Name()
		t, err := auth.Mint(n.Secret, c, time.Hour, time.Now())
		if err != nil {
			return "", err
		}
		tok, until = t, time.Now().Add(50*time.Minute)
		return tok, nil
	}
}

// loadOf returns what the SFU's heartbeats report: viewers, live sources
// (and the names of those published here), rooms, and the packets received
// per second since the last heartbeat.
func loadOf(srv *sfu.Server, maxSources int) func() cluster.Load {
	var lastPackets uint64
	var lastAt time.Time
	return func() cluster.Load {
		l := cluster.Load{MaxSources: maxSources}
		var packets uint64
		for _, in := range srv.Sources() {
			l.Viewers += in.Viewers
			packets += in.Packets
			if in.State == "live" {
				l.Sources++
				if in.Relay == "" {
					l.Published = append(l.Published, in.Name)
				}
			}
		}
		for name, t := range srv.LocalTags() {
			if b, err := json.Marshal(t); err == nil {
				if l.Tags == nil {
					l.Tags = map[string]json.RawMessage{}
				}
				l.Tags[name] = b
			}
		}
		l.Rooms = len(srv.Rooms())
		now := time.Now()
		if !lastAt.IsZero() && packets >= lastPackets {
			l.PacketsPerSecond = float64(packets-lastPackets) / now.Sub(lastAt).Seconds()
		}
		lastPackets, lastAt = packets, now
		return l
	}
}

// locate finds the SFU node that publishes a source, other than this one:
// another than avoid (a node just lost, still listed until its heartbeats
// are missed) when there is one, then the most recently heard from.
func locate(cl *cluster.Cluster) func(string, string) (string, string) {
	return func(source, avoid string) (string, string) {
		var best *cluster.Node
		for _, n := range cl.Nodes() {
			if n.Role != "sfu" || n.Name == cl.Name() || n.URL == "" || !slices.Contains(n.Load.Published, source) {
				continue
			}
			if best == nil || (best.Name == avoid && n.Name != avoid) || (n.Name != avoid && n.Beat.After(best.Beat)) {
				best = &n
			}
		}
		if best == nil {
			return "", ""
		}
		return best.Name, best.URL
	}
}
