// Package playback answers after-action reviewers from the recordings at
// either site, with no database: the segment keys and their manifests are
// the index, listed from the stores, kept in memory and refreshed.
//
// It lists incidents, sources and each source's coverage; streams any
// source over any time range as one fragmented MP4 that starts at a chosen
// capture instant; says what each of several sources holds at one instant
// and how their times line up on the common baseline; exports signed
// evidence; and fails over between the primary and the off-site copy by
// itself, saying which site served each answer.
package playback

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"fieldvideo/internal/metrics"
	"fieldvideo/internal/store"
)

// Params configure a Playback.
type Params struct {
	// Sites are the stores in order of preference: the primary, then the
	// off-site copy.
	Sites []store.Store
	// Refresh is how long a listing of a recent hour is trusted (2 s when
	// zero); the whole store is listed again every FullRefresh (1 min).
	Refresh, FullRefresh time.Duration
	// HealthInterval is how often a site that failed is checked (2 s).
	HealthInterval time.Duration
	// MaxRange bounds the time range of one answer (24 h).
	MaxRange time.Duration
	// MaxStreams bounds the streams and exports served at once (32); each
	// holds a segment in memory. MaxStreamsPerHolder bounds the streams
	// without Range and the exports of one token holder (4), so that one
	// token cannot take them all; renders for Range answers are bounded by
	// their memory instead.
	MaxStreams, MaxStreamsPerHolder int
	// WriteTimeout bounds every write of a long answer to its client
	// (30 s): a client that reads nothing for that long is cut.
	WriteTimeout time.Duration
	Log          *slog.Logger
}

const (
	// streamsPerHolder is the default of MaxStreamsPerHolder: a reviewer's
	// few players and a download or two.
	streamsPerHolder = 4
	// clientWriteTimeout is the default of WriteTimeout: far longer than a
	// fragment (about a second of media) takes to reach a client that plays
	// it, even over a poor link, and short enough that a client that stopped
	// reading gives its stream slot back soon. A player paused for longer,
	// its buffer full, is cut too.
	clientWriteTimeout = 30 * time.Second
)

// Playback serves recordings from the first healthy site.
type Playback struct {
	p     Params
	log   *slog.Logger
	sites []*site
	// active is the index of the site answering now.
	active atomic.Int32

	switches atomic.Int64
	streams  atomic.Int64
	skipped  atomic.Int64
	exports  atomic.Int64
	// stalled counts the long answers cut because their client stopped
	// reading.
	stalled atomic.Int64
	mu      sync.Mutex
	slots   slots
	cache   renderCache
	// noDeadline is logged once: a long answer's connection takes no write
	// deadline.
	noDeadline sync.Once
}

// slots are the streams and exports being served, in all and by token
// holder; mu guards busy and holders.
type slots struct {
	mu      sync.Mutex
	busy    int
	holders map[string]int
}

// acquire takes a stream slot for holder (none is charged when it is
// empty: a render, charged by memory instead), or refuses it: 429 when
// holder already has MaxStreamsPerHolder, 503 when all MaxStreams are busy.
func (pb *Playback) acquire(holder string) (release func(), err error) {
	s := &pb.slots
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.holders[holder]; holder != "" && n >= pb.p.MaxStreamsPerHolder {
		return nil, &Error{Status: http.StatusTooManyRequests, Msg: fmt.Sprintf(
			"%s already has %d recording streams or exports in progress, the most one token holder may have; close another player or download, or wait for one to finish, then retry",
			holder, n)}
	}
	if s.busy >= pb.p.MaxStreams {
		return nil, &Error{Status: http.StatusServiceUnavailable, Msg: fmt.Sprintf("all %d playback streams are busy; try again shortly", pb.p.MaxStreams)}
	}
	s.busy++
	if holder != "" {
		s.holders[holder]++
	}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.busy--
		if holder != "" {
			if s.holders[holder]--; s.holders[holder] <= 0 {
				delete(s.holders, holder)
			}
		}
	}, nil
}

// busy reports the stream slots taken.
func (pb *Playback) busy() int {
	pb.slots.mu.Lock()
	defer pb.slots.mu.Unlock()
	return pb.slots.busy
}

type site struct {
	st      store.Store
	idx     *index
	healthy atomic.Bool
	mu      sync.Mutex
	lastErr string
	since   time.Time
	// checksFailed counts the health checks failed in a row; Run's own.
	checksFailed int
}

// checksToFail is how many health checks in a row a site must fail before answers move
// off it: one slow answer (a store busy or just restarted) does not move them back and
// forth. A request the site fails moves them at once.
const checksToFail = 2

