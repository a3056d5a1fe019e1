package retention

import (
	"time"

	"fieldvideo/internal/metrics"
)

// SiteStats describe the passes at one site.
type SiteStats struct {
	Site  string `json:"site"`  // primary or offsite
	Store string `json:"store"` // the store's name
	// Retention is the site's retention; 0 keeps everything.
	Retention time.Duration `json:"-"`
	// RetentionSeconds is Retention for the API.
	RetentionSeconds float64   `json:"retention_seconds"`
	LastPass         time.Time `json:"last_pass,omitzero"`
	Passes           uint64    `json:"passes"`
	Failures         uint64    `json:"failures"`
	// Deleted and DeletedBytes count the objects removed since the start.
	Deleted      uint64 `json:"deleted"`
	DeletedBytes uint64 `json:"deleted_bytes"`
	// Held counts the objects past retention that the last pass kept for a
	// hold; Unverified those it kept because the other site has no verified
	// copy and its retention has not passed.
	Held       int    `json:"held"`
	Unverified int    `json:"unverified"`
	LastError  string `json:"last_error,omitempty"`
}

// Stats is a snapshot of the retention.
type Stats struct {
	Sites [2]SiteStats `json:"sites"` // primary, then off-site
	// Holds counts the holds found at either site by the last complete
	// read; PendingHolds those this process still has to write to or remove
	// from a site.
	Holds        int `json:"holds"`
	PendingHolds int `json:"pending_holds"`
}

// Stats returns a snapshot.
func (r *Retention) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Stats{Sites: r.stats, Holds: r.holds, PendingHolds: len(r.local)}
	for i := range s.Sites {
		s.Sites[i].RetentionSeconds = s.Sites[i].Retention.Seconds()
	}
	return s
}

// WriteMetrics writes the retention's metrics in the Prometheus text format.
func (r *Retention) WriteMetrics(m *metrics.Writer) {
	s := r.Stats()
	perSite := []struct {
		name, typ, help string
		v               func(SiteStats) float64
	}{
		{"fv_retention_seconds", "gauge", "Retention of the site; 0 keeps recordings forever.", func(x SiteStats) float64 { return x.Retention.Seconds() }},
		{"fv_retention_last_pass_timestamp_seconds", "gauge", "Start of the last retention pass (Unix time; 0 before the first).", func(x SiteStats) float64 {
			if x.LastPass.IsZero() {
				return 0
			}
			return float64(x.LastPass.UnixMilli()) / 1000
		}},
		{"fv_retention_up", "gauge", "1 when the last pass completed; 0 when it stopped (see the log), or none ran.", func(x SiteStats) float64 {
			return metrics.Bool(x.Passes > 0 && x.LastError == "")
		}},
		{"fv_retention_passes_total", "counter", "Retention passes run.", func(x SiteStats) float64 { return float64(x.Passes) }},
		{"fv_retention_pass_failures_total", "counter", "Retention passes that did not finish (see the log); the next pass tries again.", func(x SiteStats) float64 { return float64(x.Failures) }},
		{"fv_retention_deleted_objects_total", "counter", "Segments and manifests deleted.", func(x SiteStats) float64 { return float64(x.Deleted) }},
		{"fv_retention_deleted_bytes_total", "counter", "Bytes deleted.", func(x SiteStats) float64 { return float64(x.DeletedBytes) }},
		{"fv_retention_held_objects", "gauge", "Objects past retention kept for an evidence hold at the last pass.", func(x SiteStats) float64 { return float64(x.Held) }},
		{"fv_retention_unverified_objects", "gauge", "Objects past retention kept at the last pass because the other site holds no verified copy (alarm when it grows).", func(x SiteStats) float64 { return float64(x.Unverified) }},
	}
	for _, f := range perSite {
		m.Family(f.name, f.typ, f.help)
		for _, x := range s.Sites {
			m.Sample(f.name, f.v(x), "role", x.Site, "store", x.Store)
		}
	}
	m.Family("fv_retention_holds", "gauge", "Evidence holds found at either site by the last complete read.")
	m.Sample("fv_retention_holds", float64(s.Holds))
	m.Family("fv_retention_holds_pending", "gauge", "Holds this process still has to write to, or remove from, one site.")
	m.Sample("fv_retention_holds_pending", float64(s.PendingHolds))
}
