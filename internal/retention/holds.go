package retention

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/recorder"
	"fieldvideo/internal/store"
)

// HoldRequest is what a client asks to hold. An empty Incident means the
// configured one; a zero To leaves the hold open-ended.
type HoldRequest struct {
	Incident, Source string
	From, To         time.Time
	Reason           string
}

// Actor is who asks for a hold or its release, for the audit trail.
type Actor struct {
	Name, Role, Remote string
	// Via is how the request came (default "api"); Method and Path describe
	// an HTTP request.
	Via, Method, Path string
}

// HoldView is a hold and where it is stored.
type HoldView struct {
	Hold
	// Sites are the sites the hold is stored at.
	Sites []string `json:"sites"`
	// Pending are the sites the hold is still to be written to or, when
	// Releasing, removed from; this process retries them in the background.
	Pending   []string `json:"pending,omitempty"`
	Releasing bool     `json:"releasing,omitempty"`
}

// HoldList lists the holds of both sites.
type HoldList struct {
	Holds []HoldView `json:"holds"`
	// Unreadable names the sites whose holds could not be read, with the
	// reason; while one is listed, no retention pass deletes anything.
	Unreadable map[string]string `json:"unreadable,omitempty"`
}

// localHold is a hold this process still has to write to a site, or, when
// releasing, remove from one.
type localHold struct {
	h         Hold
	body      []byte
	sum       string
	todo      [2]bool // the site still lacks the write or the removal
	lastErr   [2]error
	releasing bool
}

func (lh *localHold) done() bool { return !lh.todo[Primary] && !lh.todo[Offsite] }

// cachedHold is a hold read from an object whose SHA-256 was sum.
type cachedHold struct {
	sum string
	h   Hold
}

// holdSet is what one read of the holds of both sites found.
type holdSet struct {
	holds []Hold
	at    [2]map[string]bool // ids found at each site
	err   [2]error
}

// complete returns nil when both sites were read, and otherwise why not.
func (hs holdSet) complete() error {
	var errs []error
	for _, s := range sites {
		if hs.err[s] != nil {
			errs = append(errs, fmt.Errorf("the holds at the %s store cannot be read: %w", s.words(), hs.err[s]))
		}
	}
	return errors.Join(errs...)
}

// readHolds reads the holds of both sites, at once.
func (r *Retention) readHolds(ctx context.Context) holdSet {
	var (
		hs    holdSet
		found [2]map[string]Hold
		wg    sync.WaitGroup
	)
	for _, s := range sites {
		wg.Go(func() { found[s], hs.err[s] = r.readSiteHolds(ctx, s) })
	}
	wg.Wait()
	seen := map[string]Hold{}
	for _, s := range sites {
		hs.at[s] = map[string]bool{}
		for id, h := range found[s] {
			hs.at[s][id] = true
			if prev, ok := seen[id]; ok && prev == h {
				continue
			}
			seen[id] = h
			hs.holds = append(hs.holds, h)
		}
	}
	if hs.complete() == nil {
		r.mu.Lock()
		r.known, r.knownOK = hs.holds, true
		r.holds = len(seen)
		r.mu.Unlock()
	}
	return hs
}

// readSiteHolds lists and reads the holds at one site. A stored hold that
// cannot be read or parsed fails the whole read: what it covers is unknown.
func (r *Retention) readSiteHolds(ctx context.Context, s Site) (map[string]Hold, error) {
	ctx, cancel := context.WithTimeout(ctx, r.p.Timeout)
	defer cancel()
	var listed []store.Info
	if err := r.st[s].List(ctx, holdPrefix, func(in store.Info) error {
		listed = append(listed, in)
		return nil
	}); err != nil {
		return nil, err
	}
	out := map[string]Hold{}
	fresh := map[string]cachedHold{}
	for _, in := range listed {
		r.mu.Lock()
		c, ok := r.cache[s][in.Key]
		r.mu.Unlock()
		if ok && in.SHA256 != "" && strings.EqualFold(c.sum, in.SHA256) {
			out[c.h.ID], fresh[in.Key] = c.h, c
			continue
		}
		b, sum, err := r.getHold(ctx, s, in.Key)
		if errors.Is(err, store.ErrNotFound) {
			continue // released meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", in.Key, err)
		}
		h, err := parseHold(in.Key, b)
		if err != nil {
			return nil, fmt.Errorf("%w; fix or remove the object: until then retention deletes nothing", err)
		}
		out[h.ID], fresh[in.Key] = h, cachedHold{sum: sum, h: h}
	}
	r.mu.Lock()
	r.cache[s] = fresh
	r.mu.Unlock()
	return out, nil
}

