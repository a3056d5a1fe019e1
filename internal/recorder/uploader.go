package recorder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"fieldvideo/internal/store"
)

// uploader copies spooled segments to one store, oldest first, with a few
// workers. Each upload is verified twice: the store checks the content
// against the SHA-256 given to Put, and a Stat afterwards must show the
// expected size (and hash, when the store reports one). A failing store is
// retried with exponential backoff; the other store's uploader is not
// affected.
type uploader struct {
	slot     int
	st       store.Store
	sp       *spool
	log      *slog.Logger
	workers  int
	timeout  time.Duration
	retryMin time.Duration
	retryMax time.Duration

	mu             sync.Mutex
	failures       int // consecutive
	downSince      time.Time
	nextTry        time.Time
	lastErr        string
	lastErrAt      time.Time
	lastLog        time.Time
	lastConflict   string
	lastConflictAt time.Time
	// inflight holds when each worker's upload under way began; lastOK is when the
	// store last took an upload or answered a check. A store that takes nothing for
	// stallAfter while an upload waits is down (hung), before the upload times out.
	inflight map[int]time.Time
	lastOK   time.Time
	stalled  bool         // logged as such
	moved    atomic.Int64 // unix ns: when an upload's body was last read (sent on)

	uploaded, uploadedBytes, failed, corrupt, conflicts atomic.Uint64
}

// stallAfter is how long a store may take nothing while an upload waits before it is
// reported down: a site that stopped answering (a link into a black hole) is an alarm
// within seconds, not when the upload's timeout ends.
const stallAfter = 10 * time.Second

func (u *uploader) run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := range u.workers {
		wg.Go(func() { u.worker(ctx, i) })
	}
	wg.Wait()
}

// checkStall logs a store that stopped answering, once per stall; the recorder calls
// it every second.
func (u *uploader) checkStall() {
	u.mu.Lock()
	defer u.mu.Unlock()
	since, stalled := u.stallLocked(time.Now())
	if stalled && !u.stalled {
		b := u.sp.backlog()[u.slot]
		u.log.Error("ALARM: the store has not answered an upload for "+stallAfter.String()+"; segments wait in the spool",
			"store", u.st.Name(), "waiting_since", since, "backlog_segments", b.Segments)
	}
	u.stalled = stalled
}

// stallLocked reports whether an upload has waited stallAfter with nothing taken by
// the store meanwhile, and since when the oldest waits; u.mu is held.
func (u *uploader) stallLocked(now time.Time) (time.Time, bool) {
	var oldest time.Time
	for _, at := range u.inflight {
		if oldest.IsZero() || at.Before(oldest) {
			oldest = at
		}
	}
	last := u.lastOK
	if moved := time.Unix(0, u.moved.Load()); moved.After(last) {
		last = moved
	}
	if oldest.IsZero() || now.Sub(oldest) < stallAfter || now.Sub(last) < stallAfter {
		return oldest, false
	}
	if last.After(oldest) {
		return last, true
	}
	return oldest, true
}

// movingReader notes in moved when its reader is read: an upload whose body is being
// sent over a slow link is not a store that stopped answering.
type movingReader struct {
	r     io.Reader
	moved *atomic.Int64
}

func (m movingReader) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	if n > 0 {
		m.moved.Store(time.Now().UnixNano())
	}
	return n, err
}

// begin and end bracket worker w's upload.
func (u *uploader) begin(w int) {
	u.mu.Lock()
	if u.inflight == nil {
		u.inflight = map[int]time.Time{}
	}
	u.inflight[w] = time.Now()
	u.mu.Unlock()
}

func (u *uploader) end(w int) {
	u.mu.Lock()
	delete(u.inflight, w)
	u.mu.Unlock()
}

func (u *uploader) worker(ctx context.Context, w int) {
	for ctx.Err() == nil {
		if wait := u.backoffLeft(); wait > 0 {
			// A long backoff is cut short when the store answers again:
			// a short outage must not leave its backlog waiting.
			if wait > probeEvery && u.canCheck() {
				sleep(ctx, probeEvery)
				if u.backoffLeft() > 0 {
					u.probe(ctx)
				}
				continue
			}
			sleep(ctx, wait)
			continue
		}
		ch := u.sp.waitCh()
		g := u.sp.next(u.slot)
		if g == nil {
			if u.down() {
				// Nothing to send, but the store is known to be down: see
				// whether it is back, so that its state is current.
				u.probe(ctx)
				continue
			}
			select {
			case <-ctx.Done():
			case <-ch:
			case <-time.After(5 * time.Second):
			}
			continue
		}
		u.begin(w)
		err := u.upload(ctx, g)
		u.end(w)
		if errors.Is(err, store.ErrExists) {
			u.conflict(g, err)
			continue
		}
		if err != nil {
			u.sp.release(g, u.slot)
			if ctx.Err() != nil {
				return
			}
			u.fail(err)
			continue
		}
		u.uploaded.Add(1)
		u.uploadedBytes.Add(uint64(g.size + g.manifestSize))
		if err := u.sp.markStored(g, u.slot); err != nil {
			u.log.Error("segment stored but the journal could not record it; it will be uploaded again", "key", g.key, "error", err)
			u.fail(err)
			continue
		}
		u.succeed(g)
	}
}

