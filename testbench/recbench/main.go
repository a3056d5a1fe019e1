// This program measures the recorder: N cameras replaying a real H.264 and
// Opus clip in real time are recorded with the default settings, and every
// segment goes to a MinIO primary and a versitygw off-site store on
// loopback. It prints the recovery point (RPO) it sampled, the recorder's
// CPU per camera, and the spool's write amplification.
//
// It shows how to:
//  1. make a clip once with ffmpeg and replay its RTP packets as live cameras
//     (timestamps and sequence numbers continue across loops);
//  2. run MinIO and versitygw as the two sites, and the recorder between them;
//  3. sample Recorder.Stats for RPO, and measure CPU from getrusage (the
//     cameras' own cost is measured first and taken off) and disk writes from
//     /proc/self/io.
//
// Usage: go run ./testbench/recbench -cameras 8 -duration 60s
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"
)

type params struct {
	cameras   int
	duration  time.Duration
	warmup    time.Duration
	size      string
	bitrate   string
	tools     string
	spool     string
	fsStores  bool
	segment   time.Duration
	part      time.Duration
	keepFiles bool
}

func main() {
	var p params
	flag.IntVar(&p.cameras, "cameras", 8, "cameras to record")
	flag.DurationVar(&p.duration, "duration", 60*time.Second, "measurement window")
	flag.DurationVar(&p.warmup, "warmup", 10*time.Second, "recording before the window starts")
	flag.StringVar(&p.size, "size", "1280x720", "clip size")
	flag.StringVar(&p.bitrate, "bitrate", "2M", "clip video bitrate")
	flag.StringVar(&p.tools, "tools", ".tools/bin", "directory holding the minio and versitygw binaries")
	flag.StringVar(&p.spool, "spool", "", "spool directory on the disk to measure (default: a new temporary directory)")
	flag.BoolVar(&p.fsStores, "fs", false, "use two filesystem stores instead of MinIO and versitygw")
	flag.DurationVar(&p.segment, "segment", 0, "segment duration (0: the recorder's default)")
	flag.DurationVar(&p.part, "part", 0, "part duration (0: the recorder's default)")
	flag.BoolVar(&p.keepFiles, "keep", false, "keep the spool and store directories")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	r, err := run(ctx, p)
	if err != nil {
		fmt.Fprintln(os.Stderr, "recbench:", err)
		os.Exit(1)
	}
	r.print(os.Stdout, p)
}
