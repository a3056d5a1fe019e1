// Package recorder records sources to fragmented MP4 segments and delivers
// every segment to two object stores: a primary and an off-site one.
//
// Segments go through a crash-safe local spool: parts are appended and
// fsynced as they close, and an append-only journal tracks each segment from
// spooled, to stored at each site, to evicted. Two independent uploaders
// (one per site) retry with backoff, so either site may be down while the
// spool has room; a reconciler lists both sites and copies what one lacks.
// Segments are evicted from the spool only once both sites have verified
// copies; when the spool is full of unconfirmed segments, recording stops
// (and raises an alarm) instead of dropping accepted data.
//
// Each segment is self-contained (init plus fragments), starts at a
// keyframe, and is stored as
// rec/<incident>/<source>/YYYY/MM/DD/HH/<capture-start-ms>-<duration-ms>.mp4
// with a JSON manifest next to it (see Manifest).
//
// The recovery point objective is exported as now minus the capture start of
// the oldest segment not yet confirmed off-site; the segment being written
// counts from its capture start, since none of it is off-site yet.
package recorder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"

	"fieldvideo/internal/conf"
	"fieldvideo/internal/store"
	"fieldvideo/internal/stream"
)

// Defaults for Params.
const (
	DefaultMaxSpoolBytes         = 8 << 30
	DefaultSegmentDuration       = 4 * time.Second
	DefaultPartDuration          = time.Second
	DefaultUploadWorkers         = 2
	DefaultUploadTimeout         = 2 * time.Minute
	DefaultRetryMin              = time.Second
	DefaultRetryMax              = 30 * time.Second
	DefaultReconcileInterval     = time.Minute
	DefaultReconcileWindow       = 3 * time.Hour
	DefaultReconcileFullInterval = time.Hour
	DefaultReconcileGrace        = 2 * time.Minute
	DefaultReaderQueue           = 2048
)

// Params configures a Recorder. Zero values take the defaults.
type Params struct {
	// SpoolDir holds segments until both sites confirm them, and the
	// journal. One recorder process per directory.
	SpoolDir string
	// MaxSpoolBytes bounds the spool (segments, manifests and journal).
	MaxSpoolBytes int64
	// Incident names the recordings' top folder; it follows the source name
	// pattern (letters, digits, '.', '_', '-').
	Incident string
	// Node names this recorder in manifests; default the host name.
	Node string
	// SegmentDuration is the target segment length: a segment is cut at the
	// first keyframe after it. PartDuration is how much media is gathered
	// before it is appended to the segment file and fsynced: at most that
	// much is lost if the process dies.
	SegmentDuration time.Duration
	PartDuration    time.Duration
	// Primary and Offsite receive every segment.
	Primary, Offsite store.Store
	// UploadWorkers is the number of concurrent uploads per store.
	UploadWorkers int
	// UploadTimeout bounds one upload (or one reconciler listing or copy).
	UploadTimeout time.Duration
	// RetryMin and RetryMax bound the backoff after a failed upload.
	RetryMin, RetryMax time.Duration
	// ReconcileInterval is the time between reconciler passes over the last
	// ReconcileWindow of every source; every ReconcileFullInterval a pass
	// lists the whole incident. Objects younger than ReconcileGrace are not
	// repaired. A negative interval disables the reconciler.
	ReconcileInterval     time.Duration
	ReconcileWindow       time.Duration
	ReconcileFullInterval time.Duration
	ReconcileGrace        time.Duration
	// Retained, when set, tells whether a site (0 primary, 1 off-site)
	// keeps the object at key under its retention and holds: the
	// reconciler does not copy back what a site's retention deleted. Nil
	// keeps everything.
	Retained func(site int, key string) bool
	// ReaderQueue is the recorder's queue on each stream, in units.
	ReaderQueue int
	Log         *slog.Logger
	// Now is the clock for RPO and manifests; nil means time.Now.
	Now func() time.Time
	// OnPart, when set, is called after every part is durable in the spool.
	OnPart func(PartInfo)
}