// New returns a Playback over p.Sites.
func New(p Params) (*Playback, error) {
	if len(p.Sites) == 0 {
		return nil, errors.New("playback: no store to read recordings from")
	}
	if p.Refresh <= 0 {
		p.Refresh = 2 * time.Second
	}
	if p.FullRefresh <= 0 {
		p.FullRefresh = time.Minute
	}
	if p.HealthInterval <= 0 {
		p.HealthInterval = 2 * time.Second
	}
	if p.MaxRange <= 0 {
		p.MaxRange = 24 * time.Hour
	}
	if p.MaxStreams <= 0 {
		p.MaxStreams = 32
	}
	if p.MaxStreamsPerHolder <= 0 {
		p.MaxStreamsPerHolder = streamsPerHolder
	}
	if p.WriteTimeout <= 0 {
		p.WriteTimeout = clientWriteTimeout
	}
	if p.Log == nil {
		p.Log = slog.New(slog.DiscardHandler)
	}
	pb := &Playback{p: p, log: p.Log.With("component", "playback"), slots: slots{holders: map[string]int{}}}
	pb.cache.init()
	for _, st := range p.Sites {
		s := &site{st: st, idx: newIndex(st, p.FullRefresh, 2*time.Hour), since: time.Now()}
		s.healthy.Store(true)
		pb.sites = append(pb.sites, s)
	}
	return pb, nil
}

// Run checks every site each HealthInterval until ctx ends: answers move
// off a site that fails checksToFail checks in a row and back to a preferred one
// that answers again; the index of every healthy site is kept listed, so that a
// switch answers at once.
func (pb *Playback) Run(ctx context.Context) error {
	t := time.NewTicker(pb.p.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		for i, s := range pb.sites {
			cctx, cancel := context.WithTimeout(ctx, pb.p.HealthInterval)
			err := check(cctx, s.st)
			cancel()
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				if s.checksFailed++; s.checksFailed >= checksToFail {
					pb.down(i, fmt.Errorf("health check: %w", err))
				}
				continue
			}
			s.checksFailed = 0
			pb.up(i)
			if err := s.idx.refresh(ctx, false); err != nil && ctx.Err() == nil {
				pb.down(i, fmt.Errorf("listing: %w", err))
			}
		}
	}
}

// check asks a store for a key that does not exist: an answer, even "not
// found", means it serves.
func check(ctx context.Context, st store.Store) error {
	_, err := st.Stat(ctx, "rec/.playback-health-check")
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err == nil {
		return nil
	}
	return err
}

// up marks site i healthy; answers move back to it when it is preferred.
func (pb *Playback) up(i int) {
	s := pb.sites[i]
	if s.healthy.Swap(true) {
		return
	}
	s.mu.Lock()
	s.since, s.lastErr = time.Now(), ""
	s.mu.Unlock()
	pb.mu.Lock()
	defer pb.mu.Unlock()
	if cur := int(pb.active.Load()); i < cur {
		pb.active.Store(int32(i))
		pb.switches.Add(1)
		pb.log.Info("playback moved back to a recovered site", "site", s.st.Name(), "from", pb.sites[cur].st.Name())
	}
}

// down marks site i failed after err, and moves answers to the next
// healthy site.
func (pb *Playback) down(i int, err error) {
	s := pb.sites[i]
	s.mu.Lock()
	s.lastErr, s.since = err.Error(), time.Now()
	s.mu.Unlock()
	if !s.healthy.Swap(false) {
		return
	}
	pb.mu.Lock()
	defer pb.mu.Unlock()
	if int(pb.active.Load()) != i {
		return
	}
	for k := range pb.sites {
		if k != i && pb.sites[k].healthy.Load() {
			pb.active.Store(int32(k))
			pb.switches.Add(1)
			pb.log.Warn("playback switched site: the site failed", "from", s.st.Name(), "to", pb.sites[k].st.Name(), "error", err)
			return
		}
	}
	pb.log.Error("playback: no site answers", "error", err)
}

// failed reports whether err is the store failing (not the question: a
// missing key, a cancelled request).
func failed(ctx context.Context, err error) bool {
	var pe *Error
	if err == nil || ctx.Err() != nil || errors.As(err, &pe) {
		return false
	}
	return !errors.Is(err, store.ErrNotFound) && !errors.Is(err, errDamaged) && !errors.Is(err, context.Canceled)
}

