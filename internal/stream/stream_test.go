package stream

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"

	"fieldvideo/internal/unit"
)

var testTracks = []unit.Track{
	{Kind: unit.KindVideo, Codec: unit.CodecH264, ClockRate: 90000},
	{Kind: unit.KindAudio, Codec: unit.CodecOpus, ClockRate: 48000, Channels: 2},
}

// frame builds a video unit of n packets starting at seq.
func frame(seq uint16, ts uint32, key bool, n int) *unit.Unit {
	u := &unit.Unit{Track: 0, Seq: uint64(seq), RTPTime: uint64(ts), Keyframe: key, Arrival: time.Now()}
	for i := 0; i < n; i++ {
		u.Packets = append(u.Packets, &rtp.Packet{
			Header:  rtp.Header{SequenceNumber: seq + uint16(i), Timestamp: ts, Marker: i == n-1},
			Payload: []byte{1, 2, 3},
		})
	}
	return u
}

func audio(seq uint16, ts uint32) *unit.Unit {
	return &unit.Unit{Track: 1, Seq: uint64(seq), RTPTime: uint64(ts), Arrival: time.Now(),
		Packets: []*rtp.Packet{{Header: rtp.Header{SequenceNumber: seq, Timestamp: ts}, Payload: []byte{9}}}}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

type collector struct {
	mu sync.Mutex
	ds []Delivery
}

func (c *collector) on(d Delivery) { c.mu.Lock(); c.ds = append(c.ds, d); c.mu.Unlock() }
func (c *collector) n() int        { c.mu.Lock(); defer c.mu.Unlock(); return len(c.ds) }
func (c *collector) all() []Delivery {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Delivery(nil), c.ds...)
}

func TestNewReaderGetsSqueezedGOPThenLive(t *testing.T) {
	s := New(Params{Name: "cam", Tracks: testTracks})
	defer s.Close()
	s.Write(frame(10, 1000, false, 1)) // before any keyframe: not cached
	s.Write(frame(11, 4000, true, 3))
	s.Write(frame(14, 7000, false, 2))
	s.Write(audio(1, 480))
	s.Write(frame(16, 10000, false, 1))

	var c collector
	r, err := s.AddReader(ReaderParams{Name: "v", OnUnit: c.on})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s.Write(frame(17, 13000, false, 1))
	waitFor(t, "4 deliveries", func() bool { return c.n() == 4 })

	ds := c.all()
	wantSeq := []uint64{11, 14, 16, 17}
	wantRTP := []uint64{10000 - 2, 10000 - 1, 10000, 13000}
	for i, d := range ds {
		if d.Unit.Seq != wantSeq[i] || d.RTPTime != wantRTP[i] {
			t.Errorf("delivery %d: seq %d rtp %d, want seq %d rtp %d", i, d.Unit.Seq, d.RTPTime, wantSeq[i], wantRTP[i])
		}
		if replay := d.Flags&FlagReplay != 0; replay != (i < 3) {
			t.Errorf("delivery %d: replay flag %v", i, replay)
		}
	}
	if !ds[0].Unit.Keyframe {
		t.Error("replay does not start at the keyframe")
	}
}

// After DropCache (the publisher left) a new reader is shown nothing from
// before: it starts at the next keyframe, as one without a cache does.
func TestDroppedCacheIsNotReplayed(t *testing.T) {
	s := New(Params{Name: "cam", Tracks: testTracks})
	defer s.Close()
	s.Write(frame(11, 4000, true, 3))
	s.Write(frame(14, 7000, false, 2))
	s.DropCache()
	if n := s.gop[0].bytes; n != 0 || s.gop[0].units != nil {
		t.Fatalf("the cache holds %d bytes after DropCache", n)
	}
	var c collector
	r, err := s.AddReader(ReaderParams{Name: "v", OnUnit: c.on})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s.Write(frame(16, 10000, false, 1))
	s.Write(frame(17, 13000, true, 1))
	waitFor(t, "the next keyframe", func() bool { return c.n() == 1 })
	if d := c.all()[0]; d.Unit.Seq != 17 || d.Flags&FlagReplay != 0 {
		t.Fatalf("first delivery: seq %d replay %v; want the new keyframe, live", d.Unit.Seq, d.Flags&FlagReplay != 0)
	}
}

