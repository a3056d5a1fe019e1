package recorder

import (
	"time"

	"fieldvideo/internal/unit"
)

const (
	// layerGone: a simulcast layer with no unit for this long, while another one arrives,
	// has stopped (a publisher short of uplink stops its top layers at once).
	layerGone = 400 * time.Millisecond
	// layerLate: the recorded layer missing this long while a lower one arrives may be
	// stopping. Each layer not recorded is kept from its last keyframe (layerGOPUnits at
	// most), and while the recorded one is late a keyframe does not start the kept run
	// again: a switch down records the lower layer from a keyframe before the recorded
	// one stopped, so nothing is lost in between (the new segment begins before the last
	// one ends). A lower layer with nothing kept is asked for a keyframe then.
	layerLate     = 120 * time.Millisecond
	layerGOPUnits = 512
	// layerSteady: a higher layer must have arrived this long, without a gap, before the
	// recording moves up to it (a layer the sender turns on and off does not cut the
	// recording into short segments).
	layerSteady = 2 * time.Second
	// layerAskEvery: keyframe requests for the layer the recording waits for are this far
	// apart at least.
	layerAskEvery = 500 * time.Millisecond
	// layerStart: the recording's first layer is chosen this long after the first unit,
	// when every layer the publisher starts has shown; what came meanwhile is kept and
	// recorded from the chosen layer's first keyframe.
	layerStart      = 300 * time.Millisecond
	layerStartUnits = 256
)

// layerPick chooses which simulcast layer of a video is recorded: the highest one arriving.
// A publisher short of uplink stops sending its top layers; the recording then goes on
// with the best layer that still comes, and moves back up when a higher one arrives
// steadily. Layers are switched at a keyframe of the new one, asked for when needed.
type layerPick struct {
	layers []int       // stream track indices, lowest first
	seen   []time.Time // last unit per layer
	since  []time.Time // start of the layer's current run without gaps
	cur    int         // index in layers of the layer recorded; -1 before the first
	asked  time.Time
	// first is when the first unit came; start holds the units of the start window.
	first time.Time
	start []*unit.Unit
	out   []*unit.Unit
	// gop holds each layer's units from its last keyframe (none for the recorded layer);
	// askedLate is the layer asked for a keyframe since the recorded one went late (-1).
	gop       [][]*unit.Unit
	askedLate int
}

func newLayerPick(layers []int) *layerPick {
	return &layerPick{layers: layers, seen: make([]time.Time, len(layers)), since: make([]time.Time, len(layers)),
		gop: make([][]*unit.Unit, len(layers)), cur: -1, askedLate: -1}
}

func (p *layerPick) index(track int) int {
	for i, t := range p.layers {
		if t == track {
			return i
		}
	}
	return -1
}

// offer tells the pick that unit u came at now. It returns the units to record (owned by
// the pick until the next call) and the stream track to ask a keyframe of (-1: none).
func (p *layerPick) offer(u *unit.Unit, now time.Time) (rec []*unit.Unit, ask int) {
	l := p.index(u.Track)
	if l < 0 {
		return nil, -1
	}
	if p.seen[l].IsZero() || now.Sub(p.seen[l]) > layerGone {
		p.since[l] = now
	}
	p.seen[l] = now
	p.out = p.out[:0]
	if p.cur < 0 && p.opening(u, now) {
		return nil, -1
	}
	want := p.want(now)
	ask = p.keep(u, l, now)
	switch {
	case p.cur < 0:
		p.cur = p.fromStart(want)
		p.keepFromStart()
		clear(p.start)
		p.start = p.start[:0]
	case l == want && l < p.cur && len(p.gop[l]) > 0:
		// down, to the layer kept from its last keyframe (u is kept too); a keyframe of it
		// soon ends the segment that begins back there.
		p.cur = l
		p.out = append(p.out, p.gop[l]...)
		p.drop(l)
		if ask < 0 && len(p.out) > 1 {
			p.asked, ask = now, p.layers[l]
		}
	case l == want && (l == p.cur || u.Keyframe):
		if l != p.cur {
			p.drop(l)
		}
		p.cur = l
		p.out = append(p.out, u)
	case l == p.cur:
		p.out = append(p.out, u) // the current layer goes on until the wanted one's keyframe
	}
	if ask < 0 && want != p.cur && now.Sub(p.asked) >= layerAskEvery {
		p.asked = now
		ask = p.layers[want]
	}
	return p.out, ask
}

// keep keeps the units of the layers not recorded from their last keyframe. While the
// recorded layer is late, a keyframe of another layer does not start its run again, and
// the highest lower layer arriving with nothing kept is asked for a keyframe (the stream
// track returned; -1 none), once.
func (p *layerPick) keep(u *unit.Unit, l int, now time.Time) (ask int) {
	if p.cur < 0 {
		return -1
	}
	if l == p.cur {
		p.askedLate = -1
		return -1
	}
	late := now.Sub(p.seen[p.cur]) > layerLate
	p.add(l, u, !late)
	if !late || l > p.cur || len(p.gop[l]) > 0 || l == p.askedLate {
		return -1
	}
	for h := p.cur - 1; h > l; h-- {
		if p.arriving(h, now) {
			return -1 // a higher layer is the one to go down to
		}
	}
	p.askedLate, p.asked = l, now
	return p.layers[l]
}

