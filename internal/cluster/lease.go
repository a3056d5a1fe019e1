package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrLeaseLost is the cause of a Hold run's context ending because another
// node took the lease.
var ErrLeaseLost = errors.New("cluster: lease lost: another node of the cluster holds it now")

// Holder says why a node waits for a lease: who holds it, or Err when this
// node takes none now (it drains).
type Holder struct {
	Node string
	Err  error
}

// Hold runs run while this node holds the lease called name (letters,
// digits, '.', '-', '_'), until ctx ends, and tells wait who holds it while
// another node does (whenever that changes). A node takes a free lease (a
// draining one takes none) and renews it every quarter of the lease TTL;
// when it stops (run returns or ctx ends) it releases the lease, so that
// another node takes it at once; when it dies, the lease lapses after the
// TTL and another node takes it.
//
// The edge never stops for the cluster's sake: a node that cannot reach the
// NATS servers (cut off, or they are down) runs run anyway — it keeps what
// it held and starts what it could not ask about — so a camera may be pulled
// by a node on each side of a partition until it heals; then the one
// without the lease stops (run's context ends with ErrLeaseLost).
//
// A lease this node held before it restarted (same node name) is taken back
// at once.
func (c *Cluster) Hold(ctx context.Context, name string, run func(context.Context), wait func(Holder)) {
	h := &holding{c: c, key: "lease." + name, run: run, wait: wait}
	h.loop(ctx)
}

// holding is one Hold: the lease's revision while held (0 when not), and
// the run, while it runs.
type holding struct {
	c    *Cluster
	key  string
	run  func(context.Context)
	wait func(Holder)

	rev    uint64
	stop   context.CancelCauseFunc
	done   chan struct{}
	told   *Holder
	warned bool // that the cluster is out of reach
}

func (h *holding) loop(ctx context.Context) {
	c := h.c
	poll := min(max(c.leaseTTL/8, 100*time.Millisecond), time.Second)
	for ctx.Err() == nil {
		if h.done != nil {
			select {
			case <-h.done: // run returned by itself: let the lease go
				h.done, h.stop = nil, nil
				h.release()
				continue
			default:
			}
		}
		if h.rev != 0 {
			h.renew(ctx)
		} else {
			h.acquire(ctx)
		}
		every := poll
		if h.rev != 0 {
			every = c.leaseTTL / 4
		}
		select {
		case <-ctx.Done():
		case <-time.After(every):
		case <-h.doneOrNil():
		}
	}
	if h.done != nil {
		h.stop(context.Cause(ctx))
		<-h.done
	}
	h.release()
}

func (h *holding) doneOrNil() <-chan struct{} {
	if h.done == nil {
		return nil
	}
	return h.done
}

// acquire tries to take the lease, and starts or stops run as the answer says.
func (h *holding) acquire(ctx context.Context) {
	c := h.c
	if c.Draining() && h.done == nil {
		h.tell(Holder{Err: errors.New("this node is draining: it takes no new camera")})
		return
	}
	rev, who, err := c.take(ctx, h.key)
	switch {
	case rev != 0:
		h.rev, h.told = rev, nil
		h.reached()
		h.start(ctx)
	case err != nil: // the cluster is out of reach: the edge goes on alone
		h.unreachable(err)
		h.start(ctx)
	case who != "":
		h.reached()
		h.halt() // another node holds it (after a partition: it took it meanwhile)
		h.tell(Holder{Node: who})
	}
}

// renew keeps the lease; another node holding it now stops run.
func (h *holding) renew(ctx context.Context) {
	c := h.c
	_, leases := c.kv()
	uctx, cancel := context.WithTimeout(ctx, c.leaseTTL/4)
	defer cancel()
	var err error
	var rev uint64
	if leases == nil {
		err = errNotJoined
	} else {
		rev, err = leases.Update(uctx, h.key, []byte(c.name), h.rev)
	}
	switch {
	case err == nil:
		h.rev = rev
		h.reached()
	case ctx.Err() != nil:
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		// it lapsed while the cluster was out of reach: take it again, or
		// learn who took it
		h.rev = 0
		h.acquire(ctx)
	default:
		h.unreachable(err)
	}
}

