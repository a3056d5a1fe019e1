package recorder

import (
	"fmt"
	"sort"
	"time"

	"fieldvideo/internal/metrics"
)

// Stats is a snapshot of the recorder.
type Stats struct {
	At time.Time
	// RPO is the recovery point: At minus the capture start of the oldest
	// segment (of any source) not yet confirmed off-site, the segment being
	// written included, or of the pause of a source not recorded while the
	// spool is full; zero when everything recorded is off-site.
	RPO     time.Duration
	Sources []SourceStats
	Stores  []StoreStats // primary, then off-site

	SpoolBytes, MaxSpoolBytes int64
	SpoolSegments             int
	// SpoolFull is the alarm: the spool is full of segments not yet
	// confirmed at both sites, and recording is stopped.
	SpoolFull       bool
	SpoolFullSince  time.Time
	SpoolFullEvents uint64
	// Recovered counts segments closed at their last complete part after an
	// abrupt stop; Evicted segments confirmed at both sites and removed from
	// the spool; Lost segments the spool could not deliver (missing or
	// damaged on disk).
	Recovered, Evicted, Lost uint64
	// MediaBytes is the RTP payload recorded; SpoolWrittenBytes what was
	// written to the spool disk for it (segments, manifests, journal).
	MediaBytes, SpoolWrittenBytes uint64
	// OffsiteLagP50 and OffsiteLagP99 estimate the time from a segment's
	// capture end to its confirmation off-site (upper bucket bounds).
	OffsiteLagP50, OffsiteLagP99 time.Duration
	Reconcile                    ReconcileStats
	// SpoolFullDisk says the spool's disk filled up (rather than the
	// spool reaching max_spool_bytes); DiskFreeBytes is what the disk has
	// free (-1 unknown); ReserveGone is when the spool's reserve was given
	// up to the journal, zero while it is in place.
	SpoolFullDisk bool
	DiskFreeBytes int64
	ReserveGone   time.Time
	// Alarms are the conditions an operator must act on, oldest first.
	Alarms []Alarm
}

// Alarm is a condition an operator must act on.
type Alarm struct {
	// Kind is spool_full, disk_full, store_down, conflict, mismatch,
	// damaged or reserve_used.
	Kind    string    `json:"kind"`
	Since   time.Time `json:"since,omitzero"`
	Message string    `json:"message"`
}

// alarms lists what s says an operator must act on.
func (s *Stats) alarms() []Alarm {
	var out []Alarm
	if s.SpoolFull {
		kind := "spool_full"
		if s.SpoolFullDisk {
			kind = "disk_full"
		}
		out = append(out, Alarm{Kind: kind, Since: s.SpoolFullSince, Message: fullMessage(s.SpoolFullDisk)})
	}
	if !s.ReserveGone.IsZero() {
		out = append(out, Alarm{Kind: "reserve_used", Since: s.ReserveGone,
			Message: "the spool's disk filled up and its reserve was given to the journal; free space on that disk"})
	}
	for _, st := range s.Stores {
		if !st.Up {
			out = append(out, Alarm{Kind: "store_down", Since: st.DownSince,
				Message: fmt.Sprintf("the %s store %s cannot be written: %s; %d segments wait in the spool", st.Role, st.Name, st.LastError, st.Backlog.Segments)})
		}
		if st.Conflicts > 0 {
			out = append(out, Alarm{Kind: "conflict", Since: st.LastConflictAt,
				Message: fmt.Sprintf("%d segments' keys hold other content at the %s store; they are kept in the spool, never overwritten: %s", st.Conflicts, st.Role, st.LastConflict)})
		}
	}
	if s.Reconcile.Mismatches > 0 {
		out = append(out, Alarm{Kind: "mismatch", Message: fmt.Sprintf("%d objects differ between the sites or from their manifest (latest: %s); neither copy is overwritten", s.Reconcile.Mismatches, s.Reconcile.LastMismatch)})
	}
	if s.Lost > 0 {
		out = append(out, Alarm{Kind: "damaged", Message: fmt.Sprintf("%d spooled segments were missing or damaged on the spool disk (see the spool's quarantine folder)", s.Lost)})
	}
	return out
}