// getHold reads a hold object and returns it with its SHA-256.
func (r *Retention) getHold(ctx context.Context, s Site, key string) ([]byte, string, error) {
	rc, _, err := r.st[s].Get(ctx, key)
	if err != nil {
		return nil, "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxHoldBytes+1))
	if err != nil {
		return nil, "", err
	}
	if len(b) > maxHoldBytes {
		return nil, "", fmt.Errorf("%s is larger than %d bytes; it is not a hold", key, maxHoldBytes)
	}
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:]), nil
}

// localCovers reports whether a hold this process created and has not
// released covers k.
func (r *Retention) localCovers(k recorder.KeyInfo) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, lh := range r.local {
		if !lh.releasing && lh.h.Covers(k) {
			return true
		}
	}
	return false
}

// CreateHold audits and stores a new hold at both sites. When one site
// fails, the hold is kept at the other, that site is named in Pending, and
// the write is retried in the background; when both fail, nothing is held
// and the error wraps ErrUnavailable.
func (r *Retention) CreateHold(ctx context.Context, req HoldRequest, by Actor) (HoldView, error) {
	h := Hold{Version: holdVersion, Incident: req.Incident, Source: req.Source, From: req.From.UTC(),
		Reason: strings.TrimSpace(req.Reason), CreatedBy: by.Name, CreatedRole: by.Role, CreatedAt: r.now().UTC()}
	if h.Incident == "" {
		h.Incident = r.p.Incident
	}
	if !req.To.IsZero() {
		h.To = req.To.UTC()
	}
	if err := h.validate(); err != nil {
		return HoldView{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	id, err := newHoldID()
	if err != nil {
		return HoldView{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	h.ID = id
	body, err := encodeHold(h)
	if err != nil {
		return HoldView{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if err := r.audit(by.event("hold", h, "ok", h.Summary())); err != nil {
		return HoldView{}, fmt.Errorf("%w: the audit log cannot be written, so the hold was not created (%v); fix the audit log and ask again", ErrUnavailable, err)
	}
	sum := sha256.Sum256(body)
	lh := &localHold{h: h, body: body, sum: hex.EncodeToString(sum[:]), todo: [2]bool{true, true}}

	r.ops.Lock()
	defer r.ops.Unlock()
	r.gate.Lock()
	r.mu.Lock()
	r.local[id] = lh
	r.gen++
	r.mu.Unlock()
	r.gate.Unlock()

	r.putHold(ctx, lh)
	if lh.todo[Primary] && lh.todo[Offsite] {
		r.dropLocal(id)
		err := fmt.Errorf("neither site could store the hold: primary: %v; off-site: %v", lh.lastErr[Primary], lh.lastErr[Offsite])
		_ = r.audit(by.event("hold", h, "failed", err.Error()))
		return HoldView{}, fmt.Errorf("%w: %v; nothing is held: ask again when a store is back", ErrUnavailable, err)
	}
	v := r.settle(lh, "hold stored at one site only; retrying the other in the background")
	r.log.Info("evidence hold created", "hold", id, "by", by.Name, "summary", h.Summary())
	return v, nil
}

// settle returns the view of a hold just stored or removed, and forgets it
// when both sites are done; a site still to do is logged with why and
// retried in the background.
func (r *Retention) settle(lh *localHold, pending string) HoldView {
	v := lh.view()
	if lh.done() {
		r.dropLocal(lh.h.ID)
		return v
	}
	for _, s := range sites {
		if lh.todo[s] {
			r.log.Warn(pending, "hold", lh.h.ID, "pending", s.String(), "error", lh.lastErr[s])
		}
	}
	return v
}

// ReleaseHold audits the release of a hold and removes it from both sites.
// A site whose removal fails is named in Pending and retried in the
// background; the hold keeps protecting there until it is removed.
func (r *Retention) ReleaseHold(ctx context.Context, id string, by Actor) (HoldView, error) {
	if !holdID.MatchString(id) {
		return HoldView{}, fmt.Errorf("%w: %q is not a hold id", ErrInvalid, id)
	}
	r.ops.Lock()
	defer r.ops.Unlock()
	var (
		h     Hold
		found bool
		errs  []error
	)
	r.mu.Lock()
	if lh, ok := r.local[id]; ok && !lh.releasing {
		h, found = lh.h, true
	}
	r.mu.Unlock()
	for _, s := range sites {
		ctx, cancel := context.WithTimeout(ctx, r.p.Timeout)
		b, _, err := r.getHold(ctx, s, HoldKey(id))
		cancel()
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", s.words(), err))
		case !found:
			if h, err = parseHold(HoldKey(id), b); err == nil {
				found = true
			}
		}
	}
	if !found {
		if len(errs) > 0 {
			return HoldView{}, fmt.Errorf("%w: cannot tell whether hold %s exists: %v; ask again", ErrUnavailable, id, errors.Join(errs...))
		}
		return HoldView{}, fmt.Errorf("%w: hold %s is at neither site", ErrNotFound, id)
	}
	if err := r.audit(by.event("release", h, "ok", "released "+h.Summary())); err != nil {
		return HoldView{}, fmt.Errorf("%w: the audit log cannot be written, so the hold was not released (%v); fix the audit log and ask again", ErrUnavailable, err)
	}
	lh := &localHold{h: h, releasing: true, todo: [2]bool{true, true}}
	r.mu.Lock()
	r.local[id] = lh
	r.gen++
	r.mu.Unlock()
	r.deleteHold(ctx, lh)
	v := r.settle(lh, "released hold still stored at one site; removing it in the background")
	r.log.Info("evidence hold released", "hold", id, "by", by.Name, "summary", h.Summary())
	return v, nil
}

// Holds reads the holds of both sites. It fails only when neither can be
// read.
func (r *Retention) Holds(ctx context.Context) (HoldList, error) {
	hs := r.readHolds(ctx)
	if hs.err[Primary] != nil && hs.err[Offsite] != nil {
		return HoldList{}, fmt.Errorf("%w: %v", ErrUnavailable, hs.complete())
	}
	list := HoldList{Holds: []HoldView{}}
	for _, s := range sites {
		if hs.err[s] != nil {
			if list.Unreadable == nil {
				list.Unreadable = map[string]string{}
			}
			list.Unreadable[s.String()] = hs.err[s].Error()
		}
	}
	r.mu.Lock()
	local := make(map[string]localHold, len(r.local))
	for id, lh := range r.local {
		local[id] = *lh
	}
	r.mu.Unlock()
	seen := map[string]bool{}
	for _, h := range hs.holds {
		if seen[h.ID] {
			continue
		}
		seen[h.ID] = true
		v := HoldView{Hold: h, Sites: []string{}}
		for _, s := range sites {
			switch {
			case hs.at[s][h.ID]:
				v.Sites = append(v.Sites, s.String())
			case hs.err[s] == nil:
				v.Pending = append(v.Pending, s.String())
			}
		}
		if lh, ok := local[h.ID]; ok {
			if lh.releasing {
				v.Releasing, v.Pending = true, lh.pending()
			} else {
				v.Pending = mergeSites(v.Pending, lh.pending())
			}
		}
		list.Holds = append(list.Holds, v)
	}
	for id, lh := range local {
		if !seen[id] && !lh.releasing {
			list.Holds = append(list.Holds, lh.view())
		}
	}
	sort.Slice(list.Holds, func(a, b int) bool {
		x, y := list.Holds[a], list.Holds[b]
		if !x.CreatedAt.Equal(y.CreatedAt) {
			return x.CreatedAt.Before(y.CreatedAt)
		}
		return x.ID < y.ID
	})
	return list, nil
}

// retryPending writes pending holds to the sites that lack them, and
// removes released ones from the sites that still have them.
func (r *Retention) retryPending(ctx context.Context) {
	r.mu.Lock()
	n := len(r.local)
	r.mu.Unlock()
	if n == 0 {
		return
	}
	r.ops.Lock()
	defer r.ops.Unlock()
	r.mu.Lock()
	pending := make([]*localHold, 0, len(r.local))
	for _, lh := range r.local {
		pending = append(pending, lh)
	}
	r.mu.Unlock()
	for _, lh := range pending {
		if ctx.Err() != nil {
			return
		}
		if lh.releasing {
			r.deleteHold(ctx, lh)
		} else {
			r.putHold(ctx, lh)
		}
		if lh.done() {
			r.log.Info("hold now consistent at both sites", "hold", lh.h.ID, "released", lh.releasing)
			r.dropLocal(lh.h.ID)
		}
	}
}

// putHold writes lh to the sites that lack it. The caller holds ops.
func (r *Retention) putHold(ctx context.Context, lh *localHold) {
	for _, s := range sites {
		if !lh.todo[s] {
			continue
		}
		ctx, cancel := context.WithTimeout(ctx, r.p.Timeout)
		err := r.st[s].Put(ctx, HoldKey(lh.h.ID), bytes.NewReader(lh.body), int64(len(lh.body)), lh.sum)
		cancel()
		r.mu.Lock()
		lh.todo[s], lh.lastErr[s] = err != nil, err
		r.mu.Unlock()
	}
}

// deleteHold removes a released hold from the sites that still have it.
// The caller holds ops.
func (r *Retention) deleteHold(ctx context.Context, lh *localHold) {
	for _, s := range sites {
		if !lh.todo[s] {
			continue
		}
		ctx, cancel := context.WithTimeout(ctx, r.p.Timeout)
		err := r.st[s].Delete(ctx, HoldKey(lh.h.ID))
		cancel()
		r.mu.Lock()
		lh.todo[s], lh.lastErr[s] = err != nil, err
		r.mu.Unlock()
	}
}

func (r *Retention) dropLocal(id string) {
	r.mu.Lock()
	delete(r.local, id)
	r.gen++
	r.mu.Unlock()
}

// view describes a local hold: stored where its write succeeded (or, when
// releasing, where its removal has not).
func (lh *localHold) view() HoldView {
	v := HoldView{Hold: lh.h, Sites: []string{}, Releasing: lh.releasing}
	for _, s := range sites {
		if lh.todo[s] == lh.releasing {
			v.Sites = append(v.Sites, s.String())
		}
	}
	v.Pending = lh.pending()
	return v
}

// mergeSites returns the sites named in a or b, in site order.
func mergeSites(a, b []string) []string {
	var out []string
	for _, s := range sites {
		if slices.Contains(a, s.String()) || slices.Contains(b, s.String()) {
			out = append(out, s.String())
		}
	}
	return out
}

func (lh *localHold) pending() []string {
	var p []string
	for _, s := range sites {
		if lh.todo[s] {
			p = append(p, s.String())
		}
	}
	return p
}

// event is the audit line of a hold action by a.
func (a Actor) event(action string, h Hold, result, reason string) audit.Event {
	via := a.Via
	if via == "" {
		via = "api"
	}
	return audit.Event{Actor: a.Name, Role: a.Role, Action: action, Source: h.Incident + "/" + h.Source, Via: via,
		Remote: a.Remote, Result: result, Reason: reason, Session: h.ID, Method: a.Method, Path: a.Path}
}
