// Package stream is the fan-out hub: one writer (a source) and any number of
// readers (viewers, the recorder, uplinks). The writer never waits for a reader:
// each reader has its own bounded queue and goroutine, and an Inline reader (a
// player whose sends do not wait) that keeps up is delivered by the writer
// itself. A reader that falls behind drops video until the next keyframe and
// asks upstream for one. The hub keeps the current group of pictures so that a
// new reader starts at once.
//
// This is the only place that decides what to drop.
package stream

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"fieldvideo/internal/unit"
)

// Defaults for Params and ReaderParams.
const (
	DefaultQueueSize        = 512
	DefaultGOPCacheUnits    = 600
	DefaultGOPCacheBytes    = 16 << 20
	DefaultKeyframeInterval = time.Second
	// LiveLag is the ReaderParams.MaxLag of players: a picture half a second late is
	// still worth showing; one later than that comes from a queue that is not draining.
	LiveLag = 500 * time.Millisecond
)

// Errors a reader can end with.
var (
	ErrClosed        = errors.New("stream closed: the source is gone")
	ErrTracksChanged = errors.New("the source reconnected with different tracks; renegotiate")
	ErrReaderClosed  = errors.New("reader closed")
)

// Params configures a Stream.
type Params struct {
	Name   string
	Tracks []unit.Track
	// GOPCacheUnits and GOPCacheBytes bound the cached group of pictures per
	// video track; past either, the cache is dropped until the next keyframe.
	// Zero means the default; negative disables the cache.
	GOPCacheUnits int
	GOPCacheBytes int
	// KeyframeInterval is the minimum time between two keyframe requests sent
	// upstream for one track. Zero means the default.
	KeyframeInterval time.Duration
	// RequestKeyframe asks the upstream source for a keyframe on a track. It is
	// called from reader or writer goroutines and must not block. May be nil.
	RequestKeyframe func(track int)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Stats are counters of what was written to a stream.
type Stats struct {
	Units, Packets, Bytes uint64
	Keyframes             uint64
	Readers               int
	KeyframeRequests      uint64
}

// Stream is a fan-out hub for one source.
type Stream struct {
	p Params

	// wmu serializes writers; direct is Write's, under it.
	wmu    sync.Mutex
	direct []inlineDelivery

	mu      sync.Mutex
	tracks  []unit.Track
	epoch   uint32
	readers []*Reader
	gop     []gopCache
	closed  bool

	units, packets, bytes, keyframes, kfRequests atomic.Uint64
	lastRequest                                  []int64 // per track, unix nanos; guarded by mu
	// A request within KeyframeInterval of the last is deferred to its end, and
	// dropped then if a keyframe came meanwhile: deferred holds the timer, deferAt
	// when the last request was deferred and lastKey when the track's last
	// keyframe was written (unix nanos), all per track.
	deferred         []*time.Timer
	deferAt, lastKey []int64
}

type gopCache struct {
	units    []*unit.Unit
	bytes    int
	overflow bool // exceeded the bounds; wait for the next keyframe
}

// New returns a stream for the given tracks.
func New(p Params) *Stream {
	if p.GOPCacheUnits == 0 {
		p.GOPCacheUnits = DefaultGOPCacheUnits
	}
	if p.GOPCacheBytes == 0 {
		p.GOPCacheBytes = DefaultGOPCacheBytes
	}
	if p.KeyframeInterval == 0 {
		p.KeyframeInterval = DefaultKeyframeInterval
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	s := &Stream{p: p}
	s.setTracks(p.Tracks)
	return s
}

func (s *Stream) setTracks(tracks []unit.Track) {
	s.tracks = append([]unit.Track(nil), tracks...)
	s.gop = make([]gopCache, len(tracks))
	s.lastRequest = make([]int64, len(tracks))
	s.stopDeferred()
	s.deferred, s.deferAt, s.lastKey = make([]*time.Timer, len(tracks)), make([]int64, len(tracks)), make([]int64, len(tracks))
}

func (s *Stream) stopDeferred() {
	for i, t := range s.deferred {
		if t != nil {
			t.Stop()
			s.deferred[i] = nil
		}
	}
}

// Name returns the stream's name.
func (s *Stream) Name() string { return s.p.Name }

// Tracks returns the current track list.
func (s *Stream) Tracks() []unit.Track {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]unit.Track(nil), s.tracks...)
}

