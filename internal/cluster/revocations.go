package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"fieldvideo/internal/auth"
)

// RevocationsBucket holds the revocations (an operator's, a sign-out) that
// every node of the cluster applies (revocationKey). It is
// kept on disk by the NATS servers: a node that joins later, or after they
// restarted, still learns them.
const RevocationsBucket = "fieldvideo_revocations"

// ShareRevocations keeps rl in step with the other nodes: what rl.Add
// revokes here is put in the revocations bucket, and what the others put
// there (before this node joined too) is merged into rl, ending the
// sessions it covers. While NATS does not answer, revocations made here
// wait and are put once it does; each node's own list works alone meanwhile.
func (c *Cluster) ShareRevocations(rl *auth.Revocations) {
	out := &outbox{wake: make(chan struct{}, 1)}
	rl.OnAdd(out.push)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		select {
		case <-c.ready:
		case <-c.ctx.Done():
			return
		}
		kv, err := bucket(c.ctx, c.js, jetstream.KeyValueConfig{
			Bucket: RevocationsBucket, Description: "fieldvideo revocations every node applies",
			Storage: jetstream.FileStorage, Replicas: c.cfg.Replicas, History: 1,
		})
		if err != nil {
			return // closed
		}
		// what this node revoked on its own (alone, or before clustering) goes to the others too
		for _, rv := range rl.List() {
			out.push(rv)
		}
		c.wg.Add(2)
		go func() {
			defer c.wg.Done()
			c.putRevocations(kv, out)
		}()
		go func() {
			defer c.wg.Done()
			for {
				select {
				case <-c.ctx.Done():
					return
				case <-time.After(revocationSweep):
				}
				c.pruneRevocations(c.ctx, kv, time.Now())
			}
		}()
		for c.ctx.Err() == nil {
			if w, err := kv.WatchAll(c.ctx); err == nil {
				c.mergeRevocations(w, rl)
				_ = w.Stop()
			}
			select {
			case <-c.ctx.Done():
			case <-time.After(c.cfg.Heartbeat):
			}
		}
	}()
}

// outbox holds the revocations waiting to be put.
type outbox struct {
	mu   sync.Mutex
	list []auth.Revocation
	wake chan struct{}
}

func (o *outbox) push(rv auth.Revocation) {
	o.mu.Lock()
	o.list = append(o.list, rv)
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

func (o *outbox) take() []auth.Revocation {
	o.mu.Lock()
	defer o.mu.Unlock()
	l := o.list
	o.list = nil
	return l
}

// putRevocations puts what out holds, trying again every heartbeat until
// NATS takes it.
func (c *Cluster) putRevocations(kv jetstream.KeyValue, out *outbox) {
	var pending []auth.Revocation
	for {
		pending = append(pending, out.take()...)
		for len(pending) > 0 {
			b, err := json.Marshal(pending[0])
			if err == nil {
				ctx, cancel := context.WithTimeout(c.ctx, 2*time.Second)
				_, err = kv.Put(ctx, revocationKey(pending[0]), b)
				cancel()
			}
			if err != nil {
				c.log.Warn("cannot share a revocation with the cluster yet; trying again", "revocation", pending[0].String(), "error", err)
				break
			}
			pending = pending[1:]
		}
		var retry <-chan time.Time
		if len(pending) > 0 {
			retry = time.After(c.cfg.Heartbeat)
		}
		select {
		case <-c.ctx.Done():
			return
		case <-out.wake:
		case <-retry:
		}
	}
}

// mergeRevocations merges into rl what the watch w reports, until it ends.
func (c *Cluster) mergeRevocations(w jetstream.KeyWatcher, rl *auth.Revocations) {
	for {
		select {
		case <-c.ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			var rv auth.Revocation
			if err := json.Unmarshal(e.Value(), &rv); err != nil {
				c.log.Warn("a revocation in the cluster cannot be read", "key", e.Key(), "error", err)
				continue
			}
			if added, err := rl.Merge(rv); err != nil {
				c.log.Error("cannot apply a revocation made on another node", "revocation", rv.String(), "error", err)
			} else if added {
				c.log.Info("revocation from another node applied", "revocation", rv.String())
			}
		}
	}
}

// revocationSweep is how often a node removes from the bucket the
// revocations of tokens long expired.
const revocationSweep = time.Hour

// pruneRevocations removes the revocations of single tokens that expired
// well before now (auth.Revocation.Moot), so that sign-outs do not pile up
// in the bucket over a long incident; every node does it, which is
// harmless. Revocations of subjects stay. It returns how many it removed.
func (c *Cluster) pruneRevocations(ctx context.Context, kv jetstream.KeyValue, now time.Time) int {
	lister, err := kv.ListKeysFiltered(ctx, "token.>")
	if err != nil {
		return 0
	}
	defer func() { _ = lister.Stop() }()
	n := 0
	for key := range lister.Keys() {
		e, err := kv.Get(ctx, key)
		if err != nil {
			continue
		}
		var rv auth.Revocation
		if json.Unmarshal(e.Value(), &rv) != nil || !rv.Moot(now) {
			continue
		}
		if kv.Purge(ctx, key, jetstream.LastRevision(e.Revision())) == nil {
			n++
		}
	}
	if n > 0 {
		// the purge markers of the last sweep go too
		_ = kv.PurgeDeletes(ctx)
		c.log.Info("expired token revocations removed from the cluster", "count", n)
	}
	return n
}

// revocationKey is rv's key in the bucket: one per token, and one per
// revocation of a subject (its time in the key), so that a node sharing an
// old revocation of a subject never overwrites a newer one.
func revocationKey(rv auth.Revocation) string {
	if rv.TokenID != "" {
		h := sha256.Sum256([]byte(rv.TokenID))
		return "token." + hex.EncodeToString(h[:16])
	}
	h := sha256.Sum256([]byte(rv.Subject))
	return "subject." + hex.EncodeToString(h[:16]) + "." + strconv.FormatInt(rv.At.UnixNano(), 10)
}
