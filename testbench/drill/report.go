// Package drill is the disaster-recovery drill, automated: TestDrill runs the
// real processes (MinIO as the primary store, versitygw as the off-site copy,
// demo cameras with true capture times, the SFU, ingest), records known
// content, cuts the primary store and then the primary SFU, measures
// detection, switch-over and recovery (RTO) and what was lost (RPO), checks
// live view, call join and playback, restores and resynchronises, and writes
// a report (Markdown and JSON) that compares the figures with the seed's
// limits and ours.
//
// This file holds the report: what the drill measured and how it is written.
package drill

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Limits are the recovery objectives a drill is held to.
type Limits struct {
	Name string  `json:"name"`
	RPO  Seconds `json:"rpo_s"`
	RTO  Seconds `json:"rto_s"`
}

var (
	// SeedLimits are the seeds' objectives (their manual drill took 1 h 56 min).
	SeedLimits = Limits{Name: "seed", RPO: Seconds(2 * time.Hour), RTO: Seconds(30 * time.Minute)}
	// OurLimits are ours.
	OurLimits = Limits{Name: "ours", RPO: Seconds(10 * time.Second), RTO: Seconds(60 * time.Second)}
)

// SeedManualDrill is how long the seeds' manual drill took.
const SeedManualDrill = time.Hour + 56*time.Minute

// Seconds is a duration written as seconds in JSON.
type Seconds time.Duration

// MarshalJSON writes the duration in seconds, to the millisecond.
func (s Seconds) MarshalJSON() ([]byte, error) {
	return []byte(fmt.Sprintf("%.3f", time.Duration(s).Seconds())), nil
}

// UnmarshalJSON reads seconds.
func (s *Seconds) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*s = Seconds(f * float64(time.Second))
	return nil
}

// String is the duration rounded for people: milliseconds under a minute.
func (s Seconds) String() string {
	d := time.Duration(s)
	switch {
	case d >= time.Hour:
		return d.Round(time.Minute).String()
	case d >= time.Minute:
		return d.Round(time.Second).String()
	default:
		return d.Round(time.Millisecond).String()
	}
}

// Report is what one drill measured.
type Report struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Wall     Seconds   `json:"wall_s"`
	Params   Params    `json:"params"`
	// Steps are the drill's steps in order, each timed.
	Steps []Step `json:"steps"`
	// Objectives are the measured RPO and RTO figures against the limits.
	Objectives []Objective `json:"objectives"`
	// Sources is what each source had off-site when the primary was cut.
	Sources []SourceRPO `json:"sources"`
	// Checks are the functional checks.
	Checks []Check `json:"checks"`
	// Notes are observations that are not pass/fail.
	Notes  []string `json:"notes,omitempty"`
	Limits []Limits `json:"limits"`
	Pass   bool     `json:"pass"`
}

// Params are the drill's settings.
type Params struct {
	Record          Seconds `json:"record_s"`
	Cameras         int     `json:"cameras"`
	SegmentDuration Seconds `json:"segment_duration_s"`
	Window          Seconds `json:"rpo_window_s"`
}

// Step is one timed step.
type Step struct {
	Name string `json:"name"`
	// At is when the step began, from the start of the drill.
	At     Seconds `json:"at_s"`
	Took   Seconds `json:"took_s"`
	OK     bool    `json:"ok"`
	Detail string  `json:"detail,omitempty"`
}

// Objective is one measured RPO or RTO figure.
type Objective struct {
	// Kind is "RPO" or "RTO".
	Kind     string  `json:"kind"`
	Name     string  `json:"name"`
	Measured Seconds `json:"measured_s"`
	// Measure says from what event to what event the figure runs.
	Measure  string `json:"measure"`
	SeedPass bool   `json:"seed_pass"`
	OurPass  bool   `json:"our_pass"`
}

// NewObjective judges a measured figure against both limits.
func NewObjective(kind, name, measure string, d time.Duration) Objective {
	seed, ours := SeedLimits.RTO, OurLimits.RTO
	if kind == "RPO" {
		seed, ours = SeedLimits.RPO, OurLimits.RPO
	}
	return Objective{Kind: kind, Name: name, Measure: measure, Measured: Seconds(d),
		SeedPass: d <= time.Duration(seed), OurPass: d <= time.Duration(ours)}
}