// Epoch returns the current upstream session number.
func (s *Stream) Epoch() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch
}

// Restart starts a new upstream session: a publisher reconnected, possibly
// with new tracks. Readers bound to tracks that are no longer compatible end
// with ErrTracksChanged; the others re-anchor and go on.
func (s *Stream) Restart(tracks []unit.Track) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.epoch++
	var keep, drop []*Reader
	for _, r := range s.readers {
		if r.compatible(tracks) {
			keep = append(keep, r)
		} else {
			drop = append(drop, r)
		}
	}
	s.readers = keep
	for _, r := range drop {
		r.end(ErrTracksChanged)
	}
	s.setTracks(tracks)
	for _, r := range keep {
		r.resize(len(tracks))
	}
}

// Write publishes a unit to every reader. It never blocks on a reader: it queues
// the unit for each, except Inline readers that keep up, to which it delivers the
// unit itself once the stream's lock is released. The unit must not be modified
// afterwards.
func (s *Stream) Write(u *unit.Unit) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	direct := s.write(u)
	for i := range direct {
		direct[i].r.deliverHeld(direct[i].d)
		direct[i] = inlineDelivery{} // nothing kept alive by the scratch list
	}
	s.direct = direct[:0]
}

// inlineDelivery is a unit the writer delivers to a reader itself.
type inlineDelivery struct {
	r *Reader
	d Delivery
}

// write does Write's work under the stream's lock and returns the inline deliveries.
func (s *Stream) write(u *unit.Unit) []inlineDelivery {
	direct := s.direct[:0]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || u.Track < 0 || u.Track >= len(s.tracks) {
		return direct
	}
	u.Epoch, u.Written = s.epoch, s.p.Now().UnixNano()
	s.units.Add(1)
	s.packets.Add(uint64(len(u.Packets)))
	s.bytes.Add(uint64(u.Bytes()))
	video := s.tracks[u.Track].Kind == unit.KindVideo
	if video {
		if u.Keyframe {
			s.keyframes.Add(1)
			s.lastKey[u.Track] = u.Written
		}
		s.cache(u)
	}
	for _, r := range s.readers {
		if d, inline, dropped := r.takeInline(u, video); inline {
			direct = append(direct, inlineDelivery{r: r, d: d})
			continue
		} else if dropped {
			continue
		}
		if r.push(u, video, u.RTPTime, 0) {
			s.requestKeyframeLocked(u.Track)
		}
	}
	return direct
}

func (s *Stream) cache(u *unit.Unit) {
	if s.p.GOPCacheUnits < 0 {
		return
	}
	c := &s.gop[u.Track]
	if u.Keyframe {
		clear(c.units)
		c.units, c.bytes, c.overflow = c.units[:0], 0, false
	}
	if c.overflow || (len(c.units) == 0 && !u.Keyframe) {
		return
	}
	n := u.Bytes()
	if len(c.units)+1 > s.p.GOPCacheUnits || c.bytes+n > s.p.GOPCacheBytes {
		clear(c.units)
		c.units, c.bytes, c.overflow = c.units[:0], 0, true
		return
	}
	c.units = append(c.units, u)
	c.bytes += n
}

// DropCache forgets the cached groups of pictures: the publisher left, so a
// reader that joins now waits for the next publisher's keyframe instead of
// being shown what was sent before, and the memory is freed while the
// source stays listed.
func (s *Stream) DropCache() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.gop {
		c := &s.gop[i]
		clear(c.units)
		c.units, c.bytes, c.overflow = nil, 0, false
	}
}

