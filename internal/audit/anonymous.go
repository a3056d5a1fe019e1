package audit

import (
	"container/list"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ActionAnonymousSummary is the action of the event that counts the
// requests without a valid identity from one address whose own events were
// held back (see the package documentation).
const ActionAnonymousSummary = "anonymous-summary"

// Bounds of what requests without a valid identity put in the trail. The
// event of such a request takes a token from its address's bucket and from
// the bucket of all addresses; without both, it is counted for a summary.
// At most anonymousRate events a second (after a burst of anonymousBurst)
// and anonymousSummaries+1 summaries every anonymousInterval are written for
// them, each with fields of at most anonymousField bytes: a few kilobytes a
// second at most, however many requests come.
const (
	// anonymousField bounds each string field of the event of a request
	// without a valid identity.
	anonymousField = 256
	// anonymousAddrRate events a second, after a burst of
	// anonymousAddrBurst, for the requests of one address.
	anonymousAddrRate  = 2
	anonymousAddrBurst = 10
	// anonymousRate events a second, after a burst of anonymousBurst, for
	// the requests of all addresses together.
	anonymousRate  = 10
	anonymousBurst = 40
	// anonymousInterval is how long held-back requests are counted before
	// their summaries are written.
	anonymousInterval = 10 * time.Second
	// anonymousSummaries bounds the summaries that name their address in one
	// interval: the addresses with the most held-back requests. The others
	// share one summary.
	anonymousSummaries = 8
	// anonymousMaxAddrs bounds the addresses tracked. At the bound the one
	// seen least recently is forgotten, its held-back requests counted in
	// the shared summary.
	anonymousMaxAddrs = 4096
	// anonymousIdle: an address not seen for this long, with nothing held
	// back, has a full bucket again and is forgotten.
	anonymousIdle = anonymousAddrBurst / anonymousAddrRate * time.Second
	// anonymousAddrLen bounds an address that is not an IP address.
	anonymousAddrLen = 64
)

// limitRules are the bounds of one kind of limited events: those of requests
// without a valid identity, and the refusals of identities over their rate.
type limitRules struct {
	// perKey gives the events a second for the key of ev, and the burst
	perKey func(ev *Event) (rate.Limit, int)
	// allRate events a second for all keys together, after a burst of
	// allBurst; zero: no such bound
	allRate  rate.Limit
	allBurst int
	// summaries bounds the summaries that name their key in one interval,
	// maxKeys the keys tracked, and idle is how long a key with nothing held
	// back stays tracked after it was last seen
	summaries, maxKeys int
	idle               time.Duration
	// key names an event's key; event makes a summary's event
	key   func(ev *Event) string
	event func(s summary) Event
}

// anonymousRules bound the events of requests without a valid identity,
// per remote address.
var anonymousRules = limitRules{
	perKey:  func(*Event) (rate.Limit, int) { return anonymousAddrRate, anonymousAddrBurst },
	allRate: anonymousRate, allBurst: anonymousBurst,
	summaries: anonymousSummaries, maxKeys: anonymousMaxAddrs, idle: anonymousIdle,
	key:   func(ev *Event) string { return addrKey(ev.Remote) },
	event: anonymousSummary,
}

// eventLimit limits events by the rules of their kind and counts those held
// back, for their summaries.
type eventLimit struct {
	l     *Log
	rules limitRules
	// after runs f after d, and returns a function that stops it.
	after func(d time.Duration, f func()) (stop func() bool)

	// flushMu is held while summaries are taken and written, so that Close
	// writes its summaries after those of a flush in progress.
	flushMu sync.Mutex

	mu     sync.Mutex
	closed bool
	all    *rate.Limiter            // nil: no bound of all keys together
	keys   map[string]*list.Element // of *limitKey, in lru
	lru    list.List                // front: seen most recently
	other  held                     // of keys forgotten or beyond the rules' summaries
	stop   func() bool              // of the armed flush; nil when none is armed
}

// limitKey is the state of one key.
type limitKey struct {
	key  string
	seen time.Time
	lim  *rate.Limiter
	held held
}

// held counts held-back requests.
type held struct {
	n            int
	refused      int       // of them, with a status of 400 or more
	since, until time.Time // of the first and the last
	// the last request
	method, path, actor, role, via string
	status                         int
}

func (h *held) add(ev *Event, now time.Time) {
	if h.n == 0 || now.Before(h.since) {
		h.since = now
	}
	if h.n == 0 || !now.Before(h.until) {
		h.until, h.method, h.path, h.actor, h.role, h.via, h.status = now, ev.Method, ev.Path, ev.Actor, ev.Role, ev.Via, ev.Status
	}
	h.n++
	if ev.Status >= 400 {
		h.refused++
	}
}

func (h *held) merge(o held) {
	if o.n == 0 {
		return
	}
	if h.n == 0 || o.since.Before(h.since) {
		h.since = o.since
	}
	if h.n == 0 || !o.until.Before(h.until) {
		h.until, h.method, h.path, h.actor, h.role, h.via, h.status = o.until, o.method, o.path, o.actor, o.role, o.via, o.status
	}
	h.n += o.n
	h.refused += o.refused
}

func newEventLimit(l *Log, rules limitRules) *eventLimit {
	r := &eventLimit{l: l, rules: rules, keys: map[string]*list.Element{}, after: func(d time.Duration, f func()) func() bool {
		return time.AfterFunc(d, f).Stop
	}}
	if rules.allRate > 0 {
		r.all = rate.NewLimiter(rules.allRate, rules.allBurst)
	}
	return r
}

// admit reports whether ev is written. When it is not, it is counted for
// the summary of its key, written within anonymousInterval.
func (r *eventLimit) admit(ev *Event) bool {
	if r == nil {
		return true
	}
	now := r.l.now()
	key := r.rules.key(ev)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return true // Write refuses it, and the request with it
	}
	a := r.key(key, ev, now)
	if a.lim.TokensAt(now) >= 1 && (r.all == nil || r.all.TokensAt(now) >= 1) {
		a.lim.AllowN(now, 1)
		if r.all != nil {
			r.all.AllowN(now, 1)
		}
		return true
	}
	a.held.add(ev, now)
	r.arm()
	return false
}

