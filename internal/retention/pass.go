package retention

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/recorder"
	"fieldvideo/internal/store"
)

// recPrefix is where recordings are stored.
const recPrefix = "rec/"

// Hold re-reads during a pass: after this many deletions, or this long.
const (
	rereadDeletions = 64
	rereadAfter     = 10 * time.Second
)

// pass is one retention pass at one site.
type pass struct {
	r     *Retention
	site  Site
	start time.Time
	// cutoff and otherCutoff: a capture end before them is past the site's
	// and the other site's retention (otherCutoff is zero when the other
	// site keeps everything).
	cutoff, otherCutoff time.Time
	other               *cursor

	holds     []Hold
	gen       uint64
	readAt    time.Time
	sinceRead int

	deleted, deletedBytes uint64
	held, unverified      int
	mismatches            int
	// unchecked counts the objects whose Stat failed (skipped until the
	// next pass), in a row and in all; uncheckedErr is the first failure.
	unchecked, uncheckedInRow int
	uncheckedErr              error
}

// maxUncheckedInRow stops a pass whose Stat calls keep failing.
const maxUncheckedInRow = 10

// unit is a segment and its manifest as listed at the pass's site.
type unit struct {
	stem string
	ki   recorder.KeyInfo
	objs []store.Info // in key order: the manifest (.json) before the segment (.mp4)
}

// passSite runs one pass at site s and records its outcome.
func (r *Retention) passSite(ctx context.Context, s Site) error {
	p := &pass{r: r, site: s, start: r.now()}
	p.cutoff = p.start.Add(-r.ret[s])
	if o := r.ret[s.other()]; o > 0 {
		p.otherCutoff = p.start.Add(-o)
	}
	err := p.run(ctx)
	if err != nil {
		err = fmt.Errorf("retention pass at the %s store did not finish: %w", s.words(), err)
	}
	r.mu.Lock()
	st := &r.stats[s]
	st.Passes++
	st.LastPass = p.start
	st.Deleted += p.deleted
	st.DeletedBytes += p.deletedBytes
	st.Held, st.Unverified = p.held, p.unverified
	st.LastError = ""
	if err != nil {
		st.Failures++
		st.LastError = err.Error()
	}
	r.mu.Unlock()

	attrs := []any{"site", s.String(), "deleted", p.deleted, "deleted_bytes", p.deletedBytes,
		"held", p.held, "unverified", p.unverified, "took", r.now().Sub(p.start)}
	switch {
	case err != nil:
		r.log.Error("retention pass failed; the next pass tries again", append(attrs, "error", err)...)
	case p.deleted > 0:
		r.log.Info("retention pass", attrs...)
	default:
		r.log.Debug("retention pass", attrs...)
	}
	if p.unverified > 0 {
		r.log.Warn("recordings past retention are kept: the other site holds no verified copy of them; check the reconciler and the other store",
			"site", s.String(), "objects", p.unverified, "mismatches", p.mismatches)
	}
	return err
}