// RequestKeyframe asks upstream for a keyframe on a track, at most once per
// KeyframeInterval: a request within the interval is sent at its end, unless a
// keyframe of the track came meanwhile.
func (s *Stream) RequestKeyframe(track int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requestKeyframeLocked(track)
}

func (s *Stream) requestKeyframeLocked(track int) {
	if s.p.RequestKeyframe == nil || track < 0 || track >= len(s.lastRequest) {
		return
	}
	now := s.p.Now().UnixNano()
	if prev := s.lastRequest[track]; prev != 0 && now-prev < int64(s.p.KeyframeInterval) {
		s.deferAt[track] = now
		if s.deferred[track] == nil {
			s.deferred[track] = time.AfterFunc(time.Duration(prev+int64(s.p.KeyframeInterval)-now), func() { s.sendDeferred(track) })
		}
		return
	}
	s.lastRequest[track] = now
	s.kfRequests.Add(1)
	s.p.RequestKeyframe(track)
}

// sendDeferred sends a deferred request, unless a keyframe came since it was asked.
func (s *Stream) sendDeferred(track int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || track >= len(s.deferred) || s.deferred[track] == nil {
		return
	}
	s.deferred[track] = nil
	if s.lastKey[track] < s.deferAt[track] {
		s.lastRequest[track] = 0
		s.requestKeyframeLocked(track)
	}
}

// Stats returns counters of what was written.
func (s *Stream) Stats() Stats {
	s.mu.Lock()
	n := len(s.readers)
	s.mu.Unlock()
	return Stats{
		Units: s.units.Load(), Packets: s.packets.Load(), Bytes: s.bytes.Load(),
		Keyframes: s.keyframes.Load(), Readers: n, KeyframeRequests: s.kfRequests.Load(),
	}
}

// Close ends the stream; every reader ends with ErrClosed.
func (s *Stream) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	s.stopDeferred()
	for _, r := range s.readers {
		r.end(ErrClosed)
	}
	s.readers = nil
	for i := range s.gop {
		s.gop[i] = gopCache{}
	}
}

// AddReader attaches a reader. It first receives the cached group of pictures
// of each video track it reads (marked FlagReplay), then live units.
func (s *Stream) AddReader(p ReaderParams) (*Reader, error) {
	if p.OnUnit == nil {
		return nil, errors.New("stream: reader needs OnUnit")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	r := newReader(s, p, s.tracks)
	for t := range s.tracks {
		if !r.wants(t) || s.tracks[t].Kind != unit.KindVideo {
			continue
		}
		if !s.replay(r, t) {
			r.state[t].waitKey = true
			s.requestKeyframeLocked(t)
		}
	}
	s.readers = append(s.readers, r)
	go r.run()
	return r, nil
}

// replay queues the cached group of pictures of track t into r, squeezing its
// timestamps to just before the live edge so that players show the newest
// picture at once instead of replaying the past in real time. It reports
// false when there is nothing usable to replay.
func (s *Stream) replay(r *Reader, t int) bool {
	c := &s.gop[t]
	n := len(c.units)
	if n == 0 || c.overflow || n > cap(r.ch)-len(r.ch) {
		return false
	}
	edge := c.units[n-1].RTPTime
	for i, u := range c.units {
		r.push(u, true, edge-uint64(n-1-i), FlagReplay)
	}
	return true
}

// shed is called by reader r after it dropped a unit of track t that waited too long:
// what follows is marked discontinuous, and for video r waits for the next keyframe,
// requested upstream. It reports whether t is video (the queued units before that
// keyframe are to be dropped too).
func (s *Stream) shed(r *Reader, t int) (video bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t >= len(r.state) || t >= len(s.tracks) {
		return false
	}
	st := &r.state[t]
	st.discont = true
	if s.tracks[t].Kind != unit.KindVideo {
		return false
	}
	st.waitKey = true
	s.requestKeyframeLocked(t)
	return true
}

func (s *Stream) removeReader(r *Reader) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := slices.Index(s.readers, r); i >= 0 {
		s.readers = slices.Delete(s.readers, i, i+1)
		r.end(ErrReaderClosed)
	}
}