func TestReaderWithoutCacheWaitsForKeyframeAndRequestsOne(t *testing.T) {
	var requests atomic.Int32
	s := New(Params{Name: "cam", Tracks: testTracks, RequestKeyframe: func(int) { requests.Add(1) }})
	defer s.Close()
	var c collector
	r, err := s.AddReader(ReaderParams{OnUnit: c.on})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if requests.Load() != 1 {
		t.Fatalf("keyframe requests = %d, want 1 for a reader that cannot start", requests.Load())
	}
	s.Write(frame(1, 100, false, 1))
	s.Write(audio(1, 10))
	s.Write(frame(2, 200, true, 1))
	waitFor(t, "2 deliveries", func() bool { return c.n() == 2 })
	ds := c.all()
	if ds[0].Unit.Track != 1 || !ds[1].Unit.Keyframe {
		t.Fatalf("got tracks %d,%d keyframe %v: want audio then the keyframe", ds[0].Unit.Track, ds[1].Unit.Track, ds[1].Unit.Keyframe)
	}
}

// A reader that stops reading must not change what another reader receives.
func TestSlowReaderDoesNotDisturbOthers(t *testing.T) {
	var requests atomic.Int32
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	s := New(Params{Name: "cam", Tracks: testTracks, RequestKeyframe: func(int) { requests.Add(1) },
		KeyframeInterval: time.Hour, Now: func() time.Time { return time.Unix(0, now.Load()) }})
	defer s.Close()

	block := make(chan struct{})
	slow, err := s.AddReader(ReaderParams{Name: "slow", QueueSize: 16, OnUnit: func(Delivery) { <-block }})
	if err != nil {
		t.Fatal(err)
	}
	var fast collector
	fr, err := s.AddReader(ReaderParams{Name: "fast", QueueSize: 4096, OnUnit: fast.on})
	if err != nil {
		t.Fatal(err)
	}
	now.Add(int64(2 * time.Hour))
	const n = 1000
	for i := 0; i < n; i++ {
		s.Write(frame(uint16(i), uint32(i*3000), i%50 == 0, 1))
	}
	waitFor(t, "fast reader to get every unit", func() bool { return fast.n() == n })
	for i, d := range fast.all() {
		if d.Unit.Seq != uint64(i) || d.Flags != 0 {
			t.Fatalf("fast reader delivery %d: seq %d flags %b", i, d.Unit.Seq, d.Flags)
		}
	}
	if slow.Dropped() == 0 {
		t.Error("slow reader dropped nothing")
	}
	if fr.Dropped() != 0 {
		t.Errorf("fast reader dropped %d", fr.Dropped())
	}
	if got := requests.Load(); got != 2 { // one when both readers joined without a GOP, one for the slow reader
		t.Errorf("keyframe requests = %d, want 2 (rate-limited)", got)
	}
	close(block)
	slow.Close()
	fr.Close()
}

func TestDroppedReaderResumesAtKeyframeWithDiscont(t *testing.T) {
	s := New(Params{Name: "cam", Tracks: testTracks})
	defer s.Close()
	gate := make(chan struct{})
	var c collector
	r, err := s.AddReader(ReaderParams{QueueSize: 16, OnUnit: func(d Delivery) { <-gate; c.on(d) }})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s.Write(frame(0, 0, true, 1))
	for i := 1; i < 40; i++ { // overflows the queue of 16
		s.Write(frame(uint16(i), uint32(i*3000), false, 1))
	}
	close(gate)
	waitFor(t, "the queue to drain", func() bool { return len(r.ch) == 0 })
	s.Write(frame(40, 40*3000, true, 1))
	s.Write(frame(41, 41*3000, false, 1))
	waitFor(t, "resume after the keyframe", func() bool {
		ds := c.all()
		return len(ds) > 0 && ds[len(ds)-1].Unit.Seq == 41
	})
	ds := c.all()
	k := ds[len(ds)-2]
	if k.Unit.Seq != 40 || k.Flags&FlagDiscont == 0 {
		t.Fatalf("unit before last: seq %d flags %b; want the keyframe 40 marked discontinuous", k.Unit.Seq, k.Flags)
	}
	if r.Dropped() == 0 {
		t.Fatal("no drops counted")
	}
}

