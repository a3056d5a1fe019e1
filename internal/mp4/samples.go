package mp4

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Sample is one sample of a segment, located in the segment's buffer.
type Sample struct {
	// DTS is the decode time in the track's time scale; the sample is
	// presented at DTS + PTSOffset (before the track's edit list).
	DTS       uint64
	Duration  uint32
	PTSOffset int32
	// Sync is set for a sample a decoder can start at (a keyframe; every
	// audio sample).
	Sync bool
	Data []byte
}

// sample flags (ISO/IEC 14496-12 8.8.3.1).
const sampleNonSync = 1 << 16

// ReadSamples returns the samples of every track of a segment, in decode
// order, for the parts that Scan found complete (those before s.Valid). The
// samples' Data are slices of b.
func ReadSamples(b []byte, s *Segment) (map[uint32][]Sample, error) {
	out := make(map[uint32][]Sample, len(s.Tracks))
	for off := s.InitEnd; off < s.Valid; {
		bx, err := NextBox(b, off, s.Valid)
		if err != nil {
			return nil, fmt.Errorf("at %d: %w", off, err)
		}
		if bx.Type != "moof" {
			off = bx.End
			continue
		}
		mdat, err := NextBox(b, bx.End, s.Valid)
		if err != nil || mdat.Type != "mdat" {
			return nil, fmt.Errorf("at %d: moof without mdat", bx.End)
		}
		if err := readMoof(b, bx, mdat, out); err != nil {
			return nil, fmt.Errorf("part at %d: %w", off, err)
		}
		off = mdat.End
	}
	return out, nil
}

func readMoof(b []byte, moof, mdat Box, out map[uint32][]Sample) error {
	next := int64(mdat.Body) // where a run without a data offset starts
	return eachTrun(b, moof, func(h *trafHeader, p []byte) error {
		if h.baseOffset {
			return errors.New("tfhd with an explicit base data offset, which segments never use")
		}
		var err error
		out[h.id], h.base, next, err = readTrun(b, p, h.defDur, h.defSize, h.defFlags, h.base, int64(moof.Start), next, mdat, out[h.id])
		return err
	})
}

// eachTrun calls fn with every track run of a moof, in order, and the
// header of its track fragment (tfhd, tfdt), which fn may advance.
func eachTrun(b []byte, moof Box, fn func(h *trafHeader, trun []byte) error) error {
	return Children(b, moof.Body, moof.End, func(c Box) error {
		if c.Type != "traf" {
			return nil
		}
		var h trafHeader
		return Children(b, c.Body, c.End, func(t Box) error {
			p := b[t.Body:t.End]
			if ok, err := h.read(t.Type, p); ok || err != nil || t.Type != "trun" {
				return err
			}
			if !h.haveTfhd || !h.haveTfdt {
				return errors.New("trun before tfhd and tfdt")
			}
			return fn(&h, p)
		})
	})
}

func readTrun(b, p []byte, defDur, defSize, defFlags uint32, dts uint64, moofStart, next int64, mdat Box, out []Sample) ([]Sample, uint64, int64, error) {
	if len(p) < 8 {
		return out, dts, next, errors.New("short trun")
	}
	version := p[0]
	flags := uint32(p[1])<<16 | uint32(p[2])<<8 | uint32(p[3])
	count := binary.BigEndian.Uint32(p[4:])
	if count > maxSamplesPerRun {
		return out, dts, next, fmt.Errorf("trun of %d samples", count)
	}
	n := 8
	data := next
	if flags&0x01 != 0 {
		if len(p) < n+4 {
			return out, dts, next, errors.New("short trun")
		}
		data = moofStart + int64(int32(binary.BigEndian.Uint32(p[n:])))
		n += 4
	}
	first, haveFirst := uint32(0), false
	if flags&0x04 != 0 {
		if len(p) < n+4 {
			return out, dts, next, errors.New("short trun")
		}
		first, haveFirst = binary.BigEndian.Uint32(p[n:]), true
		n += 4
	}
	entry := 0
	for _, f := range []uint32{0x100, 0x200, 0x400, 0x800} {
		if flags&f != 0 {
			entry += 4
		}
	}
	if int64(len(p)-n) < int64(count)*int64(entry) {
		return out, dts, next, errors.New("trun entries run past the box")
	}
	for k := uint32(0); k < count; k++ {
		d, sz, fl := defDur, defSize, defFlags
		var off int32
		if flags&0x100 != 0 {
			d = binary.BigEndian.Uint32(p[n:])
			n += 4
		}
		if flags&0x200 != 0 {
			sz = binary.BigEndian.Uint32(p[n:])
			n += 4
		}
		if flags&0x400 != 0 {
			fl = binary.BigEndian.Uint32(p[n:])
			n += 4
		} else if k == 0 && haveFirst {
			fl = first
		}
		if flags&0x800 != 0 {
			v := binary.BigEndian.Uint32(p[n:])
			if version == 0 && v > 1<<31-1 {
				return out, dts, next, errors.New("trun composition offset out of range")
			}
			off = int32(v)
			n += 4
		}
		if data < int64(mdat.Body) || data+int64(sz) > int64(mdat.End) {
			return out, dts, next, errors.New("trun data lies outside mdat")
		}
		out = append(out, Sample{DTS: dts, Duration: d, PTSOffset: off, Sync: fl&sampleNonSync == 0, Data: b[data : data+int64(sz)]})
		dts += uint64(d)
		data += int64(sz)
	}
	return out, dts, data, nil
}

// trafHeader is what a track fragment's tfhd and tfdt say.
type trafHeader struct {
	id, defDur, defSize, defFlags uint32
	base                          uint64
	baseOffset                    bool // tfhd gives an explicit base data offset
	haveTfhd, haveTfdt            bool
}

// read reads a tfhd or tfdt box's payload p into h; it returns false for
// another box.
func (h *trafHeader) read(typ string, p []byte) (bool, error) {
	switch typ {
	case "tfhd":
		if len(p) < 8 {
			return true, errors.New("short tfhd")
		}
		flags := uint32(p[1])<<16 | uint32(p[2])<<8 | uint32(p[3])
		h.id = binary.BigEndian.Uint32(p[4:])
		n := 8
		if flags&0x01 != 0 {
			h.baseOffset = true
			n += 8
		}
		for _, f := range []struct {
			bit uint32
			dst *uint32
		}{{0x02, nil}, {0x08, &h.defDur}, {0x10, &h.defSize}, {0x20, &h.defFlags}} {
			if flags&f.bit == 0 {
				continue
			}
			if len(p) < n+4 {
				return true, errors.New("short tfhd")
			}
			if f.dst != nil {
				*f.dst = binary.BigEndian.Uint32(p[n:])
			}
			n += 4
		}
		h.haveTfhd = true
		return true, nil
	case "tfdt":
		if len(p) < 8 || (p[0] == 1 && len(p) < 12) {
			return true, errors.New("short tfdt")
		}
		if p[0] == 1 {
			h.base = binary.BigEndian.Uint64(p[4:])
		} else {
			h.base = uint64(binary.BigEndian.Uint32(p[4:]))
		}
		h.haveTfdt = true
		return true, nil
	}
	return false, nil
}
