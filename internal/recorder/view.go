package recorder

import "time"

// View is a recorder's state as the APIs report it: durations in seconds,
// names in snake case.
type View struct {
	RPOSeconds    float64       `json:"rpo_seconds"`
	SpoolBytes    int64         `json:"spool_bytes"`
	MaxSpoolBytes int64         `json:"max_spool_bytes"`
	SpoolSegments int           `json:"spool_segments"`
	SpoolFull     bool          `json:"spool_full"`
	DiskFreeBytes int64         `json:"disk_free_bytes"`
	Alarms        []Alarm       `json:"alarms"`
	Sources       []SourceView  `json:"sources"`
	Stores        []StoreView   `json:"stores"`
	Reconcile     ReconcileView `json:"reconcile"`
}

// SourceView is one source's recording.
type SourceView struct {
	Name          string    `json:"name"`
	Recording     bool      `json:"recording"`
	Paused        bool      `json:"paused,omitempty"`
	RPOSeconds    float64   `json:"rpo_seconds"`
	Oldest        time.Time `json:"oldest_unconfirmed,omitzero"`
	Segments      uint64    `json:"segments"`
	MediaBytes    uint64    `json:"media_bytes"`
	SkippedTracks []string  `json:"skipped_tracks,omitempty"`
}

// StoreView is one site.
type StoreView struct {
	Role           string    `json:"role"`
	Name           string    `json:"name"`
	Up             bool      `json:"up"`
	DownSince      time.Time `json:"down_since,omitzero"`
	LastError      string    `json:"last_error,omitempty"`
	Conflicts      uint64    `json:"conflicts,omitempty"`
	BacklogSegs    int       `json:"backlog_segments"`
	BacklogBytes   int64     `json:"backlog_bytes"`
	Uploaded       uint64    `json:"uploaded"`
	UploadFailures uint64    `json:"upload_failures"`
}

// ReconcileView is the reconciler's work.
type ReconcileView struct {
	Runs            uint64    `json:"runs"`
	RepairedPrimary uint64    `json:"repaired_primary"`
	RepairedOffsite uint64    `json:"repaired_offsite"`
	Mismatches      uint64    `json:"mismatches"`
	LastRun         time.Time `json:"last_run,omitzero"`
	LastError       string    `json:"last_error,omitempty"`
}

// View returns the recorder's state for an API.
func (r *Recorder) View() View {
	s := r.Stats()
	v := View{RPOSeconds: s.RPO.Seconds(), SpoolBytes: s.SpoolBytes, MaxSpoolBytes: s.MaxSpoolBytes,
		SpoolSegments: s.SpoolSegments, SpoolFull: s.SpoolFull, DiskFreeBytes: s.DiskFreeBytes, Alarms: s.Alarms,
		Sources: []SourceView{}, Stores: []StoreView{},
		Reconcile: ReconcileView{Runs: s.Reconcile.Runs, RepairedPrimary: s.Reconcile.RepairedPrimary,
			RepairedOffsite: s.Reconcile.RepairedOffsite, Mismatches: s.Reconcile.Mismatches,
			LastRun: s.Reconcile.LastRun, LastError: s.Reconcile.LastError}}
	if v.Alarms == nil {
		v.Alarms = []Alarm{}
	}
	for _, src := range s.Sources {
		v.Sources = append(v.Sources, SourceView{Name: src.Name, Recording: src.Recording, Paused: src.Paused, RPOSeconds: src.RPO.Seconds(),
			Oldest: src.Oldest, Segments: src.Segments, MediaBytes: src.MediaBytes, SkippedTracks: src.SkippedTracks})
	}
	for _, st := range s.Stores {
		v.Stores = append(v.Stores, StoreView{Role: st.Role, Name: st.Name, Up: st.Up, DownSince: st.DownSince, LastError: st.LastError, Conflicts: st.Conflicts,
			BacklogSegs: st.Backlog.Segments, BacklogBytes: st.Backlog.Bytes, Uploaded: st.Uploaded, UploadFailures: st.Failures})
	}
	return v
}
