package stream

import (
	"sync"
	"sync/atomic"
	"time"

	"fieldvideo/internal/unit"
)

// Flags tell a reader how a delivery relates to the ones before it.
type Flags uint8

// Delivery flags.
const (
	// FlagReplay marks a unit from the cached group of pictures, delivered
	// ahead of live units when the reader starts.
	FlagReplay Flags = 1 << iota
	// FlagDiscont marks the first unit of a track after the hub dropped units
	// of that track for this reader; for video it is a keyframe.
	FlagDiscont
)

// Delivery is one unit handed to a reader.
type Delivery struct {
	Unit  *unit.Unit
	Flags Flags
	// RTPTime is the unwrapped timestamp to present the unit at. It equals
	// Unit.RTPTime except for replayed units, whose timestamps are squeezed
	// to just before the live edge.
	RTPTime uint64
}

// ReaderParams configures a reader.
type ReaderParams struct {
	// Name identifies the reader in logs and metrics.
	Name string
	// QueueSize is the number of units the reader may lag behind before the
	// hub drops for it. Zero means DefaultQueueSize.
	QueueSize int
	// Tracks lists the track indices the reader wants; nil means all.
	Tracks []int
	// MaxLag, when positive, bounds a live unit's wait: one written to the stream
	// longer ago when its turn comes is dropped instead of delivered late, and video
	// then waits for the next keyframe (requested upstream). The wait counts from the
	// write, not the first packet's arrival: a keyframe paced out over a slow uplink
	// may take longer than MaxLag to arrive whole, and is still the one to show. Players use it; the recorder does
	// not (a late unit is still evidence). Zero delivers everything queued.
	MaxLag time.Duration
	// OnUnit is called on the reader's own goroutine for every delivery; for an
	// Inline reader, on the writer's while the reader keeps up.
	OnUnit func(Delivery)
	// Inline lets the writer's goroutine deliver a live unit itself when the reader
	// has nothing queued and is not busy delivering: no hand-off to the reader's
	// goroutine, which still takes the replay and whatever queues behind a slow
	// delivery (see Stream.Write). OnUnit must then never block for long (a
	// player's UDP send), and must not call the stream but for RequestKeyframe.
	Inline bool
	// OnEnd is called once, on the reader's goroutine, when the reader ends.
	OnEnd func(error)
}

// Reader is one consumer of a stream with its own queue and goroutine.
type Reader struct {
	s  *Stream
	p  ReaderParams
	ch chan Delivery

	// state is touched only under the stream's lock.
	state  []readerTrack
	want   []bool // nil: all tracks
	ended  bool
	endErr error
	stop   chan struct{}
	done   chan struct{}

	// deliver is held while a unit is delivered, by the reader's goroutine or,
	// inline, the writer's; pending counts the units queued and not yet delivered.
	deliver sync.Mutex
	pending atomic.Int32

	// shedding is the delivering goroutine's (under deliver): per track, queued
	// units are dropped until a keyframe after one waited longer than MaxLag.
	shedding []bool

	delivered, dropped, late atomic.Uint64
}

type readerTrack struct {
	waitKey bool // video: dropping until the next keyframe
	discont bool // the next delivered unit follows dropped ones
}

