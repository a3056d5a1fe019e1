package session

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"fieldvideo/internal/stream"
	"fieldvideo/internal/unit"
	"fieldvideo/internal/whip"
)

// This file holds the participant's media: answering publish offers,
// turning remote tracks into published tracks, subscriptions on the
// subscribe connection and the per-subscriber layer choice.

func kindOfSource(source string) string {
	if source == SourceMicrophone || source == SourceScreenSnd {
		return "audio"
	}
	return "video"
}

func direction(m *sdp.MediaDescription) string {
	for _, d := range []string{"sendonly", "recvonly", "inactive", "sendrecv"} {
		if _, ok := m.Attribute(d); ok {
			return d
		}
	}
	return "sendrecv"
}

// ridsOf returns the simulcast layers a media section sends, in the order
// the offer lists them (lowest first, by the protocol), or one unnamed
// layer.
func ridsOf(m *sdp.MediaDescription) []string {
	if v, ok := m.Attribute("simulcast"); ok {
		if rest, ok := strings.CutPrefix(v, "send "); ok {
			var rids []string
			for _, alt := range strings.Split(strings.Fields(rest)[0], ";") {
				first, _, _ := strings.Cut(alt, ",")
				if r := strings.TrimPrefix(first, "~"); r != "" && !slices.Contains(rids, r) {
					rids = append(rids, r)
				}
			}
			if len(rids) > 0 {
				return rids
			}
		}
	}
	var rids []string
	for _, a := range m.Attributes {
		if a.Key == "rid" {
			if f := strings.Fields(a.Value); len(f) >= 2 && f[1] == "send" && !slices.Contains(rids, f[0]) {
				rids = append(rids, f[0])
			}
		}
	}
	if len(rids) > 0 {
		return rids
	}
	return []string{""}
}

// preferredCodec picks the publishable codec of a kind the offer has, best
// first, with its RTX companion for video.
func preferredCodec(kind string, offered []string) ([]webrtc.RTPCodecParameters, bool) {
	for _, name := range publishable {
		if !slices.Contains(offered, name) {
			continue
		}
		for i, c := range roomCodecs {
			if whip.CodecName(c.MimeType) != name || !strings.HasPrefix(c.MimeType, kind+"/") {
				continue
			}
			out := []webrtc.RTPCodecParameters{c}
			if i+1 < len(roomCodecs) && roomCodecs[i+1].MimeType == webrtc.MimeTypeRTX {
				out = append(out, roomCodecs[i+1])
			}
			return out, true
		}
	}
	return nil, false
}

// subscribeCodecs lists, for a subscribe media section carrying codec, every
// call codec of the kind with codec (and its RTX) first: the client's answer
// then accepts them all, so that later sections of the same connection can
// carry a track of another codec (an H.264 field camera after VP8 phones).
func subscribeCodecs(kind string, codec webrtc.RTPCodecParameters) []webrtc.RTPCodecParameters {
	first, _ := preferredCodec(kind, []string{whip.CodecName(codec.MimeType)})
	out := slices.Clone(first)
	for i, c := range roomCodecs {
		if !strings.HasPrefix(c.MimeType, kind+"/") || c.MimeType == webrtc.MimeTypeRTX || c.MimeType == codec.MimeType {
			continue
		}
		out = append(out, c)
		if i+1 < len(roomCodecs) && roomCodecs[i+1].MimeType == webrtc.MimeTypeRTX {
			out = append(out, roomCodecs[i+1])
		}
	}
	if len(out) == 0 {
		out = []webrtc.RTPCodecParameters{codec}
	}
	return out
}

