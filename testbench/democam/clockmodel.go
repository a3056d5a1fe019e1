package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Limits of a ClockModel, wide enough for any real camera (a clock never set is decades off)
// and narrow enough to keep the arithmetic exact.
const (
	maxClockOffset = 100 * 365 * 24 * time.Hour
	maxDriftPPM    = 10000
	maxSendDelay   = time.Minute
	minSRInterval  = 100 * time.Millisecond
)

// WallMode is how a camera's wall clock (the one its sender reports show) keeps time.
type WallMode uint8

const (
	// WallFree: the wall clock runs off the camera's oscillator, as the RTP clock does. It
	// starts Offset away from true time and drifts with the oscillator.
	WallFree WallMode = iota
	// WallNTP: the wall clock is locked to an NTP server that is Offset away from true time
	// (zero for a good one); only the RTP clock drifts.
	WallNTP
)

func (m WallMode) String() string {
	if m == WallNTP {
		return "ntp"
	}
	return "free"
}

// ClockModel is the ground truth of a camera's clocks and of its path, measured against
// true time (the clock of the host democam runs on).
//
// The camera's oscillator runs at (1 + DriftPPM·10⁻⁶) times true speed. The camera captures
// a frame every frame period of its oscillator, so frames come slightly faster or slower
// than nominal, and stamps it with the RTP time of its oscillator (from a random initial
// timestamp). Its wall clock follows Wall. Its sender reports, when on, pair the wall
// clock's time with the RTP time of the same instant — wrong by as much as the wall clock
// is. A frame leaves Delay after its capture, plus a random jitter.
//
// The zero value is a perfect camera that sends sender reports every 10 s: no offset, no
// drift, no delay, no SEI.
type ClockModel struct {
	// Offset is the wall clock minus true time at the start.
	Offset time.Duration
	// DriftPPM is the oscillator's rate error in parts per million; positive runs fast.
	DriftPPM float64
	// Wall says whether the wall clock drifts with the oscillator or is locked to NTP.
	Wall WallMode
	// NoSenderReports turns RTCP sender reports off; else they go every SRInterval (10 s
	// when zero).
	NoSenderReports bool
	SRInterval      time.Duration
	// Delay is the constant time from capture to sending (encoding, a slow link).
	Delay time.Duration
	// Jitter is the mean of an exponentially distributed extra delay of each frame, as a
	// loaded link adds; frames still leave in order.
	Jitter time.Duration
	// SpikeEvery, SpikeFor and SpikeDelay model a congested link (a 4G cell filling its
	// buffers): for the last SpikeFor of every SpikeEvery since the start, frames leave
	// SpikeDelay later. All zero: no spikes.
	SpikeEvery, SpikeFor, SpikeDelay time.Duration
	// TruthSEI stamps every video frame with its true capture time (see package truth).
	TruthSEI bool
}

// Validate says what is out of range.
func (m ClockModel) Validate() error {
	switch {
	case m.Offset > maxClockOffset || m.Offset < -maxClockOffset:
		return fmt.Errorf("clock offset %v is out of range: use at most ±%v", m.Offset, maxClockOffset)
	case math.IsNaN(m.DriftPPM) || math.Abs(m.DriftPPM) > maxDriftPPM:
		return fmt.Errorf("drift %v ppm is out of range: use -%d to %d ppm", m.DriftPPM, maxDriftPPM, maxDriftPPM)
	case m.Wall > WallNTP:
		return fmt.Errorf("wall clock mode %d is unknown: use free or ntp", m.Wall)
	case m.SRInterval != 0 && m.SRInterval < minSRInterval:
		return fmt.Errorf("sender report interval %v is too short: use at least %v", m.SRInterval, minSRInterval)
	case m.Delay < 0 || m.Delay > maxSendDelay:
		return fmt.Errorf("send delay %v is out of range: use 0 to %v", m.Delay, maxSendDelay)
	case m.Jitter < 0 || m.Jitter > maxSendDelay:
		return fmt.Errorf("jitter %v is out of range: use 0 to %v", m.Jitter, maxSendDelay)
	case m.SpikeEvery == 0 && m.SpikeFor == 0 && m.SpikeDelay == 0:
	case m.SpikeEvery <= 0 || m.SpikeFor <= 0 || m.SpikeFor >= m.SpikeEvery:
		return fmt.Errorf("delay spikes of %v every %v: set spike-every and spike-for, with spike-for shorter, such as spike-every=30s,spike-for=3s",
			m.SpikeFor, m.SpikeEvery)
	case m.SpikeDelay <= 0 || m.SpikeDelay > maxSendDelay:
		return fmt.Errorf("spike delay %v is out of range: use more than 0 up to %v, such as spike-delay=600ms", m.SpikeDelay, maxSendDelay)
	}
	return nil
}

