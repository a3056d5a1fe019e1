package mp4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// A segment file is ftyp, moov, then parts: [prft] moof mdat. Scan
// reads one from disk (after a crash, or to check a stored copy) without
// trusting it: every length is bounds-checked, and a part counts only when
// its moof and mdat are complete and the sample sizes its runs declare fit
// in them.

// Box is one ISO BMFF box located in a buffer.
type Box struct {
	Type  string
	Start int // offset of the header
	Body  int // offset of the payload
	End   int // offset just past the box
}

// ErrIncomplete marks a box that runs past the end of the buffer.
var ErrIncomplete = errors.New("incomplete box")

// NextBox reads the box header at off in b[:limit].
func NextBox(b []byte, off, limit int) (Box, error) {
	if limit-off < 8 {
		return Box{}, ErrIncomplete
	}
	size := int64(binary.BigEndian.Uint32(b[off:]))
	typ := string(b[off+4 : off+8])
	hdr := 8
	switch size {
	case 0:
		return Box{}, fmt.Errorf("box %q at %d extends to the end of the file, which segments never use", printable(typ), off)
	case 1:
		if limit-off < 16 {
			return Box{}, ErrIncomplete
		}
		size = int64(binary.BigEndian.Uint64(b[off+8:]))
		hdr = 16
	}
	if size < int64(hdr) {
		return Box{}, fmt.Errorf("box %q at %d has a bad size %d", printable(typ), off, size)
	}
	if size > int64(limit-off) {
		return Box{Type: typ, Start: off, Body: off + hdr}, ErrIncomplete
	}
	return Box{Type: typ, Start: off, Body: off + hdr, End: off + int(size)}, nil
}

// Children calls fn for each complete child box of b[start:end].
func Children(b []byte, start, end int, fn func(Box) error) error {
	for off := start; off < end; {
		c, err := NextBox(b, off, end)
		if err != nil {
			return err
		}
		if err := fn(c); err != nil {
			return err
		}
		off = c.End
	}
	return nil
}

func printable(s string) string {
	for _, r := range s {
		if r < 0x20 || r > 0x7e {
			return fmt.Sprintf("%x", s)
		}
	}
	return s
}

// Track is a track of a scanned segment.
type Track struct {
	ID        uint32
	TimeScale uint32
	Handler   string // vide or soun
	Entry     string // sample entry type: avc1, hvc1, Opus, mp4a, ulaw, alaw
	// SampleEntry is the content of the track's stsd box: two tracks with
	// the same one decode the same way.
	SampleEntry string
	// EditMediaTime is the media time at which the track's edit list
	// starts presentation (0 without one).
	EditMediaTime int64
	// Start is the decode time of the track's first sample, End the decode
	// time just past its last one, in TimeScale units.
	Start, End uint64
	Samples    int
	// Gaps counts parts whose first sample does not start where the
	// track's previous part ended.
	Gaps int
	seen bool
}

// PRFT is a producer reference time box: wall-clock time of a media time.
type PRFT struct {
	TrackID   uint32
	Wall      time.Time
	MediaTime uint64
}

// Segment is what Scan finds.
type Segment struct {
	// InitEnd is the end of moov; Valid the end of the last complete part.
	InitEnd, Valid int
	Tracks         []Track
	Parts          int
	PRFT           []PRFT
	// Stop explains why scanning stopped before the end of the data, if it did.
	Stop error
}

// maxSamplesPerRun bounds one trun (an hour of 120 fps video).
const maxSamplesPerRun = 120 * 3600

