package sfu

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/pprof"
	"sort"
	"strings"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/metrics"
	tsync "fieldvideo/internal/sync"
	"fieldvideo/internal/whip"
)

type sdpMedia = sdp.MediaDescription

// Handler returns the SFU's HTTP routes. Every request to the APIs, WHIP
// and WHEP is audited with its real actor (audit.HTTP); the console's
// static files, health checks and CORS preflights carry no data and are
// not.
func (s *Server) Handler() http.Handler {
	api := s.routes()
	audited := audit.HTTP(s.p.Audit, s.p.Verifier.IdentifyGranting, api)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions || r.URL.Path == "/healthz" || s.static(r) {
			api.ServeHTTP(w, r)
			return
		}
		audited.ServeHTTP(w, r)
	})
}

// static reports whether r asks for one of the console's files.
func (s *Server) static(r *http.Request) bool {
	if s.p.Console == nil || r.Method != http.MethodGet {
		return false
	}
	name := strings.TrimPrefix(r.URL.Path, "/")
	if name == "" {
		return true
	}
	_, err := fs.Stat(s.p.Console, name)
	return err == nil
}

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{source}/whip", s.handleOffer("publish", "whip", s.publish))
	mux.HandleFunc("PATCH /{source}/whip/{id}", s.handlePatch("whip"))
	mux.HandleFunc("DELETE /{source}/whip/{id}", s.handleDelete("whip"))
	mux.HandleFunc("POST /{source}/whep", s.handleOffer("view", "whep", s.view))
	mux.HandleFunc("PATCH /{source}/whep/{id}", s.handlePatch("whep"))
	mux.HandleFunc("DELETE /{source}/whep/{id}", s.handleDelete("whep"))
	for _, p := range []string{"/{source}/whip", "/{source}/whep", "/{source}/whip/{id}", "/{source}/whep/{id}", "/v1/sources", "/v1/sources/{source}/position"} {
		mux.HandleFunc("OPTIONS "+p, s.handleOptions)
	}
	mux.HandleFunc("GET /v1/sources", s.handleSources)
	mux.HandleFunc("PUT /v1/sources/{source}/position", s.handlePosition)
	mux.HandleFunc("DELETE /v1/sources/{source}", s.handleForget)
	mux.HandleFunc("GET /v1/map", s.handleMapSettings)
	mux.HandleFunc("GET /map.html", s.handleMapPage)
	mux.HandleFunc("GET /v1/rooms/{room}/ws", s.handleRoom)
	mux.Handle("GET /v1/rooms", s.operatorOnly(http.HandlerFunc(s.handleRooms)))
	s.cameraRoutes(mux)
	mux.Handle("GET /v1/auth/config", newSignIn(signInParams{OIDC: s.p.Conf.Auth.OIDC, AllowOrigin: s.p.Conf.HTTP.AllowOrigin, Log: s.log}))
	if s.p.Routes != nil {
		s.p.Routes(mux)
	}
	mux.HandleFunc("GET /healthz", s.handleHealth)
	mux.HandleFunc("GET /metrics", s.handleMetrics)
	mux.Handle("GET /debug/pprof/", s.operatorOnly(http.HandlerFunc(pprof.Index)))
	mux.Handle("GET /debug/pprof/profile", s.operatorOnly(http.HandlerFunc(pprof.Profile)))
	mux.Handle("GET /debug/pprof/trace", s.operatorOnly(http.HandlerFunc(pprof.Trace)))
	if s.p.Console != nil {
		mux.Handle("GET /", consoleFiles(s.p.Console))
	}
	return mux
}

// consoleFiles serves the console's files: never in another site's frame (a page that
// carries a token in its address must not be clickjacked), never a folder's listing.
func consoleFiles(files fs.FS) http.Handler {
	fsrv := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" && strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		pageHeaders(w.Header())
		fsrv.ServeHTTP(w, r)
	})
}

