package main

import (
	"context"
	"testing"
	"time"

	"fieldvideo/internal/cluster"
	"fieldvideo/internal/conf"
	"fieldvideo/internal/testkit"
)

// TestPlacement: ingest publishes a source to the least-loaded SFU node that
// takes work: never a draining one or one at its max_sources, another than
// the one that just failed when there is another.
func TestPlacement(t *testing.T) {
	srv := testkit.StartNATS(t)
	join := func(name, role, url string, l cluster.Load) *cluster.Cluster {
		t.Helper()
		c, err := cluster.Join(context.Background(), cluster.Params{Role: role, Load: func() cluster.Load { return l },
			Config: conf.Cluster{NATS: []string{srv.URL}, Node: name, Advertise: url, Replicas: 1, Heartbeat: 100 * time.Millisecond, LeaseTTL: time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	join("full", "sfu", "http://10.0.0.1:8889", cluster.Load{Sources: 3, MaxSources: 3})
	join("busy", "sfu", "http://10.0.0.2:8889", cluster.Load{Sources: 20})
	idle := join("idle", "sfu", "http://10.0.0.3:8889", cluster.Load{Sources: 1})
	me := join("ingest", "ingest", "http://10.0.0.9:9997", cluster.Load{})
	waitNodes := func(n int) {
		deadline := time.Now().Add(5 * time.Second)
		for len(me.Nodes()) != n {
			if time.Now().After(deadline) {
				t.Fatalf("ingest sees %d nodes, want %d", len(me.Nodes()), n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitNodes(4)
	u := &uplinks{cluster: me}
	if got := u.place("cam1", ""); got != "http://10.0.0.3:8889/cam1/whip" {
		t.Errorf("first placement: %s; want the idle node", got)
	}
	// recent placements count against a node before its heartbeat shows them: 30
	// more even the two out (1+x on idle, 20+y on busy; CPU weighs in by up to ~1),
	// and none goes to the full node.
	got := map[string]int{"http://10.0.0.3:8889/camx/whip": 1}
	for i := 0; i < 30; i++ {
		got[u.place("camx", "")]++
	}
	idleN, busyN := got["http://10.0.0.3:8889/camx/whip"], got["http://10.0.0.2:8889/camx/whip"]
	if idleN+busyN != 31 || idleN+1-(20+busyN) > 3 || 20+busyN-(idleN+1) > 3 {
		t.Errorf("31 placements: %v; want them spread to even idle (1 source) and busy (20), none on full", got)
	}
	if got := u.place("cam3", "http://10.0.0.2:8889/cam3/whip"); got != "http://10.0.0.3:8889/cam3/whip" {
		t.Errorf("placement after a failure at busy: %s; want idle, the other node taking work", got)
	}
	idle.SetDraining(true)
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := u.place("cam4", "")
		if got == "http://10.0.0.2:8889/cam4/whip" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("placement with idle draining: %s; want busy", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