// errCorrupt marks a spooled segment whose content no longer matches the
// SHA-256 recorded when it was closed.
var errCorrupt = errors.New("spooled segment does not match its recorded SHA-256")

// upload stores a segment and its manifest, and verifies both.
func (u *uploader) upload(ctx context.Context, g *spoolSeg) error {
	ctx, cancel := context.WithTimeout(ctx, u.timeout)
	defer cancel()
	path := filepath.Join(u.sp.dir, g.file)
	size, sum, err := store.HashFile(path)
	if err == nil && (size != g.size || sum != g.sha) {
		err = errCorrupt
	}
	if err != nil {
		u.corrupt.Add(1)
		u.sp.quarantine(g, err)
		return fmt.Errorf("segment %s: %w", g.key, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = u.st.Put(ctx, g.key, movingReader{r: f, moved: &u.moved}, g.size, g.sha)
	f.Close()
	if err != nil {
		return fmt.Errorf("put %s: %w", g.key, err)
	}
	if err := verify(ctx, u.st, g.key, g.size, g.sha); err != nil {
		return err
	}
	mb, err := u.manifest(g)
	if err != nil {
		return err
	}
	mkey, msum := ManifestKey(g.key), sha256Hex(mb)
	if err := u.st.Put(ctx, mkey, bytes.NewReader(mb), int64(len(mb)), msum); err != nil {
		if errors.Is(err, store.ErrExists) && u.sameManifest(ctx, mkey, g) {
			// The site has this segment's manifest from an earlier upload
			// (written again since, e.g. after damage in the spool).
			return nil
		}
		return fmt.Errorf("put %s: %w", mkey, err)
	}
	return verify(ctx, u.st, mkey, int64(len(mb)), msum)
}

// sameManifest reports whether the manifest stored at key describes the
// segment g: same key, size and SHA-256.
func (u *uploader) sameManifest(ctx context.Context, key string, g *spoolSeg) bool {
	rc, _, err := u.st.Get(ctx, key)
	if err != nil {
		return false
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	if err != nil {
		return false
	}
	m, err := ParseManifest(b)
	return err == nil && m.Key == g.key && m.Size == g.size && m.SHA256 == g.sha
}

// conflict sets aside a segment whose key holds other content at the
// store: it is never overwritten there, stays in the spool (it is
// evidence), is not tried again until the next start, and raises an alarm.
func (u *uploader) conflict(g *spoolSeg, err error) {
	u.conflicts.Add(1)
	u.sp.conflict(g, u.slot)
	u.mu.Lock()
	u.lastConflict, u.lastConflictAt = err.Error(), time.Now()
	u.mu.Unlock()
	u.log.Error("ALARM: a segment's key already holds other content at the store; recordings are never overwritten, so the segment stays in the spool for an operator to check",
		"key", g.key, "error", err)
}

// probeEvery is how often a store in a long backoff is checked.
const probeEvery = 2 * time.Second

func (u *uploader) canCheck() bool {
	_, ok := u.st.(interface{ Check(context.Context) error })
	return ok
}

// down reports whether the store is known to be failing.
func (u *uploader) down() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.failures > 0
}

// probe checks a failing store that has nothing to upload, after the
// backoff: a store that answers again is up.
func (u *uploader) probe(ctx context.Context) {
	c, ok := u.st.(interface{ Check(context.Context) error })
	if !ok {
		sleep(ctx, u.retryMax)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, u.timeout)
	defer cancel()
	if err := c.Check(ctx); err != nil {
		if ctx.Err() == nil {
			u.fail(err)
		}
		return
	}
	u.succeed(nil)
}

// manifest reads a segment's manifest from the spool, rewriting it from the
// segment file when it is damaged.
func (u *uploader) manifest(g *spoolSeg) ([]byte, error) {
	p := filepath.Join(u.sp.dir, manifestFileName(g.file))
	b, err := os.ReadFile(p)
	if err == nil {
		if m, perr := ParseManifest(b); perr == nil && m.SHA256 == g.sha && m.Key == g.key {
			return b, nil
		}
	}
	u.log.Warn("manifest in the spool is missing or damaged; writing it again from the segment", "key", g.key)
	if err := u.sp.rewriteManifest(g, true); err != nil {
		return nil, fmt.Errorf("rewrite manifest of %s: %w", g.key, err)
	}
	return os.ReadFile(p)
}

// verify checks a stored object's size and, when the store reports it, its
// SHA-256.
func verify(ctx context.Context, st store.Store, key string, size int64, sum string) error {
	in, err := st.Stat(ctx, key)
	if err != nil {
		return fmt.Errorf("verify %s: %w", key, err)
	}
	if in.Size != size {
		return fmt.Errorf("verify %s: stored size %d, expected %d", key, in.Size, size)
	}
	if in.SHA256 != "" && !strings.EqualFold(in.SHA256, sum) {
		return fmt.Errorf("verify %s: stored SHA-256 %s, expected %s", key, in.SHA256, sum)
	}
	return nil
}

func (u *uploader) backoffLeft() time.Duration {
	u.mu.Lock()
	defer u.mu.Unlock()
	return time.Until(u.nextTry)
}

func (u *uploader) fail(err error) {
	u.failed.Add(1)
	u.mu.Lock()
	defer u.mu.Unlock()
	if time.Now().Before(u.nextTry) {
		// Another worker's failure already set the wait: one outage, one
		// step of backoff.
		u.lastErr, u.lastErrAt = err.Error(), time.Now()
		return
	}
	u.failures++
	if u.failures == 1 {
		u.downSince = time.Now()
	}
	d := u.retryMin << min(u.failures-1, 20)
	if d > u.retryMax || d <= 0 {
		d = u.retryMax
	}
	d = time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	u.nextTry = time.Now().Add(d)
	u.lastErr, u.lastErrAt = err.Error(), time.Now()
	if u.failures == 1 || time.Since(u.lastLog) > 30*time.Second {
		u.lastLog = time.Now()
		b := u.sp.backlog()[u.slot]
		u.log.Warn("upload failed; segments wait in the spool and are retried", "error", err,
			"consecutive_failures", u.failures, "retry_in", d.Round(time.Millisecond),
			"backlog_segments", b.Segments, "backlog_bytes", b.Bytes)
	}
}

func (u *uploader) succeed(g *spoolSeg) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.failures > 0 {
		u.downSince = time.Time{}
		b := u.sp.backlog()[u.slot]
		u.log.Info("store reachable again; catching up", "after_failures", u.failures, "backlog_segments", b.Segments)
	}
	u.failures, u.nextTry, u.lastOK = 0, time.Time{}, time.Now()
}

// StoreStats describe uploads to one store.
type StoreStats struct {
	Role, Name string
	// Up is false while uploads fail (since the last success), or while an upload has
	// waited stallAfter (10 s) for a store that took nothing meanwhile.
	Up                  bool
	ConsecutiveFailures int
	LastError           string
	LastErrorAt         time.Time
	// Backlog is what waits in the spool for this store.
	Backlog                 Backlog
	Uploaded, UploadedBytes uint64
	Failures                uint64
	// Corrupt counts spooled segments found damaged before upload (they
	// are moved to the spool's quarantine folder).
	Corrupt uint64
	// DownSince is when uploads started failing (zero while up).
	DownSince time.Time
	// Conflicts counts segments whose key held other content at the store
	// (kept in the spool, never overwritten); LastConflict describes the
	// latest.
	Conflicts      uint64
	LastConflict   string
	LastConflictAt time.Time
}

func (u *uploader) stats(b Backlog) StoreStats {
	u.mu.Lock()
	defer u.mu.Unlock()
	st := StoreStats{Role: storeRoles[u.slot], Name: u.st.Name(), Up: u.failures == 0, ConsecutiveFailures: u.failures,
		LastError: u.lastErr, LastErrorAt: u.lastErrAt, Backlog: b, DownSince: u.downSince,
		Uploaded: u.uploaded.Load(), UploadedBytes: u.uploadedBytes.Load(), Failures: u.failed.Load(), Corrupt: u.corrupt.Load(),
		Conflicts: u.conflicts.Load(), LastConflict: u.lastConflict, LastConflictAt: u.lastConflictAt}
	now := time.Now()
	if since, stalled := u.stallLocked(now); st.Up && stalled {
		st.Up, st.DownSince = false, since
		st.LastError = fmt.Sprintf("no answer to an upload for %s (the site or the path to it hangs)", now.Sub(since).Round(time.Second))
		st.LastErrorAt = now
	}
	return st
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