// onOffer answers the client's offer on the publish connection: new
// tracks, removed tracks, or an ICE restart.
func (p *participant) onOffer(m *Offer) error {
	if !p.claims.RoomPublish {
		return errorf(CodeForbidden, "token of %s (role %s) may not publish in room %q: it has no room_publish grant", p.id, p.claims.Role, p.room.name)
	}
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(m.SDP); err != nil {
		return errorf(CodeBadRequest, "offer SDP does not parse: %v", err)
	}
	meta := map[string]TrackMeta{}
	for _, t := range m.Tracks {
		meta[t.Mid] = t
	}
	sending := map[string]*sdp.MediaDescription{}
	for _, md := range sd.MediaDescriptions {
		mid, _ := md.Attribute("mid")
		if md.MediaName.Port.Value == 0 || md.MediaName.Media == "application" {
			continue
		}
		if d := direction(md); d == "sendonly" || d == "sendrecv" {
			sending[mid] = md
		}
	}
	prefs := map[string][]webrtc.RTPCodecParameters{}
	for mid, t := range meta {
		if p.ups[mid] != nil {
			continue
		}
		md := sending[mid]
		if md == nil {
			return errorf(CodeBadRequest, "tracks lists mid %q, but the offer sends nothing on it", mid)
		}
		if want := kindOfSource(t.Source); md.MediaName.Media != want {
			return errorf(CodeBadRequest, "mid %q is %s, but source %s is %s", mid, md.MediaName.Media, t.Source, want)
		}
		cs, ok := preferredCodec(md.MediaName.Media, whip.Offered(md))
		if !ok {
			return errorf(CodeUnsupported, "mid %q offers %v; calls take H264 or VP8 video and Opus audio", mid, whip.Offered(md))
		}
		prefs[mid] = cs
	}
	for mid := range sending {
		if _, ok := meta[mid]; !ok && p.ups[mid] == nil {
			if _, ok := p.pending[mid]; !ok {
				return errorf(CodeBadRequest, "media section mid %q sends but tracks does not describe it; add {\"mid\":%q,\"source\":...}", mid, mid)
			}
		}
	}
	if p.pubPC == nil {
		pc, _, err := p.newPC(PCPublish)
		if err != nil {
			return err
		}
		pc.OnTrack(func(t *webrtc.TrackRemote, rcv *webrtc.RTPReceiver) { p.post(trackArrived{t, rcv}) })
		p.pubPC, p.pubMade = pc, time.Now()
	}
	if err := p.pubPC.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: whip.WithoutCandidates(m.SDP)}); err != nil {
		return errorf(CodeBadRequest, "publish offer rejected: %v", err)
	}
	for _, tr := range p.pubPC.GetTransceivers() {
		cs, ok := prefs[tr.Mid()]
		if !ok {
			continue
		}
		// Answer with the offer's own payload type for the codec: ours may
		// name another profile in the browser's offer. RTX is left out
		// (its apt would name our payload type); NACK retransmissions then
		// come on the media stream itself.
		c := cs[0]
		c.PayloadType = 0
		if err := tr.SetCodecPreferences([]webrtc.RTPCodecParameters{c}); err != nil {
			return errorf(CodeInternal, "codec preferences for mid %s: %v", tr.Mid(), err)
		}
		p.pending[tr.Mid()] = pubMeta{source: meta[tr.Mid()].Source, rids: ridsOf(sending[tr.Mid()])}
	}
	for mid, up := range p.ups {
		if sending[mid] == nil {
			p.unpublish(mid, up, "the client stopped sending it")
		}
	}
	ans, err := p.pubPC.CreateAnswer(nil)
	if err != nil {
		return errorf(CodeBadRequest, "cannot answer the publish offer: %v", err)
	}
	sdpText, err := localDescription(p.pubPC, ans)
	if err != nil {
		return errorf(CodeInternal, "publish answer: %v", err)
	}
	p.c.send(Answer{Header: Header{Type: TypeAnswer, ID: m.ID}, PC: PCPublish, SDP: sdpText})
	return nil
}

func (p *participant) unpublish(mid string, up *uptrack, reason string) {
	delete(p.ups, mid)
	up.close()
	reply := make(chan struct{})
	if call(p.room, p.room.chUnpub, unpublishReq{id: up.pub.info.ID, reason: reason, reply: reply}) {
		<-reply
	}
}

