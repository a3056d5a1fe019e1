package clocksim

import (
	"fmt"
	"math"
	"slices"
	"time"

	tsync "fieldvideo/internal/sync"
)

// Scenario is a camera over a path for a duration, from a seed.
type Scenario struct {
	Name     string
	Camera   Camera
	Path     Path
	Duration time.Duration
	Seed     uint64
}

// Scenarios returns the standard scenarios, each duration long.
func Scenarios(duration time.Duration, seed uint64) []Scenario {
	half := duration / 2
	cam := func(c Camera) Camera {
		c.EncodeDelay = 15 * time.Millisecond
		if c.WallLocked || c.NTPStepAt > 0 {
			c.WallWander = 500 * time.Microsecond
		}
		return c
	}
	list := []Scenario{
		{Name: "sr-ntp-refclk", Camera: cam(Camera{SkewPPM: 37, WallLocked: true, RefClock: true, SenderReports: true})},
		{Name: "sr-ntp-unsignalled", Camera: cam(Camera{SkewPPM: -64, WallLocked: true, SenderReports: true})},
		{Name: "sr-wall-offset-drift", Camera: cam(Camera{SkewPPM: -85, WallOffset: -3200 * time.Millisecond, SenderReports: true})},
		{Name: "no-sr-4g", Camera: cam(Camera{SkewPPM: 92})},
		{Name: "ntp-step", Camera: cam(Camera{SkewPPM: 60, WallOffset: 2400 * time.Millisecond, SenderReports: true, NTPStepAt: half * 4 / 5})},
		{Name: "ssrc-change", Camera: cam(Camera{SkewPPM: -23, WallLocked: true, RefClock: true, SenderReports: true,
			RebootAt: half * 6 / 5, RebootGap: 4 * time.Second})},
		{Name: "whip-abs-capture-time", Camera: cam(Camera{SkewPPM: 12, WallLocked: true, SenderReports: true,
			SRInterval: time.Second, AbsCaptureTime: true})},
	}
	for i := range list {
		list[i].Path = Mobile4G(duration)
		list[i].Duration = duration
		list[i].Seed = seed + uint64(i)*7919
	}
	return list
}

// SDP returns the SDP a camera of the scenario would announce.
func (s Scenario) SDP() []byte {
	refclk := ""
	if s.Camera.RefClock {
		refclk = "a=ts-refclk:ntp=pool.ntp.org\r\na=mediaclk:direct=0\r\n"
	}
	return []byte("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=cam\r\nt=0 0\r\n" +
		"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n" + refclk)
}

// Result is the accuracy of internal/sync on one scenario. Errors are of
// frames from convergence on: against the true capture time while the track
// trusts a wall clock, and against the true capture time plus the constant
// delay it could not observe (minus the path delay it assumed) while it is
// aligned on arrivals.
type Result struct {
	Scenario string
	Frames   int
	// Converge is the time from the first packet until the track converged.
	Converge         time.Duration
	P50, P95, P99    time.Duration
	Max              time.Duration
	WallFrames       int
	WallP99          time.Duration
	ArrivalFrames    int
	ArrivalP99       time.Duration
	ArrivalAbsP50    time.Duration // arrival-aligned frames against the true capture time
	MaxCorrection    time.Duration // largest change of error from one frame to the next
	Honest           float64       // share of frames whose error is within the estimate
	ConvergedShare   float64       // share of frames after convergence flagged converged
	Final            tsync.Health
	ParseRefClockErr error
}

// Run feeds a scenario's events to a sync.Track and measures it.
func Run(s Scenario) (Result, error) {
	res := Result{Scenario: s.Name, Converge: -1}
	clocks, err := tsync.RefClocksFromSDP(s.SDP())
	if err != nil {
		return res, fmt.Errorf("scenario %s: %w", s.Name, err)
	}
	tr, err := tsync.NewTrack(tsync.TrackParams{ClockRate: 90000, RefClock: clocks[0]})
	if err != nil {
		return res, err
	}
	evs := Generate(s.Camera, s.Path, s.Duration, s.Seed)
	var all, wall, arr, absArr []float64
	var first time.Time
	var prevOut, prevTrue time.Time
	havePrev, converged := false, false
	honest, convFrames := 0, 0
	var maxCorr time.Duration
	for _, ev := range evs {
		if first.IsZero() {
			first = ev.Arrival
		}
		switch ev.Kind {
		case EventSenderReport:
			tr.SenderReport(ev.SSRC, ev.SRNTP, ev.SRRTP, ev.Arrival)
			continue
		case EventFrame:
		}
		if ev.AbsCaptureTime != nil {
			act, err := tsync.UnmarshalAbsCaptureTime(ev.AbsCaptureTime)
			if err != nil {
				return res, err
			}
			tr.AbsCaptureTime(ev.SSRC, ev.RTP, act, ev.Arrival)
		}
		out, errEst := tr.Frame(ev.SSRC, ev.RTP, ev.Arrival)
		h := tr.Health(ev.Arrival)
		res.Frames++
		if h.Converged && !converged {
			converged = true
			res.Converge = ev.Arrival.Sub(first)
		}
		if converged {
			ref := ev.Capture
			if h.Trust == tsync.TrustArrival {
				ref = ref.Add(ev.ConstDelay - h.PathDelay)
			}
			e := math.Abs(float64(out.Sub(ref)))
			all = append(all, e)
			if h.Trust == tsync.TrustArrival {
				arr = append(arr, e)
				absArr = append(absArr, math.Abs(float64(out.Sub(ev.Capture))))
			} else {
				wall = append(wall, e)
			}
			if e <= float64(errEst) {
				honest++
			}
			if h.Converged {
				convFrames++
			}
			if havePrev {
				c := (out.Sub(prevOut) - ev.Capture.Sub(prevTrue)).Abs()
				maxCorr = max(maxCorr, c)
			}
		}
		prevOut, prevTrue, havePrev = out, ev.Capture, true
	}
	if len(all) == 0 {
		return res, fmt.Errorf("scenario %s: the track never converged", s.Name)
	}
	res.P50, res.P95, res.P99, res.Max = quantile(all, 0.5), quantile(all, 0.95), quantile(all, 0.99), quantile(all, 1)
	res.WallFrames, res.WallP99 = len(wall), quantile(wall, 0.99)
	res.ArrivalFrames, res.ArrivalP99 = len(arr), quantile(arr, 0.99)
	res.ArrivalAbsP50 = quantile(absArr, 0.5)
	res.MaxCorrection = maxCorr
	res.Honest = float64(honest) / float64(len(all))
	res.ConvergedShare = float64(convFrames) / float64(len(all))
	res.Final = tr.Health(evs[len(evs)-1].Arrival)
	return res, nil
}

func quantile(v []float64, q float64) time.Duration {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	i = max(0, min(len(s)-1, i))
	return time.Duration(s[i])
}
