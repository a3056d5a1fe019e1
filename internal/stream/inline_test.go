package stream

import (
	"sync/atomic"
	"testing"
	"time"
)

// An Inline reader that keeps up is delivered each unit by the writer before Write
// returns: no hand-off to its goroutine.
func TestInlineReaderIsDeliveredByTheWriter(t *testing.T) {
	s := New(Params{Name: "cam", Tracks: testTracks, GOPCacheUnits: -1})
	defer s.Close()
	var c collector
	r, err := s.AddReader(ReaderParams{Name: "wall", Inline: true, OnUnit: c.on})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const n = 200
	for i := range n {
		s.Write(frame(uint16(i), uint32(i*3000), i%50 == 0, 2))
		if got := c.n(); got != i+1 {
			t.Fatalf("after Write %d the reader has %d units, want %d: not delivered by the writer", i, got, i+1)
		}
	}
	for i, d := range c.all() {
		if d.Unit.Seq != uint64(i) || d.Flags != 0 {
			t.Fatalf("delivery %d: seq %d flags %b", i, d.Unit.Seq, d.Flags)
		}
	}
	if r.Delivered() != n || r.Dropped() != 0 {
		t.Fatalf("delivered %d dropped %d, want %d and 0", r.Delivered(), r.Dropped(), n)
	}
}

// An Inline reader whose delivery blocks does not block the writer: what comes
// meanwhile queues behind it and is delivered in order by its goroutine, and once it
// has caught up the writer delivers again.
func TestInlineReaderThatBlocksQueues(t *testing.T) {
	s := New(Params{Name: "cam", Tracks: testTracks})
	defer s.Close()
	s.Write(frame(0, 0, true, 4)) // cached: replayed to the reader by its goroutine

	block, blocked := make(chan struct{}), make(chan struct{})
	var c collector
	var first atomic.Bool
	r, err := s.AddReader(ReaderParams{Name: "wall", Inline: true, QueueSize: 64, OnUnit: func(d Delivery) {
		if first.CompareAndSwap(false, true) {
			close(blocked)
			<-block
		}
		c.on(d)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	<-blocked
	written := make(chan struct{})
	go func() {
		for i := 1; i <= 20; i++ {
			s.Write(frame(uint16(i), uint32(i*3000), false, 1))
		}
		close(written)
	}()
	select {
	case <-written:
	case <-time.After(5 * time.Second):
		t.Fatal("Write blocked behind a reader's delivery")
	}
	close(block)
	waitFor(t, "the queued units", func() bool { return c.n() == 21 })
	s.Write(frame(21, 21*3000, false, 1))
	if c.n() != 22 {
		t.Fatal("after catching up, the unit was not delivered by the writer")
	}
	for i, d := range c.all() {
		if d.Unit.Seq != uint64(i) {
			t.Fatalf("delivery %d has seq %d: out of order", i, d.Unit.Seq)
		}
	}
}

// Once Close returns, an Inline reader is never delivered again, though the
// writer goes on.
func TestInlineReaderClosedWhileWriting(t *testing.T) {
	s := New(Params{Name: "cam", Tracks: testTracks, GOPCacheUnits: -1})
	defer s.Close()
	for range 20 {
		var closed, late atomic.Bool
		r, err := s.AddReader(ReaderParams{Name: "wall", Inline: true, OnUnit: func(Delivery) {
			if closed.Load() {
				late.Store(true)
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		stop, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				s.Write(frame(uint16(i), uint32(i*3000), i%10 == 0, 1))
			}
		}()
		waitFor(t, "deliveries", func() bool { return r.Delivered() > 5 })
		r.Close()
		closed.Store(true)
		s.Write(frame(0, 0, true, 1))
		close(stop)
		<-done
		if late.Load() {
			t.Fatal("a unit was delivered after Close returned")
		}
	}
}