func TestRestartKeepsCompatibleReadersAndEndsOthers(t *testing.T) {
	s := New(Params{Name: "cam", Tracks: testTracks})
	defer s.Close()
	var ended atomic.Value
	videoOnly, _ := s.AddReader(ReaderParams{Tracks: []int{0}, OnUnit: func(Delivery) {}})
	both, _ := s.AddReader(ReaderParams{OnUnit: func(Delivery) {}, OnEnd: func(err error) { ended.Store(err) }})
	s.Restart([]unit.Track{testTracks[0], {Kind: unit.KindAudio, Codec: unit.CodecPCMU, ClockRate: 8000}})
	waitFor(t, "incompatible reader to end", func() bool { return ended.Load() != nil })
	if ended.Load().(error) != ErrTracksChanged {
		t.Fatalf("ended with %v", ended.Load())
	}
	select {
	case <-both.Done():
	default:
		t.Fatal("incompatible reader still running")
	}
	select {
	case <-videoOnly.Done():
		t.Fatal("compatible reader ended")
	default:
	}
	if s.Epoch() != 1 {
		t.Fatalf("epoch %d", s.Epoch())
	}
	videoOnly.Close()
}

func TestCloseEndsReaders(t *testing.T) {
	s := New(Params{Name: "cam", Tracks: testTracks})
	var got atomic.Value
	r, _ := s.AddReader(ReaderParams{OnUnit: func(Delivery) {}, OnEnd: func(err error) { got.Store(err) }})
	s.Close()
	<-r.Done()
	if got.Load().(error) != ErrClosed {
		t.Fatalf("reader ended with %v", got.Load())
	}
	if _, err := s.AddReader(ReaderParams{OnUnit: func(Delivery) {}}); err != ErrClosed {
		t.Fatalf("AddReader on closed stream: %v", err)
	}
	r.Close() // safe after the stream closed
}

func TestGOPCacheBounds(t *testing.T) {
	s := New(Params{Name: "cam", Tracks: testTracks, GOPCacheUnits: 3})
	defer s.Close()
	for i := 0; i < 5; i++ {
		s.Write(frame(uint16(i), uint32(i), i == 0, 1))
	}
	var c collector
	r, _ := s.AddReader(ReaderParams{OnUnit: c.on})
	defer r.Close()
	s.Write(frame(5, 5, true, 1))
	waitFor(t, "keyframe", func() bool { return c.n() == 1 })
	if d := c.all()[0]; d.Unit.Seq != 5 || d.Flags&FlagReplay != 0 {
		t.Fatalf("got seq %d flags %b; an overflowing GOP must not be replayed", d.Unit.Seq, d.Flags)
	}
}

// A keyframe request within the interval since the last is sent when the interval
// ends, unless a keyframe came meanwhile.
func TestKeyframeRequestDeferred(t *testing.T) {
	var requests atomic.Int32
	at := time.Now() // the stream's clock stands still: every request is within the interval
	s := New(Params{Name: "cam", Tracks: testTracks, RequestKeyframe: func(int) { requests.Add(1) },
		KeyframeInterval: 50 * time.Millisecond, Now: func() time.Time { return at }})
	defer s.Close()
	settled := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.deferred[0] == nil
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s (%d requests sent)", what, requests.Load())
			}
			time.Sleep(time.Millisecond)
		}
	}
	s.RequestKeyframe(0)
	s.RequestKeyframe(0)
	s.RequestKeyframe(0)
	if n := requests.Load(); n != 1 {
		t.Fatalf("%d requests sent at once, want 1", n)
	}
	waitUntil("the deferred request", func() bool { return requests.Load() == 2 })
	waitUntil("no request deferred", settled)

	s.RequestKeyframe(0)
	s.Write(frame(1, 0, true, 1))
	waitUntil("the deferred request to lapse", settled)
	if n := requests.Load(); n != 2 {
		t.Errorf("%d requests sent, want 2: a keyframe came after the deferred one", n)
	}
}

