package recorder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"fieldvideo/internal/store"
)

// reconciler lists both sites and repairs what one has and the other lacks.
// Keys of segments still in the spool are left to the uploaders (it only
// tells them when a site lost a copy they had confirmed); anything else
// missing at one site is copied from the other, checked against the
// segment's manifest. Objects younger than the grace period are left alone:
// another recorder may still be uploading them.
//
// A quick pass lists the last few hours of every known source; a full pass
// lists the whole incident.
type reconciler struct {
	incident string
	stores   [2]store.Store
	sp       *spool
	log      *slog.Logger
	now      func() time.Time
	sources  func() []string // sources being recorded

	interval, window, fullInterval, grace, timeout time.Duration
	// retained says whether a site keeps an object under its retention
	// and holds; one it does not keep is not copied back to it. Nil keeps
	// everything.
	retained func(site int, key string) bool

	mu         sync.Mutex
	runs       uint64
	repaired   [2]uint64
	failures   uint64
	mismatches uint64
	// lastMismatch is the key of the latest object whose copies differ.
	lastMismatch string
	lastRun      time.Time
	lastFull     time.Time
	lastErr      string
	known        map[string]bool  // sources seen at either site
	pending      map[string]int64 // segment keys missing off-site, not in the spool: capture start (unix ns)
}