// pageHeaders are the headers of every console file: framed by the console's own pages
// only, types as declared, and no address (with its token) sent on as a referrer.
func pageHeaders(h http.Header) {
	h.Set("X-Frame-Options", "SAMEORIGIN")
	h.Set("Content-Security-Policy", "frame-ancestors 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

func (s *Server) cors(w http.ResponseWriter) { whip.SetCORS(w, s.p.Conf.HTTP.AllowOrigin) }

// negotiator answers an offer for source name, filling in the audit event.
type negotiator func(r *http.Request, name string, ev *audit.Event) (*session, string, error)

// handleOffer serves a WHIP or WHEP POST: negotiate, audit the outcome
// (granted or refused, with the reason), answer or report the error.
func (s *Server) handleOffer(action, via string, negotiate negotiator) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.cors(w)
		name := r.PathValue("source")
		ev := audit.Annotate(r)
		if ev == nil {
			ev = &audit.Event{}
		}
		ev.Action, ev.Source, ev.Via = action, name, via
		slot, err := s.admit(r)
		if err != nil {
			w.Header().Set("Retry-After", "5")
			whip.WriteError(w, err)
			return
		}
		ss, answer, err := negotiate(r, name, ev)
		if err != nil {
			slot()
			whip.WriteError(w, err)
			return
		}
		ss.start(slot)
		audit.OnFailure(r, func() { ss.close("refused: the audit log cannot be written") })
		s.writeAnswer(w, ss, answer)
	}
}

// handleOptions answers CORS preflights. It carries no data, so it needs no
// token (browsers send preflights without credentials).
func (s *Server) handleOptions(w http.ResponseWriter, r *http.Request) {
	s.cors(w)
	w.Header().Set("Accept-Post", whip.ContentTypeSDP)
	w.Header().Set("Accept-Patch", whip.ContentTypeTrickle)
	w.WriteHeader(http.StatusNoContent)
}

// answer creates and sets the local answer and waits for ICE gathering, so
// the answer carries every candidate (clients need not trickle).
func answer(ctx context.Context, pc *webrtc.PeerConnection) (string, error) {
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", whip.Errorf(http.StatusBadRequest, "cannot answer the offer: %v", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(ans); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", fmt.Errorf("ICE gathering did not finish: %w", ctx.Err())
	}
	return pc.LocalDescription().SDP, nil
}

func mediaByMid(ms []*sdpMedia, mid string) *sdpMedia {
	for _, m := range ms {
		if v, ok := m.Attribute("mid"); ok && v == mid {
			return m
		}
	}
	return nil
}

// writeAnswer sends the 201 Created answer of a WHIP or WHEP session.
func (s *Server) writeAnswer(w http.ResponseWriter, ss *session, answer string) {
	h := w.Header()
	h.Set("Content-Type", whip.ContentTypeSDP)
	h.Set("Location", ss.location())
	h.Set("ETag", ss.etag)
	h.Set("Accept-Patch", whip.ContentTypeTrickle)
	for _, is := range s.p.Conf.WebRTC.ICEServers {
		for _, u := range is.URLs {
			link := fmt.Sprintf("<%s>; rel=\"ice-server\"", u)
			if is.Username != "" {
				link += fmt.Sprintf("; username=%q; credential=%q; credential-type=\"password\"", is.Username, is.Credential)
			}
			h.Add("Link", link)
		}
	}
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write([]byte(answer))
}

// handleSources lists the sources the token may view (operators see all).
func (s *Server) handleSources(w http.ResponseWriter, r *http.Request) {
	s.cors(w)
	c, err := s.p.Verifier.Verify(auth.FromRequest(r))
	if err != nil {
		whip.WriteError(w, whip.Errorf(http.StatusUnauthorized, "%v", err))
		return
	}
	remote := s.remoteTags()
	s.mu.Lock()
	list := make([]SourceInfo, 0, len(s.sources))
	for name, src := range s.sources {
		if c.CanView(name) || c.CanOperate() {
			in := src.info()
			if rt, ok := remote[name]; ok {
				addTags(&in, rt)
			}
			list = append(list, in)
		}
	}
	s.mu.Unlock()
	list = s.withRemote(list, c, remote)
	for i := range list {
		if list[i].Incident == "" {
			// what the source did not say: the incident this server records under.
			list[i].Incident = s.p.Conf.Record.Incident
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"sources": list})
}

