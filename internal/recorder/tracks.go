package recorder

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph265"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtpmpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"
	mcodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"

	"fieldvideo/internal/mp4"
	"fieldvideo/internal/unit"
)

// maxPresentationDelay bounds a video frame's presentation delay after its
// decode time; B-frame reordering of any real encoder is a few frames.
const maxPresentationDelay = 5 * time.Second

// sample is one decoded media sample, ready for a part.
type sample struct {
	tr      *recTrack
	dts     int64 // decode time, in track clock units (unwrapped RTP time)
	ptsOff  int32 // presentation minus decode time
	sync    bool
	payload []byte
	natural int64 // duration known from the payload itself (audio), or 0
	t       int64 // decode time on the wall clock, unix ns
	dur     int64 // duration in track units, set when the next sample is known
	pos     int64 // decode time in the segment, set when it is added to a part
	capErr  int64 // alignment error of the unit's capture time, ns; -1 unknown
	aligned bool  // t comes from an aligned capture time
	trust   uint8 // sync.Trust of the unit's capture time
	jump    bool  // the track was re-anchored at this sample: its RTP time broke
	gen     int   // the track's anchor generation when the sample was placed
}

// recTrack is one recorded track of a source: its depacketizer, the codec
// parameters for the segment init, and its place on the wall clock.
type recTrack struct {
	index     int // track index in the stream
	id        int // track ID in the MP4 file
	kind      unit.Kind
	codecName string
	clock     uint32
	channels  int
	entryType string // sample entry written instead of ipcm (G.711)

	h264dec *rtph264.Decoder
	h264dts *h264.DTSExtractor
	h265dec *rtph265.Decoder
	h265dts *h265.DTSExtractor
	aacDec  *rtpmpeg4audio.Decoder
	aacConf *mpeg4audio.AudioSpecificConfig
	pktMode int

	vps, sps, pps []byte
	paramsGen     int // bumped when parameter sets change
	width, height int

	// Timing: a track's RTP clock is tied to the wall clock at an anchor
	// (a unit's capture or arrival time), and re-anchored when the two drift
	// apart.
	anchored    bool
	anchorAlgn  bool  // the anchor is an aligned capture time (of a presentation time)
	anchorTrust uint8 // sync.Trust of the anchor's capture time
	anchorWall  int64 // unix ns
	anchorRef   int64 // media time (see refOf) at anchorWall
	// A better anchor found while a segment is being written; it takes effect
	// when the next segment starts, so that one segment's tracks keep one
	// time base.
	pending   bool
	pendAlgn  bool
	pendTrust uint8
	pendWall  int64
	pendRef   int64
	// reorder is the presentation delay of keyframes (B-frames), in track
	// units: a video sample's wall-clock time is that of its decode time
	// plus reorder, which for keyframes is their presentation time.
	reorder, pendReorder int64
	maxSeq               uint64
	seqSeen              bool
	// jumped is set when the track was re-anchored in the middle of a
	// segment: its next sample starts a new run there.
	jumped bool
	gen    int // anchor generation: bumped when the RTP clock jumps

	held      *sample // the last sample, waiting for the next to know its duration
	lastDelta int64   // last sample duration, for the final sample of a video track
	queue     []*sample
}

