// Package sync puts every track of every source on one time baseline: the
// ingest host's wall clock, assumed NTP-synchronised. For each frame it gives
// the capture time on that baseline and an estimate of its error, and for each
// track it reports the health of the alignment (what it rests on, clock skew,
// offset, age of the last sender report, whether it has converged).
//
// It is pure code: no goroutines, no I/O and no reading of the clock. Every
// call takes the times it needs (the arrival time of a packet, "now" for
// Health), so it runs the same on a simulated clock (testbench/clocksim) as in
// the ingest.
//
// # Model
//
// A camera samples a frame at true time t and stamps it with an RTP timestamp
// from a media clock that runs off its oscillator: the RTP clock has an offset
// and a rate error (skew, typically within ±100 ppm, seconds per day). The
// camera may also have a wall clock, synchronised (NTP, PTP) or not, which it
// shows in RTCP sender reports (SR: a wall clock time and the RTP time of the
// same instant) or, for WebRTC publishers, in the abs-capture-time RTP header
// extension (the wall clock time at which each frame was captured). The frame
// then crosses a path whose delay is a constant part (propagation, encoding)
// plus a variable part (queueing on 4G: heavy-tailed, with spikes, reordering
// and loss), and a path change can step the constant part.
//
// Each Track has its own RTP clock, so an RTP track gets its own Track; a
// source's audio and video tracks each have one.
//
// # Methods
//
// Sender clock (sender reports, abs-capture-time): a least-squares line from
// RTP time to the sender's wall clock over the last 16 reports, with the
// slope drawn towards the nominal clock rate while few reports are in
// (ridge regression), so that one report already gives a usable mapping. A
// report that lies off the line by more than 3 ms plus the line's scatter is
// held back; if the next report agrees with it and not with the line, the
// sender's clock has stepped (NTP resync) and the line restarts from the two.
// An SSRC change or an RTP timestamp jump (reboot) resets the track.
//
// Whether the sender's wall clock can be the baseline is decided from the
// arrivals: the minimum delay it implies (earliest arrival minus the wall
// clock's capture time) must not be negative (frames cannot arrive before they
// were captured) and not implausibly long (TrackParams.MaxPathDelay, 200 ms by
// default; 2 s when the clock is signalled). RFC 7273 signalling
// (a=ts-refclk, a=mediaclk; see ParseRefClock) saying the clock is NTP, PTP or
// GNSS locked gives TrustRefClock; an unsignalled clock that passes the check
// gives TrustSenderReports. A wall clock that fails it (a camera whose clock
// was never set, or is seconds off) is not used: its offset is measured
// (Health.WallOffset) and the track is aligned on arrivals instead.
//
// Arrival times: the lower envelope of the arrival delays. For each frame the
// point (x, y) = (RTP time in nominal seconds, arrival − x) lies on or above a
// line whose slope is the clock skew and whose height is the clock offset plus
// the minimum delay. The estimator keeps the minimum of each 250 ms bucket
// over the last 20 s and fits the lower convex hull edge that spans the mean x
// — the line below all points that is closest to them on average (Moon,
// Skelly and Towsley, "Estimation and removal of clock skew from network delay
// measurements", 1999). It was chosen over the alternatives because
//   - queueing delay is one-sided: it only ever adds. A Kalman filter or a
//     regression assumes zero-mean noise and is pulled up by heavy tails and
//     500 ms spikes, while the envelope ignores them;
//   - a plain windowed minimum cannot follow skew (100 ppm is 2 ms in a 20 s
//     window) and jumps when the minimum leaves the window; the hull fits the
//     skew from the same minima;
//   - bucket minima keep it to 81 points and no allocation, whatever the frame
//     rate.
//
// Until the points span 8 s the slope is taken from the previous fit (0 at
// first) and the line is placed under the lowest point. Path changes move
// the line: at once when a frame arrives more than 3 ms below it (the path got
// faster), and after 1 s of frames all more than 5 ms above it (slower). The
// skew survives both, and resets too: it belongs to the camera's oscillator.
//
// # Limits
//
// The constant part of the one-way delay is not observable from arrivals
// alone: a camera 40 ms away and a camera whose clock is 40 ms behind look the
// same. Arrival alignment therefore removes the variable part only, and
// subtracts TrackParams.PathDelay as the constant part — or, better, the
// delay the track measured itself during a period when its sender's wall
// clock was trusted (Health.PathDelayMeasured), which carries it through a
// reboot or an SR outage. Health.ErrEst of an arrival-aligned track covers the
// variable part only; Trust says so. Cameras on similar links stay aligned
// with each other to within the difference of their constant delays.
//
// A path change that slows the path is seen only after about a second: for
// that second capture times are late by the change (the error estimate says
// so). A trusted wall clock is only as good as its synchronisation: a
// clock that is a few tens of milliseconds off, but not enough to look
// implausible, is taken as it is; TrackParams.WallAccuracy (2 ms by default)
// is the error assumed for it.
//
// # Output
//
// Frame never moves a track's capture times by more than TrackParams.MaxStep
// (30 ms by default, under one frame at 30 fps) from one frame to the next
// relative to the RTP clock: a correction, such as the switch from arrival
// alignment to a sender clock that has just become trusted, is slewed over
// several frames, and the remaining correction is added to the error
// estimate. Only the first frame after a reset, and corrections over 2 s, are
// applied at once.
package sync