// SourceStats describe one source.
type SourceStats struct {
	Name string
	// Recording is true while the source's media is being written; Paused
	// while it is live but refused because the spool is full.
	Recording, Paused bool
	// RPO is the recovery point of this source (see Stats.RPO); Oldest the
	// capture start it is measured from.
	RPO    time.Duration
	Oldest time.Time
	// Units and MediaBytes were received; Samples written.
	Units, MediaBytes, Samples uint64
	Segments, Parts            uint64
	WrittenBytes               uint64
	// Dropped: before the first keyframe or parameter sets
	// (WaitingKeyframe), too late for their segment (Late), undecodable
	// (DecodeErrors), or refused while the spool was full (SpoolFull).
	DroppedWaitingKeyframe, DroppedLate, DecodeErrors, DroppedSpoolFull uint64
	// FramesRepaired counts video frames recorded whole because a lost packet's
	// retransmission was waited for; GapsGivenUp losses that never came back (what
	// depended on them waited for a keyframe).
	FramesRepaired, GapsGivenUp uint64
	// SkippedTracks explains tracks that are not recorded.
	SkippedTracks []string
	// Layer is the stream track of the simulcast layer being recorded (-1: none yet) and
	// LayerSwitches how often the recording moved to another layer, for a simulcast
	// publication.
	Layer         *int   `json:",omitempty"`
	LayerSwitches uint64 `json:",omitempty"`
}

// Stats returns a snapshot.
func (r *Recorder) Stats() Stats {
	now := r.p.Now()
	s := Stats{At: now, MaxSpoolBytes: r.sp.max}
	oldest := r.sp.oldestUnconfirmed()
	for src, start := range r.rec.oldestPending() {
		if old, ok := oldest[src]; !ok || start < old {
			oldest[src] = start
		}
	}
	r.mu.Lock()
	names := map[string]bool{}
	for n := range r.stats {
		names[n] = true
	}
	for n := range oldest {
		names[n] = true
	}
	for n := range names {
		ss := SourceStats{Name: n, Recording: r.recs[n] != nil}
		start, ok := oldest[n]
		if st := r.stats[n]; st != nil && st.paused.Load() {
			ss.Recording, ss.Paused = false, true
			// what comes while paused is not recorded at all: it is lost from the
			// pause on, as if written and never confirmed
			if since := st.pausedSince.Load(); since != 0 && (!ok || since < start) {
				start, ok = since, true
			}
		}
		if ok {
			ss.Oldest = time.Unix(0, start)
			ss.RPO = max(now.Sub(ss.Oldest), 0)
			s.RPO = max(s.RPO, ss.RPO)
		}
		if st := r.stats[n]; st != nil {
			ss.Units, ss.MediaBytes, ss.Samples = st.units.Load(), st.mediaBytes.Load(), st.samples.Load()
			ss.Segments, ss.Parts, ss.WrittenBytes = st.segments.Load(), st.parts.Load(), st.written.Load()
			ss.DroppedWaitingKeyframe, ss.DroppedLate = st.waitKey.Load(), st.late.Load()
			ss.DecodeErrors, ss.DroppedSpoolFull = st.decodeErr.Load(), st.fullDrops.Load()
			ss.FramesRepaired, ss.GapsGivenUp = st.repaired.Load(), st.gapsGivenUp.Load()
			if sk, ok := st.skipped.Load().([]string); ok {
				ss.SkippedTracks = sk
			}
			if st.layered.Load() {
				l := int(st.layer.Load())
				ss.Layer, ss.LayerSwitches = &l, st.layerSwitches.Load()
			}
			s.MediaBytes += ss.MediaBytes
		}
		s.Sources = append(s.Sources, ss)
	}
	r.mu.Unlock()
	sort.Slice(s.Sources, func(a, b int) bool { return s.Sources[a].Name < s.Sources[b].Name })

	jsize, _, jwritten := r.sp.j.stats()
	r.sp.mu.Lock()
	b := r.sp.backlogLocked()
	s.SpoolBytes = r.sp.bytes + jsize
	s.SpoolSegments = len(r.sp.segs)
	s.SpoolFull, s.SpoolFullSince, s.SpoolFullEvents = r.sp.full, r.sp.fullSince, r.sp.fullEvents
	s.SpoolFullDisk, s.ReserveGone = r.sp.fullDisk, r.sp.reserveGone
	s.Evicted, s.Lost = r.sp.evicted, r.sp.lost
	r.sp.mu.Unlock()
	s.Recovered = r.sp.recovered.Load()
	s.SpoolWrittenBytes = r.sp.written.Load() + jwritten
	for i, u := range r.ups {
		s.Stores = append(s.Stores, u.stats(b[i]))
	}
	s.OffsiteLagP50, s.OffsiteLagP99 = r.sp.lag.Quantile(0.5), r.sp.lag.Quantile(0.99)
	s.Reconcile = r.rec.stats()
	s.DiskFreeBytes = r.sp.freeBytes()
	s.Alarms = s.alarms()
	return s
}

