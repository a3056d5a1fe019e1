// Package clocksim simulates cameras with known clocks behind a 4G path, so
// that internal/sync can be measured against ground truth. Everything runs on
// simulated time from a fixed seed: a run is deterministic and takes
// milliseconds.
//
// A camera has an oscillator with a rate error (skew), from which it derives
// its RTP clock and frame cadence, and a wall clock that is either locked to
// true time (NTP, with a small wander) or free-running from the oscillator with
// an initial offset. It may send RTCP sender reports, step its wall clock when
// NTP synchronises, reboot (new SSRC and RTP offset), and stamp frames with
// abs-capture-time as a WebRTC publisher does. The path adds a base delay that
// steps once mid-run, heavy-tailed jitter, rare 500 ms spikes, loss and
// reordering.
package clocksim

import (
	"math"
	"math/rand/v2"
	"sort"
	"time"

	tsync "fieldvideo/internal/sync"
)

// Camera describes a simulated camera's clocks and reports.
type Camera struct {
	ClockRate uint32  // RTP clock rate; default 90000
	FPS       int     // frames per second; default 25
	SkewPPM   float64 // oscillator rate error; positive runs fast
	// WallLocked makes the wall clock follow true time within WallWander.
	WallLocked bool
	WallWander time.Duration
	// WallOffset is the offset of a free-running wall clock at the start.
	WallOffset time.Duration
	// RefClock makes the SDP carry a=ts-refclk:ntp=... for the camera.
	RefClock bool
	// SenderReports turns RTCP sender reports on, every SRInterval
	// (default 5 s).
	SenderReports bool
	SRInterval    time.Duration
	// NTPStepAt, when non-zero, is when the wall clock gets locked (and
	// steps from its free-running value to true time).
	NTPStepAt time.Duration
	// RebootAt, when non-zero, is when the camera reboots: no frames for
	// RebootGap, then a new SSRC and a new random RTP offset.
	RebootAt  time.Duration
	RebootGap time.Duration
	// AbsCaptureTime stamps every frame with abs-capture-time.
	AbsCaptureTime bool
	// EncodeDelay is the constant time from capture to sending a frame.
	EncodeDelay time.Duration
}

// Path describes the network between camera and ingest.
type Path struct {
	BaseDelay    time.Duration
	JitterMean   time.Duration // exponential part of the jitter
	TailScale    time.Duration // Pareto part of the jitter (heavy tail)
	TailAlpha    float64
	SpikeProb    float64 // probability that a packet is delayed by SpikeDelay
	SpikeDelay   time.Duration
	Loss         float64
	ReorderProb  float64 // probability that a packet is held back up to ReorderDelay
	ReorderDelay time.Duration
	StepAt       time.Duration // when the base delay changes by StepDelta
	StepDelta    time.Duration
}

// Mobile4G is the default 4G path: 40 ms base delay, heavy-tailed jitter,
// 1% spikes of 500 ms, 2% loss, 1% reordering, and a 25 ms step up of the
// base delay half way.
func Mobile4G(duration time.Duration) Path {
	return Path{
		BaseDelay:    40 * time.Millisecond,
		JitterMean:   6 * time.Millisecond,
		TailScale:    2 * time.Millisecond,
		TailAlpha:    1.5,
		SpikeProb:    0.01,
		SpikeDelay:   500 * time.Millisecond,
		Loss:         0.02,
		ReorderProb:  0.01,
		ReorderDelay: 80 * time.Millisecond,
		StepAt:       duration / 2,
		StepDelta:    25 * time.Millisecond,
	}
}

// EventKind tells frames from sender reports.
type EventKind uint8

// Event kinds.
const (
	EventFrame EventKind = iota + 1
	EventSenderReport
)

// Event is one packet as the ingest sees it, with the ground truth of frames.
type Event struct {
	Kind    EventKind
	Arrival time.Time
	SSRC    uint32
	// RTP is the unwrapped RTP timestamp of a frame (as unit.Unit.RTPTime).
	RTP uint64
	// SRNTP and SRRTP are a sender report's timestamps.
	SRNTP uint64
	SRRTP uint32
	// AbsCaptureTime is the frame's abs-capture-time extension payload.
	AbsCaptureTime []byte
	// Capture is the frame's true capture time; ConstDelay the constant part
	// of its delay (encoding plus the path's base delay) at the time.
	Capture    time.Time
	ConstDelay time.Duration
}