func (m ClockModel) srInterval() time.Duration {
	if m.SRInterval == 0 {
		return 10 * time.Second
	}
	return m.SRInterval
}

// rate is the oscillator's speed relative to true time.
func (m ClockModel) rate() float64 {
	return 1 + m.DriftPPM*1e-6
}

// trueElapsed converts oscillator time since the start into true time since the start.
func (m ClockModel) trueElapsed(camera time.Duration) time.Duration {
	if m.DriftPPM == 0 {
		return camera
	}
	return time.Duration(math.Round(float64(camera) / m.rate()))
}

// cameraElapsed converts true time since the start into oscillator time since the start.
func (m ClockModel) cameraElapsed(elapsed time.Duration) time.Duration {
	if m.DriftPPM == 0 {
		return elapsed
	}
	return time.Duration(math.Round(float64(elapsed) * m.rate()))
}

// wallAt returns the camera's wall clock at true time start+elapsed.
func (m ClockModel) wallAt(start time.Time, elapsed time.Duration) time.Time {
	if m.Wall == WallNTP {
		return start.Add(m.Offset + elapsed)
	}
	return start.Add(m.Offset + m.cameraElapsed(elapsed))
}

// sendDelay returns the delay from capture to sending of a frame captured at elapsed (true
// time since the start), jitter aside.
func (m ClockModel) sendDelay(elapsed time.Duration) time.Duration {
	if m.SpikeEvery > 0 && elapsed%m.SpikeEvery >= m.SpikeEvery-m.SpikeFor {
		return m.Delay + m.SpikeDelay
	}
	return m.Delay
}

// jitter draws the extra delay of one frame.
func (m ClockModel) jitter(r *rand.Rand) time.Duration {
	if m.Jitter <= 0 {
		return 0
	}
	// capped so that a rare huge draw does not stall the camera.
	return time.Duration(math.Min(r.ExpFloat64(), 20) * float64(m.Jitter))
}

func (m ClockModel) String() string {
	sr := "off"
	if !m.NoSenderReports {
		sr = "every " + m.srInterval().String()
	}
	spikes := ""
	if m.SpikeEvery > 0 {
		spikes = fmt.Sprintf(" spikes=+%v for %v every %v", m.SpikeDelay, m.SpikeFor, m.SpikeEvery)
	}
	return fmt.Sprintf("offset=%v drift=%gppm wall=%v sr=%s delay=%v jitter=%v%s sei=%v",
		m.Offset, m.DriftPPM, m.Wall, sr, m.Delay, m.Jitter, spikes, m.TruthSEI)
}

// Set changes one setting from its command-line form: offset=1.5s, drift=80ppm,
// wall=free|ntp, sr=true|false, sr-interval=2s, delay=40ms, jitter=5ms, spike-every=30s,
// spike-for=3s, spike-delay=600ms, sei=true|false.
func (m *ClockModel) Set(key, value string) error {
	var err error
	switch key {
	case "offset":
		m.Offset, err = time.ParseDuration(value)
	case "drift":
		m.DriftPPM, err = ParsePPM(value)
	case "wall":
		switch value {
		case "free":
			m.Wall = WallFree
		case "ntp":
			m.Wall = WallNTP
		default:
			err = fmt.Errorf("use free or ntp")
		}
	case "sr":
		var on bool
		on, err = strconv.ParseBool(value)
		m.NoSenderReports = !on
	case "sr-interval":
		m.SRInterval, err = time.ParseDuration(value)
	case "delay":
		m.Delay, err = time.ParseDuration(value)
	case "jitter":
		m.Jitter, err = time.ParseDuration(value)
	case "spike-every":
		m.SpikeEvery, err = time.ParseDuration(value)
	case "spike-for":
		m.SpikeFor, err = time.ParseDuration(value)
	case "spike-delay":
		m.SpikeDelay, err = time.ParseDuration(value)
	case "sei":
		m.TruthSEI, err = strconv.ParseBool(value)
	default:
		return fmt.Errorf("unknown camera clock setting %q: use offset, drift, wall, sr, sr-interval, delay, jitter, "+
			"spike-every, spike-for, spike-delay or sei", key)
	}
	if err != nil {
		return fmt.Errorf("camera clock setting %s=%q: %w", key, value, err)
	}
	return nil
}