// newRecTrack prepares a track for recording, or explains why it cannot be
// recorded.
func newRecTrack(index int, t unit.Track) (*recTrack, error) {
	r := &recTrack{index: index, kind: t.Kind, codecName: t.Codec, clock: t.ClockRate, channels: int(t.Channels)}
	if t.ClockRate == 0 {
		return nil, fmt.Errorf("track %d (%s) has no clock rate", index, t.Codec)
	}
	switch t.Codec {
	case unit.CodecH264, unit.CodecH265, unit.CodecOpus, unit.CodecAAC, unit.CodecPCMU, unit.CodecPCMA:
	default:
		return nil, fmt.Errorf("track %d: codec %s is not recorded (the recorder stores H.264, H.265, Opus, AAC and G.711)", index, t.Codec)
	}
	f, err := formatOf(t)
	if err != nil {
		return nil, fmt.Errorf("track %d (%s): %w", index, t.Codec, err)
	}
	switch f := f.(type) {
	case *format.H264:
		r.sps, r.pps, r.pktMode = f.SPS, f.PPS, f.PacketizationMode
		r.updateSize()
	case *format.H265:
		if f.MaxDONDiff != 0 {
			return nil, fmt.Errorf("track %d: H.265 with decoding order numbers (sprop-max-don-diff) is not recorded", index)
		}
		r.vps, r.sps, r.pps = f.VPS, f.SPS, f.PPS
		r.updateSize()
	case *format.Opus:
		r.channels = f.ChannelCount
	case *format.MPEG4Audio:
		r.aacConf = f.Config
		r.channels = f.Config.ChannelCount
		if r.aacDec, err = f.CreateDecoder(); err != nil {
			return nil, fmt.Errorf("track %d (AAC): %w", index, err)
		}
	case *format.G711:
		r.channels = max(f.ChannelCount, 1)
		r.entryType = "alaw"
		if f.MULaw {
			r.entryType = "ulaw"
		}
	default:
		return nil, fmt.Errorf("track %d: codec %s is not recorded", index, t.Codec)
	}
	r.resetDecoders()
	return r, nil
}

// formatOf rebuilds the RTP format of a track from its SDP description.
func formatOf(t unit.Track) (format.Format, error) {
	media := "audio"
	if t.Kind == unit.KindVideo {
		media = "video"
	}
	pt := strconv.Itoa(int(t.PayloadType))
	rtpmap := pt + " " + t.Codec + "/" + strconv.Itoa(int(t.ClockRate))
	if t.Kind == unit.KindAudio && t.Channels > 0 {
		rtpmap += "/" + strconv.Itoa(int(t.Channels))
	}
	md := &sdp.MediaDescription{
		MediaName:  sdp.MediaName{Media: media, Protos: []string{"RTP", "AVP"}, Formats: []string{pt}},
		Attributes: []sdp.Attribute{{Key: "rtpmap", Value: rtpmap}},
	}
	if fm := strings.TrimSpace(t.Fmtp); fm != "" {
		md.Attributes = append(md.Attributes, sdp.Attribute{Key: "fmtp", Value: pt + " " + fm})
	}
	return format.Unmarshal(md, pt)
}

func (r *recTrack) resetDecoders() {
	switch r.codecName {
	case unit.CodecH264:
		r.h264dec = &rtph264.Decoder{PacketizationMode: 1}
		_ = r.h264dec.Init()
		r.h264dts = nil
	case unit.CodecH265:
		r.h265dec = &rtph265.Decoder{}
		_ = r.h265dec.Init()
		r.h265dts = nil
	case unit.CodecAAC:
		f := &format.MPEG4Audio{Config: r.aacConf, SizeLength: r.aacDec.SizeLength, IndexLength: r.aacDec.IndexLength, IndexDeltaLength: r.aacDec.IndexDeltaLength}
		if d, err := f.CreateDecoder(); err == nil {
			r.aacDec = d
		}
	}
}

// reset forgets the track's timeline, after the source reconnected.
func (r *recTrack) reset() {
	r.resetDecoders()
	r.anchored, r.seqSeen, r.held, r.queue, r.lastDelta = false, false, nil, nil, 0
	r.pending, r.jumped = false, false
}

func (r *recTrack) updateSize() {
	switch r.codecName {
	case unit.CodecH264:
		var s h264.SPS
		if r.sps != nil && s.Unmarshal(r.sps) == nil {
			r.width, r.height = s.Width(), s.Height()
		}
	case unit.CodecH265:
		var s h265.SPS
		if r.sps != nil && s.Unmarshal(r.sps) == nil {
			r.width, r.height = s.Width(), s.Height()
		}
	}
}

// ready reports whether the track's codec parameters are known, so that an
// init segment can be written.
func (r *recTrack) ready() bool {
	switch r.codecName {
	case unit.CodecH264:
		return r.sps != nil && r.pps != nil
	case unit.CodecH265:
		return r.vps != nil && r.sps != nil && r.pps != nil
	}
	return true
}

