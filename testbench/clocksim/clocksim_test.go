package clocksim

import (
	"reflect"
	"testing"
	"time"

	tsync "fieldvideo/internal/sync"
)

// The targets of internal/sync against ground truth.
const (
	wallP99Target    = 5 * time.Millisecond  // sources whose wall clock can be trusted
	arrivalP99Target = 15 * time.Millisecond // sources aligned on arrivals: the variable part
	convergeTarget   = 10 * time.Second
	stepTarget       = 33 * time.Millisecond // one frame at 30 fps
	honestTarget     = 0.95
)

func TestScenarios(t *testing.T) {
	want := map[string]tsync.Trust{
		"sr-ntp-refclk":         tsync.TrustRefClock,
		"sr-ntp-unsignalled":    tsync.TrustSenderReports,
		"sr-wall-offset-drift":  tsync.TrustArrival, // its wall clock is seconds off: only arrivals can align it
		"no-sr-4g":              tsync.TrustArrival,
		"ntp-step":              tsync.TrustSenderReports,
		"ssrc-change":           tsync.TrustRefClock,
		"whip-abs-capture-time": tsync.TrustSenderReports,
	}
	for _, seed := range []uint64{1, 2, 3} {
		for _, s := range Scenarios(300*time.Second, seed) {
			t.Run(s.Name, func(t *testing.T) {
				r, err := Run(s)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("seed %d %-22s %-14s converge %-7v p50 %-9v p95 %-9v p99 %-9v max %-9v wall p99 %-9v arrival p99 %-9v arrival abs p50 %-9v max step %-9v honest %.1f%%",
					seed, r.Scenario, r.Final.Trust, r.Converge.Round(time.Millisecond), r.P50.Round(time.Microsecond),
					r.P95.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Max.Round(time.Microsecond),
					r.WallP99.Round(time.Microsecond), r.ArrivalP99.Round(time.Microsecond),
					r.ArrivalAbsP50.Round(time.Microsecond), r.MaxCorrection.Round(time.Microsecond), 100*r.Honest)
				if r.Final.Trust != want[s.Name] {
					t.Errorf("trust at the end %v, want %v (health %+v)", r.Final.Trust, want[s.Name], r.Final)
				}
				target := wallP99Target
				if want[s.Name] == tsync.TrustArrival {
					target = arrivalP99Target
				}
				if r.P99 > target {
					t.Errorf("p99 error %v, want at most %v", r.P99, target)
				}
				if r.Converge < 0 || r.Converge > convergeTarget {
					t.Errorf("converged after %v, want within %v", r.Converge, convergeTarget)
				}
				if r.MaxCorrection > stepTarget {
					t.Errorf("largest correction in one frame %v, want at most %v", r.MaxCorrection, stepTarget)
				}
				if r.Honest < honestTarget {
					t.Errorf("true error within the estimate for %.1f%% of frames, want %.0f%%", 100*r.Honest, 100*honestTarget)
				}
				if r.ConvergedShare < 0.95 {
					t.Errorf("converged for %.1f%% of frames after first converging", 100*r.ConvergedShare)
				}
			})
		}
	}
}

// TestScenarioEvents checks that the scenarios contain what they claim.
func TestScenarioEvents(t *testing.T) {
	for _, s := range Scenarios(300*time.Second, 1) {
		t.Run(s.Name, func(t *testing.T) {
			evs := Generate(s.Camera, s.Path, s.Duration, s.Seed)
			if again := Generate(s.Camera, s.Path, s.Duration, s.Seed); !reflect.DeepEqual(evs, again) {
				t.Fatal("the same seed gave different events")
			}
			frames, srs, acts, late, reordered := 0, 0, 0, 0, 0
			ssrcs := map[uint32]bool{}
			var lastCapture time.Time
			step := false
			for _, ev := range evs {
				if ev.Kind == EventSenderReport {
					srs++
					continue
				}
				frames++
				ssrcs[ev.SSRC] = true
				if ev.AbsCaptureTime != nil {
					acts++
				}
				d := ev.Arrival.Sub(ev.Capture) - ev.ConstDelay
				if d < 0 {
					t.Fatalf("a frame arrived %v before its constant delay", -d)
				}
				if d > 400*time.Millisecond {
					late++
				}
				if ev.Capture.Before(lastCapture) {
					reordered++
				}
				lastCapture = ev.Capture
				if ev.ConstDelay >= 15*time.Millisecond+s.Path.BaseDelay+s.Path.StepDelta {
					step = true
				}
			}
			sent := int(s.Duration.Seconds() * 25)
			if s.Camera.RebootAt > 0 {
				sent -= int(s.Camera.RebootGap.Seconds() * 25)
			}
			loss := 1 - float64(frames)/float64(sent)
			if loss < 0.01 || loss > 0.03 {
				t.Errorf("frame loss %.1f%%, want about 2%%", 100*loss)
			}
			if late < frames/200 || reordered == 0 || !step {
				t.Errorf("path: %d spikes, %d reordered frames, step %v", late, reordered, step)
			}
			if (srs > 0) != s.Camera.SenderReports || (acts > 0) != s.Camera.AbsCaptureTime {
				t.Errorf("%d sender reports, %d abs-capture-time frames", srs, acts)
			}
			if wantSSRCs := map[bool]int{false: 1, true: 2}[s.Camera.RebootAt > 0]; len(ssrcs) != wantSSRCs {
				t.Errorf("%d SSRCs, want %d", len(ssrcs), wantSSRCs)
			}
		})
	}
}