// onTrack starts reading a remote track: the first layer of a media
// section creates the published track, the others join it.
func (p *participant) onTrack(t *webrtc.TrackRemote, rcv *webrtc.RTPReceiver) {
	mid := ""
	for _, tr := range p.pubPC.GetTransceivers() {
		if tr.Receiver() == rcv {
			mid = tr.Mid()
			break
		}
	}
	up := p.ups[mid]
	if up == nil {
		meta, ok := p.pending[mid]
		if !ok {
			return
		}
		delete(p.pending, mid)
		tracks := make([]unit.Track, len(meta.rids))
		for i := range tracks {
			tracks[i] = whip.TrackFor(t.Kind(), t.Codec())
		}
		info := TrackInfo{ID: p.id + "/" + meta.source, Participant: p.id, Source: meta.source, Kind: t.Kind().String(),
			Codec: whip.CodecName(t.Codec().MimeType), Layers: meta.rids}
		up = newUptrack(info, p.claims.Role, mid, p.pubPC, tracks, p.m.p.Stream)
		reply := make(chan error, 1)
		if !call(p.room, p.room.chPublish, publishReq{p: p, pub: up.pub, reply: reply}) {
			up.close()
			return
		}
		if err := <-reply; err != nil {
			up.close()
			p.c.send(errorMessage(0, err))
			return
		}
		p.ups[mid] = up
		p.record(up)
		p.log.Info("publishing", "track", info.ID, "codec", info.Codec, "layers", info.Layers)
	}
	layer := slices.Index(up.pub.info.Layers, t.RID())
	if layer < 0 && len(up.pub.info.Layers) == 1 {
		layer = 0
	}
	if layer >= 0 {
		go up.read(layer, t, rcv)
	}
}

// subscribe adds a publication to the subscribe connection, or changes the
// pin of an existing subscription.
func (p *participant) subscribe(id int64, track string, pinned bool) error {
	if !p.claims.RoomSubscribe {
		return errorf(CodeForbidden, "token of %s (role %s) may not subscribe in room %q: it has no room_subscribe grant", p.id, p.claims.Role, p.room.name)
	}
	if dt := p.downs[track]; dt != nil {
		dt.pinned = pinned
		p.c.send(SubscriptionEvent{Header: Header{Type: TypeSubscribed, ID: id}, Track: track, Pinned: pinned})
		p.allocate(time.Time{})
		return nil
	}
	reply := make(chan subscribeReply, 1)
	if !call(p.room, p.room.chSub, subscribeReq{p: p, track: track, reply: reply}) {
		return errorf(CodeInternal, "the room has closed")
	}
	rep := <-reply
	if rep.err != nil {
		return rep.err
	}
	pub := rep.pub
	t := pub.stream.Tracks()[pub.layers[0]]
	codec, ok := codecFor(t)
	if !ok {
		p.room.chUnsub <- unsubscribeReq{p: p, track: track}
		return errorf(CodeUnsupported, "track %q is %s, which calls cannot relay; view it by WHEP instead", track, t.Codec)
	}
	if p.subPC == nil {
		pc, bwe, err := p.newPC(PCSubscribe)
		if err != nil {
			return err
		}
		p.subPC, p.bwe, p.subMade = pc, bwe, time.Now()
		if p.m.p.Media != nil {
			p.batch = whip.NewBatch(p.m.p.Media, pc)
		}
		go whip.SendReports(pc, p.done, func(dst []whip.Reporter) []whip.Reporter {
			if r := p.reporters.Load(); r != nil {
				dst = append(dst, *r...)
			}
			return dst
		})
	}
	dt := newDowntrack(pub, codec)
	dt.pinned, dt.Batch = pinned, p.batch
	dt.CountResendsIn(&p.m.resend)
	tr, err := p.addDowntrack(dt)
	if err == nil {
		err = tr.SetCodecPreferences(subscribeCodecs(t.Kind.String(), codec))
	}
	if err != nil {
		p.room.chUnsub <- unsubscribeReq{p: p, track: track}
		return errorf(CodeInternal, "cannot add %q to the subscribe connection: %v", track, err)
	}
	dt.sender = tr.Sender()
	go dt.readRTCP()
	p.downs[track] = dt
	p.listReporters()
	p.allocate(time.Time{})
	p.c.send(SubscriptionEvent{Header: Header{Type: TypeSubscribed, ID: id}, Track: track, Pinned: pinned})
	p.negotiate(false)
	return nil
}