// arm schedules a flush unless one is scheduled.
func (r *eventLimit) arm() {
	if r.stop == nil && !r.closed {
		r.stop = r.after(anonymousInterval, r.flush)
	}
}

// key returns the state of key, tracking it when it is new (with the rate
// of ev).
func (r *eventLimit) key(key string, ev *Event, now time.Time) *limitKey {
	if e, ok := r.keys[key]; ok {
		r.lru.MoveToFront(e)
		a := e.Value.(*limitKey)
		a.seen = now
		return a
	}
	r.forgetIdle(now, 2)
	if len(r.keys) >= r.rules.maxKeys {
		r.forget(r.lru.Back())
	}
	a := &limitKey{key: key, seen: now, lim: rate.NewLimiter(r.rules.perKey(ev))}
	r.keys[key] = r.lru.PushFront(a)
	return a
}

// forgetIdle forgets up to n idle keys (all of them when n < 0), the least
// recently seen first.
func (r *eventLimit) forgetIdle(now time.Time, n int) {
	for ; n != 0; n-- {
		e := r.lru.Back()
		if e == nil {
			return
		}
		a := e.Value.(*limitKey)
		if a.held.n > 0 || now.Sub(a.seen) < r.rules.idle {
			return
		}
		r.forget(e)
	}
}

// forget stops tracking a key; what it held back goes to the shared
// summary.
func (r *eventLimit) forget(e *list.Element) {
	a := e.Value.(*limitKey)
	r.other.merge(a.held)
	r.lru.Remove(e)
	delete(r.keys, a.key)
}

// summary is what one summary event reports: key is the key (an address,
// an identity), "" for the shared summary.
type summary struct {
	key string
	h   held
}

// take returns the summaries to write and forgets idle keys.
func (r *eventLimit) take() []summary {
	var out []summary
	for e := r.lru.Front(); e != nil; e = e.Next() {
		a := e.Value.(*limitKey)
		if a.held.n > 0 {
			out = append(out, summary{key: a.key, h: a.held})
			a.held = held{}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].h.n != out[j].h.n {
			return out[i].h.n > out[j].h.n
		}
		return out[i].key < out[j].key
	})
	other := r.other
	r.other = held{}
	if len(out) > r.rules.summaries {
		for _, s := range out[r.rules.summaries:] {
			other.merge(s.h)
		}
		out = out[:r.rules.summaries]
	}
	if other.n > 0 {
		out = append(out, summary{h: other})
	}
	r.forgetIdle(r.l.now(), -1)
	return out
}

// flush writes the summaries of the requests held back so far.
func (r *eventLimit) flush() {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.mu.Lock()
	r.stop = nil
	ss := r.take()
	r.mu.Unlock()
	_ = r.write(ss)
}

// close writes the summaries of what was held back; after it, every
// request gets its own event (which a closed log refuses).
func (r *eventLimit) close() error {
	if r == nil {
		return nil
	}
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.mu.Lock()
	if r.stop != nil {
		r.stop()
		r.stop = nil
	}
	r.closed = true
	ss := r.take()
	r.mu.Unlock()
	return r.write(ss)
}

// write writes the summaries. Those that cannot be written are counted
// again, for the next flush.
func (r *eventLimit) write(ss []summary) error {
	var errs []error
	var failed []summary
	for _, s := range ss {
		if err := r.l.Write(r.rules.event(s)); err != nil {
			errs = append(errs, err)
			failed = append(failed, s)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range failed {
		if e, ok := r.keys[s.key]; ok {
			e.Value.(*limitKey).held.merge(s.h)
		} else {
			r.other.merge(s.h)
		}
	}
	r.arm()
	return errors.Join(errs...)
}

// anonymousSummary is the event of a summary of requests without a valid
// identity.
func anonymousSummary(s summary) Event {
	from := s.key
	if from == "" {
		from = "other addresses"
	}
	h := s.h
	result := "ok"
	if h.refused > 0 {
		result = "denied"
	}
	via := h.via
	if via == "" {
		via = "http"
	}
	return Event{Actor: "anonymous", Action: ActionAnonymousSummary, Via: via, Remote: s.key, Result: result,
		Reason: fmt.Sprintf("%d more requests without a valid identity (%d refused) from %s between %s and %s, last %s %s (%d)",
			h.n, h.refused, from, h.since.UTC().Format(time.RFC3339Nano), h.until.UTC().Format(time.RFC3339Nano), h.method, h.path, h.status),
		Method: h.method, Path: h.path, Status: h.status, Count: h.n, Refused: h.refused, Since: h.since.UTC(), Until: h.until.UTC()}
}

// addrKey names the address of a remote host:port for the limits: the IPv4
// address, or the IPv6 /64 prefix, which one host commonly holds whole.
func addrKey(remote string) string {
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return clipTo(host, anonymousAddrLen)
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		if p, err := a.Prefix(64); err == nil {
			return p.String()
		}
	}
	return a.String()
}
