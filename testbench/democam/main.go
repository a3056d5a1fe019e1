// This program plays a looping test clip (H.264 video with a frame counter and a G.711 beep
// once a second, embedded in the binary) as live RTSP cameras, so the system can be run and
// tested with no camera and no network. It shows how to:
//  1. serve several cameras on one RTSP server, as IP cameras are pulled from
//     (rtsp://127.0.0.1:8555/cam1 … camN), each starting the clip at its own offset;
//  2. publish one camera to an RTSP server with ANNOUNCE/RECORD, as a 4G field encoder
//     does, reconnecting with backoff when the server goes away;
//  3. split an Annex-B H.264 stream into access units and packetize it to RTP with
//     continuous timestamps across loops, with RTCP sender reports carrying wall-clock time;
//  4. act as ground truth for clock alignment: give each camera a wrong clock (an offset, an
//     oscillator drift, sender reports on or off) and a path (a send delay, jitter and
//     congestion spikes), and stamp every video frame with its true capture time in an H.264
//     SEI (see package truth), so that a receiver can measure the capture times the system
//     assigns.
//
// Usage:
//
//	democam [-listen 127.0.0.1:8555] [-cameras 4]
//	democam -push rtsp://tok:TOKEN@127.0.0.1:8554/field1 [-transport tcp]
//	DEMOCAM_PUSH_PASSWORD=TOKEN democam -push rtsp://tok@127.0.0.1:8554/field1
//	democam -cameras 3 -sei -clock 2:offset=1.7s,drift=90ppm -clock 3:offset=-2.3s,drift=-60ppm,sr=false
//	democam -profile skewed
//	democam -push URL -offset 1.5s -drift 80ppm -sr=false -jitter 5ms -sei
//
// The clock flags (-offset, -drift, -wall, -sr, -sr-interval, -delay, -jitter, -spike-every,
// -spike-for, -spike-delay, -sei) set every camera; -clock N:key=value,… then changes camera
// N. Without them the cameras have exact clocks and send sender reports every 10 s.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// clockFlags are the camera clock settings given on the command line.
type clockFlags struct {
	base    ClockModel
	cameras []CameraClock
	profile string
}

func (c *clockFlags) register(fs *flag.FlagSet) {
	set := func(key string) func(string) error {
		return func(v string) error { return c.base.Set(key, v) }
	}
	fs.Func("offset", "camera wall clock minus true time, such as 1.5s or -2.3s (default 0)", set("offset"))
	fs.Func("drift", "camera oscillator rate error, such as 80ppm or -60ppm (default 0)", set("drift"))
	fs.Func("wall", "camera wall clock: free (runs off the oscillator, drifts with it) or ntp (true time plus -offset) (default free)", set("wall"))
	fs.BoolFunc("sr", "send RTCP sender reports with the camera's clocks; -sr=false for none (default true)", set("sr"))
	fs.Func("sr-interval", "time between sender reports (default 10s)", set("sr-interval"))
	fs.Func("delay", "constant delay from capture to sending, such as 40ms (default 0)", set("delay"))
	fs.Func("jitter", "mean of an exponential random extra delay per frame, such as 5ms (default 0)", set("jitter"))
	fs.Func("spike-every", "congest the link once per this period, such as 30s (with -spike-for and -spike-delay; default never)", set("spike-every"))
	fs.Func("spike-for", "how long each congestion lasts, such as 3s", set("spike-for"))
	fs.Func("spike-delay", "extra delay of the frames during a congestion, such as 600ms", set("spike-delay"))
	fs.BoolFunc("sei", "stamp every video frame with its true capture time in an H.264 SEI (default false)", set("sei"))
	fs.Func("clock", "change camera N's clock: N:key=value,… with the keys offset, drift, wall, sr, sr-interval, delay, jitter, spike-every, spike-for, spike-delay, sei; repeatable (serve mode)",
		func(v string) error {
			cc, err := ParseCameraClock(v)
			if err == nil {
				c.cameras = append(c.cameras, cc)
			}
			return err
		})
	fs.StringVar(&c.profile, "profile", "", "a named set of camera clocks: skewed (four cameras with wrong clocks and SEI); sets -cameras unless given (serve mode)")
}

