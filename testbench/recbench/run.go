package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"fieldvideo/internal/recorder"
	"fieldvideo/internal/store"
	"fieldvideo/internal/stream"
)

type result struct {
	clip             time.Duration
	baseWindow       time.Duration
	baseCPU          time.Duration // cameras alone, over baseWindow
	window           time.Duration
	cpu              time.Duration // cameras and recorder, over window
	siteCPU          map[string]time.Duration
	sourceRPO        []time.Duration // every source, every sample
	overallRPO       []time.Duration
	media, written   uint64 // over the window
	diskWritten      uint64
	final            recorder.Stats
	delivered        bool
	segment, partDur time.Duration
}

func run(ctx context.Context, p params) (*result, error) {
	res := &result{siteCPU: map[string]time.Duration{}}
	fmt.Fprintf(os.Stderr, "recbench: making a %s %s clip with ffmpeg...\n", p.size, p.bitrate)
	c, err := makeClip(ctx, p.size, p.bitrate, 10)
	if err != nil {
		return nil, err
	}
	res.clip = c.duration
	base := p.spool
	if base == "" {
		if base, err = os.MkdirTemp("", "recbench"); err != nil {
			return nil, err
		}
	}
	if !p.keepFiles {
		defer os.RemoveAll(base)
	}
	var a, b store.Store
	var sites []*site
	if p.fsStores {
		if a, err = store.NewFS("primary", filepath.Join(base, "primary")); err != nil {
			return nil, err
		}
		if b, err = store.NewFS("offsite", filepath.Join(base, "offsite")); err != nil {
			return nil, err
		}
	} else {
		for _, k := range []string{"minio", "versitygw"} {
			s, err := startSite(k, p.tools, filepath.Join(base, k))
			if err != nil {
				return nil, err
			}
			defer s.stop()
			sites = append(sites, s)
		}
		if a, err = sites[0].store("minio"); err != nil {
			return nil, err
		}
		if b, err = sites[1].store("versitygw"); err != nil {
			return nil, err
		}
	}

	// The cameras, alone first: their own CPU cost is taken off later.
	camCtx, stopCams := context.WithCancel(ctx)
	defer stopCams()
	var cams sync.WaitGroup
	defer cams.Wait()
	var streams []*stream.Stream
	for i := range p.cameras {
		st := stream.New(stream.Params{Name: fmt.Sprintf("cam%02d", i+1), Tracks: c.tracks})
		streams = append(streams, st)
		cams.Go(func() { c.replay(camCtx, st) })
	}
	res.baseWindow = min(15*time.Second, p.duration/2)
	fmt.Fprintf(os.Stderr, "recbench: %d cameras without the recorder for %s...\n", p.cameras, res.baseWindow)
	if !sleep(ctx, 2*time.Second) {
		return nil, ctx.Err()
	}
	c0 := selfCPU()
	if !sleep(ctx, res.baseWindow) {
		return nil, ctx.Err()
	}
	res.baseCPU = selfCPU() - c0

	r, err := recorder.New(recorder.Params{SpoolDir: filepath.Join(base, "spool"), Incident: "bench", Primary: a, Offsite: b,
		SegmentDuration: p.segment, PartDuration: p.part,
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return nil, err
	}
	runCtx, stopRun := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() {
		r.Run(runCtx)
		close(runDone)
	}()
	defer func() {
		stopRun()
		<-runDone
		r.Close()
	}()
	var stops []func()
	for _, st := range streams {
		stop, err := r.Record(st.Name(), st)
		if err != nil {
			return nil, err
		}
		stops = append(stops, stop)
	}
	fmt.Fprintf(os.Stderr, "recbench: recording; %s warm-up, then %s measured...\n", p.warmup, p.duration)
	if !sleep(ctx, p.warmup) {
		return nil, ctx.Err()
	}
	s0 := r.Stats()
	c1, d1 := selfCPU(), diskWrites()
	s1 := make([]time.Duration, 0, len(sites))
	for _, s := range sites {
		s1 = append(s1, s.cpu())
	}
	start := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	for time.Since(start) < p.duration {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
		s := r.Stats()
		res.overallRPO = append(res.overallRPO, s.RPO)
		for _, src := range s.Sources {
			res.sourceRPO = append(res.sourceRPO, src.RPO)
		}
	}
	tick.Stop()
	res.window = time.Since(start)
	res.cpu = selfCPU() - c1
	res.diskWritten = diskWrites() - d1
	s2 := r.Stats()
	res.media, res.written = s2.MediaBytes-s0.MediaBytes, s2.SpoolWrittenBytes-s0.SpoolWrittenBytes
	for i, s := range sites {
		res.siteCPU[s.kind] = s.cpu() - s1[i]
	}
	for _, stop := range stops {
		stop()
	}
	stopCams()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
		if s := r.Stats(); s.SpoolSegments == 0 {
			res.delivered = true
			break
		}
		sleep(ctx, 100*time.Millisecond)
	}
	res.final = r.Stats()
	for _, st := range streams {
		st.Close()
	}
	res.segment, res.partDur = p.segment, p.part
	return res, nil
}