// ParsePPM reads a rate error such as "80ppm", "-60ppm", "+90 ppm" or "12.5".
func ParsePPM(s string) (float64, error) {
	t := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "ppm"))
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q is not a rate error: write parts per million, such as 80ppm or -60ppm", s)
	}
	return v, nil
}

// CameraClock overrides the clock model of one served camera.
type CameraClock struct {
	// Camera is the camera number (1 for /cam1).
	Camera int
	// Settings are key=value pairs applied in order to the base model (see ClockModel.Set).
	Settings [][2]string
}

// ParseCameraClock reads the value of a -clock flag: "N:key=value,key=value", such as
// "2:offset=1.7s,drift=90ppm,sr=false".
func ParseCameraClock(s string) (CameraClock, error) {
	num, rest, ok := strings.Cut(s, ":")
	n, err := strconv.Atoi(strings.TrimSpace(num))
	if !ok || err != nil || n < 1 {
		return CameraClock{}, fmt.Errorf("camera clock %q: start with the camera number and a colon, such as 2:offset=1.7s,drift=90ppm", s)
	}
	cc := CameraClock{Camera: n}
	var probe ClockModel
	for _, kv := range strings.Split(rest, ",") {
		if strings.TrimSpace(kv) == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return CameraClock{}, fmt.Errorf("camera clock %q: %q is not key=value", s, kv)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if err := probe.Set(k, v); err != nil {
			return CameraClock{}, fmt.Errorf("camera %d: %w", n, err)
		}
		cc.Settings = append(cc.Settings, [2]string{k, v})
	}
	if len(cc.Settings) == 0 {
		return CameraClock{}, fmt.Errorf("camera clock %q sets nothing: add settings such as offset=1.7s", s)
	}
	return cc, nil
}

// Apply returns base with the camera's settings applied.
func (cc CameraClock) Apply(base ClockModel) (ClockModel, error) {
	for _, kv := range cc.Settings {
		if err := base.Set(kv[0], kv[1]); err != nil {
			return base, fmt.Errorf("camera %d: %w", cc.Camera, err)
		}
	}
	if err := base.Validate(); err != nil {
		return base, fmt.Errorf("camera %d: %w", cc.Camera, err)
	}
	return base, nil
}

// Profiles are named sets of camera clocks for -profile.
var profiles = map[string]struct {
	about   string
	cameras int
	clocks  []string
}{
	"skewed": {
		about:   "four cameras with wrong clocks, every frame stamped with its true capture time",
		cameras: 4,
		clocks: []string{
			"1:offset=0s,drift=0ppm,sr=true,sei=true",
			"2:offset=1.7s,drift=90ppm,sr=true,sei=true",
			"3:offset=-2.3s,drift=-60ppm,sr=false,sei=true",
			"4:offset=0s,drift=90ppm,wall=ntp,sr=true,sr-interval=2s,sei=true",
		},
	},
}

// profile returns the camera count and clocks of a named profile.
func profile(name string) (int, []CameraClock, error) {
	p, ok := profiles[name]
	if !ok {
		var names []string
		for n, p := range profiles {
			names = append(names, fmt.Sprintf("%s (%s)", n, p.about))
		}
		return 0, nil, fmt.Errorf("unknown profile %q: use one of %s", name, strings.Join(names, ", "))
	}
	var out []CameraClock
	for _, s := range p.clocks {
		cc, err := ParseCameraClock(s)
		if err != nil {
			return 0, nil, fmt.Errorf("profile %s: %w", name, err)
		}
		out = append(out, cc)
	}
	return p.cameras, out, nil
}
