package ingest

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v5"

	"fieldvideo/internal/conf"
	"fieldvideo/internal/stream"
	tsync "fieldvideo/internal/sync"
)

// State is where a source is in its life.
type State string

// Source states.
const (
	// StateConnecting: a camera is being dialled, or a publisher announced
	// and has not started recording yet.
	StateConnecting State = "connecting"
	// StateLive: media is flowing.
	StateLive State = "live"
	// StateOffline: a publisher left, or ingest is shutting down.
	StateOffline State = "offline"
	// StateFailed: the last attempt to reach a camera failed; Reason says
	// why, and ingest retries by itself.
	StateFailed State = "failed"
	// StateDisabled: a camera kept listed but not pulled (cameras API).
	StateDisabled State = "disabled"
	// StateStandby: another ingest of the cluster pulls the camera; this
	// one takes it over when that one stops (Reason names it).
	StateStandby State = "standby"
)

// Source kinds.
const (
	KindPull = "pull"
	KindPush = "push"
)

// SourceInfo is a snapshot of one source for the API.
type SourceInfo struct {
	Name string `json:"name"`
	Kind string `json:"kind"` // pull or push
	// URL is the camera URL with its password redacted (pull only).
	URL   string `json:"url,omitempty"`
	State State  `json:"state"`
	// Transport is how media arrives: TCP or UDP.
	Transport string    `json:"transport,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Since     time.Time `json:"since"`
	// Tracks are the tracks being carried; Skipped the ones that could not be.
	Tracks  []TrackInfo `json:"tracks"`
	Skipped []TrackInfo `json:"skipped,omitempty"`
	// Clock is the alignment of the source's first video track (else its
	// first track) onto the common time baseline.
	Clock *tsync.ClockInfo `json:"clock,omitempty"`
	// Packets, Bytes (RTP payload), Lost (from sequence gaps) and
	// DecodeErrors (packets gortsplib could not decode) count since start.
	Packets      uint64 `json:"packets"`
	Bytes        uint64 `json:"bytes"`
	Lost         uint64 `json:"lost"`
	DecodeErrors uint64 `json:"decode_errors"`
	// Readers is the number of stream readers (uplink, recorder, the RTSP
	// output); RTSPPlayers the RTSP sessions playing the source.
	Readers     int `json:"readers"`
	RTSPPlayers int `json:"rtsp_players"`
	// Publisher and Remote identify the current publisher (push only).
	Publisher string `json:"publisher,omitempty"`
	Remote    string `json:"remote,omitempty"`
	// Failures counts consecutive failed attempts to reach a camera;
	// BackoffMS is the delay before the next one, RetryAt its time.
	Failures  int       `json:"failures,omitempty"`
	BackoffMS int64     `json:"backoff_ms,omitempty"`
	RetryAt   time.Time `json:"retry_at,omitzero"`
}

// source is one named source. Its stream lives as long as the process,
// or until the camera is removed (RemoveCamera).
type source struct {
	name   string
	kind   string
	url    string // redacted camera URL
	stream *stream.Stream

	// Guarded by registry.mu.
	state     State
	reason    string
	since     time.Time
	inputs    []inputTrack
	writers   []*trackWriter // of the current upstream session, for clock health
	tracks    []TrackInfo
	skipped   []TrackInfo
	publisher *gortsplib.ServerSession
	pubWho    string
	pubRemote string
	transport string
	failures  int
	backoff   time.Duration
	retryAt   time.Time
	out       *rtspOut
	events    []bool // pending notifications: true live, false offline
	notifying bool
	// removed: the source left the registry; its stream closes once its
	// last notification is delivered, and drained is closed then.
	removed bool
	drained chan struct{}

	packets, bytes, decodeErrs atomic.Uint64
	lost                       atomic.Int64
}

// Reasons a publish or a new camera is refused by the registry.
var (
	errIsCamera = errors.New("is a pulled camera")
	errBusy     = errors.New("is already being published")
	errIsPushed = errors.New("is a pushed source")
)

// registry holds every source and delivers OnLive/OnOffline in order, per
// source, on a goroutine that holds no lock.
type registry struct {
	log       *slog.Logger
	streamCfg conf.Stream
	onLive    func(string, *stream.Stream)
	onOffline func(string)
	now       func() time.Time

	mu      sync.Mutex
	sources map[string]*source
	closed  bool
	wg      sync.WaitGroup // notifier goroutines
}

func newRegistry(log *slog.Logger, sc conf.Stream, onLive func(string, *stream.Stream), onOffline func(string)) *registry {
	return &registry{log: log, streamCfg: sc, onLive: onLive, onOffline: onOffline, now: time.Now, sources: map[string]*source{}}
}

func (r *registry) newSourceLocked(name, kind, url string, state State) *source {
	s := &source{
		name: name, kind: kind, url: url, state: state, since: r.now(),
		stream: stream.New(stream.Params{
			Name:             name,
			GOPCacheUnits:    r.streamCfg.GOPCacheUnits,
			GOPCacheBytes:    r.streamCfg.GOPCacheBytes,
			KeyframeInterval: r.streamCfg.KeyframeInterval,
		}),
	}
	r.sources[name] = s
	return s
}

// addCamera registers a pulled camera, in state connecting or disabled. It
// refuses a name already taken by a camera (errIsCamera) or a pushed source
// (errIsPushed).
func (r *registry) addCamera(name, redactedURL string, st State) (*source, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.sources[name]; s != nil {
		if s.kind == KindPull {
			return nil, errIsCamera
		}
		return nil, errIsPushed
	}
	return r.newSourceLocked(name, KindPull, redactedURL, st), nil
}

// setURL changes the redacted URL a camera is listed with.
func (r *registry) setURL(s *source, redactedURL string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s.url = redactedURL
}

// remove takes a camera out of the registry (its name is free again): it
// goes offline, its RTSP output closes, and its stream closes once the
// OnOffline call is delivered. remove returns after that delivery, so that
// a source added later under the same name is announced after it. It must
// not be called from OnLive or OnOffline.
func (r *registry) remove(s *source, reason string) {
	r.removeIf(s, reason, nil)
}

// removeIf is remove when cond, called under the registry's lock, holds (or
// is nil); it reports whether s was removed.
func (r *registry) removeIf(s *source, reason string, cond func(*source) bool) bool {
	r.mu.Lock()
	if cond != nil && !cond(s) {
		r.mu.Unlock()
		return false
	}
	if r.sources[s.name] == s {
		delete(r.sources, s.name)
	}
	o := s.out
	s.out = nil
	s.retryAt = time.Time{}
	r.setStateLocked(s, StateOffline, reason)
	s.removed = true
	drained := s.drained
	if !s.notifying {
		drained = nil
	} else if drained == nil {
		drained = make(chan struct{})
		s.drained = drained
	}
	r.mu.Unlock()
	if o != nil {
		o.close()
	}
	if drained == nil {
		s.stream.Close()
		return true
	}
	<-drained
	return true
}

// idlePush reports whether s is a pushed source without a publisher. The
// registry's lock must be held.
func idlePush(s *source) bool { return s.kind == KindPush && s.publisher == nil && !s.removed }

// idlePushesOf returns the pushed sources without a publisher that who
// published last, beyond the keep most recently active, oldest first.
func (r *registry) idlePushesOf(who string, keep int) []*source {
	r.mu.Lock()
	defer r.mu.Unlock()
	var idle []*source
	for _, s := range r.sources {
		if idlePush(s) && s.pubWho == who {
			idle = append(idle, s)
		}
	}
	if len(idle) <= keep {
		return nil
	}
	slices.SortFunc(idle, func(a, b *source) int { return a.since.Compare(b.since) })
	return idle[:len(idle)-keep]
}

func (r *registry) get(name string) *source {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sources[name]
}

// claim makes ss the publisher of name, creating the source on its first
// push. It refuses camera names and sources that already have a publisher.
func (r *registry) claim(name string, ss *gortsplib.ServerSession, who, remote string, in []inputTrack, skipped []TrackInfo) (*source, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.sources[name]
	switch {
	case s == nil:
		s = r.newSourceLocked(name, KindPush, "", StateConnecting)
	case s.kind == KindPull:
		return nil, errIsCamera
	case s.publisher != nil:
		return nil, errBusy
	}
	s.publisher, s.pubWho, s.pubRemote = ss, who, remote
	r.setStateLocked(s, StateConnecting, "announced, waiting for RECORD")
	s.tracks, s.skipped = trackInfos(in), skipped
	return s, nil
}

// release ends ss's publishing of s, if it is the publisher.
func (r *registry) release(s *source, ss *gortsplib.ServerSession, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s.publisher != ss {
		return
	}
	s.publisher = nil
	s.stream.DropCache()
	r.setStateLocked(s, StateOffline, reason)
}

// prepare starts a new upstream session of s with tracks in: the stream
// restarts (its readers re-anchor, or end when the tracks changed) before
// the first packet of the session is written.
func (r *registry) prepare(s *source, in []inputTrack, skipped []TrackInfo, ws []*trackWriter) {
	r.mu.Lock()
	defer r.mu.Unlock()
	tracks := tracksOf(in)
	s.inputs, s.writers = in, ws
	s.tracks, s.skipped = trackInfos(in), skipped
	if s.out != nil && !s.out.carries(tracks) {
		s.out = nil // its reader ends below and closes it; players re-DESCRIBE
	}
	s.stream.Restart(tracks)
}

// setConnecting marks a camera attempt.
func (r *registry) setConnecting(s *source, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s.retryAt = time.Time{}
	r.setStateLocked(s, StateConnecting, reason)
}

// setLive marks s live over transport (TCP or UDP); OnLive follows.
func (r *registry) setLive(s *source, transport string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s.transport = transport
	s.failures, s.backoff, s.retryAt = 0, 0, time.Time{}
	r.setStateLocked(s, StateLive, "")
}

// setFailed records a failed camera attempt and when the next one is due.
func (r *registry) setFailed(s *source, reason string, failures int, backoff time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s.failures, s.backoff, s.retryAt = failures, backoff, r.now().Add(backoff)
	r.setStateLocked(s, StateFailed, reason)
}

// setStandby marks a camera pulled by another ingest; OnOffline follows
// when it was live here.
func (r *registry) setStandby(s *source, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s.failures, s.backoff, s.retryAt, s.transport = 0, 0, time.Time{}, ""
	r.setStateLocked(s, StateStandby, reason)
}

// setOffline marks s offline (shutdown).
func (r *registry) setOffline(s *source, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s.retryAt = time.Time{}
	r.setStateLocked(s, StateOffline, reason)
}

// setDisabled marks a camera disabled; OnOffline follows when it was live.
func (r *registry) setDisabled(s *source, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s.failures, s.backoff, s.retryAt, s.transport = 0, 0, time.Time{}, ""
	r.setStateLocked(s, StateDisabled, reason)
}

// setStateLocked changes the state, and queues OnLive when s goes live and
// OnOffline when it stops being live.
func (r *registry) setStateLocked(s *source, st State, reason string) {
	was := s.state
	if was != st {
		s.since = r.now()
	}
	s.state, s.reason = st, reason
	switch {
	case st == StateLive && was != StateLive:
		r.notifyLocked(s, true)
	case st != StateLive && was == StateLive:
		r.notifyLocked(s, false)
	}
}

func (r *registry) notifyLocked(s *source, live bool) {
	if r.closed || (live && r.onLive == nil) || (!live && r.onOffline == nil) {
		return
	}
	s.events = append(s.events, live)
	if s.notifying {
		return
	}
	s.notifying = true
	r.wg.Add(1)
	go r.deliver(s)
}

// deliver calls the hooks for s's queued events, in order, without locks.
func (r *registry) deliver(s *source) {
	defer r.wg.Done()
	for {
		r.mu.Lock()
		if len(s.events) == 0 {
			s.notifying = false
			removed, drained := s.removed, s.drained
			s.drained = nil
			r.mu.Unlock()
			if removed {
				s.stream.Close()
			}
			if drained != nil {
				close(drained)
			}
			return
		}
		live := s.events[0]
		s.events = s.events[1:]
		r.mu.Unlock()
		if live {
			r.onLive(s.name, s.stream)
		} else {
			r.onOffline(s.name)
		}
	}
}

// closeNotify stops queueing hook calls and waits for queued ones to run.
func (r *registry) closeNotify() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.wg.Wait()
}

func (r *registry) all() []*source {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*source, 0, len(r.sources))
	for _, s := range r.sources {
		out = append(out, s)
	}
	return out
}

// snapshot returns every source's state, sorted by name.
func (r *registry) snapshot() []SourceInfo {
	srcs := r.all()
	out := make([]SourceInfo, 0, len(srcs))
	for _, s := range srcs {
		out = append(out, r.info(s))
	}
	slices.SortFunc(out, func(a, b SourceInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (r *registry) info(s *source) SourceInfo {
	st := s.stream.Stats()
	r.mu.Lock()
	defer r.mu.Unlock()
	in := SourceInfo{
		Name: s.name, Kind: s.kind, URL: s.url, State: s.state, Transport: s.transport, Reason: s.reason, Since: s.since,
		Tracks: slices.Clone(s.tracks), Skipped: slices.Clone(s.skipped),
		Packets: s.packets.Load(), Bytes: s.bytes.Load(), Lost: uint64(max(s.lost.Load(), 0)),
		DecodeErrors: s.decodeErrs.Load(), Readers: st.Readers,
		Failures: s.failures, BackoffMS: s.backoff.Milliseconds(), RetryAt: s.retryAt,
	}
	if s.out != nil {
		in.RTSPPlayers = s.out.players
	}
	if in.Tracks == nil {
		in.Tracks = []TrackInfo{}
	}
	if s.publisher != nil {
		in.Publisher, in.Remote = s.pubWho, s.pubRemote
	}
	now := r.now()
	for i, w := range s.writers {
		if i >= len(in.Tracks) {
			break
		}
		ci, ok := w.health(now)
		if !ok {
			continue
		}
		in.Tracks[i].Clock = &ci
		if in.Clock == nil || (in.Tracks[i].Kind == "video" && !sourceClockIsVideo(in)) {
			in.Clock = in.Tracks[i].Clock
		}
	}
	return in
}

// sourceClockIsVideo reports whether the source's clock comes from a video track.
func sourceClockIsVideo(in SourceInfo) bool {
	for _, t := range in.Tracks {
		if t.Clock == in.Clock {
			return t.Kind == "video"
		}
	}
	return false
}

// defaultMaxIdlePushes is Params.MaxIdlePushes's default: a responder's
// phone may push under many names (report-{sub}-*), and each would stay
// listed, here and on every wall, for good.
const defaultMaxIdlePushes = 32

// pruneIdlePushes takes who's pushed sources without a publisher beyond
// Params.MaxIdlePushes off the list, the oldest first; their recordings stay.
func (s *Server) pruneIdlePushes(who string) {
	keep := s.p.MaxIdlePushes
	if keep <= 0 {
		keep = defaultMaxIdlePushes
	}
	for _, src := range s.reg.idlePushesOf(who, keep) {
		reason := fmt.Sprintf("%s has more than %d pushed sources without a publisher; the oldest leave the list (their recordings stay)", who, keep)
		if !s.reg.removeIf(src, reason, idlePush) {
			continue // published again meanwhile
		}
		s.log.Info("pushed source taken off the list", "source", src.name, "publisher", who, "reason", reason)
		if f := s.p.OnRemoved; f != nil {
			go f(src.name)
		}
	}
}
