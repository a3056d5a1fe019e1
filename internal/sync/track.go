package sync

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Trust says what a track's capture times rest on.
type Trust uint8

// Trust levels, best first.
const (
	// TrustUnaligned: no frame yet (or just reset); capture times are not known.
	TrustUnaligned Trust = iota
	// TrustArrival: aligned on arrival times. The variable part of the path
	// delay is filtered out; the constant part is not observable and is taken
	// from TrackParams.PathDelay, or from an earlier trusted period of this
	// track. Health.ErrEst covers the variable part only.
	TrustArrival
	// TrustSenderReports: the sender's wall clock (sender reports or
	// abs-capture-time) is used as the baseline. Nothing signals that it is
	// synchronised, but it agrees with the arrival times: frames never arrive
	// before they were captured, nor later than TrackParams.MaxPathDelay.
	TrustSenderReports
	// TrustRefClock: the sender signalled (RFC 7273) that its wall clock is
	// locked to NTP, PTP or GNSS, and the arrival times do not contradict it.
	TrustRefClock
)

func (t Trust) String() string {
	switch t {
	case TrustArrival:
		return "arrival"
	case TrustSenderReports:
		return "sender-reports"
	case TrustRefClock:
		return "refclk"
	}
	return "unaligned"
}

// Defaults of TrackParams.
const (
	DefaultMaxPathDelay = 200 * time.Millisecond
	DefaultWallAccuracy = 2 * time.Millisecond
	DefaultMaxStep      = 30 * time.Millisecond
)

// Thresholds on the estimated error under which a track counts as converged.
const (
	ConvergedWall    = 5 * time.Millisecond
	ConvergedArrival = 10 * time.Millisecond
)

const (
	discontinuity = 10e9 // RTP and arrival clocks disagreeing by this much across one frame restart the track
	maxSlew       = 2e9  // a correction larger than this is applied at once, not slewed
	refclkMaxPath = 2e9  // frames arriving this long after a signalled clock says they were captured disprove it
	plausibleTol  = 5e6  // a synchronised sender may look this much ahead of the ingest clock
	untrustMargin = 50e6 // hysteresis for leaving the trusted state
)

// TrackParams configure a Track.
type TrackParams struct {
	// ClockRate is the RTP clock rate in Hz (90000 for video).
	ClockRate uint32
	// RefClock is the clock signalling of the track's SDP media section;
	// zero when none was signalled.
	RefClock RefClock
	// PathDelay is the assumed constant one-way delay from the source, used
	// by arrival alignment until the track measures it (while its sender's
	// wall clock is trusted). Zero means capture times of arrival-aligned
	// tracks are the earliest possible arrival times.
	PathDelay time.Duration
	// MaxPathDelay is the largest minimum one-way delay believable for a
	// sender whose wall clock is not signalled as synchronised: if frames
	// arrive later than this after the wall clock says they were captured,
	// the wall clock is taken to be wrong. Default DefaultMaxPathDelay.
	MaxPathDelay time.Duration
	// WallAccuracy is the assumed error of a trusted sender wall clock
	// relative to the ingest clock, added to the estimated error.
	// Default DefaultWallAccuracy.
	WallAccuracy time.Duration
	// MaxStep is the largest correction applied to capture times from one
	// frame to the next; larger corrections are slewed. Default
	// DefaultMaxStep.
	MaxStep time.Duration
}

// Health is the state of a track's clock alignment.
type Health struct {
	Trust Trust
	// ErrEst is the estimated error of the latest capture time (for
	// TrustArrival, of its variable part only); negative while unaligned.
	ErrEst time.Duration
	// Converged is true when ErrEst is below ConvergedWall (wall-clock trust)
	// or ConvergedArrival (arrival trust) and no slew is in progress.
	Converged bool
	// SkewPPM is the RTP clock's rate error relative to the ingest clock, in
	// parts per million (positive: the sender's clock runs fast).
	SkewPPM float64
	// HasWall is true when the track has sender reports or abs-capture-time;
	// WallOffset is then the sender's wall clock minus the baseline (near
	// zero when trusted; the measured offset otherwise).
	HasWall    bool
	WallOffset time.Duration
	// ReportAge is the time since the last sender report or abs-capture-time
	// sample was received; negative when there has been none.
	ReportAge time.Duration
	// PathDelay is the constant one-way delay: measured while the sender's
	// wall clock is trusted (PathDelayMeasured), else as configured.
	PathDelay         time.Duration
	PathDelayMeasured bool
	// Steps counts sender clock steps, Shifts path-delay level shifts,
	// Resets restarts on SSRC changes or RTP discontinuities, Jumps
	// corrections too large to slew (over 2 s), Rejected sender reports
	// that did not fit.
	Steps, Shifts, Resets, Jumps, Rejected int
}

