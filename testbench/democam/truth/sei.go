// Package truth carries the ground truth of the demo cameras inside their video, so that a
// receiver at the far end of the system can compare the capture time the system assigned to
// a frame with the time the frame was really captured.
//
// Each video frame carries its true capture time (Unix nanoseconds on the camera host's
// clock, which is the true time of a test) in an H.264 SEI NAL unit: one
// user_data_unregistered message (payload type 5, ITU-T H.264 D.1.7) made of UUID and the
// time as a big-endian int64. Decoders ignore such messages. The NAL unit is written with
// emulation prevention, so it is valid inside any H.264 stream.
//
// On the receiving side, Depacketizer recovers NAL units from RTP payloads (RFC 6184 single
// NAL unit, STAP-A and FU-A packets) and ParseSEI finds the time in an SEI NAL unit.
package truth

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// UUID identifies the capture-time message among user_data_unregistered SEI messages
// (encoders write their own, such as x264's version string).
var UUID = [16]byte{0xbf, 0x0b, 0x9f, 0x1b, 0x3e, 0xf4, 0x43, 0x17, 0x86, 0x80, 0x50, 0x9c, 0xd0, 0xc2, 0x7b, 0xed}

const (
	// NALUTypeSEI is the H.264 NAL unit type of supplemental enhancement information.
	NALUTypeSEI = 6
	// seiUserDataUnregistered is the SEI payload type of user_data_unregistered.
	seiUserDataUnregistered = 5
	// payloadSize is the size of the message: UUID and the time.
	payloadSize = len(UUID) + 8
	// maxSEISize bounds an SEI NAL unit with the message, emulation prevention included.
	maxSEISize = 64
)

// AppendSEI appends to dst an SEI NAL unit (without start code or length prefix) that
// carries capture, and returns the extended slice.
func AppendSEI(dst []byte, capture time.Time) []byte {
	var rbsp [3 + payloadSize + 1]byte
	rbsp[0] = seiUserDataUnregistered
	rbsp[1] = byte(payloadSize)
	copy(rbsp[2:], UUID[:])
	binary.BigEndian.PutUint64(rbsp[2+len(UUID):], uint64(capture.UnixNano()))
	rbsp[2+payloadSize] = 0x80 // rbsp_trailing_bits
	n := 2 + payloadSize + 1

	// nal_ref_idc 0: nothing refers to an SEI.
	dst = append(dst, NALUTypeSEI)
	return appendEmulationPrevented(dst, rbsp[:n])
}

// appendEmulationPrevented appends rbsp to dst as NAL unit payload bytes, inserting an
// emulation_prevention_three_byte after every two zero bytes followed by a byte of 0 to 3
// (ITU-T H.264 7.4.1).
func appendEmulationPrevented(dst, rbsp []byte) []byte {
	zeros := 0
	for _, b := range rbsp {
		if zeros >= 2 && b <= 3 {
			dst = append(dst, 3)
			zeros = 0
		}
		dst = append(dst, b)
		if b == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return dst
}

// ErrNotSEI is returned by ParseSEI for a NAL unit of another type.
var ErrNotSEI = errors.New("not an SEI NAL unit")

// ParseSEI reads an SEI NAL unit (without start code) and returns the capture time it
// carries. found is false when the SEI holds no capture-time message. err is ErrNotSEI for
// another NAL unit type, and describes what is wrong with a malformed SEI.
func ParseSEI(nalu []byte) (capture time.Time, found bool, err error) {
	if len(nalu) == 0 {
		return time.Time{}, false, errors.New("the NAL unit is empty")
	}
	if nalu[0]&0x80 != 0 {
		return time.Time{}, false, errors.New("the NAL unit has the forbidden_zero_bit set: the stream is corrupt")
	}
	if nalu[0]&0x1f != NALUTypeSEI {
		return time.Time{}, false, ErrNotSEI
	}
	if len(nalu) > 1<<16 {
		return time.Time{}, false, fmt.Errorf("the SEI NAL unit is %d bytes: more than the 64 KiB an SEI may sensibly hold", len(nalu))
	}
	var buf [maxSEISize]byte
	rbsp := removeEmulationPrevention(buf[:0], nalu[1:])

	for i := 0; moreRBSPData(rbsp); i++ {
		typ, n, ok := readFF(rbsp)
		if !ok {
			return time.Time{}, false, fmt.Errorf("SEI message %d: the payload type is cut short", i)
		}
		rbsp = rbsp[n:]
		size, n, ok := readFF(rbsp)
		if !ok {
			return time.Time{}, false, fmt.Errorf("SEI message %d (type %d): the payload size is cut short", i, typ)
		}
		rbsp = rbsp[n:]
		if size > len(rbsp) {
			return time.Time{}, false, fmt.Errorf("SEI message %d (type %d) says %d bytes, but %d remain", i, typ, size, len(rbsp))
		}
		payload := rbsp[:size]
		rbsp = rbsp[size:]
		if typ != seiUserDataUnregistered || size < len(UUID) || [16]byte(payload[:16]) != UUID {
			continue
		}
		if size != payloadSize {
			return time.Time{}, false, fmt.Errorf("the capture-time SEI message is %d bytes, want %d (UUID and an 8-byte time)", size, payloadSize)
		}
		return time.Unix(0, int64(binary.BigEndian.Uint64(payload[16:]))), true, nil
	}
	return time.Time{}, false, nil
}

// removeEmulationPrevention appends the RBSP of NAL unit payload ebsp to dst: ebsp without
// the emulation_prevention_three_byte that follows two zero bytes.
func removeEmulationPrevention(dst, ebsp []byte) []byte {
	zeros := 0
	for _, b := range ebsp {
		if zeros >= 2 && b == 3 {
			zeros = 0
			continue
		}
		dst = append(dst, b)
		if b == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return dst
}

// moreRBSPData tells whether rbsp holds more than its trailing bits (a 1 bit, then zeros).
func moreRBSPData(rbsp []byte) bool {
	if len(rbsp) == 0 {
		return false
	}
	if rbsp[0] != 0x80 {
		return true
	}
	for _, b := range rbsp[1:] {
		if b != 0 {
			return true
		}
	}
	return false
}

// readFF reads an SEI payload type or size: bytes of 0xFF, each adding 255, then a last
// byte. It returns the value and the number of bytes read.
func readFF(b []byte) (value, n int, ok bool) {
	for n < len(b) {
		v := b[n]
		n++
		value += int(v)
		if v != 0xff {
			return value, n, true
		}
	}
	return 0, 0, false
}
