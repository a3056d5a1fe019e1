// Command sfu relays live sources to viewers by WebRTC: WHIP in, WHEP out,
// the source list and metrics API, and the web console.
//
// Usage:
//
//	sfu [-config configs/sfu.yml]        serve
//	sfu token [-role wall -view '*' ...]  print a signed access token
//	sfu defaults                          print the built-in configuration (configs/sfu.yml)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/conf"
	"fieldvideo/internal/recorder"
	"fieldvideo/internal/sfu"
	"fieldvideo/web/console"
)

const defaultConfig = "configs/sfu.yml"

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "sfu:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("sfu", flag.ContinueOnError)
	path := fs.String("config", defaultConfig, "configuration file (YAML); FV_SFU_* environment variables override it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.Arg(0) == "defaults" {
		b, err := conf.Marshal(conf.DefaultSFU())
		if err == nil {
			_, err = os.Stdout.Write(b)
		}
		return err
	}
	c := conf.DefaultSFU()
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	if err := conf.LoadFile(*path, explicit, "FV_SFU", &c); err != nil {
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
	srv, err := sfu.New(sfu.Params{Conf: c, Verifier: verifier, Audit: al, Log: log, Console: console.FS(), Secret: secret, Recorder: rec})
	if err != nil {
		return err
	}
	return srv.Run(ctx)
}