// with runs fn against the active site and, when that site fails, against
// each other one in turn; it returns the name of the site that answered.
func (pb *Playback) with(ctx context.Context, fn func(s *site) error) (string, error) {
	start := int(pb.active.Load())
	var firstErr error
	for n := range pb.sites {
		i := (start + n) % len(pb.sites)
		s := pb.sites[i]
		if n > 0 && !s.healthy.Load() {
			continue
		}
		err := fn(s)
		if !failed(ctx, err) {
			if err == nil && !s.healthy.Load() {
				pb.up(i)
			}
			return s.st.Name(), err
		}
		pb.down(i, err)
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr == nil {
		firstErr = errors.New("no site is healthy")
	}
	return "", fmt.Errorf("%w: %w", errNoSite, firstErr)
}

var errNoSite = errors.New("no store holding recordings answers")

// gather runs fn against every healthy site, the active one first, so that
// the caller can merge what they hold: a segment not yet uploaded to one
// site after an outage, or lost there, is found at the other. It returns
// the name of the first site that answered; a site that fails is marked
// down and skipped.
func (pb *Playback) gather(ctx context.Context, fn func(s *site) error) (string, error) {
	start := int(pb.active.Load())
	name := ""
	var firstErr error
	for n := range pb.sites {
		i := (start + n) % len(pb.sites)
		s := pb.sites[i]
		if n > 0 && !s.healthy.Load() {
			continue
		}
		err := fn(s)
		if failed(ctx, err) {
			pb.down(i, err)
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if err != nil {
			return s.st.Name(), err
		}
		if name == "" {
			name = s.st.Name()
		}
	}
	if name == "" {
		if firstErr == nil {
			firstErr = errors.New("no site is healthy")
		}
		return "", fmt.Errorf("%w: %w", errNoSite, firstErr)
	}
	return name, nil
}

// merge joins the segment lists of several sites: one entry per key, by
// start.
func merge(lists ...[]seg) []seg {
	var out []seg
	seen := map[string]bool{}
	for _, l := range lists {
		for _, s := range l {
			if !seen[s.key] {
				seen[s.key] = true
				out = append(out, s)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].start.Equal(out[j].start) {
			return out[i].start.Before(out[j].start)
		}
		return out[i].key < out[j].key
	})
	return out
}

// SiteState is one site as playback sees it.
type SiteState struct {
	Name    string    `json:"name"`
	Healthy bool      `json:"healthy"`
	Active  bool      `json:"active"`
	Error   string    `json:"error,omitempty"`
	Since   time.Time `json:"since"`
}

// Sites reports each site's state and which one answers.
func (pb *Playback) Sites() []SiteState {
	out := make([]SiteState, len(pb.sites))
	act := int(pb.active.Load())
	for i, s := range pb.sites {
		s.mu.Lock()
		out[i] = SiteState{Name: s.st.Name(), Healthy: s.healthy.Load(), Active: i == act, Error: s.lastErr, Since: s.since}
		s.mu.Unlock()
	}
	return out
}

// Switches counts the moves between sites.
func (pb *Playback) Switches() int64 { return pb.switches.Load() }

// WriteMetrics writes playback's metrics.
func (pb *Playback) WriteMetrics(m *metrics.Writer) {
	m.Family("fv_playback_site_up", "gauge", "1 while a site answers playback's health check.")
	for _, s := range pb.Sites() {
		m.Sample("fv_playback_site_up", metrics.Bool(s.Healthy), "site", s.Name)
	}
	m.Family("fv_playback_site_active", "gauge", "1 for the site playback answers from.")
	for _, s := range pb.Sites() {
		m.Sample("fv_playback_site_active", metrics.Bool(s.Active), "site", s.Name)
	}
	m.Family("fv_playback_streams_active", "gauge", "Streams and exports being served, each holding a stream slot.")
	m.Sample("fv_playback_streams_active", float64(pb.busy()))
	for _, c := range []struct {
		name, help string
		v          int64
	}{
		{"fv_playback_site_switches_total", "Times playback moved to another site.", pb.switches.Load()},
		{"fv_playback_streams_total", "Recording streams served.", pb.streams.Load()},
		{"fv_playback_segments_skipped_total", "Segments left out of streams: damaged at every site, or unreadable.", pb.skipped.Load()},
		{"fv_playback_exports_total", "Evidence exports made.", pb.exports.Load()},
		{"fv_playback_clients_stalled_total", "Streams, exports and range answers cut because their client stopped reading.", pb.stalled.Load()},
	} {
		m.Family(c.name, "counter", c.help)
		m.Sample(c.name, float64(c.v))
	}
}
