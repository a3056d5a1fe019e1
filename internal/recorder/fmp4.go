package recorder

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
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
		if err := renameSampleEntry(b, uint32(t.id), "ipcm", t.entryType); err != nil {
			return nil, err
		}
	}
	for _, t := range tracks {
		if d := shift(t); d > 0 && d <= 1<<31-1 {
			var err error
			if b, err = insertEditList(b, uint32(t.id), int32(d)); err != nil {
				return nil, err
			}
		}
	}
	return b, nil
}

// insertEditList adds an edts box with one edit (whole track, starting at
// media time mediaTime) to track id's trak, after its tkhd.
func insertEditList(b []byte, id uint32, mediaTime int32) ([]byte, error) {
	ftyp, err := nextBox(b, 0, len(b))
	if err != nil {
		return nil, err
	}
	moov, err := nextBox(b, ftyp.end, len(b))
	if err != nil || moov.typ != "moov" || moov.body-moov.start != 8 {
		return nil, fmt.Errorf("init segment without moov")
	}
	var at, trakStart int
	err = children(b, moov.body, moov.end, func(trak box) error {
		if trak.typ != "trak" || at != 0 {
			return nil
		}
		var st scanTrack
		if err := parseTrak(b, trak, &st); err != nil || st.ID != id {
			return err
		}
		return children(b, trak.body, trak.end, func(c box) error {
			if c.typ == "tkhd" {
				at, trakStart = c.end, trak.start
			}
			return nil
		})
	})
	if err != nil || at == 0 {
		return nil, fmt.Errorf("init segment: no tkhd for track %d", id)
	}
	// edts { elst v0: one entry, duration 0 (all of the track), media time, rate 1 }
	edts := binary.BigEndian.AppendUint32(nil, 36)
	edts = append(edts, "edts"...)
	edts = binary.BigEndian.AppendUint32(edts, 28)
	edts = append(edts, "elst"...)
	edts = binary.BigEndian.AppendUint32(edts, 0) // version, flags
	edts = binary.BigEndian.AppendUint32(edts, 1) // entry count
	edts = binary.BigEndian.AppendUint32(edts, 0) // segment duration
	edts = binary.BigEndian.AppendUint32(edts, uint32(mediaTime))
	edts = binary.BigEndian.AppendUint32(edts, 1<<16) // media rate 1.0
	out := make([]byte, 0, len(b)+len(edts))
	out = append(append(append(out, b[:at]...), edts...), b[at:]...)
	for _, off := range []int{moov.start, trakStart} {
		binary.BigEndian.PutUint32(out[off:], binary.BigEndian.Uint32(out[off:])+uint32(len(edts)))
	}
	return out, nil
}

// renameSampleEntry changes the type of track id's sample entry from old to
// typ in an init segment, in place.
func renameSampleEntry(b []byte, id uint32, old, typ string) error {
	moov, err := nextBox(b, 0, len(b))
	if err == nil && moov.typ == "ftyp" {
		moov, err = nextBox(b, moov.end, len(b))
	}
	if err != nil || moov.typ != "moov" {
		return fmt.Errorf("init segment without moov")
	}
	done := false
	err = children(b, moov.body, moov.end, func(trak box) error {
		if trak.typ != "trak" {
			return nil
		}
		var st scanTrack
		if err := parseTrak(b, trak, &st); err != nil || st.ID != id {
			return err
		}
		var walk func(c box) error
		walk = func(c box) error {
			switch c.typ {
			case "mdia", "minf", "stbl":
				return children(b, c.body, c.end, walk)
			case "stsd":
				e, err := nextBox(b, c.body+8, c.end)
				if err != nil {
					return err
				}
				if e.typ == old {
					copy(b[e.start+4:e.start+8], typ)
					done = true
				}
			}
			return nil
		}
		return children(b, trak.body, trak.end, walk)
	})
	if err != nil {
		return err
	}
	if !done {
		return fmt.Errorf("init segment: no %s sample entry for track %d", old, id)
	}
	return nil
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
	flags := uint32(prftFlagCapture)
	if !aligned {
		flags = prftFlagArbitrary
	}
	wall := segStart.Add(ticksToDuration(int64(ref.base), ref.tr.clock))
	b := appendPRFT(make([]byte, 0, 32), uint32(ref.tr.id), wall, ref.base, flags)
	var buf seekablebuffer.Buffer
	if _, err := buf.Write(b); err != nil {
		return nil, err
	}
	if err := part.Marshal(&buf); err != nil {
		return nil, fmt.Errorf("write segment part: %w", err)
	}
	return buf.Bytes(), nil
}

// ticksToDuration converts a time in units of 1/clock seconds.
func ticksToDuration(v int64, clock uint32) time.Duration {
	sec := v / int64(clock)
	rem := v % int64(clock)
	return time.Duration(sec)*time.Second + time.Duration(rem)*time.Second/time.Duration(clock)
}

// durationToTicks converts a duration to units of 1/clock seconds, rounded.
func durationToTicks(d time.Duration, clock uint32) int64 {
	sec := int64(d / time.Second)
	rem := int64(d % time.Second)
	return sec*int64(clock) + (rem*int64(clock)+int64(time.Second)/2)/int64(time.Second)
}