// Scan parses a segment file's content. It fails only when the
// content is not a segment (bad or incomplete init); a damaged tail just ends
// the scan, with Valid the length to cut the file to.
func Scan(b []byte) (*Segment, error) {
	s := &Segment{}
	ftyp, err := NextBox(b, 0, len(b))
	if err != nil || ftyp.Type != "ftyp" {
		return nil, fmt.Errorf("segment does not start with a complete ftyp box")
	}
	moov, err := NextBox(b, ftyp.End, len(b))
	if err != nil || moov.Type != "moov" {
		return nil, fmt.Errorf("segment has no complete moov box after ftyp")
	}
	if err := s.parseMoov(b, moov); err != nil {
		return nil, err
	}
	s.InitEnd, s.Valid = moov.End, moov.End
	var prft *PRFT
	for off := moov.End; off < len(b); {
		bx, err := NextBox(b, off, len(b))
		if err != nil {
			s.Stop = fmt.Errorf("at %d: %w", off, err)
			return s, nil
		}
		switch bx.Type {
		case "prft":
			p, err := ParsePRFT(b[bx.Body:bx.End])
			if err != nil {
				s.Stop = fmt.Errorf("at %d: %w", off, err)
				return s, nil
			}
			prft = &p
			off = bx.End
		case "moof":
			mdat, err := NextBox(b, bx.End, len(b))
			if err != nil || mdat.Type != "mdat" {
				if err == nil {
					err = fmt.Errorf("moof followed by %q, not mdat", printable(mdat.Type))
				}
				s.Stop = fmt.Errorf("at %d: %w", bx.End, err)
				return s, nil
			}
			ends, err := s.parseMoof(b, bx, mdat)
			if err != nil {
				s.Stop = fmt.Errorf("part at %d: %w", off, err)
				return s, nil
			}
			for i := range s.Tracks {
				if e := ends[i]; e.count > 0 {
					t := &s.Tracks[i]
					if !t.seen {
						t.Start, t.seen = e.Start, true
					} else if e.Start != t.End {
						t.Gaps++
					}
					t.End = e.End
					t.Samples += e.count
				}
			}
			if prft != nil {
				s.PRFT = append(s.PRFT, *prft)
				prft = nil
			}
			s.Parts++
			s.Valid = mdat.End
			off = mdat.End
		case "free", "skip", "styp", "sidx":
			off = bx.End
		default:
			s.Stop = fmt.Errorf("at %d: unexpected box %q", off, printable(bx.Type))
			return s, nil
		}
	}
	if s.Valid < len(b) {
		// A producer reference time (or padding) with no part after it:
		// the file was cut while a part was being written.
		s.Stop = fmt.Errorf("at %d: boxes after the last complete part, with no part of their own", s.Valid)
	}
	return s, nil
}

func (s *Segment) parseMoov(b []byte, moov Box) error {
	err := Children(b, moov.Body, moov.End, func(c Box) error {
		if c.Type != "trak" {
			return nil
		}
		var t Track
		if err := ParseTrak(b, c, &t); err != nil {
			return err
		}
		for _, o := range s.Tracks {
			if o.ID == t.ID {
				return fmt.Errorf("track id %d appears twice", t.ID)
			}
		}
		s.Tracks = append(s.Tracks, t)
		return nil
	})
	if err != nil {
		return fmt.Errorf("segment init: %w", err)
	}
	if len(s.Tracks) == 0 {
		return errors.New("segment init has no track")
	}
	return nil
}

func ParseTrak(b []byte, trak Box, t *Track) error {
	var walk func(c Box) error
	walk = func(c Box) error {
		p := b[c.Body:c.End]
		switch c.Type {
		case "mdia", "minf", "stbl", "edts":
			return Children(b, c.Body, c.End, walk)
		case "elst":
			t.EditMediaTime = parseElst(p)
		case "tkhd":
			if len(p) < 4 {
				return errors.New("short tkhd")
			}
			n := 12
			if p[0] == 1 {
				n = 20
			}
			if len(p) < n+4 {
				return errors.New("short tkhd")
			}
			t.ID = binary.BigEndian.Uint32(p[n:])
		case "mdhd":
			if len(p) < 4 {
				return errors.New("short mdhd")
			}
			n := 12
			if p[0] == 1 {
				n = 20
			}
			if len(p) < n+4 {
				return errors.New("short mdhd")
			}
			t.TimeScale = binary.BigEndian.Uint32(p[n:])
		case "hdlr":
			if len(p) < 12 {
				return errors.New("short hdlr")
			}
			t.Handler = string(p[8:12])
		case "stsd":
			if len(p) < 8 {
				return errors.New("short stsd")
			}
			e, err := NextBox(b, c.Body+8, c.End)
			if err != nil {
				return fmt.Errorf("stsd: %w", err)
			}
			t.Entry = e.Type
			t.SampleEntry = string(p)
		}
		return nil
	}
	if err := Children(b, trak.Body, trak.End, walk); err != nil {
		return err
	}
	if t.ID == 0 || t.TimeScale == 0 {
		return errors.New("track without id or time scale")
	}
	return nil
}

type runEnd struct {
	Start, End uint64
	count      int
}

// parseMoof reads a part's track fragments and checks that their samples
// fit in mdat. It returns, per scanned track, the decode time span.
func (s *Segment) parseMoof(b []byte, moof, mdat Box) ([]runEnd, error) {
	ends := make([]runEnd, len(s.Tracks))
	err := eachTrun(b, moof, func(h *trafHeader, p []byte) error {
		i := -1
		for k := range s.Tracks {
			if s.Tracks[k].ID == h.id {
				i = k
			}
		}
		if i < 0 {
			return fmt.Errorf("fragment of unknown track %d", h.id)
		}
		dur, count, err := parseTrun(p, h.defDur, h.defSize, moof.Start, mdat)
		if err != nil {
			return err
		}
		e := &ends[i]
		if e.count == 0 {
			e.Start = h.base
		}
		e.End = h.base + dur
		e.count += count
		h.base += dur
		return nil
	})
	return ends, err
}

