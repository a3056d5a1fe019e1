// Package node starts what every process of the system (ingest, the SFU)
// runs beside its own work, the same way in both: the configuration and its
// subcommands, the token verifier with the revocation list, the
// tamper-evident audit log, the recorder with its two sites, retention and
// evidence holds; and stops them gracefully.
//
// A binary's main calls Main with its configuration type and its serve
// function; serve runs until the context it is given ends (SIGINT or
// SIGTERM), then Main closes the segments being written, uploads what it can
// within record.stop_grace, and closes the audit log.
package node

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/cluster"
	"fieldvideo/internal/conf"
	"fieldvideo/internal/netlimit"
	"fieldvideo/internal/playback"
	"fieldvideo/internal/recorder"
	"fieldvideo/internal/retention"
	"fieldvideo/internal/store"
)

// Config is a binary's configuration: it validates itself and holds the
// settings every process shares.
type Config interface {
	Validate() error
	Shared() conf.Shared
}

// Params describe a binary for Main.
type Params[C Config] struct {
	// Name is the binary's name ("sfu", "ingest"), EnvPrefix its
	// environment variables' ("FV_SFU"), DefaultConfig its YAML file.
	Name, EnvPrefix, DefaultConfig string
	// Defaults returns the built-in configuration.
	Defaults func() C
	// Serve runs the binary's own work until ctx ends.
	Serve func(ctx context.Context, n *Node, c C) error
}

