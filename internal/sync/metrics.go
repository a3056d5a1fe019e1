package sync

import "fieldvideo/internal/metrics"

// ClockRow is one track's alignment, labelled for metrics.
type ClockRow struct {
	Source, Track string
	Info          ClockInfo
}

// WriteMetrics writes the alignment of every track as Prometheus metrics
// under prefix (e.g. "fv_source" gives fv_source_clock_error_seconds).
func WriteMetrics(m *metrics.Writer, prefix string, rows []ClockRow) {
	families := []struct {
		name, typ, help string
		val             func(ClockInfo) (float64, bool)
	}{
		{"clock_error_seconds", "gauge", "Estimated error of capture times on the common baseline (arrival trust: variable part only).",
			func(c ClockInfo) (float64, bool) { return c.ErrorMS / 1000, c.ErrorMS >= 0 }},
		{"clock_converged", "gauge", "1 when the alignment has converged.",
			func(c ClockInfo) (float64, bool) { return metrics.Bool(c.Converged), true }},
		{"clock_skew_ppm", "gauge", "Rate error of the source's media clock against the baseline, in parts per million.",
			func(c ClockInfo) (float64, bool) { return c.SkewPPM, !c.Upstream }},
		{"clock_offset_seconds", "gauge", "Source's wall clock (sender reports) minus the baseline.",
			func(c ClockInfo) (float64, bool) { return c.OffsetMS / 1000, !c.Upstream }},
		{"clock_report_age_seconds", "gauge", "Time since the last sender report or abs-capture-time.",
			func(c ClockInfo) (float64, bool) { return c.ReportAgeMS / 1000, c.ReportAgeMS >= 0 }},
	}
	for _, f := range families {
		name := prefix + "_" + f.name
		m.Family(name, f.typ, f.help)
		for _, r := range rows {
			if v, ok := f.val(r.Info); ok {
				m.Sample(name, v, "source", r.Source, "track", r.Track)
			}
		}
	}
	name := prefix + "_clock_trust"
	m.Family(name, "gauge", "What the alignment rests on: 1 for the current trust level (unaligned, arrival, sender-reports, refclk).")
	for _, r := range rows {
		m.Sample(name, 1, "source", r.Source, "track", r.Track, "trust", r.Info.Trust)
	}
}