// Epoch is the simulated time zero.
var Epoch = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// Generate returns the events of a camera over a path for duration, in
// arrival order.
func Generate(c Camera, p Path, duration time.Duration, seed uint64) []Event {
	if c.ClockRate == 0 {
		c.ClockRate = 90000
	}
	if c.FPS == 0 {
		c.FPS = 25
	}
	if c.SRInterval == 0 {
		c.SRInterval = 5 * time.Second
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	g := gen{c: c, p: p, rng: rng, eps: c.SkewPPM * 1e-6, wanderPhase: rng.Float64() * 2 * math.Pi}
	end := duration.Seconds()

	type segment struct{ start, end float64 }
	segs := []segment{{0, end}}
	if c.RebootAt > 0 && c.RebootAt < duration {
		segs = []segment{{0, c.RebootAt.Seconds()}, {(c.RebootAt + c.RebootGap).Seconds(), end}}
	}
	var evs []Event
	for _, s := range segs {
		ssrc := rng.Uint32()
		rtp0 := uint64(rng.Uint32())
		inc := float64(c.ClockRate) / float64(c.FPS)
		for k := 0; ; k++ {
			t := s.start + float64(k)/(float64(c.FPS)*(1+g.eps))
			if t >= s.end {
				break
			}
			ev := Event{
				Kind:       EventFrame,
				SSRC:       ssrc,
				RTP:        rtp0 + uint64(math.Round(float64(k)*inc)),
				Capture:    at(t),
				ConstDelay: c.EncodeDelay + g.base(t),
			}
			if c.AbsCaptureTime {
				ev.AbsCaptureTime = tsync.MarshalAbsCaptureTime(tsync.AbsCaptureTime{
					Timestamp: tsync.UnixNanoToNTP(at(g.wall(t)).UnixNano()),
				})
			}
			send := t + c.EncodeDelay.Seconds() + rng.Float64()*0.003
			if arr, ok := g.deliver(send); ok {
				ev.Arrival = at(arr)
				evs = append(evs, ev)
			}
		}
		if !c.SenderReports {
			continue
		}
		iv := c.SRInterval.Seconds()
		for ts := s.start + rng.Float64()*iv; ts < s.end; ts += iv {
			rtp := rtp0 + uint64(math.Round((1+g.eps)*(ts-s.start)*float64(c.ClockRate)))
			ev := Event{
				Kind:  EventSenderReport,
				SSRC:  ssrc,
				SRNTP: tsync.UnixNanoToNTP(at(g.wall(ts)).UnixNano()),
				SRRTP: uint32(rtp),
			}
			if arr, ok := g.deliver(ts); ok {
				ev.Arrival = at(arr)
				evs = append(evs, ev)
			}
		}
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].Arrival.Before(evs[j].Arrival) })
	return evs
}

type gen struct {
	c           Camera
	p           Path
	rng         *rand.Rand
	eps         float64
	wanderPhase float64
}

func at(sec float64) time.Time { return Epoch.Add(time.Duration(sec * 1e9)) }

// base returns the path's base delay plus encoding at true time t.
func (g *gen) base(t float64) time.Duration {
	d := g.p.BaseDelay
	if g.p.StepAt > 0 && t >= g.p.StepAt.Seconds() {
		d += g.p.StepDelta
	}
	return d
}

// wall returns the camera's wall clock at true time t, in seconds.
func (g *gen) wall(t float64) float64 {
	locked := g.c.WallLocked || (g.c.NTPStepAt > 0 && t >= g.c.NTPStepAt.Seconds())
	if locked {
		w := g.c.WallWander.Seconds()
		return t + w*math.Sin(2*math.Pi*t/97+g.wanderPhase) + 0.2*w*g.rng.NormFloat64()
	}
	return t + g.c.WallOffset.Seconds() + g.eps*t
}

// deliver returns the arrival time of a packet sent at t, or false if lost.
func (g *gen) deliver(t float64) (float64, bool) {
	if g.rng.Float64() < g.p.Loss {
		return 0, false
	}
	d := g.base(t).Seconds()
	if g.p.JitterMean > 0 {
		d += g.rng.ExpFloat64() * g.p.JitterMean.Seconds()
	}
	if g.p.TailScale > 0 && g.p.TailAlpha > 0 {
		d += math.Min(1, g.p.TailScale.Seconds()*(math.Pow(1-g.rng.Float64(), -1/g.p.TailAlpha)-1))
	}
	if g.rng.Float64() < g.p.SpikeProb {
		d += g.p.SpikeDelay.Seconds() * (0.8 + 0.4*g.rng.Float64())
	}
	if g.rng.Float64() < g.p.ReorderProb {
		d += g.rng.Float64() * g.p.ReorderDelay.Seconds()
	}
	return t + d, true
}