// mp4Codec returns the track's codec for the init segment.
func (r *recTrack) mp4Codec() mcodecs.Codec {
	switch r.codecName {
	case unit.CodecH264:
		return &mcodecs.H264{SPS: r.sps, PPS: r.pps}
	case unit.CodecH265:
		return &mcodecs.H265{VPS: r.vps, SPS: r.sps, PPS: r.pps}
	case unit.CodecOpus:
		return &mcodecs.Opus{ChannelCount: r.channels}
	case unit.CodecAAC:
		return &mcodecs.MPEG4Audio{Config: *r.aacConf}
	}
	// G.711: written as 16-bit PCM, then renamed to ulaw/alaw.
	return &mcodecs.LPCM{BitDepth: 16, SampleRate: int(r.clock), ChannelCount: r.channels}
}

// errSkip marks a unit that is dropped on purpose (waiting for a keyframe
// or parameter sets); it is counted, not logged.
var errSkip = errors.New("skipped")

// decode turns a unit into samples (without wall-clock times).
func (r *recTrack) decode(u *unit.Unit, out []*sample) ([]*sample, error) {
	if len(u.Packets) == 0 {
		return out, errSkip
	}
	last := u.Seq + uint64(u.Packets[len(u.Packets)-1].SequenceNumber-u.Packets[0].SequenceNumber)
	if r.seqSeen && u.Seq <= r.maxSeq {
		return out, errSkip // a late or retransmitted packet of a unit already recorded
	}
	r.maxSeq, r.seqSeen = last, true
	pts := int64(u.RTPTime)
	switch r.codecName {
	case unit.CodecH264, unit.CodecH265:
		return r.decodeVideo(u, pts, out)
	case unit.CodecOpus:
		for _, p := range u.Packets {
			if len(p.Payload) == 0 {
				continue
			}
			out = append(out, &sample{dts: pts, payload: p.Payload, natural: opus.PacketDuration2(p.Payload), sync: true})
			pts += opus.PacketDuration2(p.Payload)
		}
	case unit.CodecAAC:
		for _, p := range u.Packets {
			aus, err := r.aacDec.Decode(p)
			if errors.Is(err, rtpmpeg4audio.ErrMorePacketsNeeded) {
				continue
			}
			if err != nil {
				r.resetDecoders()
				return out, fmt.Errorf("AAC: %w", err)
			}
			for i, au := range aus {
				out = append(out, &sample{dts: pts + int64(i)*mpeg4audio.SamplesPerAccessUnit, payload: au,
					natural: mpeg4audio.SamplesPerAccessUnit, sync: true})
			}
		}
	default: // G.711
		for _, p := range u.Packets {
			if n := len(p.Payload) / r.channels; n > 0 {
				out = append(out, &sample{dts: pts, payload: p.Payload, natural: int64(n), sync: true})
				pts += int64(n)
			}
		}
	}
	return out, nil
}

// decodeVideo depacketizes one frame into an access unit, keeps the
// parameter sets, and finds its decode time.
func (r *recTrack) decodeVideo(u *unit.Unit, pts int64, out []*sample) ([]*sample, error) {
	var au [][]byte
	// Packets with no payload are padding (a browser probing bandwidth),
	// not part of the picture.
	pkts := u.Packets
	for len(pkts) > 0 && len(pkts[len(pkts)-1].Payload) == 0 {
		pkts = pkts[:len(pkts)-1]
	}
	for i, p := range pkts {
		if len(p.Payload) == 0 {
			continue
		}
		if i == len(pkts)-1 && !p.Marker {
			// The unit is a whole frame: end it here even without a marker.
			cp := *p
			cp.Marker = true
			p = &cp
		}
		nalus, err := r.decodePacket(p)
		if err != nil {
			r.resetDecoders()
			return out, err
		}
		if nalus != nil {
			au = nalus
		}
	}
	if len(au) == 0 {
		return out, errSkip
	}
	random := false
	kept := au[:0:0]
	changed := false
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		if r.codecName == unit.CodecH264 {
			switch h264.NALUType(n[0] & 0x1f) {
			case h264.NALUTypeSPS:
				changed = setParam(&r.sps, n) || changed
			case h264.NALUTypePPS:
				changed = setParam(&r.pps, n) || changed
			case h264.NALUTypeIDR:
				random = true
			case h264.NALUTypeAccessUnitDelimiter:
				continue
			}
		} else {
			switch h265.NALUType((n[0] >> 1) & 0x3f) {
			case h265.NALUType_VPS_NUT:
				changed = setParam(&r.vps, n) || changed
			case h265.NALUType_SPS_NUT:
				changed = setParam(&r.sps, n) || changed
			case h265.NALUType_PPS_NUT:
				changed = setParam(&r.pps, n) || changed
			case h265.NALUType_IDR_W_RADL, h265.NALUType_IDR_N_LP, h265.NALUType_CRA_NUT:
				random = true
			case h265.NALUType_AUD_NUT:
				continue
			}
		}
		kept = append(kept, n)
	}
	if changed {
		r.paramsGen++
		r.updateSize()
	}
	if !r.ready() {
		return out, errSkip
	}
	if random {
		kept = r.withParams(kept)
	}
	dts, err := r.extractDTS(kept, pts, random)
	if err != nil {
		return out, err
	}
	payload, err := h264.AVCC(kept).Marshal()
	if err != nil {
		return out, fmt.Errorf("%s access unit: %w", r.codecName, err)
	}
	off := pts - dts
	if off < 0 || mp4.TicksToDuration(off, r.clock) > maxPresentationDelay {
		r.resetDecoders()
		return out, fmt.Errorf("%s: presentation time %d is not within %s after decode time %d", r.codecName, pts, maxPresentationDelay, dts)
	}
	return append(out, &sample{dts: dts, ptsOff: int32(off), sync: random, payload: payload}), nil
}

