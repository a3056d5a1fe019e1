// This program measures the SFU under load: N synthetic cameras publish by
// WHIP to a real sfu process, M WHEP viewers per camera receive, and it prints
// what the SFU sent, what it cost, and what viewers saw.
//
// It shows how to:
//  1. start the sfu binary on loopback ports it picks itself, with a secret of its own;
//  2. publish stamped synthetic H.264 frames with whip.Publisher and read them back with whip.View;
//  3. measure server CPU-seconds from /proc, packet latency from payload stamps, and time to first frame.
//
// Usage: go run ./testbench/loadgen -sfu bin/sfu -cameras 4 -viewers 10 -duration 20s
// (add -ingest bin/ingest to push the cameras by RTSP through ingest, -burn to hold one
// core busy meanwhile)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"time"
)

func main() {
	var p params
	flag.StringVar(&p.sfuBin, "sfu", "bin/sfu", "sfu binary to start")
	flag.StringVar(&p.ingestBin, "ingest", "", "ingest binary to start: cameras then push RTSP into it, and it publishes them to the SFU")
	flag.BoolVar(&p.burn, "burn", false, "hold one core busy with a CPU burner during the measurement")
	flag.IntVar(&p.cameras, "cameras", 4, "synthetic cameras")
	flag.IntVar(&p.viewers, "viewers", 10, "WHEP viewers per camera")
	flag.IntVar(&p.fps, "fps", 25, "frames per second per camera")
	flag.IntVar(&p.gop, "gop", 50, "frames per keyframe interval (50 at 25 fps = 2 s)")
	flag.IntVar(&p.packets, "packets", 4, "packets per predicted frame (keyframes carry 4x)")
	flag.DurationVar(&p.duration, "duration", 20*time.Second, "measurement window")
	flag.StringVar(&p.cpuProfile, "cpuprofile", "", "write the SFU's CPU profile over the window to this file (and ingest's, when it runs, to this file + .ingest)")
	flag.StringVar(&p.memProfile, "memprofile", "", "write the SFU's heap profile at the end of the window to this file (and its goroutines to this file + .goroutines)")
	flag.StringVar(&p.trace, "trace", "", "write the SFU's execution trace over the first 5 s of the window to this file (and ingest's to this file + .ingest); read it with go tool trace")
	selfProfile := flag.String("selfprofile", "", "write the load generator's own CPU profile to this file, and its heap at the end to this file + .heap")
	flag.Parse()
	if *selfProfile != "" {
		if f, err := os.Create(*selfProfile); err == nil {
			_ = pprof.StartCPUProfile(f)
			defer f.Close()
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	r, err := run(ctx, p)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	r.print(os.Stdout, p)
	if *selfProfile != "" {
		pprof.StopCPUProfile()
		if f, err := os.Create(*selfProfile + ".heap"); err == nil {
			_ = pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
}
