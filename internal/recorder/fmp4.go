package recorder

import (
	"fmt"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"

	"fieldvideo/internal/mp4"
)

// marshalInit returns the ftyp and moov boxes for tracks. G.711 is stored
// as it arrived, in QuickTime's ulaw/alaw sample entries, which players and
// ffmpeg read; mediacommon writes PCM as ipcm, so the entry type is renamed
// (the entry's layout is the same audio sample entry). A track whose
// samples are presented shift (its units) after they are decoded (video
// with B-frames) gets an edit list that starts presentation there, so that
// every track's presentation starts at the segment's media time zero.
func marshalInit(tracks []*recTrack, shift func(*recTrack) int64) ([]byte, error) {
	init := fmp4.Init{}
	for _, t := range tracks {
		init.Tracks = append(init.Tracks, &fmp4.InitTrack{ID: t.id, TimeScale: t.clock, Codec: t.mp4Codec()})
	}
	var buf seekablebuffer.Buffer
	if err := init.Marshal(&buf); err != nil {
		return nil, fmt.Errorf("write segment init: %w", err)
	}
	b := buf.Bytes()
	for _, t := range tracks {
		if t.entryType == "" {
			continue
		}
		if err := mp4.RenameSampleEntry(b, uint32(t.id), "ipcm", t.entryType); err != nil {
			return nil, err
		}
	}
	for _, t := range tracks {
		if d := shift(t); d > 0 && d <= 1<<31-1 {
			var err error
			if b, err = mp4.InsertEditList(b, uint32(t.id), int32(d)); err != nil {
				return nil, err
			}
		}
	}
	return b, nil
}

// partTrack is the samples of one track in the part being built.
type partTrack struct {
	tr      *recTrack
	base    uint64 // decode time of the first sample, in track units
	samples []*fmp4.Sample
	src     []*sample
	dur     int64 // total duration of samples
	bytes   int
}

// marshalPart returns a part: a producer reference time box tying the
// reference track's decode time to the wall clock, then moof and mdat.
func marshalPart(seq uint32, tracks []*partTrack, ref *partTrack, segStart time.Time, aligned bool) ([]byte, error) {
	part := fmp4.Part{SequenceNumber: seq}
	for _, pt := range tracks {
		if len(pt.samples) == 0 {
			continue
		}
		part.Tracks = append(part.Tracks, &fmp4.PartTrack{ID: pt.tr.id, BaseTime: pt.base, Samples: pt.samples})
	}
	if len(part.Tracks) == 0 {
		return nil, nil
	}
	flags := uint32(mp4.PRFTCapture)
	if !aligned {
		flags = mp4.PRFTArbitrary
	}
	wall := segStart.Add(mp4.TicksToDuration(int64(ref.base), ref.tr.clock))
	b := mp4.AppendPRFT(make([]byte, 0, 32), uint32(ref.tr.id), wall, ref.base, flags)
	var buf seekablebuffer.Buffer
	if _, err := buf.Write(b); err != nil {
		return nil, err
	}
	if err := part.Marshal(&buf); err != nil {
		return nil, fmt.Errorf("write segment part: %w", err)
	}
	return buf.Bytes(), nil
}