func (r *recTrack) decodePacket(p *rtp.Packet) ([][]byte, error) {
	var nalus [][]byte
	var err error
	if r.codecName == unit.CodecH264 {
		nalus, err = r.h264dec.Decode(p)
		if errors.Is(err, rtph264.ErrMorePacketsNeeded) {
			return nil, nil
		}
	} else {
		nalus, err = r.h265dec.Decode(p)
		if errors.Is(err, rtph265.ErrMorePacketsNeeded) {
			return nil, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s depacketize: %w", r.codecName, err)
	}
	return nalus, nil
}

// extractDTS returns a frame's decode time; decoding starts at a keyframe.
func (r *recTrack) extractDTS(au [][]byte, pts int64, random bool) (int64, error) {
	var dts int64
	var err error
	if r.codecName == unit.CodecH264 {
		if r.h264dts == nil {
			if !random {
				return 0, errSkip
			}
			r.h264dts = &h264.DTSExtractor{}
			r.h264dts.Initialize()
		}
		dts, err = r.h264dts.Extract(au, pts)
	} else {
		if r.h265dts == nil {
			if !random {
				return 0, errSkip
			}
			r.h265dts = &h265.DTSExtractor{}
			r.h265dts.Initialize()
		}
		dts, err = r.h265dts.Extract(au, pts)
	}
	if err != nil {
		r.h264dts, r.h265dts = nil, nil // start again at the next keyframe
		return 0, fmt.Errorf("%s decode time: %w", r.codecName, err)
	}
	return dts, nil
}

// withParams puts the known parameter sets in front of a keyframe that
// lacks them, so every segment and decode-time extractor has them in band.
func (r *recTrack) withParams(au [][]byte) [][]byte {
	var has [3]bool
	for _, n := range au {
		if r.codecName == unit.CodecH264 {
			switch h264.NALUType(n[0] & 0x1f) {
			case h264.NALUTypeSPS:
				has[1] = true
			case h264.NALUTypePPS:
				has[2] = true
			}
		} else {
			switch h265.NALUType((n[0] >> 1) & 0x3f) {
			case h265.NALUType_VPS_NUT:
				has[0] = true
			case h265.NALUType_SPS_NUT:
				has[1] = true
			case h265.NALUType_PPS_NUT:
				has[2] = true
			}
		}
	}
	var pre [][]byte
	if r.codecName == unit.CodecH265 && !has[0] {
		pre = append(pre, r.vps)
	}
	if !has[1] {
		pre = append(pre, r.sps)
	}
	if !has[2] {
		pre = append(pre, r.pps)
	}
	if len(pre) == 0 {
		return au
	}
	return append(pre, au...)
}

func setParam(dst *[]byte, n []byte) bool {
	if bytes.Equal(*dst, n) {
		return false
	}
	*dst = append([]byte(nil), n...)
	return true
}