// parseTrun returns the total duration and sample count of a track run, and
// checks that its data lies within mdat.
func parseTrun(p []byte, defDur, defSize uint32, moofStart int, mdat Box) (uint64, int, error) {
	if len(p) < 8 {
		return 0, 0, errors.New("short trun")
	}
	flags := uint32(p[1])<<16 | uint32(p[2])<<8 | uint32(p[3])
	count := binary.BigEndian.Uint32(p[4:])
	if count > maxSamplesPerRun {
		return 0, 0, fmt.Errorf("trun of %d samples", count)
	}
	n := 8
	dataOffset := int64(-1)
	if flags&0x01 != 0 {
		if len(p) < n+4 {
			return 0, 0, errors.New("short trun")
		}
		dataOffset = int64(int32(binary.BigEndian.Uint32(p[n:])))
		n += 4
	}
	if flags&0x04 != 0 {
		n += 4
	}
	entry := 0
	for _, f := range []uint32{0x100, 0x200, 0x400, 0x800} {
		if flags&f != 0 {
			entry += 4
		}
	}
	if int64(len(p)-n) < int64(count)*int64(entry) {
		return 0, 0, errors.New("trun entries run past the box")
	}
	var dur, size uint64
	for k := uint32(0); k < count; k++ {
		d, sz := defDur, defSize
		if flags&0x100 != 0 {
			d = binary.BigEndian.Uint32(p[n:])
			n += 4
		}
		if flags&0x200 != 0 {
			sz = binary.BigEndian.Uint32(p[n:])
			n += 4
		}
		if flags&0x400 != 0 {
			n += 4
		}
		if flags&0x800 != 0 {
			n += 4
		}
		dur += uint64(d)
		size += uint64(sz)
	}
	if dataOffset >= 0 {
		startAbs := int64(moofStart) + dataOffset
		if startAbs < int64(mdat.Body) || startAbs+int64(size) > int64(mdat.End) {
			return 0, 0, errors.New("trun data lies outside mdat")
		}
	} else if size > uint64(mdat.End-mdat.Body) {
		return 0, 0, errors.New("trun data is larger than mdat")
	}
	return dur, int(count), nil
}

// ntpEpochOffset is the number of seconds from 1900 (NTP) to 1970 (Unix).
const ntpEpochOffset = 2208988800

func NTPTime(t time.Time) uint64 {
	ns := t.UnixNano()
	sec := uint64(ns/1e9) + ntpEpochOffset
	frac := (uint64(ns%1e9) << 32) / 1e9
	return sec<<32 | frac
}

func FromNTP(v uint64) time.Time {
	sec := int64(v>>32) - ntpEpochOffset
	ns := (int64(v&0xffffffff) * 1e9) >> 32
	return time.Unix(sec, ns)
}

func ParsePRFT(p []byte) (PRFT, error) {
	var r PRFT
	if len(p) < 20 {
		return r, errors.New("short prft")
	}
	r.TrackID = binary.BigEndian.Uint32(p[4:])
	r.Wall = FromNTP(binary.BigEndian.Uint64(p[8:]))
	if p[0] == 1 {
		if len(p) < 24 {
			return r, errors.New("short prft")
		}
		r.MediaTime = binary.BigEndian.Uint64(p[16:])
	} else {
		r.MediaTime = uint64(binary.BigEndian.Uint32(p[16:]))
	}
	return r, nil
}

// PRFTCapture says the prft time is when the frame was captured
// (ISO/IEC 14496-12, producer reference time flags); PRFTArbitrary that
// it is an arbitrary but consistent clock (the recorder's arrival time).
const (
	PRFTCapture   = 24
	PRFTArbitrary = 8
)

// AppendPRFT appends a version 1 producer reference time box.
func AppendPRFT(b []byte, trackID uint32, wall time.Time, mediaTime uint64, flags uint32) []byte {
	b = binary.BigEndian.AppendUint32(b, 32)
	b = append(b, "prft"...)
	b = binary.BigEndian.AppendUint32(b, 1<<24|flags&0xffffff)
	b = binary.BigEndian.AppendUint32(b, trackID)
	b = binary.BigEndian.AppendUint64(b, NTPTime(wall))
	return binary.BigEndian.AppendUint64(b, mediaTime)
}

// parseElst returns the media time of an edit list's first edit that
// presents media (an empty edit only delays), or 0.
func parseElst(p []byte) int64 {
	if len(p) < 8 {
		return 0
	}
	n, size := 8, 12
	if p[0] == 1 {
		size = 20
	}
	count := binary.BigEndian.Uint32(p[4:])
	for k := uint32(0); k < count && len(p) >= n+size; k++ {
		var mt int64
		if p[0] == 1 {
			mt = int64(binary.BigEndian.Uint64(p[n+8:]))
		} else {
			mt = int64(int32(binary.BigEndian.Uint32(p[n+4:])))
		}
		if mt >= 0 {
			return mt
		}
		n += size
	}
	return 0
}