func newReader(s *Stream, p ReaderParams, tracks []unit.Track) *Reader {
	if p.QueueSize <= 0 {
		p.QueueSize = DefaultQueueSize
	}
	r := &Reader{
		s: s, p: p,
		ch:    make(chan Delivery, p.QueueSize),
		state: make([]readerTrack, len(tracks)),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	if p.Tracks != nil {
		r.want = make([]bool, len(tracks))
		for _, t := range p.Tracks {
			if t >= 0 && t < len(tracks) {
				r.want[t] = true
			}
		}
	}
	return r
}

func (r *Reader) wants(track int) bool {
	return r.want == nil || (track < len(r.want) && r.want[track])
}

// compatible reports whether the reader can go on with a new track list.
func (r *Reader) compatible(tracks []unit.Track) bool {
	old := r.s.tracks
	for t := range old {
		if !r.wants(t) {
			continue
		}
		if t >= len(tracks) || !old[t].Compatible(tracks[t]) {
			return false
		}
	}
	return true
}

func (r *Reader) resize(n int) {
	st := make([]readerTrack, n)
	for t := range st {
		if t < len(r.state) {
			st[t] = r.state[t]
		}
		// After an upstream restart, video resumes at a keyframe.
		st[t].waitKey = true
	}
	r.state = st
	if r.want != nil {
		w := make([]bool, n)
		copy(w, r.want)
		r.want = w
	}
}

// push queues a unit without blocking; called under the stream's lock. It
// reports whether a keyframe should be requested upstream.
func (r *Reader) push(u *unit.Unit, video bool, rtpTime uint64, flags Flags) (needKeyframe bool) {
	d, ok, needKeyframe := r.admit(u, video, rtpTime, flags)
	if !ok {
		return needKeyframe
	}
	r.pending.Add(1)
	select {
	case r.ch <- d:
		r.state[u.Track].discont = false
		return false
	default:
		r.pending.Add(-1)
		r.dropped.Add(1)
		st := &r.state[u.Track]
		st.discont = true
		if video {
			st.waitKey = true
			return true
		}
		return false
	}
}

// admit decides whether the reader takes u and how it is flagged; called under the
// stream's lock.
func (r *Reader) admit(u *unit.Unit, video bool, rtpTime uint64, flags Flags) (d Delivery, ok, needKeyframe bool) {
	if r.ended || !r.wants(u.Track) {
		return Delivery{}, false, false
	}
	st := &r.state[u.Track]
	if video && st.waitKey {
		if !u.Keyframe {
			r.dropped.Add(1)
			return Delivery{}, false, false
		}
		st.waitKey = false
	}
	if st.discont {
		flags |= FlagDiscont
	}
	return Delivery{Unit: u, Flags: flags, RTPTime: rtpTime}, true, false
}

// takeInline reports whether the writer delivers u to r itself, and if so holds
// r.deliver and returns the delivery; called under the stream's lock. The writer
// calls r.deliverHeld(d) once the stream's lock is released. When it reports
// false, dropped says whether u was dropped (video waiting for a keyframe) or is
// to be pushed.
func (r *Reader) takeInline(u *unit.Unit, video bool) (d Delivery, inline, dropped bool) {
	if !r.p.Inline || r.pending.Load() != 0 || r.ended || !r.wants(u.Track) || !r.deliver.TryLock() {
		return Delivery{}, false, false
	}
	d, ok, _ := r.admit(u, video, u.RTPTime, 0)
	if !ok {
		r.deliver.Unlock()
		return Delivery{}, false, true
	}
	r.state[u.Track].discont = false
	return d, true, false
}

// deliverHeld delivers d with r.deliver held, and releases it.
func (r *Reader) deliverHeld(d Delivery) {
	if r.p.MaxLag <= 0 || !r.shed(&d) {
		r.delivered.Add(1)
		r.p.OnUnit(d)
	}
	r.deliver.Unlock()
}

// end stops the reader; called under the stream's lock.
func (r *Reader) end(err error) {
	if r.ended {
		return
	}
	r.ended, r.endErr = true, err
	close(r.stop)
}

func (r *Reader) run() {
	defer close(r.done)
	for {
		select {
		case <-r.stop:
			r.deliver.Lock() // an inline delivery under way ends first
			if r.p.OnEnd != nil {
				r.p.OnEnd(r.endErr)
			}
			r.deliver.Unlock()
			return
		case d := <-r.ch:
			r.deliver.Lock()
			r.pending.Add(-1)
			r.deliverHeld(d)
		}
	}
}

// shed reports whether d is dropped for waiting too long: a live unit written more
// than MaxLag ago, or one queued behind it before the track's next keyframe.
func (r *Reader) shed(d *Delivery) bool {
	t := d.Unit.Track
	if t >= len(r.shedding) {
		r.shedding = append(r.shedding, make([]bool, t+1-len(r.shedding))...)
	}
	if d.Flags&FlagReplay != 0 {
		return false
	}
	if r.shedding[t] && !d.Unit.Keyframe {
		r.dropped.Add(1)
		return true
	}
	if w := d.Unit.Written; w != 0 && r.s.p.Now().UnixNano()-w > int64(r.p.MaxLag) {
		r.dropped.Add(1)
		r.late.Add(1)
		r.shedding[t] = r.s.shed(r, t)
		return true
	}
	if r.shedding[t] {
		r.shedding[t] = false
		d.Flags |= FlagDiscont
	}
	return false
}

// Close detaches the reader and waits for its goroutine to finish. It must
// not be called from OnUnit or OnEnd.
func (r *Reader) Close() {
	r.s.removeReader(r)
	<-r.done
}

// Done is closed when the reader's goroutine has finished.
func (r *Reader) Done() <-chan struct{} { return r.done }

// Name returns the reader's name.
func (r *Reader) Name() string { return r.p.Name }

// Delivered returns how many units the reader has processed.
func (r *Reader) Delivered() uint64 { return r.delivered.Load() }

// Dropped returns how many units the hub dropped for this reader: because its queue
// was full, for waiting longer than MaxLag, or queued behind one that did.
func (r *Reader) Dropped() uint64 { return r.dropped.Load() }

// Late returns how many units the reader dropped for waiting longer than MaxLag.
func (r *Reader) Late() uint64 { return r.late.Load() }

// RequestKeyframe asks upstream for a keyframe on a track (rate-limited), for
// readers whose own peers ask for one.
func (r *Reader) RequestKeyframe(track int) { r.s.RequestKeyframe(track) }
