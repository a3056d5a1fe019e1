// Command ingest takes video in at the incident site: it pulls RTSP cameras,
// accepts RTSP pushes from field encoders, serves every source back over
// RTSP, and publishes each live source to the SFU by WHIP.
//
// Usage:
//
//	ingest [-config configs/ingest.yml]    serve
//	ingest token [-role camera -publish field1 ...]  print a signed access token
//	ingest audit verify [-key data/audit.key.pub] FILE...  verify the audit log (a rotated set, oldest first)
//	ingest defaults                                  print the built-in configuration (configs/ingest.yml)
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/cluster"
	"fieldvideo/internal/conf"
	"fieldvideo/internal/ingest"
	"fieldvideo/internal/netlimit"
	"fieldvideo/internal/node"
	"fieldvideo/internal/whip"
)

func main() {
	err := node.Main(node.Params[conf.Ingest]{
		Name: "ingest", EnvPrefix: "FV_INGEST", DefaultConfig: "configs/ingest.yml",
		Defaults: conf.DefaultIngest, Serve: serve,
	}, os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "ingest:", err)
		os.Exit(1)
	}
}

// serve runs ingest until ctx ends: live video keeps flowing and recording
// goes to the spool whether or not the SFU and the recording sites answer.
func serve(ctx context.Context, n *node.Node, c conf.Ingest) error {
	log, rec := n.Log, n.Recorder
	ups := &uplinks{base: c.Uplink.URL, reconnect: c.Reconnect, queue: c.Stream.QueueSize, log: log, cluster: n.Cluster}
	if c.Uplink.URL != "" || n.Cluster != nil {
		var err error
		// A cluster whose nodes advertise loopback addresses runs on one host.
		loopback := loopbackURL(c.Uplink.URL) || c.Uplink.URL == ""
		if n.Cluster != nil {
			loopback = loopback && loopbackURL(c.Cluster.Advertise)
		}
		// an uplink only sends: no NACK generation or receiver reports
		if ups.api, err = whip.NewAPI(whip.APIParams{LoopbackOnly: loopback, SendOnly: true}); err != nil {
			return err
		}
		ups.client = &whip.Client{Token: c.Uplink.Token}
		if c.Uplink.Token == "" {
			// The subject names this host's ingest: after a restart it
			// replaces its own stale sessions at the SFU, while another
			// site's ingest publishing the same source name is refused.
			host, _ := os.Hostname()
			ups.client.TokenSource = func() (string, error) {
				cl := auth.Claims{Role: auth.RoleCamera, Publish: []string{"*"}, Recorded: rec != nil}
				cl.Subject = "ingest@" + host
				return auth.Mint(n.Secret, cl, time.Hour, time.Now())
			}
		}
	}
	sinks := &sinks{uplinks: ups, recorder: rec, log: log}
	p := ingest.Params{RTSP: c.RTSP, Cameras: c.Cameras, CamerasFile: c.CamerasFile, Reconnect: c.Reconnect, Stream: c.Stream,
		Verifier: n.Verifier, Audit: n.Audit, Logger: log, OnLive: sinks.live, OnOffline: sinks.offline}
	if ups.api != nil {
		p.OnRemoved = ups.forget // a removed camera leaves the SFU's list, and the walls
	}
	if n.Cluster != nil {
		p.Leases = n.Cluster
	}
	in, err := ingest.New(p)
	if err != nil {
		return err
	}
	if n.Cluster != nil {
		n.Cluster.SetLoad(func() cluster.Load {
			l := cluster.Load{}
			for _, s := range in.Sources() {
				if s.State == ingest.StateLive {
					l.Sources++
					if s.Kind == ingest.KindPull {
						l.Cameras++
					}
				}
			}
			return l
		})
	}
	ln, err := n.Listen("api.address", c.API.Address, c.API.MaxConnections, c.API.MaxConnectionsPerAddress)
	if err != nil {
		in.Close()
		return err
	}
	a := &api{ingest: in, uplinks: ups, node: n}
	srv := &http.Server{Handler: a.handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
		ConnContext: netlimit.ConnContext}
	go func() { _ = srv.Serve(ln) }()
	log.Info("listening", "component", "ingest", "rtsp", in.Addr(), "api", ln.Addr().String(), "uplink", c.Uplink.URL, "recording", rec != nil)

	err = in.Run(ctx)
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	ups.close(3 * time.Second)
	return err
}

// loopbackURL reports whether u points at this host's loopback interface.
func loopbackURL(u string) bool {
	pu, err := url.Parse(u)
	if err != nil {
		return false
	}
	if pu.Hostname() == "localhost" {
		return true
	}
	ip := net.ParseIP(pu.Hostname())
	return ip != nil && ip.IsLoopback()
}
