package node

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/metrics"
	"fieldvideo/internal/netlimit"
	"fieldvideo/internal/whip"
)

// Audited wraps h so that every request it serves is audited with its real
// actor, fail-closed (audit.HTTP).
func (n *Node) Audited(h http.Handler) http.Handler {
	return audit.HTTP(n.Audit, n.Verifier.IdentifyGranting, h)
}

// ProfileRoutes serves the Go profiler (CPU profile, execution trace, heap and the
// rest) to operators under /debug/pprof/.
func (n *Node) ProfileRoutes(mux *http.ServeMux) {
	mux.Handle("GET /debug/pprof/", n.operatorOnly(http.HandlerFunc(pprof.Index)))
	mux.Handle("GET /debug/pprof/profile", n.operatorOnly(http.HandlerFunc(pprof.Profile)))
	mux.Handle("GET /debug/pprof/trace", n.operatorOnly(http.HandlerFunc(pprof.Trace)))
}

// operatorOnly lets through requests whose token may operate the system.
func (n *Node) operatorOnly(h http.Handler) http.Handler { return whip.OperatorOnly(n.Verifier, h) }

// Routes adds the APIs every process serves to mux: the revocation list and
// signing out, evidence holds, and the recording state.
func (n *Node) Routes(mux *http.ServeMux, allowOrigin string) {
	rev := auth.RevocationsHandler(n.Verifier)
	mux.Handle("GET /v1/revocations", rev)
	mux.Handle("POST /v1/revocations", rev)
	mux.Handle("POST /v1/signout", auth.SignOutHandler(n.Verifier))
	mux.HandleFunc("GET /v1/recording", func(w http.ResponseWriter, r *http.Request) { n.serveRecording(w, r, allowOrigin) })
	if n.Retention != nil {
		holds := n.Retention.Handler()
		mux.Handle("GET /v1/holds", holds)
		mux.Handle("POST /v1/holds", holds)
		mux.Handle("DELETE /v1/holds/{id}", holds)
	}
	if n.Playback != nil {
		n.Playback.Routes(mux, n.Verifier, n.Incident, allowOrigin, n.Exporter)
	}
	if n.Cluster != nil {
		cl := func(w http.ResponseWriter, r *http.Request) { n.serveCluster(w, r, allowOrigin) }
		mux.HandleFunc("GET /v1/cluster", cl)
		mux.HandleFunc("POST /v1/cluster", cl)
	}
}

// serveRecording reports the recorder (RPO, spool, each site's backlog,
// alarms) and retention to operators and reviewers.
func (n *Node) serveRecording(w http.ResponseWriter, r *http.Request, allowOrigin string) {
	whip.SetCORS(w, allowOrigin)
	c, err := n.Verifier.Verify(auth.FromRequest(r))
	if err != nil {
		whip.WriteError(w, whip.Errorf(http.StatusUnauthorized, "%v", err))
		return
	}
	if !c.CanOperate() && !c.CanReview() {
		whip.WriteError(w, whip.Errorf(http.StatusForbidden, "the recording state needs an operator, commander or reviewer token, or the review grant (token -review); %s has role %s", c.Who(), c.Role))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if n.Recorder == nil {
		_, _ = w.Write([]byte(`{"enabled":false}` + "\n"))
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"enabled": true, "recorder": n.Recorder.View(), "retention": n.Retention.Stats()})
}

// WriteMetrics writes the metrics of what the node runs: recorder,
// retention and the audit log.
func (n *Node) WriteMetrics(m *metrics.Writer) {
	m.Family("fv_audit_write_failures_total", "counter", "Audit events that could not be written (each refused the access it recorded).")
	m.Sample("fv_audit_write_failures_total", float64(n.Audit.Errors()))
	healthy := 1.0
	if n.Audit.Healthy() != nil {
		healthy = 0
	}
	m.Family("fv_audit_up", "gauge", "1 while the audit log can be written; 0 is an alarm: access is refused.")
	m.Sample("fv_audit_up", healthy)
	if n.Recorder != nil {
		n.Recorder.WriteMetrics(m)
		n.Retention.WriteMetrics(m)
		n.Playback.WriteMetrics(m)
	}
}

// FieldLimits bound the HTTP requests of each holder of a token carried in
// the field (audit.Params.Limits): a responder's phone 20 a second after a
// burst of 200, a camera's (an encoder's, or an ingest publishing all its
// cameras with one token) 100 a second after a burst of 1000.
var FieldLimits = map[string]audit.Limit{
	string(auth.RoleResponder): {Rate: 20, Burst: 200},
	string(auth.RoleCamera):    {Rate: 100, Burst: 1000},
}

// RequestTimeout is how long a connection to a public port may stay
// without showing a valid token (auth.Verifier.IdentifyGranting): it is
// closed then, and until then the oldest such connection is closed to make
// room for a newcomer when the port is full. Console files and health checks
// need no token and are served meanwhile.
const RequestTimeout = 10 * time.Second

// Listen listens on a TCP address with the connection limits of a public
// port: at most max connections, perAddr from one address, and RequestTimeout
// for those without a token.
func (n *Node) Listen(what, address string, max, perAddr int) (net.Listener, error) {
	ln, err := net.Listen("tcp", address)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, address, err)
	}
	return netlimit.NewListener(ln, netlimit.Params{MaxConns: max, MaxConnsPerAddr: perAddr, RequestTimeout: RequestTimeout,
		Logger: n.Log.With("listener", what)}), nil
}

// ServeHealth answers a load balancer's health check: 200 while the node
// takes new work; 503 while it drains or, in a cluster, while it is out of
// touch with the NATS servers (the others take its work meanwhile).
func (n *Node) ServeHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	st := map[string]any{"status": "ok"}
	if c := n.Cluster; c != nil {
		st["node"] = c.Name()
		switch {
		case c.Draining():
			st["status"], st["reason"] = "draining", "the node is draining: send new clients to another node"
		case !c.Connected():
			st["status"], st["reason"] = "isolated", "the node has lost the cluster's NATS servers; it takes no new work until they answer"
		}
	}
	if st["status"] != "ok" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(st)
}

// serveCluster lists the cluster's nodes (GET) and drains or undrains this
// one (POST {"draining": true}), for operators.
func (n *Node) serveCluster(w http.ResponseWriter, r *http.Request, allowOrigin string) {
	whip.SetCORS(w, allowOrigin)
	c, err := n.Verifier.Verify(auth.FromRequest(r))
	if err != nil {
		whip.WriteError(w, whip.Errorf(http.StatusUnauthorized, "%v", err))
		return
	}
	if !c.CanOperate() {
		whip.WriteError(w, whip.Errorf(http.StatusForbidden, "the cluster API needs an operator or commander token; %s has role %s", c.Who(), c.Role))
		return
	}
	if r.Method == http.MethodPost {
		var body struct {
			Draining *bool `json:"draining"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1024))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil || body.Draining == nil {
			whip.WriteError(w, whip.Errorf(http.StatusBadRequest, `send {"draining": true} to drain this node or {"draining": false} to take work again`))
			return
		}
		n.Cluster.SetDraining(*body.Draining)
		n.Log.Info("drain set through the API", "component", "cluster", "draining", *body.Draining, "by", c.Who())
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"node": n.Cluster.Name(), "draining": n.Cluster.Draining(), "connected": n.Cluster.Connected(), "nodes": n.Cluster.Nodes(),
	})
}