// Track maps one RTP track's timestamps to capture times on the common
// baseline (the ingest host's clock). It is not safe for concurrent use: call
// it from the goroutine that reads the track.
type Track struct {
	p         TrackParams
	nsPerTick float64

	origin    time.Time // times are float64 ns since origin
	hasOrigin bool
	ssrc      uint32
	hasSSRC   bool

	// RTP unwrapping: ext is RTP ticks since the first timestamp seen.
	hasRTP     bool
	lastExt    int64
	last32     uint32
	hasFrame   bool
	frameU64   uint64
	frameExt   int64
	lastACTArr float64
	hasACT     bool

	env  envelope
	wall wallFit

	trustedWall bool
	pathDelay   float64
	pathLearned bool

	// Output state.
	hasPrev       bool
	prevX, prevA  float64
	prevOut       float64
	trust         Trust
	errEst        float64
	converged     bool
	lastReportArr float64
	hasReport     bool
	resets        int
	jumps         int
}

// NewTrack returns the estimator of one track.
func NewTrack(p TrackParams) (*Track, error) {
	if p.ClockRate == 0 {
		return nil, errors.New("sync: track clock rate is 0: take it from the SDP rtpmap (90000 for video)")
	}
	if p.PathDelay < 0 || p.MaxPathDelay < 0 || p.WallAccuracy < 0 || p.MaxStep < 0 {
		return nil, fmt.Errorf("sync: negative duration in track parameters %+v: use zero for the default", p)
	}
	if p.MaxPathDelay == 0 {
		p.MaxPathDelay = DefaultMaxPathDelay
	}
	if p.WallAccuracy == 0 {
		p.WallAccuracy = DefaultWallAccuracy
	}
	if p.MaxStep == 0 {
		p.MaxStep = DefaultMaxStep
	}
	return &Track{p: p, nsPerTick: 1e9 / float64(p.ClockRate), pathDelay: float64(p.PathDelay)}, nil
}

// rel converts t to float64 nanoseconds since the origin, setting the origin
// on first use.
func (t *Track) rel(at time.Time) float64 {
	if !t.hasOrigin {
		t.origin, t.hasOrigin = at, true
	}
	return float64(at.Sub(t.origin))
}

// Reset forgets everything tied to the RTP timeline (sender reports, the
// arrival envelope's level) and keeps what belongs to the camera (its clock
// skew, the measured path delay). Frame calls it on an SSRC change or an RTP
// discontinuity; call it when the source reconnects.
func (t *Track) Reset() {
	t.resets++
	t.env.reset(true)
	t.wall.reset()
	t.hasRTP, t.hasFrame, t.hasACT, t.hasPrev = false, false, false, false
	t.trustedWall, t.converged, t.trust = false, false, TrustUnaligned
}

// checkSSRC handles the SSRC of a packet: a new one restarts the track
// (when restart is true) or is refused.
func (t *Track) checkSSRC(ssrc uint32, restart bool) bool {
	if !t.hasSSRC {
		t.ssrc, t.hasSSRC = ssrc, true
		return true
	}
	if ssrc == t.ssrc {
		return true
	}
	if !restart {
		return false
	}
	t.Reset()
	t.ssrc = ssrc
	return true
}

// ext32 places a 32-bit RTP timestamp on the track's extended timeline.
func (t *Track) ext32(rtp uint32) int64 {
	if !t.hasRTP {
		t.hasRTP, t.lastExt, t.last32 = true, 0, rtp
		return 0
	}
	e := t.lastExt + int64(int32(rtp-t.last32))
	t.lastExt, t.last32 = e, rtp
	return e
}

// ext64 places an unwrapped RTP timestamp on the extended timeline.
func (t *Track) ext64(rtp uint64) int64 {
	if !t.hasFrame {
		e := t.ext32(uint32(rtp))
		t.hasFrame, t.frameU64, t.frameExt = true, rtp, e
		return e
	}
	e := t.frameExt + int64(rtp-t.frameU64)
	t.frameU64, t.frameExt = rtp, e
	t.lastExt, t.last32 = e, uint32(rtp)
	return e
}

// SenderReport records an RTCP sender report of the track: its SSRC, NTP
// timestamp and RTP timestamp, and when it arrived. Reports of another SSRC
// than the track's frames are ignored.
func (t *Track) SenderReport(ssrc uint32, ntp uint64, rtp uint32, arrival time.Time) {
	if ntp == 0 || !t.checkSSRC(ssrc, false) {
		return
	}
	a := t.rel(arrival)
	x := float64(t.ext32(rtp)) * t.nsPerTick
	w := float64(NTPToUnixNano(ntp, arrival.UnixNano()) - t.origin.UnixNano())
	t.addWall(x, w, a)
}

// AbsCaptureTime records the abs-capture-time extension of the frame with
// unwrapped RTP timestamp rtp (the same value later given to Frame). Samples
// are taken at most every half second.
func (t *Track) AbsCaptureTime(ssrc uint32, rtp uint64, act AbsCaptureTime, arrival time.Time) {
	if act.Timestamp == 0 || !t.checkSSRC(ssrc, true) {
		return
	}
	a := t.rel(arrival)
	if t.hasACT && a-t.lastACTArr < wallMinApart && a >= t.lastACTArr {
		return
	}
	t.lastACTArr, t.hasACT = a, true
	x := float64(t.ext64(rtp)) * t.nsPerTick
	w := float64(act.SenderTime(arrival).UnixNano() - t.origin.UnixNano())
	t.addWall(x, w, a)
}

