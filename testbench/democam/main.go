// This program plays a looping test clip (H.264 video with a frame counter and a G.711 beep
// once a second, embedded in the binary) as live RTSP cameras, so the system can be run and
// tested with no camera and no network. It shows how to:
//  1. serve several cameras on one RTSP server, as IP cameras are pulled from
//     (rtsp://127.0.0.1:8555/cam1 … camN), each starting the clip at its own offset;
//  2. publish one camera to an RTSP server with ANNOUNCE/RECORD, as a 4G field encoder
//     does, reconnecting with backoff when the server goes away;
//  3. split an Annex-B H.264 stream into access units and packetize it to RTP with
//     continuous timestamps across loops, with RTCP sender reports carrying wall-clock time.
//
// Usage:
//
//	democam [-listen 127.0.0.1:8555] [-cameras 4]
//	democam -push rtsp://tok:TOKEN@127.0.0.1:8554/field1 [-transport tcp]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "democam:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("democam", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8555", "RTSP address to serve the cameras on (serve mode)")
	cameras := fs.Int("cameras", 4, "number of camera paths to serve: /cam1 … /camN (serve mode)")
	udpRTP := fs.String("udp-rtp", "", "also offer UDP transport with RTP on this address, such as :8000 (serve mode; needs -udp-rtcp)")
	udpRTCP := fs.String("udp-rtcp", "", "UDP address for RTCP, such as :8001 (serve mode; needs -udp-rtp)")
	push := fs.String("push", "", "publish one camera to this RTSP URL instead of serving (push mode), such as rtsp://tok:TOKEN@127.0.0.1:8554/field1")
	transport := fs.String("transport", "tcp", "transport for push mode: tcp or udp")
	debug := fs.Bool("debug", false, "log at debug level")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: see -h", fs.Arg(0))
	}

	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *push != "" {
		p, err := NewPusher(PusherParams{URL: *push, Transport: *transport, Logger: logger})
		if err != nil {
			return err
		}
		return p.Run(ctx)
	}

	s, err := NewServer(ServerParams{
		Listen:         *listen,
		UDPRTPAddress:  *udpRTP,
		UDPRTCPAddress: *udpRTCP,
		Cameras:        *cameras,
		Logger:         logger,
	})
	if err != nil {
		return err
	}
	err = s.Run(ctx)
	logger.Info("demo cameras stopped", "component", "democam")
	return err
}
