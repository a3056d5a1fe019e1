package conf

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Cluster joins the process to the other nodes of a deployment through NATS
// servers. With no servers listed the process runs alone, as one node.
type Cluster struct {
	// NATS lists the NATS servers (nats://host:4222, tls://host:4222); a
	// node reaches any of them and follows the cluster's own list.
	NATS []string `yaml:"nats"`
	// Node is this process's name in the cluster, unique in it; empty
	// takes the host name and the binary's name (host-sfu, host-ingest).
	Node string `yaml:"node"`
	// Site names the centre the node belongs to (an EOC, a camera site).
	Site string `yaml:"site"`
	// Advertise is the base URL at which clients and the other nodes
	// reach this node's HTTP API (http://10.0.0.5:8889).
	Advertise string `yaml:"advertise"`
	// Token, or User and Password, or CredentialsFile (a NATS .creds
	// file) authenticate the node to the NATS servers; CAFile names the
	// certificate authority of tls:// servers not signed by a public one.
	Token           string `yaml:"token"`
	User            string `yaml:"user"`
	Password        string `yaml:"password"`
	CredentialsFile string `yaml:"credentials_file"`
	CAFile          string `yaml:"ca_file"`
	// Replicas is how many NATS servers keep each of the cluster's
	// key-value buckets (nodes, leases): 3 in a cluster of three servers,
	// so that losing one loses nothing.
	Replicas int `yaml:"replicas"`
	// Heartbeat is how often the node tells the others it lives and how
	// loaded it is; it is taken for dead after 5 missed heartbeats.
	Heartbeat time.Duration `yaml:"heartbeat"`
	// MaxSources bounds the sources ingests place on this SFU node (0: no
	// bound); a node at its bound gets none until it has fewer. Direct
	// publishers (phones, encoders) are not refused.
	MaxSources int `yaml:"max_sources"`
	// LeaseTTL is how long a lease (the right to pull a camera) outlives
	// its holder's last renewal: the time for another node to take over
	// a camera whose ingest died. The bucket keeps the TTL of the node
	// that created it.
	LeaseTTL time.Duration `yaml:"lease_ttl"`
}

func defaultCluster() Cluster {
	return Cluster{NATS: []string{}, Replicas: 1, Heartbeat: time.Second, LeaseTTL: 2 * time.Second}
}

var nodeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// Enabled tells whether the process joins a cluster.
func (c Cluster) Enabled() bool { return len(c.NATS) > 0 }

func (c Cluster) validate() error {
	if !c.Enabled() {
		return nil
	}
	for i, s := range c.NATS {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" || (u.Scheme != "nats" && u.Scheme != "tls") {
			return fmt.Errorf("cluster.nats[%d] %q: want nats://host:port or tls://host:port", i, s)
		}
	}
	switch {
	case c.Node != "" && !nodeName.MatchString(c.Node):
		return fmt.Errorf("cluster.node %q: use 1 to 64 letters, digits, - or _ (it names the node to the others)", c.Node)
	case c.Advertise == "":
		return fmt.Errorf("cluster.advertise is empty: the other nodes must know where to reach this one; set the base URL of its HTTP API, e.g. http://10.0.0.5:8889")
	case c.Token != "" && (c.User != "" || c.CredentialsFile != ""), c.User != "" && c.CredentialsFile != "":
		return fmt.Errorf("cluster: set one of token, user and password, or credentials_file")
	case (c.User == "") != (c.Password == ""):
		return fmt.Errorf("cluster: set both user and password, or neither")
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("cluster.replicas %d: use 1 to 5 (3 for a cluster of three NATS servers)", c.Replicas)
	case c.Heartbeat < 100*time.Millisecond || c.Heartbeat > 30*time.Second:
		return fmt.Errorf("cluster.heartbeat %s: use 100ms to 30s (1s is usual)", c.Heartbeat)
	case c.MaxSources < 0:
		return fmt.Errorf("cluster.max_sources %d: use 0 (no bound) or more", c.MaxSources)
	case c.LeaseTTL < 500*time.Millisecond || c.LeaseTTL > time.Minute:
		return fmt.Errorf("cluster.lease_ttl %s: use 500ms to 1m (2s takes a camera over within about 2 s)", c.LeaseTTL)
	}
	u, err := url.Parse(c.Advertise)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || strings.Trim(u.Path, "/") != "" {
		return fmt.Errorf("cluster.advertise %q: want the base URL of this node's HTTP API, e.g. http://10.0.0.5:8889", c.Advertise)
	}
	return nil
}

// NodeNameFrom makes a node name of a host name and a role: host-role, with
// what a node name cannot hold replaced by -.
func NodeNameFrom(host, role string) string {
	b := []byte(host)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	name := strings.Trim(string(b), "-_")
	if name == "" {
		name = "node"
	}
	if max := 63 - len(role); len(name) > max {
		name = name[:max]
	}
	return name + "-" + role
}
