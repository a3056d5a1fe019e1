package main

import (
	"encoding/json"
	"fmt"
	"net/http"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/ingest"
	"fieldvideo/internal/metrics"
	"fieldvideo/internal/node"
	tsync "fieldvideo/internal/sync"
	"fieldvideo/internal/whip"
)

// api serves ingest's health, source states, cameras (ingest.CameraRoutes)
// and metrics, and the APIs every process serves (revocations, holds, the
// recording state). Every request but the health check is audited.
type api struct {
	ingest  *ingest.Server
	uplinks *uplinks
	node    *node.Node
}

// sourceState is a source as ingest's API lists it: what ingest receives and
// how its uplink to the SFU is doing.
type sourceState struct {
	ingest.SourceInfo
	Uplink *whip.PublisherState `json:"uplink,omitempty"`
}

func (a *api) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/sources", a.sources)
	a.ingest.CameraRoutes(mux, a.node.Verifier)
	mux.HandleFunc("GET /metrics", a.metrics)
	a.node.Routes(mux, "")
	a.node.ProfileRoutes(mux)
	audited := a.node.Audited(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			a.node.ServeHealth(w, r)
			return
		}
		audited.ServeHTTP(w, r)
	})
}

func (a *api) claims(w http.ResponseWriter, r *http.Request) *auth.Claims {
	c, err := a.node.Verifier.Verify(auth.FromRequest(r))
	if err != nil {
		whip.WriteError(w, whip.Errorf(http.StatusUnauthorized, "%v", err))
		return nil
	}
	return c
}

func (a *api) sources(w http.ResponseWriter, r *http.Request) {
	c := a.claims(w, r)
	if c == nil {
		return
	}
	ups := a.uplinks.states()
	list := []sourceState{}
	for _, s := range a.ingest.Sources() {
		if !c.CanView(s.Name) && !c.CanPublish(s.Name) && !c.CanOperate() {
			continue
		}
		st := sourceState{SourceInfo: s}
		if !c.CanOperate() {
			// where a camera is and who pushes from where are the operators' to know,
			// as in the cameras list; the reason names neither
			st.Reason = ingest.HideAddresses(st.Reason, st.URL, st.Remote)
			st.URL, st.Remote = "", ""
		}
		if u, ok := ups[s.Name]; ok {
			st.Uplink = &u
		}
		list = append(list, st)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"sources": list})
}

func (a *api) metrics(w http.ResponseWriter, r *http.Request) {
	c := a.claims(w, r)
	if c == nil {
		return
	}
	if !c.CanOperate() {
		whip.WriteError(w, whip.Errorf(http.StatusForbidden, "metrics need an operator or commander token; %s has role %s", c.Who(), c.Role))
		return
	}
	srcs := a.ingest.Sources()
	ups := a.uplinks.states()
	w.Header().Set("Content-Type", metrics.ContentType)
	m := metrics.NewWriter(w)
	families := []struct {
		name, typ, help string
		val             func(ingest.SourceInfo) float64
	}{
		{"fv_ingest_source_up", "gauge", "1 when media is flowing from the source.", func(s ingest.SourceInfo) float64 { return metrics.Bool(s.State == ingest.StateLive) }},
		{"fv_ingest_source_packets_total", "counter", "RTP packets received.", func(s ingest.SourceInfo) float64 { return float64(s.Packets) }},
		{"fv_ingest_source_bytes_total", "counter", "RTP payload bytes received.", func(s ingest.SourceInfo) float64 { return float64(s.Bytes) }},
		{"fv_ingest_source_packets_lost_total", "counter", "RTP packets missing upstream.", func(s ingest.SourceInfo) float64 { return float64(s.Lost) }},
		{"fv_ingest_source_decode_errors_total", "counter", "Packets that could not be decoded.", func(s ingest.SourceInfo) float64 { return float64(s.DecodeErrors) }},
		{"fv_ingest_source_failures", "gauge", "Consecutive failed attempts to reach a camera.", func(s ingest.SourceInfo) float64 { return float64(s.Failures) }},
		{"fv_ingest_uplink_up", "gauge", "1 when the source is being published to the SFU.", func(s ingest.SourceInfo) float64 { return metrics.Bool(ups[s.Name].State == "live") }},
	}
	for _, f := range families {
		m.Family(f.name, f.typ, f.help)
		for _, s := range srcs {
			m.Sample(f.name, f.val(s), "source", s.Name)
		}
	}
	var clocks []tsync.ClockRow
	for _, s := range srcs {
		for i, tr := range s.Tracks {
			if tr.Clock != nil {
				clocks = append(clocks, tsync.ClockRow{Source: s.Name, Track: fmt.Sprintf("%s%d", tr.Kind, i), Info: *tr.Clock})
			}
		}
	}
	tsync.WriteMetrics(m, "fv_ingest_source", clocks)
	a.node.WriteMetrics(m)
	_ = m.Flush()
}