func (p *Params) defaults() error {
	if p.SpoolDir == "" {
		return errors.New("recorder: set the spool directory (spool_dir)")
	}
	if !conf.SourceName.MatchString(p.Incident) {
		return fmt.Errorf("recorder: incident %q must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", p.Incident)
	}
	if p.Primary == nil || p.Offsite == nil {
		return errors.New("recorder: both a primary and an off-site store are required; configure both")
	}
	if p.Primary == p.Offsite {
		return errors.New("recorder: the primary and off-site stores are the same; the off-site copy must be at a second site")
	}
	setDefault(&p.MaxSpoolBytes, DefaultMaxSpoolBytes)
	setDefault(&p.SegmentDuration, DefaultSegmentDuration)
	setDefault(&p.PartDuration, DefaultPartDuration)
	setDefault(&p.UploadWorkers, DefaultUploadWorkers)
	setDefault(&p.UploadTimeout, DefaultUploadTimeout)
	setDefault(&p.RetryMin, DefaultRetryMin)
	setDefault(&p.RetryMax, DefaultRetryMax)
	setDefault(&p.ReconcileInterval, DefaultReconcileInterval)
	setDefault(&p.ReconcileWindow, DefaultReconcileWindow)
	setDefault(&p.ReconcileFullInterval, DefaultReconcileFullInterval)
	setDefault(&p.ReconcileGrace, DefaultReconcileGrace)
	setDefault(&p.ReaderQueue, DefaultReaderQueue)
	switch {
	case p.MaxSpoolBytes < 1<<20:
		return fmt.Errorf("recorder: max spool bytes %d is too small; allow at least 1 MiB (hours of recording for a real outage)", p.MaxSpoolBytes)
	case p.PartDuration < 100*time.Millisecond || p.PartDuration > p.SegmentDuration:
		return fmt.Errorf("recorder: part duration %s must be at least 100ms and at most the segment duration %s", p.PartDuration, p.SegmentDuration)
	case p.SegmentDuration > 10*time.Minute:
		return fmt.Errorf("recorder: segment duration %s is too long; the recovery point is at least one segment", p.SegmentDuration)
	case p.UploadWorkers < 0 || p.RetryMin < 0 || p.RetryMax < p.RetryMin:
		return errors.New("recorder: upload workers and retry backoff must be positive, with retry min below retry max")
	}
	if p.Log == nil {
		p.Log = slog.Default()
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.Node == "" {
		p.Node, _ = os.Hostname()
	}
	return nil
}

func setDefault[T int | int64 | time.Duration](v *T, d T) {
	if *v == 0 {
		*v = d
	}
}

// Recorder records sources and delivers their segments to both sites.
type Recorder struct {
	p   Params
	log *slog.Logger
	sp  *spool
	ups [2]*uploader
	rec *reconciler

	mu      sync.Mutex
	recs    map[string]*recording
	stats   map[string]*sourceStats
	closed  bool
	running bool
	done    chan struct{} // closed by Close
	runDone chan struct{} // closed when Run returns

	closeOnce sync.Once
}

// New opens the spool (recovering what a crash left in it) and returns a
// recorder. Call Run to upload, Record for each live source, and Close.
func New(p Params) (*Recorder, error) {
	if err := p.defaults(); err != nil {
		return nil, err
	}
	log := p.Log.With("component", "recorder", "incident", p.Incident)
	sp, err := openSpool(p.SpoolDir, p.MaxSpoolBytes, p.Incident, p.Node, log, p.Now)
	if err != nil {
		return nil, fmt.Errorf("recorder: %w", err)
	}
	r := &Recorder{p: p, log: log, sp: sp, recs: map[string]*recording{}, stats: map[string]*sourceStats{},
		done: make(chan struct{}), runDone: make(chan struct{})}
	for i, st := range []store.Store{p.Primary, p.Offsite} {
		r.ups[i] = &uploader{slot: i, st: st, sp: sp, workers: p.UploadWorkers, timeout: p.UploadTimeout,
			retryMin: p.RetryMin, retryMax: p.RetryMax,
			log: log.With("store", st.Name(), "role", storeRoles[i])}
	}
	r.rec = &reconciler{incident: p.Incident, stores: [2]store.Store{p.Primary, p.Offsite}, sp: sp, now: p.Now,
		log: log.With("part", "reconciler"), sources: r.sources, interval: p.ReconcileInterval,
		window: p.ReconcileWindow, fullInterval: p.ReconcileFullInterval, grace: p.ReconcileGrace, timeout: p.UploadTimeout,
		retained: p.Retained}
	b := sp.backlog()
	log.Info("spool open", "dir", p.SpoolDir, "segments_waiting_primary", b[primary].Segments,
		"segments_waiting_offsite", b[offsite].Segments, "recovered", sp.recovered.Load())
	return r, nil
}

// Stores returns the primary and off-site stores.
func (r *Recorder) Stores() (primary, offsite store.Store) { return r.p.Primary, r.p.Offsite }

// SetRetained sets Params.Retained; call it before Run.
func (r *Recorder) SetRetained(fn func(site int, key string) bool) { r.rec.retained = fn }

// Run uploads and reconciles until ctx ends or the recorder is closed.
func (r *Recorder) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.running || r.closed {
		r.mu.Unlock()
		return errors.New("recorder: Run called twice or after Close")
	}
	r.running = true
	r.mu.Unlock()
	defer close(r.runDone)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-r.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	var wg sync.WaitGroup
	for _, u := range r.ups {
		wg.Go(func() { u.run(ctx) })
	}
	wg.Go(func() { r.rec.run(ctx) })
	wg.Go(func() { r.watchIdle(ctx) })
	wg.Wait()
	return nil
}

