package mp4

import (
	"encoding/binary"
	"fmt"
	"time"
)

// InsertEditList adds an edts box with one edit (whole track, starting at
// media time mediaTime) to track id's trak, after its tkhd.
func InsertEditList(b []byte, id uint32, mediaTime int32) ([]byte, error) {
	ftyp, err := NextBox(b, 0, len(b))
	if err != nil {
		return nil, err
	}
	moov, err := NextBox(b, ftyp.End, len(b))
	if err != nil || moov.Type != "moov" || moov.Body-moov.Start != 8 {
		return nil, fmt.Errorf("init segment without moov")
	}
	var at, trakStart int
	err = Children(b, moov.Body, moov.End, func(trak Box) error {
		if trak.Type != "trak" || at != 0 {
			return nil
		}
		var st Track
		if err := ParseTrak(b, trak, &st); err != nil || st.ID != id {
			return err
		}
		return Children(b, trak.Body, trak.End, func(c Box) error {
			if c.Type == "tkhd" {
				at, trakStart = c.End, trak.Start
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
	for _, off := range []int{moov.Start, trakStart} {
		binary.BigEndian.PutUint32(out[off:], binary.BigEndian.Uint32(out[off:])+uint32(len(edts)))
	}
	return out, nil
}

// RenameSampleEntry changes the type of track id's sample entry from old to
// typ in an init segment, in place.
func RenameSampleEntry(b []byte, id uint32, old, typ string) error {
	moov, err := NextBox(b, 0, len(b))
	if err == nil && moov.Type == "ftyp" {
		moov, err = NextBox(b, moov.End, len(b))
	}
	if err != nil || moov.Type != "moov" {
		return fmt.Errorf("init segment without moov")
	}
	done := false
	err = Children(b, moov.Body, moov.End, func(trak Box) error {
		if trak.Type != "trak" {
			return nil
		}
		var st Track
		if err := ParseTrak(b, trak, &st); err != nil || st.ID != id {
			return err
		}
		var walk func(c Box) error
		walk = func(c Box) error {
			switch c.Type {
			case "mdia", "minf", "stbl":
				return Children(b, c.Body, c.End, walk)
			case "stsd":
				e, err := NextBox(b, c.Body+8, c.End)
				if err != nil {
					return err
				}
				if e.Type == old {
					copy(b[e.Start+4:e.Start+8], typ)
					done = true
				}
			}
			return nil
		}
		return Children(b, trak.Body, trak.End, walk)
	})
	if err != nil {
		return err
	}
	if !done {
		return fmt.Errorf("init segment: no %s sample entry for track %d", old, id)
	}
	return nil
}

// TicksToDuration converts a time in units of 1/clock seconds.
func TicksToDuration(v int64, clock uint32) time.Duration {
	sec := v / int64(clock)
	rem := v % int64(clock)
	return time.Duration(sec)*time.Second + time.Duration(rem)*time.Second/time.Duration(clock)
}

// DurationToTicks converts a duration to units of 1/clock seconds, rounded.
func DurationToTicks(d time.Duration, clock uint32) int64 {
	sec := int64(d / time.Second)
	rem := int64(d % time.Second)
	return sec*int64(clock) + (rem*int64(clock)+int64(time.Second)/2)/int64(time.Second)
}

// WithEditLists returns a copy of init (ftyp and moov) whose tracks start
// presentation at the given media times: every existing edit list is
// removed, and a track with a non-zero time gets one edit starting there.
func WithEditLists(init []byte, mediaTime map[uint32]int64) ([]byte, error) {
	ftyp, err := NextBox(init, 0, len(init))
	if err != nil || ftyp.Type != "ftyp" {
		return nil, fmt.Errorf("init segment does not start with ftyp")
	}
	moov, err := NextBox(init, ftyp.End, len(init))
	if err != nil || moov.Type != "moov" || moov.Body-moov.Start != 8 {
		return nil, fmt.Errorf("init segment without moov")
	}
	out := append([]byte(nil), init[:moov.Body]...)
	err = Children(init, moov.Body, moov.End, func(c Box) error {
		if c.Type != "trak" || c.Body-c.Start != 8 {
			out = append(out, init[c.Start:c.End]...)
			return nil
		}
		at := len(out)
		out = append(out, init[c.Start:c.Body]...)
		err := Children(init, c.Body, c.End, func(k Box) error {
			if k.Type != "edts" {
				out = append(out, init[k.Start:k.End]...)
			}
			return nil
		})
		binary.BigEndian.PutUint32(out[at:], uint32(len(out)-at))
		return err
	})
	if err != nil {
		return nil, err
	}
	binary.BigEndian.PutUint32(out[ftyp.End:], uint32(len(out)-ftyp.End))
	out = append(out, init[moov.End:]...)
	for id, mt := range mediaTime {
		if mt <= 0 {
			continue
		}
		if mt > 1<<31-1 {
			return nil, fmt.Errorf("track %d: edit list media time %d out of range", id, mt)
		}
		if out, err = InsertEditList(out, id, int32(mt)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// MergeInits returns one init segment holding the tracks of several (the
// camera and the microphone of a call participant, recorded apart): the
// first one's ftyp and mvhd, then every trak and trex of each, with track
// ids renumbered by ids[i] (old id → new id; tracks missing from the map
// are left out).
func MergeInits(inits [][]byte, ids []map[uint32]uint32) ([]byte, error) {
	if len(inits) == 0 || len(inits) != len(ids) {
		return nil, fmt.Errorf("merge inits: %d inits, %d id maps", len(inits), len(ids))
	}
	var ftyp, mvhd []byte
	var traks, trexs [][]byte
	maxID := uint32(0)
	for i, init := range inits {
		f, err := NextBox(init, 0, len(init))
		if err != nil || f.Type != "ftyp" {
			return nil, fmt.Errorf("init %d does not start with ftyp", i)
		}
		moov, err := NextBox(init, f.End, len(init))
		if err != nil || moov.Type != "moov" {
			return nil, fmt.Errorf("init %d has no moov", i)
		}
		if i == 0 {
			ftyp = init[f.Start:f.End]
		}
		err = Children(init, moov.Body, moov.End, func(c Box) error {
			switch c.Type {
			case "mvhd":
				if i == 0 {
					mvhd = append([]byte(nil), init[c.Start:c.End]...)
				}
			case "trak":
				var t Track
				if err := ParseTrak(init, c, &t); err != nil {
					return err
				}
				id, ok := ids[i][t.ID]
				if !ok {
					return nil
				}
				b := append([]byte(nil), init[c.Start:c.End]...)
				if err := setTrackID(b, c.Start, init, c, id); err != nil {
					return err
				}
				traks = append(traks, b)
				maxID = max(maxID, id)
			case "mvex":
				return Children(init, c.Body, c.End, func(x Box) error {
					if x.Type != "trex" || x.End-x.Body < 8 {
						return nil
					}
					id, ok := ids[i][binary.BigEndian.Uint32(init[x.Body+4:])]
					if !ok {
						return nil
					}
					b := append([]byte(nil), init[x.Start:x.End]...)
					binary.BigEndian.PutUint32(b[x.Body-x.Start+4:], id)
					trexs = append(trexs, b)
					return nil
				})
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("init %d: %w", i, err)
		}
	}
	if mvhd == nil || len(mvhd) < 12 {
		return nil, fmt.Errorf("merge inits: no mvhd")
	}
	binary.BigEndian.PutUint32(mvhd[len(mvhd)-4:], maxID+1) // next_track_ID
	body := append([]byte(nil), mvhd...)
	for _, t := range traks {
		body = append(body, t...)
	}
	mvex := binary.BigEndian.AppendUint32(nil, 0)
	mvex = append(mvex, "mvex"...)
	for _, t := range trexs {
		mvex = append(mvex, t...)
	}
	binary.BigEndian.PutUint32(mvex, uint32(len(mvex)))
	body = append(body, mvex...)
	out := append([]byte(nil), ftyp...)
	out = binary.BigEndian.AppendUint32(out, uint32(8+len(body)))
	out = append(out, "moov"...)
	return append(out, body...), nil
}

// setTrackID writes id into the tkhd of the trak copied into b (the box c
// of src, copied from offset base).
func setTrackID(b []byte, base int, src []byte, trak Box, id uint32) error {
	done := false
	err := Children(src, trak.Body, trak.End, func(c Box) error {
		if c.Type != "tkhd" || c.End-c.Body < 4 {
			return nil
		}
		n := c.Body + 12
		if src[c.Body] == 1 {
			n = c.Body + 20
		}
		if n+4 > c.End {
			return fmt.Errorf("short tkhd")
		}
		binary.BigEndian.PutUint32(b[n-base:], id)
		done = true
		return nil
	})
	if err == nil && !done {
		err = fmt.Errorf("trak without tkhd")
	}
	return err
}
