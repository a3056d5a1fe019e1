package ingest

import (
	"fmt"
	"slices"
	"strings"

	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"

	tsync "fieldvideo/internal/sync"
	"fieldvideo/internal/unit"
)

// TrackInfo describes one track of a source for the API.
type TrackInfo struct {
	Kind      string `json:"kind"`
	Codec     string `json:"codec"`
	ClockRate uint32 `json:"clock_rate,omitempty"`
	Channels  uint16 `json:"channels,omitempty"`
	// Relayable is false for tracks browsers cannot receive (AAC); they are
	// still carried for recording and RTSP players.
	Relayable bool `json:"relayable"`
	// Note explains a track that is not relayable or was skipped.
	Note string `json:"note,omitempty"`
	// Clock is the track's alignment onto the common time baseline.
	Clock *tsync.ClockInfo `json:"clock,omitempty"`
}

// inputTrack is one usable track of an announced or described session: the
// media and format packets arrive on, and the track they become.
type inputTrack struct {
	media  *description.Media
	format format.Format
	track  unit.Track
}

// noteNotRelayable is the SourceInfo note of tracks kept for recording only.
const noteNotRelayable = "not relayable to browsers (kept for recording and RTSP players)"

// maxMedias bounds the media of a session ingest takes. A source needs a
// video, an audio and perhaps a metadata track; the uplink offers each
// track carried to the SFU as an m-line (whip.MaxMediaSections, 16, at
// most), and each costs an assembler that may hold up to
// unit.MaxFrameBytes.
const maxMedias = 8

// checkMedias refuses a session with more media than maxMedias, naming
// both numbers.
func checkMedias(desc *description.Session) error {
	if desc == nil || len(desc.Medias) <= maxMedias {
		return nil
	}
	return fmt.Errorf("the session has %d media; a source carries at most %d (a video, an audio and a metadata track are enough): send fewer tracks",
		len(desc.Medias), maxMedias)
}

// selectTracks picks, per media, the first format ingest can carry. Medias
// without one are reported as skipped, with the reason. Only the first
// maxMedias media are looked at; the others are reported as one skipped
// entry.
func selectTracks(desc *description.Session) (in []inputTrack, skipped []TrackInfo) {
	if desc == nil {
		return nil, nil
	}
	medias := desc.Medias[:min(len(desc.Medias), maxMedias)]
	for _, m := range medias {
		if m == nil || m.IsBackChannel {
			continue
		}
		found := false
		for _, f := range m.Formats {
			if t, ok := trackOf(f); ok {
				in = append(in, inputTrack{media: m, format: f, track: t})
				found = true
				break
			}
		}
		if !found {
			codecs := make([]string, 0, len(m.Formats))
			for _, f := range m.Formats {
				codecs = append(codecs, codecName(f))
			}
			name := strings.Join(codecs, ",")
			skipped = append(skipped, TrackInfo{
				Kind:  string(m.Type),
				Codec: name,
				Note:  fmt.Sprintf("codec %s is not supported; use H.264, H.265, Opus, G.711 (PCMU/PCMA) or AAC", name),
			})
		}
	}
	if len(desc.Medias) > len(medias) {
		skipped = append(skipped, TrackInfo{Kind: "media",
			Note: fmt.Sprintf("the session has %d media; a source carries at most %d, so the %d after the first %[2]d are not carried",
				len(desc.Medias), maxMedias, len(desc.Medias)-maxMedias)})
	}
	return in, skipped
}

// codecName returns the rtpmap encoding name of a format, or its payload type.
func codecName(f format.Format) string {
	if f == nil {
		return "unknown"
	}
	if rm := f.RTPMap(); rm != "" {
		name, _, _ := strings.Cut(rm, "/")
		return name
	}
	return fmt.Sprintf("payload type %d", f.PayloadType())
}