// drop forgets what is kept of layer l.
func (p *layerPick) drop(l int) {
	clear(p.gop[l])
	p.gop[l] = p.gop[l][:0]
}

// below is the stream track of the highest layer below the recorded one that arrives
// (-1: none): asked for a keyframe with the recorded one, when a segment is due, so that
// what is kept of it stays short.
func (p *layerPick) below(now time.Time) int {
	for l := p.cur - 1; l >= 0; l-- {
		if p.arriving(l, now) {
			return p.layers[l]
		}
	}
	return -1
}

// opening keeps u in the start window, and reports whether the window is still open.
func (p *layerPick) opening(u *unit.Unit, now time.Time) bool {
	if p.first.IsZero() {
		p.first = now
	}
	p.start = append(p.start, u)
	return now.Sub(p.first) < layerStart && len(p.start) < layerStartUnits
}

// fromStart puts in out the start window's units of the wanted layer from its first
// keyframe, or of the highest layer below that has one, and returns that layer (-1: none).
func (p *layerPick) fromStart(want int) int {
	for l := want; l >= 0; l-- {
		k := -1
		for i, u := range p.start {
			if u.Track == p.layers[l] && u.Keyframe {
				k = i
				break
			}
		}
		if k < 0 {
			continue
		}
		for _, u := range p.start[k:] {
			if u.Track == p.layers[l] {
				p.out = append(p.out, u)
			}
		}
		return l
	}
	return -1
}

// keepFromStart keeps the start window's units of the layers not recorded, from their
// last keyframe.
func (p *layerPick) keepFromStart() {
	for l := range p.layers {
		if l != p.cur {
			p.drop(l)
		}
	}
	for _, u := range p.start {
		if l := p.index(u.Track); l != p.cur {
			p.add(l, u, true)
		}
	}
}

// add keeps unit u of layer l: a keyframe starts what is kept again when restart is set
// (or nothing is kept), other units extend it, up to layerGOPUnits.
func (p *layerPick) add(l int, u *unit.Unit, restart bool) {
	g := p.gop[l]
	switch {
	case u.Keyframe && (restart || len(g) == 0):
		clear(g)
		g = append(g[:0], u)
	case len(g) >= layerGOPUnits:
		clear(g) // too long to keep: the next keyframe starts it again
		g = g[:0]
	case len(g) > 0:
		g = append(g, u)
	}
	p.gop[l] = g
}

func (p *layerPick) arriving(l int, now time.Time) bool {
	return !p.seen[l].IsZero() && now.Sub(p.seen[l]) <= layerGone
}

// want is the layer to record: the highest arriving, except that while the current one
// still arrives a higher one must have arrived steadily.
func (p *layerPick) want(now time.Time) int {
	curOK := p.cur >= 0 && p.arriving(p.cur, now)
	for l := len(p.layers) - 1; l >= 0; l-- {
		if !p.arriving(l, now) {
			continue
		}
		if curOK && l > p.cur && now.Sub(p.since[l]) < layerSteady {
			continue
		}
		return l
	}
	return max(p.cur, 0)
}

// setLayers binds the segmenter to the simulcast layers cfg.layers of tracks: one recorded
// track, fed by the layer the pick chooses.
func (s *segmenter) setLayers(tracks []unit.Track) {
	var layers []int
	for _, l := range s.cfg.layers {
		if l >= 0 && l < len(tracks) && tracks[l].Kind == unit.KindVideo && tracks[l].Codec == tracks[s.cfg.layers[0]].Codec {
			layers = append(layers, l)
		}
	}
	if len(layers) == 0 {
		s.log.Warn("no simulcast layer of the source can be recorded; nothing is stored until it changes its tracks")
		s.st.skipped.Store([]string{"no recordable simulcast layer"})
		return
	}
	rt, err := newRecTrack(layers[0], tracks[layers[0]])
	if err != nil {
		s.log.Warn("track not recorded", "reason", err)
		s.st.skipped.Store([]string{err.Error()})
		return
	}
	rt.id = 1
	for _, l := range layers {
		s.tracks[l] = rt
	}
	s.list, s.leader, s.pick = []*recTrack{rt}, rt, newLayerPick(layers)
	s.st.skipped.Store([]string(nil))
	s.st.layered.Store(true)
	s.st.layer.Store(-1)
}

// pickLayer returns the units to record of those that came up to u, a unit of a simulcast
// layer. On a switch to another layer the segment in progress is closed, and the track
// starts again from the new layer's keyframe (its own parameter sets and timestamps) in a
// new segment.
func (s *segmenter) pickLayer(u *unit.Unit) []*unit.Unit {
	rec, ask := s.pick.offer(u, s.lastUnit)
	if ask >= 0 && s.cfg.keyframe != nil {
		s.cfg.keyframe(ask)
	}
	if len(rec) == 0 {
		return nil
	}
	tr, track := s.leader, rec[0].Track
	if tr.index != track {
		if s.st.layer.Load() >= 0 {
			s.log.Info("recording another simulcast layer", "from", tr.index, "to", track)
			s.finish()
			s.st.layerSwitches.Add(1)
		}
		tr.reset()
		tr.index = track
	}
	s.st.layer.Store(int32(track))
	return rec
}
