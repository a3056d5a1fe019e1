package conf

import (
	"strings"
	"testing"
)

func TestClusterSettingsAreChecked(t *testing.T) {
	ok := defaultCluster()
	ok.NATS, ok.Advertise = []string{"nats://10.0.0.2:4222", "tls://nats.example:4222"}, "http://10.0.0.5:8889"
	if err := ok.validate(); err != nil {
		t.Fatalf("a valid cluster: %v", err)
	}
	if err := defaultCluster().validate(); err != nil {
		t.Fatalf("no cluster (the default): %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Cluster)
		want string
	}{
		{"server not a NATS URL", func(c *Cluster) { c.NATS = []string{"10.0.0.2:4222"} }, "cluster.nats[0]"},
		{"no advertise", func(c *Cluster) { c.Advertise = "" }, "cluster.advertise is empty"},
		{"advertise with a path", func(c *Cluster) { c.Advertise = "http://10.0.0.5:8889/x" }, "cluster.advertise"},
		{"bad node name", func(c *Cluster) { c.Node = "sfu 1" }, "cluster.node"},
		{"token and user", func(c *Cluster) { c.Token, c.User, c.Password = "t", "u", "p" }, "set one of"},
		{"user without password", func(c *Cluster) { c.User = "u" }, "both user and password"},
		{"no replicas", func(c *Cluster) { c.Replicas = 0 }, "cluster.replicas"},
		{"lease too short", func(c *Cluster) { c.LeaseTTL = 1 }, "cluster.lease_ttl"},
		{"heartbeat too long", func(c *Cluster) { c.Heartbeat = 1 << 62 }, "cluster.heartbeat"},
	} {
		c := ok
		tc.edit(&c)
		err := c.validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want an error naming %q", tc.name, err, tc.want)
		}
	}
	if got := NodeNameFrom("eoc.north.local", "sfu"); got != "eoc-north-local-sfu" {
		t.Errorf("NodeNameFrom = %q", got)
	}
}
