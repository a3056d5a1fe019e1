// Command ingest takes video in at the incident site: it pulls RTSP cameras,
// accepts RTSP pushes from field encoders, serves every source back over
// RTSP, and publishes each live source to the SFU by WHIP.
//
// Usage:
//
//	ingest [-config configs/ingest.yml]    serve
//	ingest token [-role camera -publish field1 ...]  print a signed access token
//	ingest defaults                                  print the built-in configuration (configs/ingest.yml)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/conf"
	"fieldvideo/internal/ingest"
	"fieldvideo/internal/recorder"
	"fieldvideo/internal/whip"
)

const defaultConfig = "configs/ingest.yml"

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "ingest:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	path := fs.String("config", defaultConfig, "configuration file (YAML); FV_INGEST_* environment variables override it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.Arg(0) == "defaults" {
		b, err := conf.Marshal(conf.DefaultIngest())
		if err == nil {
			_, err = os.Stdout.Write(b)
		}
		return err
	}
	c := conf.DefaultIngest()
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	if err := conf.LoadFile(*path, explicit, "FV_INGEST", &c); err != nil {
		return err
	}
	if err := c.Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	secret, err := auth.LoadSecret(c.Auth.Secret, c.Auth.SecretFile)
	if err != nil {
		return err
	}
	if fs.Arg(0) == "token" {
		return auth.Command(fs.Args()[1:], secret, os.Stdout)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unknown command %q; use no command to serve, token, or defaults", fs.Arg(0))
	}

	log := c.Log.NewLogger(os.Stderr)
	verifier, err := auth.NewVerifierFor(secret, c.Auth.OIDC.Issuer, c.Auth.OIDC.Audience, c.Auth.OIDC.JWKSURL)
	if err != nil {
		return err
	}
	al, err := audit.Open(c.Audit.File)
	if err != nil {
		return err
	}
	defer al.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rec, err := recorder.Open(ctx, c.Record, log)
	if err != nil {
		return err
	}
	if rec != nil {
		defer rec.Close()
		go func() { _ = rec.Run(ctx) }()
	}
	ups := &uplinks{base: c.Uplink.URL, reconnect: c.Reconnect, queue: c.Stream.QueueSize, log: log}
	if c.Uplink.URL != "" {
		if ups.api, err = whip.NewAPI(whip.APIParams{LoopbackOnly: loopbackURL(c.Uplink.URL)}); err != nil {
			return err
		}
		ups.client = &whip.Client{Token: c.Uplink.Token}
		if c.Uplink.Token == "" {
			ups.client.TokenSource = func() (string, error) {
				cl := auth.Claims{Role: auth.RoleCamera, Publish: []string{"*"}, Recorded: rec != nil}
				cl.Subject = "ingest"
				return auth.Mint(secret, cl, time.Hour, time.Now())
			}
		}
	}
	sinks := &sinks{uplinks: ups, recorder: rec, log: log}
	p := ingest.Params{RTSP: c.RTSP, Cameras: c.Cameras, Reconnect: c.Reconnect, Stream: c.Stream,
		Verifier: verifier, Audit: al, Logger: log, OnLive: sinks.live, OnOffline: sinks.offline}
	in, err := ingest.New(p)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.API.Address)
	if err != nil {
		in.Close()
		return fmt.Errorf("api.address %s: %w", c.API.Address, err)
	}
	srv := &http.Server{Handler: (&api{ingest: in, uplinks: ups, recorder: rec, verifier: verifier}).handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Info("listening", "component", "ingest", "rtsp", in.Addr(), "api", ln.Addr().String(), "uplink", c.Uplink.URL, "recording", rec != nil)

	err = in.Run(ctx)
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	ups.close(3 * time.Second)
	if errors.Is(err, context.Canceled) {
		return nil
	}
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
