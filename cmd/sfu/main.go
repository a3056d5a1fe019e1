// Command sfu relays live sources to viewers by WebRTC: WHIP in, WHEP out,
// call rooms, the source list and metrics API, and the web console.
//
// Usage:
//
//	sfu [-config configs/sfu.yml]        serve
//	sfu token [-role wall -view '*' ...]  print a signed access token
//	sfu audit verify [-key data/audit.key.pub] FILE...  verify the audit log (a rotated set, oldest first)
//	sfu defaults                          print the built-in configuration (configs/sfu.yml)
package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"time"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/cluster"
	"fieldvideo/internal/conf"
	"fieldvideo/internal/node"
	"fieldvideo/internal/sfu"
	"fieldvideo/web/console"
)

func main() {
	err := node.Main(node.Params[conf.SFU]{
		Name: "sfu", EnvPrefix: "FV_SFU", DefaultConfig: "configs/sfu.yml",
		Defaults: conf.DefaultSFU, Serve: serve,
	}, os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "sfu:", err)
		os.Exit(1)
	}
}

func serve(ctx context.Context, n *node.Node, c conf.SFU) error {
	ln, err := n.Listen("http.address", c.HTTP.Address, c.HTTP.MaxConnections, c.HTTP.MaxConnectionsPerAddress)
	if err != nil {
		return err
	}
	p := sfu.Params{
		Conf: c, Verifier: n.Verifier, Audit: n.Audit, Log: n.Log, Console: console.FS(), Secret: n.Secret,
		Recorder: n.Recorder, Listener: ln, Metrics: n.WriteMetrics,
		Routes: func(mux *http.ServeMux) { n.Routes(mux, c.HTTP.AllowOrigin) },
		Health: n.ServeHealth,
	}
	if n.Cluster != nil {
		p.Locate = locate(n.Cluster)
		p.Remote = remote(n.Cluster)
		p.PlaceRoom = placeRoom(n.Cluster)
		p.RoomClosed = n.Cluster.Unclaim
		p.RelayToken = relayToken(n)
	}
	srv, err := sfu.New(p)
	if err != nil {
		ln.Close()
		return err
	}
	if n.Cluster != nil {
		n.Cluster.SetLoad(loadOf(srv))
	}
	return srv.Run(ctx)
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

// placeRoom makes this node the home of a call room unless another node
// is: then it returns the room's WebSocket URL there.
func placeRoom(cl *cluster.Cluster) func(string) (string, error) {
	return func(room string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		node, base, err := cl.Claim(ctx, room)
		if err != nil || node == "" {
			return "", err
		}
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
func loadOf(srv *sfu.Server) func() cluster.Load {
	var lastPackets uint64
	var lastAt time.Time
	return func() cluster.Load {
		var l cluster.Load
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
		l.Rooms = len(srv.Rooms())
		now := time.Now()
		if !lastAt.IsZero() && packets >= lastPackets {
			l.PacketsPerSecond = float64(packets-lastPackets) / now.Sub(lastAt).Seconds()
		}
		lastPackets, lastAt = packets, now
		return l
	}
}
