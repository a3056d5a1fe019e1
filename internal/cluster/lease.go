package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrLeaseLost is the cause of a Hold run's context ending because the
// lease could not be renewed in time (NATS lost) or another node took it.
var ErrLeaseLost = errors.New("cluster: lease lost: another node holds it, or NATS could not be reached to renew it in time")

// Holder says who holds a lease another node waits for: the holder's node
// name, or empty with Err set when the cluster could not be asked.
type Holder struct {
	Node string
	Err  error
}

// Hold runs run while this node holds the lease called name (letters,
// digits, '.', '-', '_'), until ctx ends. It waits for the lease to be free
// (telling wait who holds it, whenever that changes), takes it, and calls run
// with a context that ends when ctx does or when the lease is lost: when it
// cannot be renewed for 3/4 of its TTL, run is stopped before the lease
// lapses for the others. When run returns the lease is released, so that
// another node takes it at once. A draining node takes no lease.
//
// A lease this node held before it restarted (same node name) is taken back
// at once.
func (c *Cluster) Hold(ctx context.Context, name string, run func(context.Context), wait func(Holder)) {
	key := "lease." + name
	poll := min(max(c.leaseTTL/8, 100*time.Millisecond), time.Second)
	var told *Holder
	tell := func(h Holder) {
		if wait != nil && (told == nil || told.Node != h.Node || (told.Err == nil) != (h.Err == nil)) {
			told = &h
			wait(h)
		}
	}
	for ctx.Err() == nil {
		if c.Draining() {
			tell(Holder{Err: errors.New("this node is draining: it takes no new camera")})
		} else if rev, h := c.take(ctx, key); rev != 0 {
			told = nil
			c.hold(ctx, key, rev, run)
			continue
		} else {
			tell(h)
		}
		select {
		case <-ctx.Done():
		case <-time.After(poll):
		}
	}
}

// take tries to take the lease: its revision, or 0 and who holds it.
func (c *Cluster) take(ctx context.Context, key string) (uint64, Holder) {
	tctx, cancel := context.WithTimeout(ctx, c.leaseTTL/2)
	defer cancel()
	rev, err := c.leases.Create(tctx, key, []byte(c.name))
	if err == nil {
		return rev, Holder{}
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return 0, Holder{Err: err}
	}
	e, err := c.leases.Get(tctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return 0, Holder{} // lapsed meanwhile: the next try takes it
	case err != nil:
		return 0, Holder{Err: err}
	case string(e.Value()) == c.name:
		if rev, err := c.leases.Update(tctx, key, []byte(c.name), e.Revision()); err == nil {
			return rev, Holder{}
		}
	}
	return 0, Holder{Node: string(e.Value())}
}

// hold runs run under the lease taken at rev, renewing it, and releases it
// when run returns.
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
			c.release(key, rev)
			return
		case <-renew.C:
		}
		uctx, ucancel := context.WithTimeout(ctx, c.leaseTTL/4)
		nrev, err := c.leases.Update(uctx, key, []byte(c.name), rev)
		ucancel()
		switch {
		case err == nil:
			rev, ok = nrev, time.Now()
			continue
		case ctx.Err() != nil:
			continue // run ends with ctx; done follows
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyNotFound):
			c.log.Warn("lease taken by another node; stopping", "lease", key)
		case time.Since(ok) < c.leaseTTL*3/4:
			continue
		default:
			c.log.Warn("lease not renewed in time; stopping before it lapses", "lease", key, "err", err)
		}
		cancel(ErrLeaseLost)
		<-done
		return
	}
}

// release deletes the lease if it is still this node's.
func (c *Cluster) release(key string, rev uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = c.leases.Delete(ctx, key, jetstream.LastRevision(rev))
}

// HolderOf returns the node holding the lease called name, or "" when none
// does.
func (c *Cluster) HolderOf(ctx context.Context, name string) (string, error) {
	return c.holder(ctx, "lease."+name)
}

func (c *Cluster) holder(ctx context.Context, key string) (string, error) {
	e, err := c.leases.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return string(e.Value()), nil
}
