package auth

import (
	"sync"
	"time"
)

// BindGrace is how long a live session may outlive its token's expiry: the
// leeway Verify allows for clock differences.
const BindGrace = 5 * time.Second

// bindings are the live sessions tied to their tokens.
type bindings struct {
	mu   sync.Mutex
	next uint64
	live map[uint64]*binding
}

type binding struct {
	id    uint64
	v     *Verifier
	c     *Claims
	end   func(reason string)
	timer *time.Timer
	once  sync.Once
}

func (b *binding) fire(reason string) {
	b.v.binds.mu.Lock()
	delete(b.v.binds.live, b.id)
	b.v.binds.mu.Unlock()
	b.once.Do(func() {
		if b.timer != nil {
			b.timer.Stop()
		}
		go b.end(reason)
	})
}

// UseRevocations makes the verifier refuse tokens on the list, and end the
// bound sessions of tokens revoked later.
func (v *Verifier) UseRevocations(r *Revocations) {
	v.rev = r
	r.onChange(v.checkBound)
}

// Revocations returns the list the verifier checks, nil when none.
func (v *Verifier) Revocations() *Revocations { return v.rev }

// Bind ties a live session (a WebRTC peer, an RTSP session, a call) to the
// token it was opened with: end is called once, on its own goroutine, when
// the token expires (after BindGrace) or is revoked. The returned unbind
// stops watching; call it when the session ends for another reason.
func (v *Verifier) Bind(c *Claims, end func(reason string)) (unbind func()) {
	v.binds.mu.Lock()
	if v.binds.live == nil {
		v.binds.live = map[uint64]*binding{}
	}
	v.binds.next++
	b := &binding{id: v.binds.next, v: v, c: c, end: end}
	v.binds.live[b.id] = b
	if c.ExpiresAt != nil {
		left := c.ExpiresAt.Sub(v.now()) + BindGrace
		b.timer = time.AfterFunc(max(left, 0), func() {
			b.fire("token of " + c.Who() + " expired at " + c.ExpiresAt.UTC().Format(time.RFC3339) + "; reconnect with a new token")
		})
	}
	v.binds.mu.Unlock()
	if v.rev != nil {
		if rv, ok := v.rev.Revoked(c); ok {
			b.fire(rv.String())
		}
	}
	return func() {
		v.binds.mu.Lock()
		delete(v.binds.live, b.id)
		v.binds.mu.Unlock()
		b.once.Do(func() {
			if b.timer != nil {
				b.timer.Stop()
			}
		})
	}
}

// Bound returns the number of live sessions tied to tokens.
func (v *Verifier) Bound() int {
	v.binds.mu.Lock()
	defer v.binds.mu.Unlock()
	return len(v.binds.live)
}

// checkBound ends the bound sessions whose tokens are revoked now.
func (v *Verifier) checkBound() {
	v.binds.mu.Lock()
	var hit []*binding
	var why []string
	for _, b := range v.binds.live {
		if rv, ok := v.rev.Revoked(b.c); ok {
			hit = append(hit, b)
			why = append(why, rv.String())
		}
	}
	v.binds.mu.Unlock()
	for i, b := range hit {
		b.fire(why[i])
	}
}