func (t *Track) addWall(x, w, a float64) {
	if math.IsNaN(w) || math.IsInf(w, 0) {
		return
	}
	t.lastReportArr, t.hasReport = a, true
	if t.wall.add(x, w) {
		// The sender's clock stepped: earn trust again.
		t.trustedWall = false
	}
}

// Frame returns the capture time of the frame with unwrapped RTP timestamp
// rtp, received at arrival, and the estimated error of that time. It
// allocates nothing.
func (t *Track) Frame(ssrc uint32, rtp uint64, arrival time.Time) (time.Time, time.Duration) {
	t.checkSSRC(ssrc, true)
	a := t.rel(arrival)
	x := float64(t.ext64(rtp)) * t.nsPerTick
	if t.hasPrev && math.Abs((x-t.prevX)-(a-t.prevA)) > discontinuity {
		t.Reset()
		x = float64(t.ext64(rtp)) * t.nsPerTick
	}
	t.env.add(x, a)
	arrivalEst := x + t.env.at(x)

	est, errEst, slope := arrivalEst-t.pathDelay, t.env.err(x), 1+t.env.b
	trust := TrustArrival
	if t.wall.valid() && t.plausible(arrivalEst-t.wall.at(x)) {
		est = t.wall.at(x)
		errEst = t.wall.err(x) + float64(t.p.WallAccuracy)
		slope = t.wall.slope
		trust = TrustSenderReports
		if t.p.RefClock.Locked() {
			trust = TrustRefClock
		}
		if t.env.span >= envSlopeSpan/2 && t.env.err(x) < float64(ConvergedArrival) {
			t.pathDelay, t.pathLearned = arrivalEst-est, true
		}
	}

	out := est
	if t.hasPrev {
		pred := t.prevOut + (x-t.prevX)*slope
		if math.Abs(pred-est) <= maxSlew {
			step := float64(t.p.MaxStep)
			out = math.Max(pred-step, math.Min(pred+step, est))
		} else {
			t.jumps++
		}
	}
	errEst += math.Abs(out - est)

	limit := float64(ConvergedArrival)
	if trust != TrustArrival {
		limit = float64(ConvergedWall)
	}
	t.converged = errEst <= limit && math.Abs(out-est) < 1e6 && (trust != TrustArrival || t.env.span >= 2e9)
	t.trust, t.errEst = trust, errEst
	t.hasPrev, t.prevX, t.prevA, t.prevOut = true, x, a, out
	return t.origin.Add(dur(out)), dur(errEst)
}

// dur converts float64 nanoseconds to a Duration, saturating far from the
// limits so that adding it to a time cannot overflow.
func dur(ns float64) time.Duration {
	const limit = float64(1 << 62)
	switch {
	case math.IsNaN(ns):
		return 0
	case ns > limit:
		return 1 << 62
	case ns < -limit:
		return -1 << 62
	}
	return time.Duration(ns)
}

// plausible decides, with hysteresis, whether the sender's wall clock can be
// the baseline, given m, the minimum delay it implies (earliest arrival
// minus the wall clock's capture time).
func (t *Track) plausible(m float64) bool {
	lo, hi := -plausibleTol, float64(t.p.MaxPathDelay)
	if t.p.RefClock.Locked() {
		hi = math.Max(hi, refclkMaxPath)
	}
	if t.trustedWall {
		// Once trusted, frames arriving late do not contradict the clock —
		// a path that slows down for a while (4G queueing) looks the same —
		// only frames arriving before their capture time, or implausibly
		// late, do.
		lo -= plausibleTol
		hi = math.Max(hi+untrustMargin, refclkMaxPath)
	}
	t.trustedWall = m >= lo && m <= hi
	return t.trustedWall
}

// Health returns the state of the track's alignment at now.
func (t *Track) Health(now time.Time) Health {
	h := Health{
		Trust:             t.trust,
		ErrEst:            dur(t.errEst),
		Converged:         t.converged,
		ReportAge:         -1,
		PathDelay:         dur(t.pathDelay),
		PathDelayMeasured: t.pathLearned,
		Steps:             t.wall.steps,
		Shifts:            t.env.shifts,
		Resets:            t.resets,
		Jumps:             t.jumps,
		Rejected:          t.wall.reject,
	}
	if t.trust == TrustUnaligned {
		h.ErrEst = -1
	}
	slope := 1 + t.env.b
	if t.trustedWall {
		slope = t.wall.slope
	}
	h.SkewPPM = (1/slope - 1) * 1e6
	if t.wall.valid() && t.hasPrev {
		h.HasWall = true
		h.WallOffset = dur(t.wall.at(t.prevX) - t.prevOut)
	}
	if t.hasReport && t.hasOrigin {
		h.ReportAge = dur(float64(now.Sub(t.origin)) - t.lastReportArr)
	}
	return h
}
