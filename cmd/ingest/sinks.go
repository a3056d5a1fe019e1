package main

import (
	"log/slog"
	"sync"

	"fieldvideo/internal/recorder"
	"fieldvideo/internal/stream"
)

// sinks take every source that goes live: the WHIP uplink to the SFU and the
// edge recorder (either may be off).
type sinks struct {
	uplinks  *uplinks           // api nil: no uplink
	recorder *recorder.Recorder // nil: recording off
	log      *slog.Logger

	mu    sync.Mutex
	stops map[string]func()
}

func (s *sinks) live(name string, st *stream.Stream) {
	if s.uplinks.api != nil {
		s.uplinks.live(name, st)
	}
	if s.recorder == nil {
		return
	}
	stop, err := s.recorder.Record(name, st)
	if err != nil {
		s.log.Error("cannot record source", "source", name, "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stops == nil {
		s.stops = map[string]func(){}
	}
	if old := s.stops[name]; old != nil {
		old()
	}
	s.stops[name] = stop
}

func (s *sinks) offline(name string) {
	if s.uplinks.api != nil {
		s.uplinks.offline(name)
	}
	s.mu.Lock()
	stop := s.stops[name]
	delete(s.stops, name)
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
}