// trackOf maps a supported format to a unit.Track.
func trackOf(f format.Format) (unit.Track, bool) {
	t := unit.Track{PayloadType: f.PayloadType()}
	switch f := f.(type) {
	case *format.H264:
		t.Kind, t.Codec, t.ClockRate = unit.KindVideo, unit.CodecH264, 90000
		// Parameter sets are injected in band, and aggregation packets are
		// used for them, so the track is always packetization mode 1.
		fm := f.FMTP()
		fm["packetization-mode"] = "1"
		t.Fmtp = joinFMTP(fm)
	case *format.H265:
		if f.MaxDONDiff != 0 {
			return t, false // DON fields are not supported downstream
		}
		t.Kind, t.Codec, t.ClockRate = unit.KindVideo, unit.CodecH265, 90000
		t.Fmtp = joinFMTP(f.FMTP())
	case *format.Opus:
		if f.ChannelCount > 2 {
			return t, false // multiopus: browsers and most players cannot decode it
		}
		t.Kind, t.Codec, t.ClockRate, t.Channels = unit.KindAudio, unit.CodecOpus, 48000, 2
		t.Fmtp = joinFMTP(f.FMTP())
	case *format.G711:
		t.Kind, t.Codec = unit.KindAudio, unit.CodecPCMA
		if f.MULaw {
			t.Codec = unit.CodecPCMU
		}
		t.ClockRate, t.Channels = uint32(max(f.SampleRate, 0)), uint16(min(max(f.ChannelCount, 0), 255))
	case *format.MPEG4Audio:
		if f.Config == nil {
			return t, false
		}
		t.Kind, t.Codec = unit.KindAudio, unit.CodecAAC
		t.ClockRate = uint32(max(f.ClockRate(), 0))
		t.Channels = uint16(min(max(f.Config.ChannelCount, 0), 255))
		t.Fmtp = joinFMTP(f.FMTP())
	default:
		return t, false
	}
	if t.ClockRate == 0 {
		return t, false
	}
	return t, true
}

// joinFMTP renders fmtp parameters in a stable order.
func joinFMTP(m map[string]string) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(m[k])
	}
	return b.String()
}

func tracksOf(in []inputTrack) []unit.Track {
	out := make([]unit.Track, len(in))
	for i, it := range in {
		out[i] = it.track
	}
	return out
}

func trackInfos(in []inputTrack) []TrackInfo {
	out := make([]TrackInfo, len(in))
	for i, it := range in {
		ti := TrackInfo{
			Kind: it.track.Kind.String(), Codec: it.track.Codec, ClockRate: it.track.ClockRate,
			Channels: it.track.Channels, Relayable: it.track.Relayable(),
		}
		if !ti.Relayable {
			ti.Note = noteNotRelayable
		}
		out[i] = ti
	}
	return out
}

// outputFormat returns a new format, owned by one RTSP output stream, that
// carries track it.
func outputFormat(it inputTrack) format.Format {
	pt := it.track.PayloadType
	switch f := it.format.(type) {
	case *format.H264:
		return &format.H264{PayloadTyp: pt, SPS: f.SPS, PPS: f.PPS, PacketizationMode: 1}
	case *format.H265:
		return &format.H265{PayloadTyp: pt, VPS: f.VPS, SPS: f.SPS, PPS: f.PPS}
	case *format.Opus:
		return &format.Opus{PayloadTyp: pt, ChannelCount: f.ChannelCount}
	case *format.G711:
		return &format.G711{PayloadTyp: pt, MULaw: f.MULaw, SampleRate: f.SampleRate, ChannelCount: f.ChannelCount}
	case *format.MPEG4Audio:
		return &format.MPEG4Audio{
			PayloadTyp: pt, ProfileLevelID: f.ProfileLevelID, Config: f.Config,
			SizeLength: f.SizeLength, IndexLength: f.IndexLength, IndexDeltaLength: f.IndexDeltaLength,
		}
	}
	return nil
}

func mediaType(k unit.Kind) description.MediaType {
	if k == unit.KindVideo {
		return description.MediaTypeVideo
	}
	return description.MediaTypeAudio
}
