package sync

import (
	"math"
	"testing"
	"time"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// camera is a small deterministic camera for unit tests: 25 fps at 90 kHz,
// a wall clock off by wallOff (stepping by step at stepAt), a path delay of
// 30 ms plus a repeating 0–9 ms jitter, sender reports every 5 s.
type camera struct {
	skew    float64 // ppm
	wallOff time.Duration
	stepAt  time.Duration
	step    time.Duration
	ssrc    uint32
	rtp0    uint64
	noSR    bool
}

func (c camera) wall(at time.Duration) time.Duration {
	w := at + c.wallOff
	if c.stepAt > 0 && at >= c.stepAt {
		w += c.step
	}
	return w
}

// run feeds frames for d and calls check with each frame's true capture,
// output and error estimate.
func (c camera) run(t *testing.T, tr *Track, from, d time.Duration, check func(truth, out time.Time, errEst time.Duration)) {
	t.Helper()
	eps := c.skew * 1e-6
	nextSR := from + 700*time.Millisecond
	for k := int(from.Seconds() * 25); ; k++ {
		at := time.Duration(float64(k) / 25 / (1 + eps) * 1e9)
		if at >= from+d {
			return
		}
		delay := 30*time.Millisecond + time.Duration(k*7%10)*time.Millisecond
		if !c.noSR && at >= nextSR {
			rtp := c.rtp0 + uint64(math.Round((1+eps)*at.Seconds()*90000))
			ntp := UnixNanoToNTP(t0.Add(c.wall(at)).UnixNano())
			tr.SenderReport(c.ssrc, ntp, uint32(rtp), t0.Add(at+delay))
			nextSR += 5 * time.Second
		}
		out, errEst := tr.Frame(c.ssrc, c.rtp0+uint64(k)*3600, t0.Add(at+delay))
		if check != nil {
			check(t0.Add(at), out, errEst)
		}
	}
}

func TestNewTrackErrors(t *testing.T) {
	if _, err := NewTrack(TrackParams{}); err == nil {
		t.Error("zero clock rate: no error")
	}
	if _, err := NewTrack(TrackParams{ClockRate: 90000, PathDelay: -1}); err == nil {
		t.Error("negative path delay: no error")
	}
	tr, err := NewTrack(TrackParams{ClockRate: 90000})
	if err != nil {
		t.Fatal(err)
	}
	h := tr.Health(t0)
	if h.Trust != TrustUnaligned || h.ErrEst >= 0 || h.ReportAge >= 0 || h.Converged {
		t.Errorf("health before any packet: %+v", h)
	}
}

func TestTrackSenderReports(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rc    RefClock
		trust Trust
	}{
		{"unsignalled", RefClock{}, TrustSenderReports},
		{"refclk", RefClock{Source: ClockNTP, Traceable: true}, TrustRefClock},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, _ := NewTrack(TrackParams{ClockRate: 90000, RefClock: tc.rc})
			c := camera{skew: 50, ssrc: 1, rtp0: 4294000000}
			var worst time.Duration
			c.run(t, tr, 0, 40*time.Second, func(truth, out time.Time, errEst time.Duration) {
				if out.Sub(t0) > 10*time.Second {
					worst = max(worst, out.Sub(truth).Abs())
					if out.Sub(truth).Abs() > errEst {
						t.Fatalf("error %v beyond estimate %v", out.Sub(truth), errEst)
					}
				}
			})
			if worst > time.Millisecond {
				t.Errorf("worst error %v after 10 s, want under 1 ms", worst)
			}
			h := tr.Health(t0.Add(41 * time.Second))
			if h.Trust != tc.trust || !h.Converged || !h.HasWall || math.Abs(h.SkewPPM-50) > 5 {
				t.Errorf("health %+v", h)
			}
			if h.ReportAge < time.Second || h.ReportAge > 6*time.Second {
				t.Errorf("report age %v", h.ReportAge)
			}
			if !h.PathDelayMeasured || (h.PathDelay-30*time.Millisecond).Abs() > 2*time.Millisecond {
				t.Errorf("measured path delay %v (measured %v), want 30 ms", h.PathDelay, h.PathDelayMeasured)
			}
		})
	}
}

func TestTrackClockStepIsSlewed(t *testing.T) {
	tr, _ := NewTrack(TrackParams{ClockRate: 90000})
	// The wall clock steps 100 ms back at 30 s: still plausible, so it is
	// followed, at no more than MaxStep per frame.
	c := camera{ssrc: 7, stepAt: 30 * time.Second, step: -100 * time.Millisecond}
	var prevOut, prevTruth time.Time
	c.run(t, tr, 0, 60*time.Second, func(truth, out time.Time, _ time.Duration) {
		if !prevOut.IsZero() && truth.Sub(t0) > 5*time.Second {
			if corr := (out.Sub(prevOut) - truth.Sub(prevTruth)).Abs(); corr > DefaultMaxStep+time.Millisecond {
				t.Fatalf("correction of %v in one frame", corr)
			}
		}
		prevOut, prevTruth = out, truth
	})
	h := tr.Health(t0.Add(time.Minute))
	if h.Steps != 1 {
		t.Errorf("%d clock steps seen, want 1", h.Steps)
	}
	if d := prevOut.Sub(prevTruth) + 100*time.Millisecond; d.Abs() > time.Millisecond {
		t.Errorf("after the step the output is %v off the new wall clock", d)
	}
}

