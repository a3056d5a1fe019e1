package main

import (
	"errors"
	"fmt"
)

// H.264 NAL unit types used to group NAL units into access units (ITU-T H.264 table 7-1).
const (
	naluNonIDR = 1
	naluIDR    = 5
	naluSEI    = 6
	naluSPS    = 7
	naluPPS    = 8
	naluAUD    = 9
)

// SplitAnnexB splits an H.264 Annex-B byte stream into NAL units.
//
// The stream must begin with a start code (0x000001 or 0x00000001), optionally
// preceded by zero bytes. Empty NAL units (two start codes in a row) are skipped and
// trailing zero bytes are trimmed from each NAL unit. The returned NAL units share
// memory with buf, which is not modified.
func SplitAnnexB(buf []byte) ([][]byte, error) {
	if len(buf) == 0 {
		return nil, errors.New("the H.264 stream is empty: expected Annex-B data starting with 00 00 01")
	}

	// skip leading_zero_8bits, then require a start code.
	i := 0
	for i < len(buf) && buf[i] == 0 {
		i++
	}
	if i < 2 || i == len(buf) || buf[i] != 1 {
		return nil, fmt.Errorf("the H.264 stream does not start with an Annex-B start code (00 00 01) "+
			"at byte %d: convert it with `ffmpeg -i IN -c:v copy -bsf:v h264_mp4toannexb -f h264 OUT`", i)
	}
	start := i + 1

	var nalus [][]byte
	for {
		next, codeLen := findStartCode(buf, start)
		end := next
		if next < 0 {
			end = len(buf)
		}
		nalu := trimTrailingZeros(buf[start:end])
		if len(nalu) > 0 {
			if nalu[0]&0x80 != 0 {
				return nil, fmt.Errorf("NAL unit %d at byte %d has the forbidden_zero_bit set: the H.264 stream is corrupt",
					len(nalus), start)
			}
			nalus = append(nalus, nalu)
		}
		if next < 0 {
			break
		}
		start = next + codeLen
	}

	if len(nalus) == 0 {
		return nil, errors.New("the H.264 stream contains start codes but no NAL units")
	}
	return nalus, nil
}

// findStartCode returns the position of the next 00 00 01 at or after from and its length,
// or -1 when there is none.
func findStartCode(buf []byte, from int) (int, int) {
	for i := from; i+2 < len(buf); i++ {
		if buf[i+2] > 1 {
			// neither buf[i+2] nor the bytes before it can complete a start code here.
			i += 2
			continue
		}
		if buf[i] == 0 && buf[i+1] == 0 && buf[i+2] == 1 {
			return i, 3
		}
	}
	return -1, 0
}

func trimTrailingZeros(b []byte) []byte {
	n := len(b)
	for n > 0 && b[n-1] == 0 {
		n--
	}
	return b[:n]
}

// isVCL tells whether a NAL unit carries slice data of a coded picture.
func isVCL(typ byte) bool {
	return typ >= 1 && typ <= 5
}

// firstSliceOfPicture tells whether a VCL NAL unit starts a new picture, that is whether its
// first_mb_in_slice is 0. first_mb_in_slice is the first ue(v) field of the slice header, and
// ue(v) encodes 0 as a single 1 bit.
func firstSliceOfPicture(nalu []byte) bool {
	return len(nalu) >= 2 && nalu[1]&0x80 != 0
}

// GroupAccessUnits groups NAL units into access units, one coded picture each
// (ITU-T H.264 7.4.1.2.3): a new access unit starts at an access unit delimiter, SPS, PPS or
// SEI that follows a picture, and at the first slice of a new picture. Every access unit
// returned holds at least one VCL NAL unit.
func GroupAccessUnits(nalus [][]byte) ([][][]byte, error) {
	var aus [][][]byte
	var cur [][]byte
	curHasVCL := false

	for i, nalu := range nalus {
		if len(nalu) == 0 {
			return nil, fmt.Errorf("NAL unit %d is empty", i)
		}
		typ := nalu[0] & 0x1f

		newAU := false
		switch {
		case typ == naluAUD || typ == naluSPS || typ == naluPPS || typ == naluSEI || (typ >= 14 && typ <= 18):
			newAU = curHasVCL
		case isVCL(typ):
			newAU = curHasVCL && firstSliceOfPicture(nalu)
		}

		if newAU {
			aus = append(aus, cur)
			cur = nil
			curHasVCL = false
		}
		cur = append(cur, nalu)
		if isVCL(typ) {
			curHasVCL = true
		}
	}

	if len(cur) > 0 {
		if !curHasVCL {
			return nil, fmt.Errorf("the H.264 stream ends with %d NAL units that belong to no picture", len(cur))
		}
		aus = append(aus, cur)
	}
	if len(aus) == 0 {
		return nil, errors.New("the H.264 stream contains no coded picture")
	}
	return aus, nil
}
