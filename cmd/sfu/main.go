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
	var srv *sfu.Server
	if n.Cluster != nil {
		rh := newRehomer(ctx, n.Cluster, func() *sfu.Server { return srv })
		n.Cluster.OnClaimLost(rh.watch)
		p.RoomUnplaced = rh.watch
		p.Locate = locate(n.Cluster)
		p.Remote = remote(n.Cluster)
		p.RemoteTags = remoteTags(n.Cluster)
		p.Publishes = publishes(n.Cluster)
		p.PlaceRoom = placeRoom(n.Cluster)
		p.RoomClosed = n.Cluster.Unclaim
		p.RelayToken = relayToken(n)
	}
	srv, err = sfu.New(p)
	if err != nil {
		ln.Close()
		return err
	}
	if n.Cluster != nil {
		n.Cluster.SetLoad(loadOf(srv, c.Cluster.MaxSources))
	}
	return srv.Run(ctx)
}