func (r *reconciler) run(ctx context.Context) {
	if r.interval < 0 {
		return
	}
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		r.mu.Lock()
		full := r.lastFull.IsZero() || r.now().Sub(r.lastFull) >= r.fullInterval
		r.mu.Unlock()
		r.pass(ctx, full)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pass runs one reconciliation; full lists the whole incident.
func (r *reconciler) pass(ctx context.Context, full bool) {
	start := r.now()
	var prefixes []string
	if full {
		prefixes = []string{"rec/" + r.incident + "/"}
	} else {
		prefixes = r.recentPrefixes(start)
	}
	failed := false
	for _, p := range prefixes {
		if ctx.Err() != nil {
			return
		}
		// What the spool holds is taken before the listings: a segment
		// confirmed and evicted while they run is then in a listing or
		// in this snapshot, never missing from both.
		spooled := r.sp.keys()
		var lists [2]map[string]store.Info
		var err error
		for i, st := range r.stores {
			if lists[i], err = r.list(ctx, st, p); err != nil {
				break
			}
		}
		if err != nil {
			r.fail(fmt.Errorf("list %s: %w", p, err))
			failed = true
			continue
		}
		r.compare(ctx, lists, spooled, full && p == prefixes[0])
	}
	r.mu.Lock()
	r.runs++
	r.lastRun = start
	if full && !failed {
		r.lastFull = start
	}
	r.mu.Unlock()
}

// recentPrefixes returns the hour folders of the last window for every
// known source.
func (r *reconciler) recentPrefixes(now time.Time) []string {
	srcs := map[string]bool{}
	r.mu.Lock()
	for s := range r.known {
		srcs[s] = true
	}
	r.mu.Unlock()
	for _, s := range r.sources() {
		srcs[s] = true
	}
	for _, g := range r.sp.sortedSegs() {
		srcs[g.source] = true
	}
	var out []string
	for s := range srcs {
		for h := now.Add(-r.window).UTC().Truncate(time.Hour); !h.After(now); h = h.Add(time.Hour) {
			out = append(out, fmt.Sprintf("rec/%s/%s/%04d/%02d/%02d/%02d/", r.incident, s, h.Year(), h.Month(), h.Day(), h.Hour()))
		}
	}
	sort.Strings(out)
	return out
}

func (r *reconciler) list(ctx context.Context, st store.Store, prefix string) (map[string]store.Info, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	m := map[string]store.Info{}
	err := st.List(ctx, prefix, func(in store.Info) error {
		m[in.Key] = in
		return nil
	})
	return m, err
}

// compare repairs the differences between two listings of one prefix;
// spooled holds the keys the spool had before they were taken. rebuild says the listings cover everything, so the pending off-site
// repairs are recomputed from them.
func (r *reconciler) compare(ctx context.Context, lists [2]map[string]store.Info, spooled map[string]bool, rebuild bool) {
	keys := make([]string, 0, len(lists[0])+len(lists[1]))
	seen := map[string]bool{}
	for _, l := range lists {
		for k := range l {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	// Segments before their manifests, so that a manifest never points to a
	// segment a site lacks.
	sort.Slice(keys, func(a, b int) bool {
		ka, kb := strings.TrimSuffix(keys[a], ".json"), strings.TrimSuffix(keys[b], ".json")
		ka, kb = strings.TrimSuffix(ka, ".mp4"), strings.TrimSuffix(kb, ".mp4")
		if ka != kb {
			return ka < kb
		}
		return strings.HasSuffix(keys[a], ".mp4")
	})
	if rebuild {
		r.mu.Lock()
		r.pending = map[string]int64{}
		r.mu.Unlock()
	}
	now := r.now()
	for _, key := range keys {
		if ctx.Err() != nil {
			return
		}
		ki, err := ParseKey(key)
		if err != nil || ki.Incident != r.incident {
			continue // not a recording
		}
		r.mu.Lock()
		if r.known == nil {
			r.known = map[string]bool{}
		}
		r.known[ki.Source] = true
		r.mu.Unlock()
		ia, inA := lists[primary][key]
		ib, inB := lists[offsite][key]
		if inA && inB {
			r.mu.Lock()
			delete(r.pending, key)
			r.mu.Unlock()
			if ia.Size != ib.Size || (ia.SHA256 != "" && ib.SHA256 != "" && !strings.EqualFold(ia.SHA256, ib.SHA256)) {
				r.mu.Lock()
				r.mismatches++
				r.lastMismatch = key
				r.mu.Unlock()
				r.log.Error("ALARM: the sites hold different content under one key; neither is overwritten, left for an operator to check", "key", key,
					"primary_size", ia.Size, "offsite_size", ib.Size, "primary_sha256", ia.SHA256, "offsite_sha256", ib.SHA256)
			}
			continue
		}
		missing, from, info := offsite, primary, ia
		if inB {
			missing, from, info = primary, offsite, ib
		}
		if spooled[key] {
			r.sp.unstore(key, missing)
			continue
		}
		if !info.Modified.IsZero() && now.Sub(info.Modified) < r.grace {
			continue
		}
		if r.retained != nil && !r.retained(missing, key) {
			continue // past the missing site's retention: deleted there on purpose
		}
		if missing == offsite && !ki.Manifest {
			r.mu.Lock()
			if r.pending == nil {
				r.pending = map[string]int64{}
			}
			r.pending[key] = ki.Start.UnixNano()
			r.mu.Unlock()
		}
		if err := r.copy(ctx, r.stores[from], r.stores[missing], key, info); err != nil {
			r.fail(fmt.Errorf("copy %s from %s to %s: %w", key, storeRoles[from], storeRoles[missing], err))
			continue
		}
		r.log.Info("repaired a recording missing at one site", "key", key, "from", storeRoles[from], "to", storeRoles[missing])
		r.mu.Lock()
		r.repaired[missing]++
		delete(r.pending, key)
		r.mu.Unlock()
	}
}

// copy copies one object between sites through a temporary file in the
// spool. A segment is checked against the SHA-256 in its manifest at the
// source site, so a damaged copy is never spread.
func (r *reconciler) copy(ctx context.Context, from, to store.Store, key string, info store.Info) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	want := info.SHA256
	if strings.HasSuffix(key, ".mp4") {
		if m, err := r.readManifest(ctx, from, ManifestKey(key)); err == nil && m.Key == key {
			want = m.SHA256
		}
	}
	rc, _, err := from.Get(ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	dir := filepath.Join(r.sp.dir, "tmp")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "copy-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), rc)
	if err != nil {
		return err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if want != "" && !strings.EqualFold(want, sum) {
		r.mu.Lock()
		r.mismatches++
		r.lastMismatch = key
		r.mu.Unlock()
		return fmt.Errorf("content SHA-256 %s does not match the expected %s; not copied", sum, want)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := to.Put(ctx, key, tmp, n, sum); err != nil {
		return err
	}
	return verify(ctx, to, key, n, sum)
}

func (r *reconciler) readManifest(ctx context.Context, st store.Store, key string) (*Manifest, error) {
	rc, _, err := st.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	if err != nil {
		return nil, err
	}
	return ParseManifest(b)
}

func (r *reconciler) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures++
	r.lastErr = err.Error()
	r.log.Warn("reconciliation step failed; it is retried at the next pass", "error", err)
}

// oldestPending returns, per source, the capture start of the oldest
// segment known to be missing off-site and not in the spool.
func (r *reconciler) oldestPending() map[string]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[string]int64{}
	for key, start := range r.pending {
		ki, err := ParseKey(key)
		if err != nil {
			continue
		}
		if old, ok := m[ki.Source]; !ok || start < old {
			m[ki.Source] = start
		}
	}
	return m
}

// ReconcileStats describe the reconciler.
type ReconcileStats struct {
	Runs uint64
	// Repaired counts objects copied to the primary and off-site store.
	RepairedPrimary, RepairedOffsite uint64
	Failures                         uint64
	// Mismatches counts objects whose copies differ or do not match their
	// manifest.
	Mismatches        uint64
	LastMismatch      string
	PendingOffsite    int
	LastRun, LastFull time.Time
	LastError         string
}

func (r *reconciler) stats() ReconcileStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return ReconcileStats{Runs: r.runs, RepairedPrimary: r.repaired[primary], RepairedOffsite: r.repaired[offsite],
		Failures: r.failures, Mismatches: r.mismatches, LastMismatch: r.lastMismatch, PendingOffsite: len(r.pending),
		LastRun: r.lastRun, LastFull: r.lastFull, LastError: r.lastErr}
}