// models returns the clock model of each of n cameras.
func (c *clockFlags) models(n int) ([]ClockModel, error) {
	if err := c.base.Validate(); err != nil {
		return nil, err
	}
	out := make([]ClockModel, n)
	for i := range out {
		out[i] = c.base
	}
	var clocks []CameraClock
	if c.profile != "" {
		_, pc, err := profile(c.profile)
		if err != nil {
			return nil, err
		}
		clocks = append(clocks, pc...)
	}
	for _, cc := range append(clocks, c.cameras...) {
		if cc.Camera > n {
			return nil, fmt.Errorf("-clock sets camera %d, but only %d are served: raise -cameras", cc.Camera, n)
		}
		m, err := cc.Apply(out[cc.Camera-1])
		if err != nil {
			return nil, err
		}
		out[cc.Camera-1] = m
	}
	return out, nil
}

// pushPasswordEnv names the variable that holds the push URL's password.
const pushPasswordEnv = "DEMOCAM_PUSH_PASSWORD"

// withPassword sets the password of raw, a URL with a user and no password,
// to pw; any other URL, or an empty pw, leaves raw as it is.
func withPassword(raw, pw string) string {
	u, err := url.Parse(raw)
	if pw == "" || err != nil || u.User == nil {
		return raw
	}
	if _, set := u.User.Password(); set {
		return raw
	}
	u.User = url.UserPassword(u.User.Username(), pw)
	return u.String()
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "democam:", strings.TrimPrefix(err.Error(), "democam: "))
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("democam", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8555", "RTSP address to serve the cameras on (serve mode)")
	cameras := fs.Int("cameras", 4, "number of camera paths to serve: /cam1 … /camN (serve mode)")
	udpRTP := fs.String("udp-rtp", "", "also offer UDP transport with RTP on this address, such as :8000 (serve mode; needs -udp-rtcp)")
	udpRTCP := fs.String("udp-rtcp", "", "UDP address for RTCP, such as :8001 (serve mode; needs -udp-rtp)")
	push := fs.String("push", "", "publish one camera to this RTSP URL instead of serving (push mode), such as rtsp://tok:TOKEN@127.0.0.1:8554/field1; "+
		"a URL with a user and no password takes the password from $"+pushPasswordEnv+", which other users cannot read in the process list")
	transport := fs.String("transport", "tcp", "transport for push mode: tcp or udp")
	debug := fs.Bool("debug", false, "log at debug level")
	var clocks clockFlags
	clocks.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: see -h", fs.Arg(0))
	}
	camerasSet := false
	fs.Visit(func(f *flag.Flag) { camerasSet = camerasSet || f.Name == "cameras" })
	if clocks.profile != "" && !camerasSet {
		n, _, err := profile(clocks.profile)
		if err != nil {
			return err
		}
		*cameras = n
	}

	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *push != "" {
		if len(clocks.cameras) > 0 || clocks.profile != "" {
			return fmt.Errorf("-clock and -profile set served cameras: in push mode use -offset, -drift, -sr and the other clock flags")
		}
		if err := clocks.base.Validate(); err != nil {
			return err
		}
		p, err := NewPusher(PusherParams{URL: withPassword(*push, os.Getenv(pushPasswordEnv)), Transport: *transport, Clock: clocks.base, Logger: logger})
		if err != nil {
			return err
		}
		return p.Run(ctx)
	}

	if *cameras < 1 || *cameras > maxCameras {
		return fmt.Errorf("%d cameras requested: use 1 to %d", *cameras, maxCameras)
	}
	models, err := clocks.models(*cameras)
	if err != nil {
		return err
	}
	s, err := NewServer(ServerParams{
		Listen:         *listen,
		UDPRTPAddress:  *udpRTP,
		UDPRTCPAddress: *udpRTCP,
		Cameras:        *cameras,
		Clocks:         models,
		Logger:         logger,
	})
	if err != nil {
		return err
	}
	err = s.Run(ctx)
	logger.Info("demo cameras stopped", "component", "democam")
	return err
}