// start runs run unless it runs.
func (h *holding) start(ctx context.Context) {
	if h.done != nil {
		return
	}
	rctx, stop := context.WithCancelCause(ctx)
	done := make(chan struct{})
	h.stop, h.done = stop, done
	go func() {
		defer close(done)
		h.run(rctx)
	}()
}

// halt stops run (another node holds the lease) and waits for it.
func (h *holding) halt() {
	if h.done == nil {
		return
	}
	h.c.log.Warn("another node holds the lease now; stopping", "lease", h.key)
	h.stop(ErrLeaseLost)
	<-h.done
	h.done, h.stop = nil, nil
}

// release deletes the lease if it is still this node's.
func (h *holding) release() {
	if h.rev == 0 {
		return
	}
	rev := h.rev
	h.rev = 0
	if _, leases := h.c.kv(); leases != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = leases.Delete(ctx, h.key, jetstream.LastRevision(rev))
	}
}

func (h *holding) tell(w Holder) {
	if h.wait != nil && (h.told == nil || h.told.Node != w.Node || (h.told.Err == nil) != (w.Err == nil)) {
		h.told = &w
		h.wait(w)
	}
}

func (h *holding) unreachable(err error) {
	if !h.warned {
		h.warned = true
		h.c.log.Warn("the cluster is out of reach: running on alone until it answers", "lease", h.key, "err", err)
	}
}

func (h *holding) reached() {
	if h.warned {
		h.warned = false
		h.c.log.Info("the cluster answers again", "lease", h.key, "held", h.rev != 0)
	}
}

// take tries to take the lease: its revision; or 0 and the node holding
// it; or an error when the cluster cannot be asked.
func (c *Cluster) take(ctx context.Context, key string) (uint64, string, error) {
	_, leases := c.kv()
	if leases == nil {
		return 0, "", errNotJoined
	}
	tctx, cancel := context.WithTimeout(ctx, c.leaseTTL/2)
	defer cancel()
	rev, err := leases.Create(tctx, key, []byte(c.name))
	if err == nil {
		return rev, "", nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return 0, "", err
	}
	e, err := leases.Get(tctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return 0, "", nil // lapsed meanwhile: the next try takes it
	case err != nil:
		return 0, "", err
	case string(e.Value()) == c.name:
		if rev, err := leases.Update(tctx, key, []byte(c.name), e.Revision()); err == nil {
			return rev, "", nil
		}
	}
	return 0, string(e.Value()), nil
}

// hold runs run under the lease taken at rev, renewing it, until run
// returns or the lease is lost; then it releases the lease (unless lost).
// Claims use it: unlike Hold, it ends run when the cluster is out of reach
// for 3/4 of the TTL, before the lease lapses for the others.
func (c *Cluster) hold(ctx context.Context, key string, rev uint64, run func(context.Context)) {
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		run(rctx)
	}()
	renew := time.NewTicker(c.leaseTTL / 4)
	defer renew.Stop()
	ok := time.Now()
	for {
		select {
		case <-done:
			c.releaseKey(key, rev)
			return
		case <-renew.C:
		}
		_, leases := c.kv()
		uctx, ucancel := context.WithTimeout(ctx, c.leaseTTL/4)
		nrev, err := leases.Update(uctx, key, []byte(c.name), rev)
		ucancel()
		switch {
		case err == nil:
			rev, ok = nrev, time.Now()
			continue
		case ctx.Err() != nil:
			continue // run ends with ctx; done follows
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyNotFound):
		case time.Since(ok) < c.leaseTTL*3/4:
			continue
		}
		cancel(ErrLeaseLost)
		<-done
		return
	}
}

// releaseKey deletes a lease if it is still this node's.
func (c *Cluster) releaseKey(key string, rev uint64) {
	_, leases := c.kv()
	if leases == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = leases.Delete(ctx, key, jetstream.LastRevision(rev))
}

// HolderOf returns the node holding the lease called name, or "" when none
// does.
func (c *Cluster) HolderOf(ctx context.Context, name string) (string, error) {
	return c.holder(ctx, "lease."+name)
}

func (c *Cluster) holder(ctx context.Context, key string) (string, error) {
	_, leases := c.kv()
	if leases == nil {
		return "", errNotJoined
	}
	e, err := leases.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return string(e.Value()), nil
}