// addDowntrack puts a subscription on the subscribe connection: on a transceiver an
// ended subscription of the same kind left inactive when there is one, so the session
// description does not grow with every (un)subscription; else on a new one.
func (p *participant) addDowntrack(dt *downtrack) (*webrtc.RTPTransceiver, error) {
	for _, tr := range p.subPC.GetTransceivers() {
		if p.newSections || tr.Kind() != dt.Kind() || tr.Sender() != nil || tr.Direction() != webrtc.RTPTransceiverDirectionInactive || tr.Mid() == "" {
			continue
		}
		// pion reuses it once the session description that made it inactive is
		// answered; before that it adds a transceiver.
		sender, err := p.subPC.AddTrack(dt)
		if err != nil {
			return nil, err
		}
		for _, t := range p.subPC.GetTransceivers() {
			if t.Sender() == sender {
				return t, nil
			}
		}
		return nil, fmt.Errorf("the sender pion added for %s has no transceiver", dt.ID())
	}
	return p.subPC.AddTransceiverFromTrack(dt, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
}

func (p *participant) unsubscribe(id int64, track, reason string) {
	dt := p.downs[track]
	delete(p.downs, track)
	p.listReporters()
	dt.stop()
	if dt.sender != nil {
		_ = p.subPC.RemoveTrack(dt.sender)
	}
	select {
	case p.room.chUnsub <- unsubscribeReq{p: p, track: track}:
	case <-p.room.done:
	}
	p.c.send(SubscriptionEvent{Header: Header{Type: TypeUnsubscribed, ID: id}, Track: track, Reason: reason})
	p.negotiate(false)
}

// listReporters gives the sender reports' goroutine the current subscriptions.
func (p *participant) listReporters() {
	r := make([]whip.Reporter, 0, len(p.downs))
	for _, dt := range p.downs {
		r = append(r, dt)
	}
	p.reporters.Store(&r)
}

// negotiate offers the subscribe connection's current state to the client,
// unless an offer is already waiting for its answer (then it follows it).
func (p *participant) negotiate(restart bool) {
	if p.subPC == nil {
		return
	}
	if p.subPending {
		p.subDirty = true
		p.subRestart = p.subRestart || restart
		return
	}
	offer, err := p.subPC.CreateOffer(&webrtc.OfferOptions{ICERestart: restart})
	if err == nil {
		var sdpText string
		if sdpText, err = localDescription(p.subPC, offer); err == nil {
			p.subPending = true
			p.c.send(Offer{Header: Header{Type: TypeOffer}, PC: PCSubscribe, SDP: sdpText})
			return
		}
	}
	p.c.send(errorMessage(0, errorf(CodeInternal, "cannot offer the subscribe connection: %v", err)))
}

// startDowns starts the readers of subscriptions that are bound and whose
// connection is up.
func (p *participant) startDowns() {
	if !p.subUp {
		return
	}
	for _, dt := range p.downs {
		if dt.started || !dt.Bound() {
			continue
		}
		dt := dt
		err := dt.start(p.session+"/"+dt.pub.info.ID, p.m.p.Stream.QueueSize, func(err error) {
			if err != stream.ErrReaderClosed {
				p.post(downEnded{dt, err})
			}
		})
		if err != nil {
			p.post(downEnded{dt, err})
		}
	}
}

// estimate returns the subscribe connection's bandwidth estimate: the
// congestion controller's, capped by a recent REMB. A subscriber that does
// not send transport-wide feedback leaves the controller blind, so its
// REMB alone is the estimate. limit is the REMB when it caps the
// controller's estimate: a ceiling the subscriber set, which probing does
// not cross; 0 when there is none.
func (p *participant) estimate(now time.Time) (est, limit int) {
	est = p.m.p.Conf.StartBitrate
	if p.bwe != nil && p.twcc {
		est = p.bwe.GetTargetBitrate()
	}
	remb := -1
	for _, dt := range p.downs {
		if at := dt.rembAt.Load(); at != 0 && now.UnixNano()-at < int64(5*time.Second) {
			if r := int(dt.remb.Load()); remb < 0 || r < remb {
				remb = r
			}
		}
	}
	switch {
	case remb < 0:
		return est, 0
	case p.twcc:
		return min(est, remb), remb
	default:
		return remb, 0
	}
}

// allocate chooses every subscription's layer from the estimate and tells
// the client about forwarded layers that changed. now is zero when called
// outside the sampling tick.
func (p *participant) allocate(now time.Time) {
	if len(p.downs) == 0 {
		return
	}
	sampleNow := now
	if now.IsZero() {
		now = time.Now()
	} else if secs := now.Sub(p.sampledAt).Seconds(); secs > 0 {
		for _, dt := range p.downs {
			dt.sample(secs)
		}
		p.sampledAt = now
	}
	est, limit := p.estimate(now)
	order := make([]*downtrack, 0, len(p.downs))
	for _, dt := range p.downs {
		order = append(order, dt)
	}
	slices.SortFunc(order, func(a, b *downtrack) int { return strings.Compare(a.pub.info.ID, b.pub.info.ID) })
	in := make([]allocTrack, len(order))
	for i, dt := range order {
		in[i] = allocTrack{audio: !dt.video(), priority: priorityOf(dt.pub, dt.pinned), muted: dt.pub.muted.Load(),
			rates: dt.rates, current: int(dt.current.Load())}
	}
	budget := est
	if !sampleNow.IsZero() && (limit == 0 || est < limit) {
		budget = p.probe(now, est, in)
		if limit > 0 {
			budget = min(budget, limit)
		}
	}
	for i, l := range allocate(budget, in) {
		order[i].setTarget(l)
	}
	if sampleNow.IsZero() {
		return
	}
	for _, dt := range order {
		cur := dt.current.Load()
		if !dt.video() || cur == dt.reported || (cur == layerOff && dt.reported == -2) {
			continue
		}
		reason := "bandwidth"
		switch {
		case dt.reported == -2:
			reason = "started"
		case dt.pub.muted.Load():
			reason = "muted"
		}
		dt.reported = cur
		p.c.send(LayerEvent{Header: Header{Type: TypeLayer}, Track: dt.pub.info.ID, Layer: dt.layerName(cur), EstimateBPS: est, Reason: reason})
	}
}

// Probing: the congestion controller does not raise its estimate much past
// what is actually sent, so a subscriber held at a lower layer, or with a
// track paused (a pinned camera above the start estimate), would stay there
// after its link recovers. When the estimate has room (it is well above what
// is sent) but not enough for the next layer or the paused track, the
// allocation is given more for a few seconds, sending the higher layer; if
// the link carries it the estimate follows and the layer stays, and while it
// keeps following the next probe starts at once; if not the estimate falls,
// the probe stops, and the next waits longer.
const (
	probeEvery = 8 * time.Second
	probeFor   = 4 * time.Second
	probeBoost = 1.6
)

// probe returns the budget to allocate from the estimate.
func (p *participant) probe(now time.Time, est int, in []allocTrack) int {
	if now.Before(p.probeUntil) {
		if est < p.probeBase*9/10 {
			p.probeUntil, p.nextProbe = time.Time{}, now.Add(2*probeEvery)
			return est
		}
		return int(float64(est) * probeBoost)
	}
	if !p.probeUntil.IsZero() {
		if est >= p.probeBase*21/20 {
			p.nextProbe = now
		}
		p.probeUntil = time.Time{}
	}
	if now.Before(p.nextProbe) {
		return est
	}
	chosen := allocate(est, in)
	used, capped := 0, false
	for i, l := range chosen {
		t := in[i]
		used += rate(t, l)
		if t.audio || t.muted {
			continue
		}
		if l == layerOff {
			if low := lowestFlowing(t); low != layerOff && rate(t, low) > 0 {
				capped = true
			}
			continue
		}
		for h := len(t.rates) - 1; h > l; h-- {
			if t.rates[h] > 0 {
				capped = true
			}
		}
	}
	if !capped || used*5/4 > est {
		return est
	}
	p.probeUntil, p.probeBase, p.nextProbe = now.Add(probeFor), est, now.Add(probeEvery)
	return int(float64(est) * probeBoost)
}
