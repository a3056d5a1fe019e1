package unit

// IsKeyframe reports whether an RTP payload of the given codec starts or
// carries a frame that decodes without earlier frames. It never panics on
// malformed payloads; it answers false instead.
func IsKeyframe(codec string, payload []byte) bool {
	switch codec {
	case CodecH264:
		return h264Keyframe(payload)
	case CodecH265:
		return h265Keyframe(payload)
	case CodecVP8:
		return vp8Keyframe(payload)
	case CodecVP9:
		return vp9Keyframe(payload)
	case CodecAV1:
		return av1Keyframe(payload)
	}
	return false
}

// H.264 NAL unit types (RFC 6184).
const (
	h264NALIDR   = 5
	h264NALSTAPA = 24
	h264NALFUA   = 28
)

func h264Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	switch typ := p[0] & 0x1f; typ {
	case h264NALIDR:
		return true
	case h264NALSTAPA:
		for b := p[1:]; len(b) >= 3; {
			n := int(b[0])<<8 | int(b[1])
			if n == 0 || len(b) < 2+n {
				return false
			}
			if b[2]&0x1f == h264NALIDR {
				return true
			}
			b = b[2+n:]
		}
	case h264NALFUA:
		return len(p) >= 2 && p[1]&0x80 != 0 && p[1]&0x1f == h264NALIDR
	}
	return false
}

// H.265 NAL unit types (RFC 7798).
const (
	h265NALIRAPFirst = 16
	h265NALIRAPLast  = 21
	h265NALAP        = 48
	h265NALFU        = 49
)

func h265IRAP(typ byte) bool { return typ >= h265NALIRAPFirst && typ <= h265NALIRAPLast }

func h265Keyframe(p []byte) bool {
	if len(p) < 2 {
		return false
	}
	switch typ := (p[0] >> 1) & 0x3f; {
	case h265IRAP(typ):
		return true
	case typ == h265NALAP:
		for b := p[2:]; len(b) >= 3; {
			n := int(b[0])<<8 | int(b[1])
			if n == 0 || len(b) < 2+n {
				return false
			}
			if h265IRAP((b[2] >> 1) & 0x3f) {
				return true
			}
			b = b[2+n:]
		}
	case typ == h265NALFU:
		return len(p) >= 3 && p[2]&0x80 != 0 && h265IRAP(p[2]&0x3f)
	}
	return false
}

// vp8Keyframe parses the VP8 payload descriptor (RFC 7741 section 4.2) and
// reads the P bit of the first partition's header.
func vp8Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	start := p[0]&0x10 != 0
	pid := p[0] & 0x07
	i := 1
	if p[0]&0x80 != 0 { // X: extended control bits
		if len(p) < 2 {
			return false
		}
		x := p[1]
		i = 2
		if x&0x80 != 0 { // I: picture id
			if len(p) <= i {
				return false
			}
			if p[i]&0x80 != 0 {
				i += 2
			} else {
				i++
			}
		}
		if x&0x40 != 0 { // L: TL0PICIDX
			i++
		}
		if x&0x30 != 0 { // T or K: TID/KEYIDX
			i++
		}
	}
	if !start || pid != 0 || len(p) <= i {
		return false
	}
	return p[i]&0x01 == 0
}

// vp9Keyframe reads the flexible/non-flexible VP9 payload descriptor's first
// byte: a frame that starts here (B) and is not inter-picture predicted (P).
func vp9Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	return p[0]&0x40 == 0 && p[0]&0x08 != 0
}

// av1Keyframe reads the AV1 aggregation header's N bit: the first packet of
// a new coded video sequence.
func av1Keyframe(p []byte) bool {
	return len(p) >= 1 && p[0]&0x08 != 0
}