func TestTrackImplausibleWallClock(t *testing.T) {
	tr, _ := NewTrack(TrackParams{ClockRate: 90000, PathDelay: 30 * time.Millisecond})
	c := camera{ssrc: 3, wallOff: -3 * time.Second, skew: -80}
	var last time.Duration
	c.run(t, tr, 0, 30*time.Second, func(truth, out time.Time, _ time.Duration) { last = out.Sub(truth) })
	h := tr.Health(t0.Add(30 * time.Second))
	if h.Trust != TrustArrival || !h.HasWall || (h.WallOffset+3*time.Second).Abs() > 5*time.Millisecond {
		t.Errorf("health %+v: want arrival trust and a -3 s wall offset", h)
	}
	if last.Abs() > 2*time.Millisecond {
		t.Errorf("arrival alignment with the right path delay is %v off", last)
	}
}

func TestTrackSSRC(t *testing.T) {
	tr, _ := NewTrack(TrackParams{ClockRate: 90000})
	c := camera{ssrc: 1, noSR: true}
	c.run(t, tr, 0, 5*time.Second, nil)
	tr.SenderReport(2, UnixNanoToNTP(t0.UnixNano()), 0, t0.Add(5*time.Second))
	if h := tr.Health(t0); h.HasWall || h.ReportAge >= 0 {
		t.Errorf("a report of another SSRC was used: %+v", h)
	}
	c.ssrc, c.rtp0, c.noSR = 2, 123456789, false
	c.run(t, tr, 8*time.Second, 20*time.Second, nil)
	h := tr.Health(t0.Add(30 * time.Second))
	if h.Resets != 1 || !h.HasWall || h.Trust != TrustSenderReports {
		t.Errorf("after an SSRC change: %+v", h)
	}
}

func TestTrackRTPDiscontinuity(t *testing.T) {
	tr, _ := NewTrack(TrackParams{ClockRate: 90000})
	c := camera{ssrc: 1, noSR: true}
	c.run(t, tr, 0, 5*time.Second, nil)
	c.rtp0 = 1 << 40 // same SSRC, timestamps jump by hours
	c.run(t, tr, 5*time.Second, 5*time.Second, nil)
	if h := tr.Health(t0); h.Resets != 1 {
		t.Errorf("%d resets, want 1", h.Resets)
	}
}

func TestFrameAllocatesNothing(t *testing.T) {
	tr, _ := NewTrack(TrackParams{ClockRate: 90000})
	c := camera{ssrc: 1}
	c.run(t, tr, 0, 30*time.Second, nil)
	k := uint64(30 * 25)
	allocs := testing.AllocsPerRun(1000, func() {
		k++
		tr.Frame(1, k*3600, t0.Add(time.Duration(k)*40*time.Millisecond+35*time.Millisecond))
	})
	if allocs != 0 {
		t.Fatalf("Frame allocates %v times per call", allocs)
	}
}

func BenchmarkFrame(b *testing.B) {
	tr, _ := NewTrack(TrackParams{ClockRate: 90000})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		at := time.Duration(i) * 40 * time.Millisecond
		if i%125 == 0 {
			tr.SenderReport(1, UnixNanoToNTP(t0.Add(at).UnixNano()), uint32(i*3600), t0.Add(at+30*time.Millisecond))
		}
		tr.Frame(1, uint64(i)*3600, t0.Add(at+time.Duration(30+i*7%10)*time.Millisecond))
	}
}

// A camera whose wall clock is trusted keeps it while its path slows down
// for a few seconds (4G queueing): late frames do not contradict the clock.
func TestTrustedClockSurvivesSlowPath(t *testing.T) {
	tr, err := NewTrack(TrackParams{ClockRate: 90000})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Unix(1_800_000_000, 0)
	const fps = 25
	for i := 0; i < 40*fps; i++ {
		capture := start.Add(time.Duration(i) * time.Second / fps)
		rtp := uint32(1000 + i*90000/fps)
		delay := 40 * time.Millisecond
		if i >= 20*fps && i < 23*fps {
			delay = 640 * time.Millisecond
		}
		arrival := capture.Add(delay)
		if i%fps == 0 {
			tr.SenderReport(7, UnixNanoToNTP(capture.UnixNano()), rtp, arrival)
		}
		got, _ := tr.Frame(7, uint64(rtp), arrival)
		if i < 5*fps {
			continue
		}
		if h := tr.Health(arrival); h.Trust != TrustSenderReports {
			t.Fatalf("frame %d (%.1f s): trust %s", i, float64(i)/fps, h.Trust)
		}
		if d := got.Sub(capture); d > 5*time.Millisecond || d < -5*time.Millisecond {
			t.Fatalf("frame %d (%.1f s): capture time off by %s", i, float64(i)/fps, d)
		}
	}
}
