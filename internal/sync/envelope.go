package sync

import "math"

// Tuning of the arrival envelope. Times are float64 nanoseconds.
const (
	envBucket    = 250e6 // width of one minimum bucket, in source time
	envWindow    = 20e9  // how much source time the fit looks back
	envSlopeSpan = 8e9   // shortest span from which the slope is fitted
	envMaxSkew   = 300e-6
	envPriorSkew = 100e-6 // slope uncertainty before any fit (camera clocks are within ±100 ppm)
	envDownThr   = 3e6    // a frame this far below the envelope moves it down at once
	envUpThr     = 5e6    // frames this far above it for envUpRun move it up
	envUpRun     = 1e9    // of arrival time
	envUpMinN    = 8
	envBuckets   = 96 // > envWindow/envBucket
)

type point struct{ x, y float64 }

// envelope estimates the lower envelope of arrival delays: for frames with
// source time x (RTP time in nominal nanoseconds) arriving at a, the points
// (x, y=a-x) lie on or above a line y = yc + b(x-xc) whose height is the
// clock offset plus the path's minimum delay and whose slope is the clock skew.
//
// It keeps the minimum of each envBucket of source time over the last
// envWindow and fits the line of Moon, Skelly and Towsley (1999): the lower
// convex hull edge that spans the mean x, which is the line under all points
// closest to them on average. Level shifts (path changes) move the line:
// at once when a frame arrives below it, after envUpRun when every frame
// arrives well above it.
type envelope struct {
	ring       [envBuckets]point
	head, n    int // ring[head] is the oldest closed bucket
	cur        point
	curStart   float64
	hasCur     bool
	dirty      bool
	fitted     bool
	xc, yc, b  float64 // the line
	slopeKnown bool    // b comes from a fit (or a previous one)
	meanGap    float64 // mean height of the bucket minima above the line
	span       float64 // source time covered by the points
	// A run of frames above the line by more than envUpThr.
	inRun    bool
	runStart float64 // arrival time of the run's first frame
	runLast  float64 // and of its latest
	runN     int
	runMin   point
	runGap   float64
	shifts   int
	hull     [envBuckets + 1]point // scratch
}

// reset forgets every point; the slope is kept when keepSlope is true, as
// it belongs to the camera's oscillator, not to the RTP timeline.
func (e *envelope) reset(keepSlope bool) {
	b, known := e.b, e.slopeKnown
	shifts := e.shifts
	*e = envelope{}
	e.shifts = shifts
	if keepSlope {
		e.b, e.slopeKnown = b, known
	}
}

// at returns the line's y at x.
func (e *envelope) at(x float64) float64 { return e.yc + e.b*(x-e.xc) }

// add records a frame and returns its height above the line before it was
// added (0 for the first frame).
func (e *envelope) add(x, a float64) float64 {
	y := a - x
	gap := 0.0
	if e.fitted {
		gap = y - e.at(x)
		switch {
		case gap < -envDownThr:
			e.shift(point{x, y})
			return gap
		case gap > envUpThr:
			if !e.inRun {
				e.inRun, e.runStart, e.runN, e.runMin, e.runGap = true, a, 0, point{x, y}, gap
			}
			e.runN++
			e.runLast = a
			if gap < e.runGap {
				e.runMin, e.runGap = point{x, y}, gap
			}
			if a-e.runStart >= envUpRun && e.runN >= envUpMinN {
				e.shift(e.runMin)
				return gap
			}
		default:
			e.inRun = false
		}
	}
	e.insert(point{x, y})
	if e.dirty {
		e.fit()
	}
	return gap
}

// shift restarts the envelope at p, keeping the slope.
func (e *envelope) shift(p point) {
	e.reset(true)
	e.shifts++
	e.insert(p)
	e.fit()
}

