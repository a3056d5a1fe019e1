// Package retention deletes recordings once each site's retention has
// passed, and keeps those under evidence holds.
//
// # Deletion rules
//
// A pass at site S (run when S's retention R(S) is set) deletes a segment
// and its manifest only when all of these hold:
//
//  1. the holds of both sites were read in this pass; if either listing
//     fails, or a stored hold cannot be read, the pass deletes nothing;
//  2. its capture end (start + duration, from the key) is older than
//     now − R(S);
//  3. no hold covers it: same incident, source matching the hold's pattern,
//     and [start, start+duration) overlapping [from, to);
//  4. the other site O holds every object of it that S holds with the same
//     size and SHA-256 (as the stores verified them on upload), or R(O) is
//     set and the capture end is older than now − R(O) as well.
//
// Rule 4 means a recording never drops to zero sites before both
// retentions have passed: a pass at S relies on O's copy only while O's own
// retention keeps it, and O deletes it only after R(O), which then has passed
// for both. A site with retention 0 keeps everything, and the other site
// deletes only what it holds a verified copy of.
//
// The manifest is deleted before its segment. The recorder writes a segment
// before its manifest, so at every site "a manifest exists" implies "its
// segment exists"; deleting in the reverse order keeps that true, and a pass
// interrupted between the two leaves a segment without a manifest, which is
// itself past retention and deleted by the next pass.
//
// Each deletion is audited (actor "retention", action "delete", the key as
// source, the rule as reason) before it is made, after a Stat shows the
// object still exists, so that passes of several processes over the same
// stores rarely audit one deletion twice. When the audit line cannot be
// written, nothing is deleted.
//
// # Holds
//
// Holds are small JSON objects stored at both sites under holds/<id>.json,
// outside rec/, written with Put (never overwritten) and deleted when
// released. A hold written to one site only is written to the other in the
// background until both have it; one whose release reached one site only is
// removed from the other in the background. Either copy protects what it
// covers.
//
// A hold created through this process protects at once from its passes. A
// pass also reads the holds of both sites again after 64 deletions or 10 s,
// so a hold created in another process protects from this one within that
// bound.
package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/conf"
	"fieldvideo/internal/recorder"
	"fieldvideo/internal/store"
)

// Site names one of the two stores.
type Site int

// Sites.
const (
	Primary Site = iota
	Offsite
)

var sites = [2]Site{Primary, Offsite}

// String returns the site's name in metrics and JSON: primary or offsite.
func (s Site) String() string {
	if s == Offsite {
		return "offsite"
	}
	return "primary"
}

// words returns the site's name in prose.
func (s Site) words() string {
	if s == Offsite {
		return "off-site"
	}
	return "primary"
}

func (s Site) other() Site { return 1 - s }

// StoreParams are one site's store and retention.
type StoreParams struct {
	Store store.Store
	// Retention is how long recordings are kept there after their capture
	// end; 0 keeps them forever.
	Retention time.Duration
}