// Sources returns every source, for embedding programs and tests.
func (s *Server) Sources() []SourceInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := make([]SourceInfo, 0, len(s.sources))
	for _, src := range s.sources {
		list = append(list, src.info())
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	return list
}

// handleHealth answers a load balancer's health check. It reveals nothing
// but that the process serves, so it needs no token.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if s.p.Health != nil {
		s.p.Health(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
}

// operatorOnly lets through requests whose token may operate the system.
func (s *Server) operatorOnly(h http.Handler) http.Handler { return whip.OperatorOnly(s.p.Verifier, h) }

// handleMetrics serves Prometheus metrics to operators.
func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	c, err := s.p.Verifier.Verify(auth.FromRequest(r))
	if err != nil {
		whip.WriteError(w, whip.Errorf(http.StatusUnauthorized, "%v", err))
		return
	}
	if !c.CanOperate() {
		whip.WriteError(w, whip.Errorf(http.StatusForbidden, "metrics need an operator or commander token; %s has role %s", c.Who(), c.Role))
		return
	}
	type viewerRow struct {
		source, id string
		dropped    uint64
		sent       uint64
		resend     whip.ResendStats
	}
	s.mu.Lock()
	var srcs []SourceInfo
	var views []viewerRow
	for name, src := range s.sources {
		srcs = append(srcs, src.info())
		for v := range src.viewers {
			row := viewerRow{source: name, id: v.ss.id, dropped: v.dropped()}
			for _, lt := range v.tracks {
				if lt != nil {
					n, _ := lt.Stats()
					row.sent += n
					row.resend = row.resend.Add(lt.ResendStats())
				}
			}
			views = append(views, row)
		}
	}
	sessions := len(s.sessions)
	s.mu.Unlock()
	sort.Slice(srcs, func(i, j int) bool { return srcs[i].Name < srcs[j].Name })

	w.Header().Set("Content-Type", metrics.ContentType)
	m := metrics.NewWriter(w)
	m.Family("fv_sessions", "gauge", "WHIP and WHEP sessions open.")
	m.Sample("fv_sessions", float64(sessions))
	bs := s.media.Stats()
	m.Family("fv_media_datagrams_total", "counter", "Datagrams sent on the shared media socket.")
	m.Sample("fv_media_datagrams_total", float64(bs.Datagrams))
	m.Family("fv_media_sends_total", "counter", "Send calls that carried them: a unit's packets to one peer go out in one segmented send.")
	m.Sample("fv_media_sends_total", float64(bs.Sends))
	m.Family("fv_media_send_errors_total", "counter", "Datagrams the kernel refused to send.")
	m.Sample("fv_media_send_errors_total", float64(bs.Errors))
	m.Family("fv_media_segmentation", "gauge", "1 while sends use UDP segmentation offload (0: one by one; the kernel or route refused it).")
	m.Sample("fv_media_segmentation", metrics.Bool(bs.Segmentation))
	families := []struct {
		name, typ, help string
		val             func(SourceInfo) float64
	}{
		{"fv_source_up", "gauge", "1 when the source is being published.", func(i SourceInfo) float64 { return metrics.Bool(i.State == "live") }},
		{"fv_source_bitrate_bps", "gauge", "Incoming bitrate over the last second.", func(i SourceInfo) float64 { return i.BitrateBPS }},
		{"fv_source_packets_total", "counter", "RTP packets received.", func(i SourceInfo) float64 { return float64(i.Packets) }},
		{"fv_source_bytes_total", "counter", "RTP payload bytes received.", func(i SourceInfo) float64 { return float64(i.Bytes) }},
		{"fv_source_packets_lost_total", "counter", "RTP packets missing upstream.", func(i SourceInfo) float64 { return float64(i.Lost) }},
		{"fv_source_viewers", "gauge", "WHEP viewers attached.", func(i SourceInfo) float64 { return float64(i.Viewers) }},
	}
	for _, f := range families {
		m.Family(f.name, f.typ, f.help)
		for _, in := range srcs {
			m.Sample(f.name, f.val(in), "source", in.Name)
		}
	}
	var clocks []tsync.ClockRow
	for _, in := range srcs {
		for i, tr := range in.Tracks {
			if tr.Clock != nil {
				clocks = append(clocks, tsync.ClockRow{Source: in.Name, Track: fmt.Sprintf("%s%d", tr.Kind, i), Info: *tr.Clock})
			}
		}
	}
	tsync.WriteMetrics(m, "fv_source", clocks)
	if s.p.Metrics != nil {
		s.p.Metrics(m)
	}
	m.Family("fv_forward_latency_seconds", "histogram", "Time a unit spends in the SFU: first packet in to last packet out to a viewer.")
	s.forward.Write(m, "fv_forward_latency_seconds")
	m.Family("fv_viewer_dropped_units_total", "counter", "Units dropped for a viewer that fell behind: its queue was full, or a unit waited longer than 500 ms (then video waits for the next keyframe).")
	for _, v := range views {
		m.Sample("fv_viewer_dropped_units_total", float64(v.dropped), "source", v.source, "viewer", v.id)
	}
	m.Family("fv_viewer_packets_sent_total", "counter", "RTP packets sent to a viewer.")
	for _, v := range views {
		m.Sample("fv_viewer_packets_sent_total", float64(v.sent), "source", v.source, "viewer", v.id)
	}
	m.Family("fv_viewer_packets_retransmitted_total", "counter", "RTP packets sent again to a viewer that reported them lost (NACK).")
	for _, v := range views {
		m.Sample("fv_viewer_packets_retransmitted_total", float64(v.resend.Sent), "source", v.source, "viewer", v.id)
	}
	m.Family("fv_viewer_nacked_packets_refused_total", "counter", "Packets a viewer's NACKs asked for that were not sent again, by reason: "+
		"gone (no longer in the history), too_old (older than a player can use), repeat (asked again within a round trip of the last answer), "+
		"tries (sent again five times already: a receiver that still asks cannot take it), over_budget (retransmission may not exceed a quarter of what is sent).")
	for _, v := range views {
		for _, r := range refusals(v.resend) {
			m.Sample("fv_viewer_nacked_packets_refused_total", float64(r.n), "source", v.source, "viewer", v.id, "reason", r.reason)
		}
	}
	if s.calls != nil {
		r := s.calls.Resends()
		m.Family("fv_call_packets_retransmitted_total", "counter", "RTP packets call subscriptions sent again to subscribers that reported them lost (NACK).")
		m.Sample("fv_call_packets_retransmitted_total", float64(r.Sent))
		m.Family("fv_call_nacked_packets_refused_total", "counter", "Packets call subscribers' NACKs asked for that were not sent again, by reason (as for viewers).")
		for _, x := range refusals(r) {
			m.Sample("fv_call_nacked_packets_refused_total", float64(x.n), "reason", x.reason)
		}
	}
	_ = m.Flush()
}

type refusal struct {
	reason string
	n      uint64
}

// refusals are the refused retransmissions of r by reason, as the metrics name them.
func refusals(r whip.ResendStats) [5]refusal {
	return [5]refusal{{"gone", r.Gone}, {"too_old", r.TooOld}, {"repeat", r.Repeat}, {"tries", r.Tries}, {"over_budget", r.OverBudget}}
}