func (e *envelope) insert(p point) {
	if e.hasCur && p.x < e.curStart {
		// A late (reordered) frame: it waited longer than a frame captured
		// after it, so it cannot be the minimum.
		return
	}
	if !e.hasCur || p.x-e.curStart >= envBucket {
		if e.hasCur {
			e.push(e.cur)
		}
		e.cur, e.curStart, e.hasCur, e.dirty = p, p.x, true, true
		// Drop buckets that fell out of the window.
		for e.n > 0 && p.x-e.ring[e.head].x > envWindow {
			e.head = (e.head + 1) % envBuckets
			e.n--
		}
		return
	}
	if p.y < e.cur.y {
		e.cur, e.dirty = p, true
	}
}

func (e *envelope) push(p point) {
	if e.n == envBuckets {
		e.head = (e.head + 1) % envBuckets
		e.n--
	}
	e.ring[(e.head+e.n)%envBuckets] = p
	e.n++
}

// point returns the i-th point, oldest first; i == n is the open bucket.
func (e *envelope) point(i int) point {
	if i == e.n {
		return e.cur
	}
	return e.ring[(e.head+i)%envBuckets]
}

func (e *envelope) fit() {
	e.dirty = false
	n := e.n
	if e.hasCur {
		n++
	}
	if n == 0 {
		e.fitted = false
		return
	}
	first, last := e.point(0), e.point(n-1)
	e.span = last.x - first.x
	if e.span >= envSlopeSpan && n >= 8 {
		e.fitHull(n)
	} else {
		e.fitMin(n)
	}
	sum := 0.0
	for i := 0; i < n; i++ {
		p := e.point(i)
		sum += p.y - e.at(p.x)
	}
	e.meanGap = sum / float64(n)
	e.fitted = true
}

// fitMin places a line of the known slope (0 if none) under all points.
func (e *envelope) fitMin(n int) {
	best := math.Inf(1)
	for i := 0; i < n; i++ {
		p := e.point(i)
		if v := p.y - e.b*p.x; v < best {
			best, e.xc, e.yc = v, p.x, p.y
		}
	}
}

// fitHull fits the lower hull edge that spans the mean x.
func (e *envelope) fitHull(n int) {
	h := e.hull[:0]
	mean := 0.0
	for i := 0; i < n; i++ {
		p := e.point(i)
		mean += p.x
		for len(h) >= 2 {
			o, a := h[len(h)-2], h[len(h)-1]
			// Keep a only if o→a→p turns left (a is below the chord o→p).
			if (a.x-o.x)*(p.y-o.y)-(a.y-o.y)*(p.x-o.x) > 0 {
				break
			}
			h = h[:len(h)-1]
		}
		h = append(h, p)
	}
	mean /= float64(n)
	if len(h) < 2 {
		e.fitMin(n)
		return
	}
	i := 0
	for i < len(h)-2 && h[i+1].x < mean {
		i++
	}
	p, q := h[i], h[i+1]
	if q.x-p.x <= 0 {
		e.fitMin(n)
		return
	}
	b := (q.y - p.y) / (q.x - p.x)
	if b > envMaxSkew || b < -envMaxSkew {
		e.b = math.Max(-envMaxSkew, math.Min(envMaxSkew, b))
		e.fitMin(n)
		e.slopeKnown = true
		return
	}
	e.b, e.xc, e.yc, e.slopeKnown = b, p.x, p.y, true
}

// err estimates how far the line at x may be from the minimum delay: the
// scatter of the bucket minima, the slope's uncertainty times the distance
// from the fitted points, and, while frames keep arriving above the line, the
// least of their heights (the line may be about to move up by that much),
// weighed by how long they have been doing so.
func (e *envelope) err(x float64) float64 {
	slopeUnc := envPriorSkew
	if e.slopeKnown && e.span >= envSlopeSpan {
		slopeUnc = (e.meanGap + 1e6) / e.span
	}
	d := math.Abs(x - e.xc)
	v := 1e6 + 0.5*e.meanGap + slopeUnc*d
	if e.inRun {
		// The longer the run, the likelier the path got slower.
		v = math.Max(v, e.runGap*math.Min(1, (e.runLast-e.runStart)/envUpRun))
	}
	return v
}