// A player's reader drops a unit that waited longer than its MaxLag instead of
// delivering it late; video then waits for the next keyframe (requested), what was
// queued behind the late unit goes too, and the keyframe comes marked discontinuous.
// Audio is dropped unit by unit.
func TestLateUnitsAreShed(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Unix(1_800_000_000, 0).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	var requests atomic.Int32
	s := New(Params{Name: "cam", Tracks: testTracks, Now: clock, KeyframeInterval: time.Nanosecond,
		RequestKeyframe: func(int) { requests.Add(1) }})
	defer s.Close()
	entered, gate := make(chan struct{}, 1), make(chan struct{})
	var c collector
	r, err := s.AddReader(ReaderParams{QueueSize: 16, MaxLag: 500 * time.Millisecond, OnUnit: func(d Delivery) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-gate
		c.on(d)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	at := func(u *unit.Unit) *unit.Unit { u.Arrival = clock(); return u }
	s.Write(at(frame(0, 0, true, 1)))
	<-entered // the keyframe is being delivered; what follows queues behind it
	s.Write(at(frame(1, 3000, false, 1)))
	s.Write(at(audio(1, 960)))
	now.Add(int64(600 * time.Millisecond))
	s.Write(at(frame(2, 6000, false, 1))) // in time, but depends on the late one
	before := requests.Load()
	close(gate)
	waitFor(t, "the queue to drain", func() bool { return len(r.ch) == 0 && r.Dropped() >= 3 })
	s.Write(at(frame(3, 9000, false, 1))) // dropped by the hub: waiting for a keyframe
	s.Write(at(frame(4, 12000, true, 1)))
	s.Write(at(frame(5, 15000, false, 1)))
	waitFor(t, "the next keyframe and what follows", func() bool { return c.n() == 3 })
	var got []uint64
	for _, d := range c.all() {
		got = append(got, d.Unit.Seq)
	}
	if ds := c.all(); got[0] != 0 || got[1] != 4 || got[2] != 5 || ds[1].Flags&FlagDiscont == 0 {
		t.Fatalf("delivered video %v (flags of the second %b), want 0, then 4 marked discontinuous, then 5", got, ds[1].Flags)
	}
	if r.Late() != 2 || r.Dropped() != 4 {
		t.Errorf("late %d, dropped %d; want 2 late (a frame and audio) and 4 dropped", r.Late(), r.Dropped())
	}
	if requests.Load() == before {
		t.Error("no keyframe was requested after the late frame")
	}
}

// A keyframe whose packets took longer than MaxLag to arrive (paced out over a slow
// uplink) has not waited for the reader: it is delivered, and so is what follows.
func TestSlowArrivingKeyframeIsNotShed(t *testing.T) {
	s := New(Params{Name: "cam", Tracks: testTracks, GOPCacheUnits: -1})
	defer s.Close()
	var c collector
	for _, inline := range []bool{false, true} {
		r, err := s.AddReader(ReaderParams{QueueSize: 16, MaxLag: 500 * time.Millisecond, Inline: inline, OnUnit: c.on})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
	}
	key := frame(0, 0, true, 100)
	key.Arrival = time.Now().Add(-2 * time.Second) // its first packet came 2 s ago
	s.Write(key)
	s.Write(frame(100, 3000, false, 1))
	waitFor(t, "both readers to get both units", func() bool { return c.n() == 4 })
	for _, d := range c.all() {
		if d.Flags != 0 {
			t.Fatalf("unit %d delivered with flags %b", d.Unit.Seq, d.Flags)
		}
	}
}
