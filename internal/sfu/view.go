package sfu

import (
	"fmt"
	"net/http"
	"slices"
	"sync"

	"github.com/pion/webrtc/v4"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/stream"
	"fieldvideo/internal/whip"
)

// viewer is a WHEP session reading one source.
type viewer struct {
	ss     *session
	src    *source
	tracks []*whip.LocalTrack // indexed by stream track; nil when not sent
	reader *stream.Reader
	mu     sync.Mutex
}

// view answers a WHEP offer: POST /{source}/whep.
func (s *Server) view(r *http.Request, name string, ev *audit.Event) (*session, string, error) {
	c, err := s.authorize(r, "whep", name)
	if c != nil {
		ev.Actor, ev.Role = c.Who(), string(c.Role)
	}
	if err != nil {
		return nil, "", err
	}
	body, err := whip.ReadBody(r, whip.ContentTypeSDP)
	if err != nil {
		return nil, "", err
	}
	offer, err := whip.ParseOffer(body)
	if err != nil {
		return nil, "", err
	}
	s.mu.Lock()
	src := s.sources[name]
	if (src == nil || !src.live()) && s.p.Locate != nil {
		// published on another node of the cluster: relayed here
		s.mu.Unlock()
		s.awaitRelay(r.Context(), name)
		s.mu.Lock()
		src = s.sources[name]
	}
	if src == nil || !src.live() {
		s.mu.Unlock()
		return nil, "", whip.Errorf(http.StatusNotFound, "source %q is not being published now; retry later", name)
	}
	st := src.stream
	s.mu.Unlock()

	pc, err := s.viewAPI.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, "", err
	}
	ss := s.newSession("whep", name, c, r, pc)
	ev.Session = ss.id
	v := &viewer{ss: ss, src: src}
	batch := whip.NewBatch(s.media, pc)

	// Give each offered media section the next source track of its kind
	// whose codec the viewer can decode.
	tracks := st.Tracks()
	v.tracks = make([]*whip.LocalTrack, len(tracks))
	var want []int
	var missing []string
	for _, m := range offer.MediaDescriptions {
		offered := whip.Offered(m)
		for i, t := range tracks {
			if v.tracks[i] != nil || !t.Relayable() || t.Kind.String() != m.MediaName.Media {
				continue
			}
			codec, ok := whip.CodecFor(t)
			if !ok || !slices.Contains(offered, t.Codec) {
				missing = append(missing, fmt.Sprintf("%s %s (you offered %v)", t.Kind, t.Codec, offered))
				continue
			}
			lt := whip.NewLocalTrack(fmt.Sprintf("%s%d", t.Kind, i), name, i, t, codec)
			lt.Latency, lt.Batch = s.forward, batch
			tr, err := pc.AddTransceiverFromTrack(lt, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
			if err == nil {
				// Answer with the viewer's own payload type for the codec:
				// players number codecs as they like, and media under a
				// number the offer did not name is dropped.
				pref := codec
				pref.PayloadType = 0
				err = tr.SetCodecPreferences([]webrtc.RTPCodecParameters{pref})
			}
			if err != nil {
				pc.Close()
				return nil, "", err
			}
			v.tracks[i] = lt
			want = append(want, i)
			go lt.ServeRTCP(tr.Sender(), func() { st.RequestKeyframe(i) }, nil)
			break
		}
	}
	if len(want) == 0 {
		pc.Close()
		return nil, "", whip.Errorf(http.StatusNotAcceptable, "nothing of source %q can be sent to this player: %v", name, missing)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: whip.WithoutCandidates(string(body))}); err != nil {
		pc.Close()
		return nil, "", whip.Errorf(http.StatusBadRequest, "offer rejected: %v", err)
	}
	answer, err := answer(r.Context(), pc)
	if err != nil {
		pc.Close()
		return nil, "", err
	}

	reportsDone := make(chan struct{})
	go whip.SendReports(pc, reportsDone, whip.Reporters(v.tracks))

	// Start reading once the connection is up, so the cached pictures the
	// stream replays first reach the viewer instead of a closed door.
	var startOnce sync.Once
	pc.OnConnectionStateChange(func(state webrtc.PeerConnectionState) {
		switch state {
		case webrtc.PeerConnectionStateConnected:
			ss.markConnected()
			startOnce.Do(func() { v.start(st, want) })
		case webrtc.PeerConnectionStateFailed:
			go ss.close("connection failed")
		case webrtc.PeerConnectionStateClosed:
			go ss.close("connection closed")
		}
	})
	ss.onClose = func() {
		close(reportsDone)
		v.mu.Lock()
		r := v.reader
		v.reader = nil
		v.mu.Unlock()
		if r != nil {
			r.Close()
		}
		s.mu.Lock()
		delete(src.viewers, v)
		s.mu.Unlock()
	}
	s.mu.Lock()
	src.viewers[v] = struct{}{}
	s.sessions[ss.id] = ss
	s.mu.Unlock()
	return ss, answer, nil
}

func (v *viewer) start(st *stream.Stream, want []int) {
	r, err := st.AddReader(stream.ReaderParams{
		Name:      v.ss.id,
		QueueSize: v.ss.s.p.Conf.Stream.QueueSize,
		MaxLag:    stream.LiveLag,
		Tracks:    want,
		// live units go out on the publisher's goroutine while the viewer keeps
		// up: its sends are UDP writes that do not wait for the viewer
		Inline: true,
		OnUnit: func(d stream.Delivery) {
			if lt := v.tracks[d.Unit.Track]; lt != nil {
				_ = lt.Write(d)
			}
		},
		OnEnd: func(err error) {
			if err != stream.ErrReaderClosed {
				go v.ss.close(err.Error())
			}
		},
	})
	if err != nil {
		go v.ss.close(err.Error())
		return
	}
	v.mu.Lock()
	v.reader = r
	v.mu.Unlock()
}

// dropped returns how many units the hub dropped for this viewer.
func (v *viewer) dropped() uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.reader == nil {
		return 0
	}
	return v.reader.Dropped()
}