func (r *result) print(w io.Writer, p params) {
	seg, part := r.segment, r.partDur
	if seg == 0 {
		seg = recorder.DefaultSegmentDuration
	}
	if part == 0 {
		part = recorder.DefaultPartDuration
	}
	stores := "MinIO primary, versitygw off-site (loopback)"
	if p.fsStores {
		stores = "two filesystem stores"
	}
	fmt.Fprintf(w, "recorder benchmark: %d cameras, %s H.264 %s + Opus, clip %s looped, segment %s, part %s, %s\n",
		p.cameras, p.size, p.bitrate, r.clip, seg, part, stores)
	fmt.Fprintf(w, "window %s after %s warm-up\n\n", r.window.Round(time.Second), p.warmup)
	q := func(ds []time.Duration, x float64) string {
		return quantile(ds, x).Round(10 * time.Millisecond).String()
	}
	fmt.Fprintf(w, "RPO per source (%d samples):  p50 %s  p99 %s  max %s\n", len(r.sourceRPO), q(r.sourceRPO, 0.5), q(r.sourceRPO, 0.99), q(r.sourceRPO, 1))
	fmt.Fprintf(w, "RPO overall    (%d samples):  p50 %s  p99 %s  max %s\n", len(r.overallRPO), q(r.overallRPO, 0.5), q(r.overallRPO, 0.99), q(r.overallRPO, 1))
	fmt.Fprintf(w, "off-site lag (capture end to confirmed, histogram upper bounds): p50 ≤ %s  p99 ≤ %s\n\n", r.final.OffsiteLagP50, r.final.OffsiteLagP99)
	camRate := r.baseCPU.Seconds() / r.baseWindow.Seconds()
	allRate := r.cpu.Seconds() / r.window.Seconds()
	recRate := allRate - camRate
	fmt.Fprintf(w, "CPU: cameras alone %.1f%%, cameras + recorder %.1f%% of one core\n", 100*camRate, 100*allRate)
	fmt.Fprintf(w, "recorder CPU: %.1f%% of one core, %.2f%% per camera\n", 100*recRate, 100*recRate/float64(p.cameras))
	for k, v := range r.siteCPU {
		fmt.Fprintf(w, "%s CPU: %.1f%% of one core\n", k, 100*v.Seconds()/r.window.Seconds())
	}
	fmt.Fprintf(w, "\nmedia received %s (%.2f Mbit/s per camera)\n", mb(r.media), float64(r.media)*8/r.window.Seconds()/1e6/float64(p.cameras))
	fmt.Fprintf(w, "spool writes (segments, manifests, journal): %s  -> write amplification %.3f\n", mb(r.written), float64(r.written)/float64(r.media))
	fmt.Fprintf(w, "disk writes of the process (/proc/self/io write_bytes, includes page rewrites by fsync): %s -> %.3f\n", mb(r.diskWritten), float64(r.diskWritten)/float64(r.media))
	s := r.final
	fmt.Fprintf(w, "\nsegments uploaded: primary %d, off-site %d; failures %d/%d; delivered all: %v; lost %d\n",
		s.Stores[0].Uploaded, s.Stores[1].Uploaded, s.Stores[0].Failures, s.Stores[1].Failures, r.delivered, s.Lost)
}

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func mb(n uint64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// selfCPU is the process's CPU time (user plus system).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// diskWrites is the bytes the process caused to be written to storage.
func diskWrites() uint64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "write_bytes: "); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
