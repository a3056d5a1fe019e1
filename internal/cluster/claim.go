package cluster

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// claim is this node's hold on a name it is the home of (a call room).
type claim struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (cl *claim) alive() bool {
	select {
	case <-cl.done:
		return false
	default:
		return true
	}
}

// Claim makes this node the home of name (a call room: letters, digits,
// '.', '-', '_'), unless another live node is. It returns "" when this node
// is — it stays so until Unclaim, or until it cannot renew the claim (NATS
// lost) — else the home node's name and the base URL of its HTTP API. A
// claim of a node no longer heard from (it died) is waited for until it
// lapses, within the lease TTL.
func (c *Cluster) Claim(ctx context.Context, name string) (node, url string, err error) {
	key := "claim." + name
	c.mu.Lock()
	if cl := c.claims[key]; cl != nil && cl.alive() {
		c.mu.Unlock()
		return "", "", nil
	}
	c.mu.Unlock()
	poll := min(max(c.leaseTTL/8, 100*time.Millisecond), time.Second)
	deadline := time.Now().Add(c.leaseTTL + time.Second)
	for {
		rev, who, err := c.take(ctx, key)
		if rev != 0 {
			c.keep(key, rev)
			return "", "", nil
		}
		if err != nil {
			return "", "", err
		}
		if n, ok := c.heard(who, 3); ok && n.URL != "" {
			return n.Name, n.URL, nil
		}
		if time.Now().After(deadline) {
			return "", "", fmt.Errorf("its home node %s is not heard from and its claim has not lapsed", who)
		}
		select {
		case <-ctx.Done():
			return "", "", ctx.Err()
		case <-time.After(poll):
		}
	}
}

// heard returns the node called name when it was heard from within the
// last beats heartbeats.
func (c *Cluster) heard(name string, beats int) (Node, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.seen[name]
	if !ok || name == "" || time.Since(s.at) > time.Duration(beats)*c.cfg.Heartbeat {
		return Node{}, false
	}
	return s.node, true
}

// keep renews the claim taken at rev until Unclaim.
func (c *Cluster) keep(key string, rev uint64) {
	ctx, cancel := context.WithCancel(context.Background())
	cl := &claim{cancel: cancel, done: make(chan struct{})}
	c.mu.Lock()
	c.claims[key] = cl
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.hold(ctx, key, rev, func(ctx context.Context) { <-ctx.Done() })
		close(cl.done)
		if ctx.Err() != nil {
			return // given up: Unclaim or Close
		}
		c.mu.Lock()
		if c.claims[key] == cl {
			delete(c.claims, key)
		}
		lost := c.lost
		c.mu.Unlock()
		c.log.Warn("no longer the home of a claimed name: out of reach of the cluster, or another node holds it", "name", strings.TrimPrefix(key, "claim."))
		if lost != nil {
			lost(strings.TrimPrefix(key, "claim."))
		}
	}()
}

// OnClaimLost has fn told the name of each claim this node loses without
// giving it up: it could not renew it in time (cut off from the NATS
// servers), or another node holds it now. What lived here under the name
// goes on until the caller decides (Claim again, or move to the new home).
func (c *Cluster) OnClaimLost(fn func(name string)) {
	c.mu.Lock()
	c.lost = fn
	c.mu.Unlock()
}

// HomeOf returns the node that claimed name, or "" when none has.
func (c *Cluster) HomeOf(ctx context.Context, name string) (string, error) {
	return c.holder(ctx, "claim."+name)
}

// Unclaim gives up being the home of name, at once for the other nodes.
func (c *Cluster) Unclaim(name string) {
	key := "claim." + name
	c.mu.Lock()
	cl := c.claims[key]
	delete(c.claims, key)
	c.mu.Unlock()
	if cl != nil {
		cl.cancel()
		<-cl.done
	}
}
