package sync

import "math"

// Tuning of the sender-clock regression. Times are float64 nanoseconds.
const (
	wallSamples  = 16     // reports kept for the regression
	wallMaxSkew  = 500e-6 // largest believable RTP clock rate error
	wallTol      = 3e6    // a report further than this (plus the fit's own scatter) from the fit is suspect
	wallMinScat  = 0.3e6  // floor of the fit's scatter, so two reports do not claim perfection
	wallMinApart = 500e6  // abs-capture-time samples are taken at most this often
)

type wallSample struct{ x, w float64 }

// wallFit maps source time x (RTP time in nominal nanoseconds) to the
// sender's wall clock w by least squares over the recent sender reports (or
// abs-capture-time samples). A report that does not fit is held back; a
// second one that agrees with it, and not with the fit, is a clock step
// (NTP resync, reboot): the fit restarts from the two.
type wallFit struct {
	s       [wallSamples]wallSample
	head, n int
	pend    wallSample
	hasPend bool
	// The fit: w = w0 + slope*(x-x0).
	x0, w0, slope float64
	scatter       float64 // residual standard deviation
	sxx           float64
	lastX         float64
	steps, reject int
}

func (f *wallFit) reset() {
	steps, reject := f.steps, f.reject
	*f = wallFit{steps: steps, reject: reject}
}

func (f *wallFit) valid() bool { return f.n > 0 }

// at returns the fitted wall clock at x.
func (f *wallFit) at(x float64) float64 { return f.w0 + f.slope*(x-f.x0) }

// err is the fit's uncertainty at x (about two standard deviations).
func (f *wallFit) err(x float64) float64 {
	d := x - f.x0
	sd := math.Max(f.scatter, wallMinScat)
	return 2 * sd * math.Sqrt(1/float64(f.n)+d*d/f.sxx)
}

// add records a report; it returns true when it made the fit restart at a
// clock step.
func (f *wallFit) add(x, w float64) bool {
	s := wallSample{x, w}
	if f.n == 0 {
		f.push(s)
		f.fit()
		return false
	}
	res := w - f.at(x)
	tol := wallTol + 3*f.scatter + wallMaxSkew*math.Abs(x-f.lastX)
	if math.Abs(res) <= tol {
		f.hasPend = false
		f.push(s)
		f.fit()
		return false
	}
	if f.hasPend {
		dx := x - f.pend.x
		if dx > 0 && math.Abs((w-f.pend.w)-dx) <= wallTol+wallMaxSkew*dx {
			p := f.pend
			f.reset()
			f.steps++
			f.push(p)
			f.push(s)
			f.fit()
			return true
		}
	}
	f.reject++
	f.pend, f.hasPend = s, true
	return false
}

func (f *wallFit) push(s wallSample) {
	if f.n == wallSamples {
		f.head = (f.head + 1) % wallSamples
		f.n--
	}
	f.s[(f.head+f.n)%wallSamples] = s
	f.n++
	f.lastX = s.x
}

func (f *wallFit) fit() {
	var mx, mw float64
	for i := 0; i < f.n; i++ {
		s := f.s[(f.head+i)%wallSamples]
		mx += s.x
		mw += s.w
	}
	mx /= float64(f.n)
	mw /= float64(f.n)
	// Ridge regression of the slope towards the nominal 1: the prior weighs
	// as much as reports spread over a few seconds would.
	var sxx, sxd float64
	for i := 0; i < f.n; i++ {
		s := f.s[(f.head+i)%wallSamples]
		dx := s.x - mx
		sxx += dx * dx
		sxd += dx * ((s.w - mw) - dx)
	}
	const prior = (wallMinScat * wallMinScat) / (envPriorSkew * envPriorSkew)
	f.x0, f.w0, f.sxx = mx, mw, sxx+prior
	f.slope = 1 + sxd/f.sxx
	if math.Abs(f.slope-1) > wallMaxSkew {
		// The reports disagree with the nominal clock rate: keep the newest.
		last := f.s[(f.head+f.n-1)%wallSamples]
		f.head, f.n = 0, 0
		f.reject++
		f.push(last)
		f.x0, f.w0, f.slope, f.sxx, f.scatter = last.x, last.w, 1, prior, 0
		return
	}
	var ss float64
	for i := 0; i < f.n; i++ {
		s := f.s[(f.head+i)%wallSamples]
		r := s.w - f.at(s.x)
		ss += r * r
	}
	f.scatter = 0
	if f.n > 2 {
		f.scatter = math.Sqrt(ss / float64(f.n-2))
	}
}