func (p *pass) run(ctx context.Context) error {
	r := p.r
	if err := p.readHolds(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p.other = startCursor(ctx, r.st[p.site.other()], recPrefix)
	defer p.other.stop(cancel)

	var cur unit
	err := r.st[p.site].List(ctx, recPrefix, func(in store.Info) error {
		ki, err := recorder.ParseKey(in.Key)
		if err != nil {
			return nil // not a recording
		}
		stem := strings.TrimSuffix(in.Key, path.Ext(in.Key))
		if stem != cur.stem {
			if err := p.unit(ctx, cur); err != nil {
				return err
			}
			cur = unit{stem: stem, ki: ki}
		}
		cur.objs = append(cur.objs, in)
		return nil
	})
	if err == nil {
		err = p.unit(ctx, cur)
	}
	if err == nil && p.unchecked > 0 {
		err = fmt.Errorf("%d objects could not be checked and were left for the next pass: %w", p.unchecked, p.uncheckedErr)
	}
	return err
}

// readHolds reads the holds of both sites; any failure stops the pass.
func (p *pass) readHolds(ctx context.Context) error {
	r := p.r
	r.mu.Lock()
	p.gen = r.gen
	r.mu.Unlock()
	hs := r.readHolds(ctx)
	if err := hs.complete(); err != nil {
		return fmt.Errorf("%w; nothing is deleted until the holds of both sites can be read", err)
	}
	p.holds, p.readAt, p.sinceRead = hs.holds, r.now(), 0
	return nil
}

// unit decides on one segment and deletes it when the rules allow.
func (p *pass) unit(ctx context.Context, u unit) error {
	if len(u.objs) == 0 {
		return nil
	}
	r := p.r
	end := u.ki.Start.Add(u.ki.Duration)
	if !end.Before(p.cutoff) {
		return nil
	}
	r.gate.RLock()
	defer r.gate.RUnlock()
	r.mu.Lock()
	changed := r.gen != p.gen
	r.mu.Unlock()
	if changed || p.sinceRead >= rereadDeletions || r.now().Sub(p.readAt) >= rereadAfter {
		if err := p.readHolds(ctx); err != nil {
			return err
		}
	}
	if p.covered(u.ki) {
		p.held += len(u.objs)
		return nil
	}
	verified := true
	for _, o := range u.objs {
		oi, ok, err := p.other.find(o.Key)
		if err != nil {
			return fmt.Errorf("listing the %s store: %w", p.site.other().words(), err)
		}
		switch {
		case !ok || o.SHA256 == "" || oi.SHA256 == "":
			verified = false
		case !strings.EqualFold(o.SHA256, oi.SHA256) || o.Size != oi.Size:
			verified = false
			p.mismatches++
			r.log.Warn("the sites hold different content for one key; kept at both for an operator to check",
				"key", o.Key, "site", p.site.String(), "sha256", o.SHA256, "other_sha256", oi.SHA256)
		}
	}
	otherPassed := !p.otherCutoff.IsZero() && end.Before(p.otherCutoff)
	if !verified && !otherPassed {
		p.unverified += len(u.objs)
		return nil
	}
	reason := fmt.Sprintf("older than %s at %s; %s holds a verified copy",
		fmtDur(r.ret[p.site]), p.site.words(), p.site.other().words())
	if !verified {
		reason = fmt.Sprintf("older than %s at %s and older than %s, the %s retention",
			fmtDur(r.ret[p.site]), p.site.words(), fmtDur(r.ret[p.site.other()]), p.site.other().words())
	}
	for _, o := range u.objs {
		err := p.delete(ctx, o.Key, reason)
		var se *statError
		if errors.As(err, &se) {
			// Leave the rest of the segment (its manifest is gone first, so
			// what stays is consistent) for the next pass.
			p.unchecked++
			p.uncheckedInRow++
			if p.uncheckedErr == nil {
				p.uncheckedErr = err
			}
			if p.uncheckedInRow >= maxUncheckedInRow {
				return fmt.Errorf("%d objects in a row could not be checked: %w", p.uncheckedInRow, err)
			}
			return nil
		}
		if err != nil {
			return err
		}
		p.uncheckedInRow = 0
	}
	p.sinceRead++
	return nil
}

// statError is a Stat that failed for another reason than a missing
// object: a store in trouble, or one racing another process's deletion.
type statError struct{ err error }

func (e *statError) Error() string { return e.err.Error() }
func (e *statError) Unwrap() error { return e.err }

// covered reports whether a hold read in this pass, or one created here
// since, covers k.
func (p *pass) covered(k recorder.KeyInfo) bool {
	for _, h := range p.holds {
		if h.Covers(k) {
			return true
		}
	}
	return p.r.localCovers(k)
}

// delete audits and deletes one object that still exists.
func (p *pass) delete(ctx context.Context, key, reason string) error {
	r := p.r
	st := r.st[p.site]
	in, err := st.Stat(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil // deleted meanwhile, e.g. by another process's pass
	}
	if err != nil {
		return &statError{fmt.Errorf("stat %s: %w", key, err)}
	}
	ev := audit.Event{Actor: "retention", Action: "delete", Source: key, Via: "retention", Result: "ok", Reason: reason}
	if err := r.audit(ev); err != nil {
		return fmt.Errorf("the audit log cannot be written, so %s is not deleted: %w", key, err)
	}
	if err := st.Delete(ctx, key); err != nil {
		ev.Result, ev.Reason = "failed", fmt.Sprintf("%s; the deletion failed: %v", reason, err)
		_ = r.audit(ev)
		return fmt.Errorf("delete %s: %w", key, err)
	}
	p.deleted++
	p.deletedBytes += uint64(max(in.Size, 0))
	r.log.Debug("deleted", "site", p.site.String(), "key", key, "reason", reason)
	return nil
}

// cursor walks a listing of the other site in key order, alongside the
// listing of the pass's site, so that neither is held in memory.
type cursor struct {
	ch  chan store.Info
	err error // set before ch is closed

	head  store.Info
	has   bool
	ended bool
}

func startCursor(ctx context.Context, st store.Store, prefix string) *cursor {
	c := &cursor{ch: make(chan store.Info, 256)}
	go func() {
		c.err = st.List(ctx, prefix, func(in store.Info) error {
			select {
			case c.ch <- in:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		close(c.ch)
	}()
	return c
}

// find returns the listed object at key. Keys must be asked for in
// increasing order.
func (c *cursor) find(key string) (store.Info, bool, error) {
	for {
		if !c.has {
			if c.ended {
				return store.Info{}, false, c.err
			}
			in, ok := <-c.ch
			if !ok {
				c.ended = true
				return store.Info{}, false, c.err
			}
			c.head, c.has = in, true
		}
		switch {
		case c.head.Key < key:
			c.has = false
		case c.head.Key == key:
			return c.head, true, nil
		default:
			return store.Info{}, false, nil
		}
	}
}

// stop ends the listing and waits for it.
func (c *cursor) stop(cancel context.CancelFunc) {
	cancel()
	for range c.ch {
	}
}
