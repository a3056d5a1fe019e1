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

// anonLimit limits the events of requests without a valid identity and
// counts those held back, for their summaries.
type anonLimit struct {
	l *Log
	// after runs f after d, and returns a function that stops it.
	after func(d time.Duration, f func()) (stop func() bool)

	// flushMu is held while summaries are taken and written, so that Close
	// writes its summaries after those of a flush in progress.
	flushMu sync.Mutex

	mu     sync.Mutex
	closed bool
	all    *rate.Limiter
	addrs  map[string]*list.Element // of *anonAddr, in lru
	lru    list.List                // front: seen most recently
	other  held                     // of addresses forgotten or beyond anonymousSummaries
	stop   func() bool              // of the armed flush; nil when none is armed
}

// anonAddr is the state of one remote address.
type anonAddr struct {
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
	method, path string
	status       int
}

func (h *held) add(ev *Event, now time.Time) {
	if h.n == 0 || now.Before(h.since) {
		h.since = now
	}
	if h.n == 0 || !now.Before(h.until) {
		h.until, h.method, h.path, h.status = now, ev.Method, ev.Path, ev.Status
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
		h.until, h.method, h.path, h.status = o.until, o.method, o.path, o.status
	}
	h.n += o.n
	h.refused += o.refused
}

func newAnonLimit(l *Log) *anonLimit {
	return &anonLimit{l: l, addrs: map[string]*list.Element{}, all: rate.NewLimiter(anonymousRate, anonymousBurst), after: func(d time.Duration, f func()) func() bool {
		return time.AfterFunc(d, f).Stop
	}}
}

// admit reports whether ev, the event of a request without a valid
// identity, is written. When it is not, the request is counted for the
// summary of its address, written within anonymousInterval.
func (r *anonLimit) admit(ev *Event) bool {
	if r == nil {
		return true
	}
	now := r.l.now()
	key := addrKey(ev.Remote)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return true // Write refuses it, and the request with it
	}
	a := r.addr(key, now)
	if a.lim.TokensAt(now) >= 1 && r.all.TokensAt(now) >= 1 {
		a.lim.AllowN(now, 1)
		r.all.AllowN(now, 1)
		return true
	}
	a.held.add(ev, now)
	r.arm()
	return false
}

// arm schedules a flush unless one is scheduled.
func (r *anonLimit) arm() {
	if r.stop == nil && !r.closed {
		r.stop = r.after(anonymousInterval, r.flush)
	}
}

// addr returns the state of key, tracking it when it is new.
func (r *anonLimit) addr(key string, now time.Time) *anonAddr {
	if e, ok := r.addrs[key]; ok {
		r.lru.MoveToFront(e)
		a := e.Value.(*anonAddr)
		a.seen = now
		return a
	}
	r.forgetIdle(now, 2)
	if len(r.addrs) >= anonymousMaxAddrs {
		r.forget(r.lru.Back())
	}
	a := &anonAddr{key: key, seen: now, lim: rate.NewLimiter(anonymousAddrRate, anonymousAddrBurst)}
	r.addrs[key] = r.lru.PushFront(a)
	return a
}

// forgetIdle forgets up to n idle addresses (all of them when n < 0), the
// least recently seen first.
func (r *anonLimit) forgetIdle(now time.Time, n int) {
	for ; n != 0; n-- {
		e := r.lru.Back()
		if e == nil {
			return
		}
		a := e.Value.(*anonAddr)
		if a.held.n > 0 || now.Sub(a.seen) < anonymousIdle {
			return
		}
		r.forget(e)
	}
}

// forget stops tracking an address; what it held back goes to the shared
// summary.
func (r *anonLimit) forget(e *list.Element) {
	a := e.Value.(*anonAddr)
	r.other.merge(a.held)
	r.lru.Remove(e)
	delete(r.addrs, a.key)
}

// summary is what one summary event reports: key is the address, "" for
// the shared summary.
type summary struct {
	key string
	h   held
}

// take returns the summaries to write and forgets idle addresses.
func (r *anonLimit) take() []summary {
	var out []summary
	for e := r.lru.Front(); e != nil; e = e.Next() {
		a := e.Value.(*anonAddr)
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
	if len(out) > anonymousSummaries {
		for _, s := range out[anonymousSummaries:] {
			other.merge(s.h)
		}
		out = out[:anonymousSummaries]
	}
	if other.n > 0 {
		out = append(out, summary{h: other})
	}
	r.forgetIdle(r.l.now(), -1)
	return out
}

// flush writes the summaries of the requests held back so far.
func (r *anonLimit) flush() {
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
func (r *anonLimit) close() error {
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
func (r *anonLimit) write(ss []summary) error {
	var errs []error
	var failed []summary
	for _, s := range ss {
		if err := r.l.Write(s.event()); err != nil {
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
		if e, ok := r.addrs[s.key]; ok {
			e.Value.(*anonAddr).held.merge(s.h)
		} else {
			r.other.merge(s.h)
		}
	}
	r.arm()
	return errors.Join(errs...)
}

// event is the summary event.
func (s summary) event() Event {
	from := s.key
	if from == "" {
		from = "other addresses"
	}
	h := s.h
	result := "ok"
	if h.refused > 0 {
		result = "denied"
	}
	return Event{Actor: "anonymous", Action: ActionAnonymousSummary, Via: "http", Remote: s.key, Result: result,
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
