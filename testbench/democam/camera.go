package main

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/pion/rtp"
)

// camera is one served path. It answers DESCRIBE from a stream that carries no packets, and
// gives every reader session a stream of its own, so that each reader's video starts at a
// keyframe.
type camera struct {
	name     string
	player   *player
	log      *slog.Logger
	describe *gortsplib.ServerStream

	mu      sync.Mutex
	readers map[*gortsplib.ServerSession]*sessionSink
	streams map[*gortsplib.ServerSession]*gortsplib.ServerStream
	closed  bool
}

func newCamera(name string, pl *player, logger *slog.Logger) *camera {
	return &camera{
		name:    name,
		player:  pl,
		log:     logger.With("component", "democam", "camera", name),
		readers: make(map[*gortsplib.ServerSession]*sessionSink),
		streams: make(map[*gortsplib.ServerSession]*gortsplib.ServerStream),
	}
}

// initialize creates the DESCRIBE stream; the server must be started.
func (c *camera) initialize(srv *gortsplib.Server) error {
	c.describe = &gortsplib.ServerStream{Server: srv, Desc: c.player.newDescription()}
	return c.describe.Initialize()
}

// readerStream returns the stream of session ss, creating it at its first SETUP.
func (c *camera) readerStream(srv *gortsplib.Server, ss *gortsplib.ServerSession) (*gortsplib.ServerStream, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("%s is shutting down", c.name)
	}
	if st, ok := c.streams[ss]; ok {
		return st, nil
	}
	desc := c.player.newDescription()
	st := &gortsplib.ServerStream{Server: srv, Desc: desc}
	if err := st.Initialize(); err != nil {
		return nil, fmt.Errorf("set up a stream for %s: %w", c.name, err)
	}
	c.streams[ss] = st
	c.readers[ss] = &sessionSink{
		w:         st,
		desc:      desc,
		delivered: func() uint64 { return st.Stats().OutboundRTPPackets },
	}
	return st, nil
}

// removeReader forgets session ss and closes its stream, if ss reads this camera.
func (c *camera) removeReader(ss *gortsplib.ServerSession) {
	c.mu.Lock()
	st, ok := c.streams[ss]
	delete(c.streams, ss)
	delete(c.readers, ss)
	c.mu.Unlock()
	if ok {
		st.Close()
	}
}

// close closes every stream of the camera.
func (c *camera) close() {
	c.mu.Lock()
	c.closed = true
	streams := c.streams
	c.streams = map[*gortsplib.ServerSession]*gortsplib.ServerStream{}
	c.readers = map[*gortsplib.ServerSession]*sessionSink{}
	c.mu.Unlock()
	for _, st := range streams {
		st.Close()
	}
	if c.describe != nil {
		c.describe.Close()
	}
}

// writeVideoFrame implements mediaSink: it sends a frame to every reader.
func (c *camera) writeVideoFrame(pkts []*rtp.Packet, ntp time.Time, keyframe bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ss, r := range c.readers {
		if err := r.writeVideoFrame(pkts, ntp, keyframe); err != nil {
			// the session is closing; OnSessionClose removes it.
			c.log.Debug("reader write failed", "path", ss.Path(), "error", err)
		}
	}
	return nil
}

// writeAudioFrame implements mediaSink: it sends a frame to every reader.
func (c *camera) writeAudioFrame(pkts []*rtp.Packet, ntp time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ss, r := range c.readers {
		if err := r.writeAudioFrame(pkts, ntp); err != nil {
			c.log.Debug("reader write failed", "path", ss.Path(), "error", err)
		}
	}
	return nil
}

// writeSenderReports implements mediaSink: it offers the clocks to every reader.
func (c *camera) writeSenderReports(now time.Time, sr srPoint) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ss, r := range c.readers {
		if err := r.writeSenderReports(now, sr); err != nil {
			c.log.Debug("reader write failed", "path", ss.Path(), "error", err)
		}
	}
	return nil
}
