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
	"os"
	"time"

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
	srv, err := sfu.New(sfu.Params{
		Conf: c, Verifier: n.Verifier, Audit: n.Audit, Log: n.Log, Console: console.FS(), Secret: n.Secret,
		Recorder: n.Recorder, Listener: ln, Metrics: n.WriteMetrics,
		Routes: func(mux *http.ServeMux) { n.Routes(mux, c.HTTP.AllowOrigin) },
		Health: n.ServeHealth,
	})
	if err != nil {
		ln.Close()
		return err
	}
	if n.Cluster != nil {
		n.Cluster.SetLoad(loadOf(srv))
	}
	return srv.Run(ctx)
}

// loadOf returns what the SFU's heartbeats report: viewers, live sources,
// rooms, and the packets received per second since the last heartbeat.
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