// watchIdle runs once a second: it closes the segments of sources that stopped
// sending, tends the spool, and notes the stores that stopped answering.
func (r *Recorder) watchIdle(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		recs := make([]*recording, 0, len(r.recs))
		for _, rc := range r.recs {
			recs = append(recs, rc)
		}
		r.mu.Unlock()
		now := r.p.Now()
		for _, rc := range recs {
			rc.seg.checkIdle(now)
		}
		r.sp.tend()
		for _, u := range r.ups {
			u.checkStall()
		}
	}
}

// Record starts recording a source; call it when the source goes live.
// stop ends the recording, closing the segment in progress; it is safe to
// call more than once. Tracks the recorder cannot store are skipped with a
// logged reason (and listed in Stats).
func (r *Recorder) Record(name string, st *stream.Stream) (stop func(), err error) {
	return r.RecordTracks(name, st, nil)
}

// RecordTracks is Record for the listed stream tracks only (nil: all), such
// as the top layer of a simulcast publication.
func (r *Recorder) RecordTracks(name string, st *stream.Stream, tracks []int) (stop func(), err error) {
	return r.record(name, st, tracks, nil)
}

// RecordLayers records the simulcast layers of one video, the stream tracks listed lowest
// first, as one track: the best layer arriving, switched at keyframes (a new segment
// starts at each switch), so that the recording goes on whatever layer the publisher's
// uplink still carries.
func (r *Recorder) RecordLayers(name string, st *stream.Stream, layers []int) (stop func(), err error) {
	if len(layers) == 0 {
		return nil, errors.New("recorder: RecordLayers needs the layers' tracks")
	}
	return r.record(name, st, layers, layers)
}

func (r *Recorder) record(name string, st *stream.Stream, tracks, layers []int) (stop func(), err error) {
	if !conf.SourceName.MatchString(name) {
		return nil, fmt.Errorf("recorder: source name %q cannot be used in object keys; use 1-64 letters, digits, '.', '_' or '-'", name)
	}
	if st == nil {
		return nil, errors.New("recorder: Record needs a stream")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, errors.New("recorder: closed")
	}
	if r.recs[name] != nil {
		return nil, fmt.Errorf("recorder: source %s is already being recorded; stop it first", name)
	}
	ss := r.stats[name]
	if ss == nil {
		ss = &sourceStats{}
		r.stats[name] = ss
	}
	cfg := segConfig{segDur: r.p.SegmentDuration, partDur: r.p.PartDuration,
		idle: 2*r.p.SegmentDuration + 2*time.Second, onPart: r.p.OnPart, now: r.p.Now, only: tracks, layers: layers, keyframe: st.RequestKeyframe}
	log := r.log.With("source", name)
	rc := &recording{r: r, name: name, st: st, log: log, stopCh: make(chan struct{}), done: make(chan struct{}),
		seg: newSegmenter(cfg, r.sp, name, st.Tracks(), ss, log)}
	r.recs[name] = rc
	go rc.loop()
	log.Info("recording started")
	return rc.stop, nil
}