// Main parses args (-config and the subcommands token, audit, export, defaults),
// loads and validates the configuration, starts the node, serves, and stops
// gracefully on SIGINT or SIGTERM.
func Main[C Config](p Params[C], args []string) error {
	fs := flag.NewFlagSet(p.Name, flag.ContinueOnError)
	path := fs.String("config", p.DefaultConfig, "configuration file (YAML); "+p.EnvPrefix+"_* environment variables override it")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: %[1]s [-config FILE] [command]

commands:
  (none)     serve
  token      print a signed access token (%[1]s token -h)
  audit      verify the audit log (%[1]s audit verify FILE)
  export     verify an evidence export (%[1]s export verify FILE)
  defaults   print the built-in configuration

`, p.Name)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	if fs.Arg(0) == "defaults" {
		b, err := conf.Marshal(p.Defaults())
		if err == nil {
			_, err = os.Stdout.Write(b)
		}
		return err
	}
	c := p.Defaults()
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	if err := conf.LoadFile(*path, explicit, p.EnvPrefix, &c); err != nil {
		return err
	}
	if err := c.Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	sh := c.Shared()
	switch fs.Arg(0) {
	case "audit":
		return audit.Command(fs.Args()[1:], os.Stdout)
	case "export":
		return playback.Command(fs.Args()[1:], os.Stdout)
	case "token":
		secret, err := auth.ReadSecret(sh.Auth.Secret, sh.Auth.SecretFile)
		if err != nil {
			return err
		}
		return auth.Command(fs.Args()[1:], secret, os.Stdout)
	case "":
	default:
		return fmt.Errorf("unknown command %q; use no command to serve, token, audit, export, or defaults", fs.Arg(0))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	n, err := Start(ctx, p.Name, sh)
	if err != nil {
		return err
	}
	err = p.Serve(ctx, n, c)
	n.Stop()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// Node is what a process runs beside its own work.
type Node struct {
	Name     string
	Log      *slog.Logger
	Secret   []byte
	Verifier *auth.Verifier
	Audit    *audit.Log
	// Recorder and Retention are nil when recording is off.
	Recorder  *recorder.Recorder
	Retention *retention.Retention
	// Playback answers reviewers from the recordings at either site, and
	// Exporter signs their exports; nil when recording is off.
	Playback *playback.Playback
	Exporter *playback.Exporter
	Incident string
	// Cluster is the node's membership of a cluster; nil when it runs alone.
	Cluster *cluster.Cluster

	grace  time.Duration
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// joinTimeout bounds the wait for the cluster's NATS servers at the start;
// without them the node starts alone and joins when they answer.
const joinTimeout = 5 * time.Second

// Start opens what the shared settings describe and starts its background
// work (recording uploads, retention passes, reloading the revocation list);
// Stop ends it. ctx bounds the opening only.
func Start(ctx context.Context, name string, sh conf.Shared) (n *Node, err error) {
	log := sh.Log.NewLogger(os.Stderr)
	n = &Node{Name: name, Log: log, grace: sh.Record.StopGrace}
	if soft, hard, err := netlimit.RaiseFileLimit(); err != nil {
		log.Warn("cannot raise the open-file limit; connection floods run out of descriptors sooner", "error", err)
	} else {
		log.Debug("open-file limit", "soft", soft, "hard", hard)
	}
	if n.Secret, err = auth.LoadSecret(sh.Auth.Secret, sh.Auth.SecretFile); err != nil {
		return nil, err
	}
	if n.Verifier, err = auth.NewVerifierFor(n.Secret, sh.Auth.OIDC.Issuer, sh.Auth.OIDC.Audience, sh.Auth.OIDC.JWKSURL); err != nil {
		return nil, err
	}
	rl, err := auth.OpenRevocations(sh.Auth.RevocationsFile, log)
	if err != nil {
		return nil, err
	}
	n.Verifier.UseRevocations(rl)
	if n.Audit, err = audit.Open(audit.Params{File: sh.Audit.File, KeyFile: sh.Audit.KeyFile, CheckpointInterval: sh.Audit.CheckpointInterval, Log: log,
		Limits: FieldLimits}); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			n.Audit.Close()
		}
	}()
	if n.Recorder, err = recorder.Open(ctx, sh.Record, log); err != nil {
		return nil, err
	}
	if n.Recorder != nil {
		primary, offsite := n.Recorder.Stores()
		n.Retention, err = retention.New(retention.Params{
			Primary:  retention.StoreParams{Store: primary, Retention: sh.Record.Primary.Retention},
			Offsite:  retention.StoreParams{Store: offsite, Retention: sh.Record.Offsite.Retention},
			Interval: sh.Record.RetentionInterval, Incident: sh.Record.Incident,
			Audit: n.Audit.Write, Verifier: n.Verifier, Log: log,
		})
		if err != nil {
			n.Recorder.Close()
			return nil, err
		}
		n.Recorder.SetRetained(func(site int, key string) bool { return n.Retention.Retained(retention.Site(site), key) })
		n.Incident = sh.Record.Incident
		if n.Playback, err = playback.New(playback.Params{Sites: []store.Store{primary, offsite}, MaxRange: sh.Record.PlaybackMaxRange, Log: log}); err != nil {
			n.Recorder.Close()
			return nil, err
		}
		key, err := audit.LoadKey(sh.Record.ExportSigningKeyFile, "export signing key", "record.export_signing_key_file", log)
		if err != nil {
			n.Recorder.Close()
			return nil, err
		}
		n.Exporter = playback.NewExporter(n.Playback, key, n.Audit.Write)
	}

	if sh.Cluster.Enabled() {
		jctx, cancel := context.WithTimeout(ctx, joinTimeout)
		n.Cluster, err = cluster.Join(jctx, cluster.Params{Config: sh.Cluster, Role: sh.Role, Log: log})
		cancel()
		if err != nil {
			if n.Recorder != nil {
				n.Recorder.Close()
			}
			return nil, err
		}
		// a revocation or sign-out on any node holds on every node
		n.Cluster.ShareRevocations(rl)
	}

	// The background work outlives the serving context: at a stop, uploads
	// go on for the grace period.
	bg, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.wg.Go(func() { rl.Run(bg, 0) })
	if n.Recorder != nil {
		n.wg.Go(func() { _ = n.Recorder.Run(bg) })
		n.wg.Go(func() { _ = n.Retention.Run(bg) })
		n.wg.Go(func() { _ = n.Playback.Run(bg) })
	}
	return n, nil
}

// Stop closes the segments being written and uploads what it can within
// record.stop_grace, reports what is left, stops the background work and
// closes the audit log.
func (n *Node) Stop() {
	n.once.Do(func() {
		if n.Recorder != nil {
			ctx, cancel := context.WithTimeout(context.Background(), n.grace)
			left := n.Recorder.Stop(ctx)
			cancel()
			if left[0].Segments+left[1].Segments == 0 {
				n.Log.Info("stopped cleanly: every recording is at both sites", "component", n.Name)
			} else {
				n.Log.Warn("stopped; some recordings are only in the spool and are uploaded at the next start", "component", n.Name,
					"waiting_primary", left[0].Segments, "waiting_offsite", left[1].Segments)
			}
		} else {
			n.Log.Info("stopped cleanly", "component", n.Name)
		}
		if n.Cluster != nil {
			n.Cluster.Close()
		}
		n.cancel()
		n.wg.Wait()
		if err := n.Audit.Close(); err != nil {
			n.Log.Error("closing the audit log", "error", err)
		}
	})
}