// WriteMetrics writes the recorder's metrics in the Prometheus text format.
func (r *Recorder) WriteMetrics(m *metrics.Writer) {
	s := r.Stats()
	gauge := func(name, help string, v float64) {
		m.Family(name, "gauge", help)
		m.Sample(name, v)
	}
	gauge("fv_recorder_rpo_seconds", "Recovery point: age of the oldest recorded media not yet confirmed off-site (the segment being written counts from its start; a source paused for a full spool from the pause).", s.RPO.Seconds())
	gauge("fv_recorder_spool_bytes", "Bytes in the local spool (segments, manifests, journal).", float64(s.SpoolBytes))
	gauge("fv_recorder_spool_max_bytes", "Limit of the local spool.", float64(s.MaxSpoolBytes))
	gauge("fv_recorder_spool_segments", "Segments in the local spool.", float64(s.SpoolSegments))
	gauge("fv_recorder_spool_full", "1 while the spool is full of unconfirmed segments and recording is stopped (alarm).", metrics.Bool(s.SpoolFull))
	gauge("fv_recorder_spool_disk_free_bytes", "Bytes free on the spool's disk.", float64(s.DiskFreeBytes))
	m.Family("fv_recorder_alarm", "gauge", "1 for each condition an operator must act on, by kind (spool_full, disk_full, reserve_used, store_down, conflict, mismatch, damaged).")
	for _, kind := range []string{"spool_full", "disk_full", "reserve_used", "store_down", "conflict", "mismatch", "damaged"} {
		on := false
		for _, a := range s.Alarms {
			on = on || a.Kind == kind
		}
		m.Sample("fv_recorder_alarm", metrics.Bool(on), "kind", kind)
	}
	counter := func(name, help string, v uint64) {
		m.Family(name, "counter", help)
		m.Sample(name, float64(v))
	}
	counter("fv_recorder_spool_full_total", "Times the spool filled up.", s.SpoolFullEvents)
	counter("fv_recorder_segments_recovered_total", "Segments cut at their last complete part after an abrupt stop.", s.Recovered)
	counter("fv_recorder_segments_evicted_total", "Segments confirmed at both sites and removed from the spool.", s.Evicted)
	counter("fv_recorder_segments_lost_total", "Segments the spool could not deliver (missing or damaged on disk).", s.Lost)
	counter("fv_recorder_media_bytes_total", "RTP payload bytes recorded.", s.MediaBytes)
	counter("fv_recorder_spool_written_bytes_total", "Bytes written to the spool disk (segments, manifests, journal).", s.SpoolWrittenBytes)

	perSource := []struct {
		name, typ, help string
		v               func(SourceStats) float64
	}{
		{"fv_recorder_source_rpo_seconds", "gauge", "Recovery point of one source.", func(x SourceStats) float64 { return x.RPO.Seconds() }},
		{"fv_recorder_source_recording", "gauge", "1 while the source is being recorded.", func(x SourceStats) float64 { return metrics.Bool(x.Recording) }},
		{"fv_recorder_source_segments_total", "counter", "Segments closed.", func(x SourceStats) float64 { return float64(x.Segments) }},
		{"fv_recorder_source_media_bytes_total", "counter", "RTP payload bytes received.", func(x SourceStats) float64 { return float64(x.MediaBytes) }},
		{"fv_recorder_source_written_bytes_total", "counter", "Segment bytes written to the spool.", func(x SourceStats) float64 { return float64(x.WrittenBytes) }},
		{"fv_recorder_source_frames_repaired_total", "counter", "Video frames recorded whole after waiting for a lost packet's retransmission.", func(x SourceStats) float64 { return float64(x.FramesRepaired) }},
		{"fv_recorder_source_gaps_given_up_total", "counter", "Lost video packets whose retransmission never came; the frames depending on them waited for a keyframe.", func(x SourceStats) float64 { return float64(x.GapsGivenUp) }},
	}
	for _, f := range perSource {
		m.Family(f.name, f.typ, f.help)
		for _, x := range s.Sources {
			m.Sample(f.name, f.v(x), "source", x.Name)
		}
	}
	m.Family("fv_recorder_source_dropped_total", "counter", "Units or samples not recorded, by reason.")
	for _, x := range s.Sources {
		for _, d := range []struct {
			reason string
			v      uint64
		}{{"waiting_keyframe", x.DroppedWaitingKeyframe}, {"late", x.DroppedLate}, {"decode_error", x.DecodeErrors}, {"spool_full", x.DroppedSpoolFull}} {
			m.Sample("fv_recorder_source_dropped_total", float64(d.v), "source", x.Name, "reason", d.reason)
		}
	}

	perStore := []struct {
		name, typ, help string
		v               func(StoreStats) float64
	}{
		{"fv_recorder_store_up", "gauge", "1 while uploads to the store succeed.", func(x StoreStats) float64 { return metrics.Bool(x.Up) }},
		{"fv_recorder_store_backlog_segments", "gauge", "Segments waiting in the spool for the store.", func(x StoreStats) float64 { return float64(x.Backlog.Segments) }},
		{"fv_recorder_store_backlog_bytes", "gauge", "Bytes waiting in the spool for the store.", func(x StoreStats) float64 { return float64(x.Backlog.Bytes) }},
		{"fv_recorder_store_uploaded_segments_total", "counter", "Segments stored and verified.", func(x StoreStats) float64 { return float64(x.Uploaded) }},
		{"fv_recorder_store_uploaded_bytes_total", "counter", "Bytes stored and verified.", func(x StoreStats) float64 { return float64(x.UploadedBytes) }},
		{"fv_recorder_store_upload_failures_total", "counter", "Failed uploads.", func(x StoreStats) float64 { return float64(x.Failures) }},
		{"fv_recorder_store_conflicts_total", "counter", "Segments whose key held other content at the store (kept in the spool, never overwritten).", func(x StoreStats) float64 { return float64(x.Conflicts) }},
	}
	for _, f := range perStore {
		m.Family(f.name, f.typ, f.help)
		for _, x := range s.Stores {
			m.Sample(f.name, f.v(x), "role", x.Role, "store", x.Name)
		}
	}
	m.Family("fv_recorder_reconcile_repaired_total", "counter", "Objects copied between sites by the reconciler, by destination.")
	m.Sample("fv_recorder_reconcile_repaired_total", float64(s.Reconcile.RepairedPrimary), "role", "primary")
	m.Sample("fv_recorder_reconcile_repaired_total", float64(s.Reconcile.RepairedOffsite), "role", "offsite")
	counter("fv_recorder_reconcile_runs_total", "Reconciler passes.", s.Reconcile.Runs)
	counter("fv_recorder_reconcile_failures_total", "Failed reconciler listings or copies.", s.Reconcile.Failures)
	counter("fv_recorder_reconcile_mismatches_total", "Objects whose copies differ between sites or from their manifest.", s.Reconcile.Mismatches)
	m.Family("fv_recorder_offsite_lag_seconds", "histogram", "Time from a segment's capture end to its confirmation off-site.")
	r.sp.lag.Write(m, "fv_recorder_offsite_lag_seconds")
}