// Params configure New.
type Params struct {
	Primary, Offsite StoreParams
	// Interval is the time between passes (default 10m); RetryInterval
	// between attempts to write a hold to a site that lacks it, or to
	// remove a released one (default 30s).
	Interval, RetryInterval time.Duration
	// Timeout bounds each store call made for holds (default 30s).
	Timeout time.Duration
	// Incident is the incident of holds that do not name one.
	Incident string
	// Audit receives every deletion and every hold created or released,
	// e.g. (*audit.Log).Write. An error refuses the action.
	Audit func(audit.Event) error
	// Verifier checks the bearer tokens of the HTTP API.
	Verifier *auth.Verifier
	// AllowOrigin, when set, is sent as the CORS origin of the HTTP API.
	AllowOrigin string
	Log         *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Errors of the hold operations, for callers that answer HTTP.
var (
	// ErrInvalid is a request that cannot be served as it is.
	ErrInvalid = errors.New("invalid hold request")
	// ErrNotFound is a hold that exists at neither site.
	ErrNotFound = errors.New("no such hold")
	// ErrUnavailable is a store or the audit log failing: try again later.
	ErrUnavailable = errors.New("hold storage unavailable")
)

// Retention runs retention passes over both sites and keeps the holds.
type Retention struct {
	p     Params
	st    [2]store.Store
	ret   [2]time.Duration
	log   *slog.Logger
	now   func() time.Time
	audit func(audit.Event) error

	// passMu serialises passes.
	passMu sync.Mutex
	// ops serialises the writes and deletes of hold objects (create,
	// release, retries), so a retried write never follows a release.
	ops sync.Mutex
	// gate is held shared by a pass while it decides on and deletes one
	// segment, and exclusively by CreateHold while it registers a new hold:
	// once registered, no pass of this process deletes what it covers.
	gate sync.RWMutex

	// mu guards the fields below; it is never held across I/O.
	mu sync.Mutex
	// local are holds this process still has to write to or remove from a
	// site, by id.
	local map[string]*localHold
	// gen changes whenever local changes.
	gen uint64
	// cache keeps the holds read at each site by key, with the SHA-256 of
	// the object they were read from.
	cache [2]map[string]cachedHold
	// known are the holds of the last read that reached both sites;
	// knownOK is false until there was one.
	known   []Hold
	knownOK bool
	holds   int
	stats   [2]SiteStats
}

// New checks p and returns a Retention; call Run to start the passes.
func New(p Params) (*Retention, error) {
	switch {
	case p.Primary.Store == nil || p.Offsite.Store == nil:
		return nil, errors.New("retention: both stores are needed: holds and copies are checked at both sites")
	case p.Audit == nil:
		return nil, errors.New("retention: no audit function: every deletion must be audited; pass (*audit.Log).Write")
	case p.Verifier == nil:
		return nil, errors.New("retention: no token verifier for the hold API")
	case !conf.SourceName.MatchString(p.Incident):
		return nil, fmt.Errorf("retention: incident %q: use 1-64 letters, digits, '.', '_' or '-'", p.Incident)
	case p.Interval < 0 || p.RetryInterval < 0 || p.Timeout < 0:
		return nil, errors.New("retention: intervals and timeout must not be negative")
	}
	for _, s := range []struct {
		site Site
		ret  time.Duration
	}{{Primary, p.Primary.Retention}, {Offsite, p.Offsite.Retention}} {
		if s.ret < 0 || (s.ret > 0 && s.ret < conf.MinRetention) {
			return nil, fmt.Errorf("retention: %s retention %s: use 0 (keep forever) or at least %s, so that a typo cannot wipe a site",
				s.site.words(), s.ret, conf.MinRetention)
		}
	}
	if p.Interval == 0 {
		p.Interval = 10 * time.Minute
	}
	if p.RetryInterval == 0 {
		p.RetryInterval = 30 * time.Second
	}
	if p.Timeout == 0 {
		p.Timeout = 30 * time.Second
	}
	if p.Log == nil {
		p.Log = slog.Default()
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	r := &Retention{
		p:     p,
		st:    [2]store.Store{p.Primary.Store, p.Offsite.Store},
		ret:   [2]time.Duration{p.Primary.Retention, p.Offsite.Retention},
		log:   p.Log.With("component", "retention"),
		now:   p.Now,
		audit: p.Audit,
		local: map[string]*localHold{},
		cache: [2]map[string]cachedHold{{}, {}},
	}
	for _, s := range sites {
		r.stats[s] = SiteStats{Site: s.String(), Store: r.st[s].Name(), Retention: r.ret[s]}
	}
	return r, nil
}

// Run runs a pass at once and then every interval, and retries pending
// hold writes, until ctx ends.
func (r *Retention) Run(ctx context.Context) error {
	r.log.Info("retention started", "primary", fmtDur(r.ret[Primary]), "offsite", fmtDur(r.ret[Offsite]),
		"interval", r.p.Interval)
	_ = r.Pass(ctx)
	pass := time.NewTicker(r.p.Interval)
	defer pass.Stop()
	retry := time.NewTicker(r.p.RetryInterval)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-pass.C:
			_ = r.Pass(ctx)
		case <-retry.C:
			r.retryPending(ctx)
		}
	}
}

// Pass retries pending hold writes, then runs one pass at each site whose
// retention is set. The error says what each failed pass did not do.
func (r *Retention) Pass(ctx context.Context) error {
	r.passMu.Lock()
	defer r.passMu.Unlock()
	r.retryPending(ctx)
	var errs []error
	ran := false
	for _, s := range sites {
		if r.ret[s] == 0 {
			continue
		}
		ran = true
		if err := r.passSite(ctx, s); err != nil {
			errs = append(errs, err)
		}
	}
	if !ran {
		// Nothing expires; the holds are read for the metrics.
		if err := r.readHolds(ctx).complete(); err != nil {
			r.log.Warn("cannot read the evidence holds", "error", err)
		}
	}
	return errors.Join(errs...)
}

// Retained reports whether the recording object at key is still to be
// kept at site: it is not a recording, its capture end is within the
// site's retention, or a hold covers it (as read at the last complete read,
// or created here since). A reconciler that copies objects missing at one
// site from the other must not restore objects that are not retained, or it
// copies back what retention removed.
func (r *Retention) Retained(site Site, key string) bool {
	ki, err := recorder.ParseKey(key)
	if err != nil || r.ret[site] == 0 {
		return true
	}
	if !ki.Start.Add(ki.Duration).Before(r.now().Add(-r.ret[site])) {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.knownOK {
		return true
	}
	for _, h := range r.known {
		if h.Covers(ki) {
			return true
		}
	}
	for _, lh := range r.local {
		if !lh.releasing && lh.h.Covers(ki) {
			return true
		}
	}
	return false
}

// fmtDur writes a duration without trailing zero units: 720h, 1h30m, 90s.
func fmtDur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