// sources returns the names of the sources being recorded.
func (r *Recorder) sources() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.recs))
	for n := range r.recs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Stop is the graceful stop: it ends every recording (closing the segments
// being written), keeps uploading until both sites have every segment or
// ctx ends, then closes the recorder. It returns what is left in the spool
// for each site; that is uploaded at the next start.
func (r *Recorder) Stop(ctx context.Context) [2]Backlog {
	r.mu.Lock()
	recs := make([]*recording, 0, len(r.recs))
	for _, rc := range r.recs {
		recs = append(recs, rc)
	}
	running := r.running && !r.closed
	r.mu.Unlock()
	for _, rc := range recs {
		rc.stop()
	}
	start := r.p.Now()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	b := r.sp.backlog()
	for running && (b[primary].Segments > 0 || b[offsite].Segments > 0) && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		b = r.sp.backlog()
	}
	r.Close()
	if b[primary].Segments == 0 && b[offsite].Segments == 0 {
		r.log.Info("recorder stopped: every segment is at both sites", "took", r.p.Now().Sub(start).Round(time.Millisecond))
	} else {
		r.log.Warn("recorder stopped before every segment reached both sites; they stay in the spool and are uploaded at the next start",
			"waiting_primary", b[primary].Segments, "waiting_offsite", b[offsite].Segments,
			"oldest_waiting_offsite", b[offsite].Oldest)
	}
	return b
}

// Close stops every recording (closing their segments), stops Run, and
// closes the spool. Segments not yet uploaded stay in the spool for the
// next start.
func (r *Recorder) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		recs := make([]*recording, 0, len(r.recs))
		for _, rc := range r.recs {
			recs = append(recs, rc)
		}
		running := r.running
		r.mu.Unlock()
		for _, rc := range recs {
			rc.stop()
		}
		close(r.done)
		if running {
			<-r.runDone
		}
		r.sp.close()
	})
	return nil
}

// recording is one source being recorded: a stream reader feeding its
// segmenter, re-attached when the source comes back with new tracks.
type recording struct {
	r      *Recorder
	name   string
	st     *stream.Stream
	log    *slog.Logger
	seg    *segmenter
	stopCh chan struct{}
	done   chan struct{}
	once   sync.Once
}

func (rc *recording) loop() {
	defer close(rc.done)
	defer func() {
		rc.r.mu.Lock()
		if rc.r.recs[rc.name] == rc {
			delete(rc.r.recs, rc.name)
		}
		rc.r.mu.Unlock()
	}()
	for {
		ended := make(chan error, 1)
		rd, err := rc.st.AddReader(stream.ReaderParams{
			Name: "recorder", QueueSize: rc.r.p.ReaderQueue, Tracks: rc.seg.cfg.only, OnUnit: rc.seg.onUnit,
			OnEnd: func(err error) {
				rc.seg.stop()
				ended <- err
			},
		})
		if err != nil {
			rc.log.Info("recording ended", "reason", err)
			return
		}
		select {
		case err := <-ended:
			if errors.Is(err, stream.ErrTracksChanged) {
				rc.log.Info("source reconnected with new tracks; recording them")
				rc.seg.retrack(rc.st.Tracks())
				continue
			}
			rc.log.Info("recording ended", "reason", err)
			return
		case <-rc.stopCh:
			rd.Close()
			<-ended
			rc.log.Info("recording stopped")
			return
		}
	}
}

func (rc *recording) stop() {
	rc.once.Do(func() { close(rc.stopCh) })
	<-rc.done
}