// SourceRPO is one source's recordings around the cut.
type SourceRPO struct {
	Source string `json:"source"`
	// AtPrimary counts the segments of the window at the primary just
	// before the cut; Offsite those at the off-site copy at the cut.
	AtPrimary int `json:"at_primary"`
	Offsite   int `json:"offsite"`
	// Missing are segments of the window at the primary but not off-site
	// at the cut (in flight).
	Missing []string `json:"missing_offsite,omitempty"`
	// NewestOffsite is the capture end of the newest segment off-site.
	NewestOffsite time.Time `json:"newest_offsite_capture_end"`
	// Lost is the capture time lost had the primary site been lost at the
	// cut: from the first capture instant not off-site to the cut.
	Lost Seconds `json:"lost_s"`
	// RecorderRPO is what the recorder itself reported as its RPO.
	RecorderRPO Seconds `json:"recorder_rpo_s"`
}

// Check is one pass/fail check.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// Judge sets Pass: every step and check passed and every objective met
// our limits.
func (r *Report) Judge() {
	r.Pass = len(r.Steps) > 0
	for _, s := range r.Steps {
		r.Pass = r.Pass && s.OK
	}
	for _, c := range r.Checks {
		r.Pass = r.Pass && c.OK
	}
	for _, o := range r.Objectives {
		r.Pass = r.Pass && o.OurPass && o.SeedPass
	}
}

func mark(ok bool) string {
	if ok {
		return "pass"
	}
	return "**FAIL**"
}

// cell makes text safe in a Markdown table cell.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// Markdown renders the report for people.
func (r *Report) Markdown() string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	verdict := "PASSED"
	if !r.Pass {
		verdict = "FAILED"
	}
	w("# Disaster-recovery drill: %s\n\n", verdict)
	w("Run %s, %s of wall time (the seeds' manual drill took %s). Recorded %s of %d cameras in %s segments before the cut.\n\n",
		r.Started.UTC().Format(time.RFC3339), r.Wall, SeedManualDrill, r.Params.Record, r.Params.Cameras, r.Params.SegmentDuration)

	w("## Recovery objectives\n\n")
	w("| | figure | measured | seed limit | seed | our target | ours |\n|---|---|---|---|---|---|---|\n")
	for _, o := range r.Objectives {
		seed, ours := SeedLimits.RTO, OurLimits.RTO
		if o.Kind == "RPO" {
			seed, ours = SeedLimits.RPO, OurLimits.RPO
		}
		w("| %s | %s | %s | ≤ %s | %s | ≤ %s | %s |\n", o.Kind, cell(o.Name), o.Measured, seed, mark(o.SeedPass), ours, mark(o.OurPass))
	}
	w("\n")
	for _, o := range r.Objectives {
		w("- %s %s: %s\n", o.Kind, o.Name, o.Measure)
	}

	w("\n## Steps\n\n| at | step | took | result | detail |\n|---|---|---|---|---|\n")
	for _, s := range r.Steps {
		w("| %s | %s | %s | %s | %s |\n", s.At, cell(s.Name), s.Took, mark(s.OK), cell(s.Detail))
	}

	w("\n## Off-site copy at the cut (RPO)\n\n")
	w("| source | at primary | off-site | missing off-site | newest off-site capture end | capture lost | recorder RPO |\n|---|---|---|---|---|---|---|\n")
	for _, s := range r.Sources {
		missing := "none"
		if len(s.Missing) > 0 {
			missing = strings.Join(s.Missing, ", ")
		}
		w("| %s | %d | %d | %s | %s | %s | %s |\n", s.Source, s.AtPrimary, s.Offsite, cell(missing),
			s.NewestOffsite.UTC().Format("15:04:05.000"), s.Lost, s.RecorderRPO)
	}

	w("\n## Checks\n\n| check | result | detail |\n|---|---|---|\n")
	for _, c := range r.Checks {
		w("| %s | %s | %s |\n", cell(c.Name), mark(c.OK), cell(c.Detail))
	}
	if len(r.Notes) > 0 {
		w("\n## Notes\n\n")
		for _, n := range r.Notes {
			w("- %s\n", n)
		}
	}
	return b.String()
}

// Write writes drill.md and drill.json into dir, creating it.
func (r *Report) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("drill report: %w", err)
	}
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("drill report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "drill.json"), append(j, '\n'), 0o644); err != nil {
		return fmt.Errorf("drill report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "drill.md"), []byte(r.Markdown()), 0o644); err != nil {
		return fmt.Errorf("drill report: %w", err)
	}
	return nil
}
