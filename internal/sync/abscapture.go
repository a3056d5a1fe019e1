package sync

import (
	"encoding/binary"
	"fmt"
	"time"
)

// AbsCaptureTimeURI is the RTP header extension URI of abs-capture-time, as
// negotiated in SDP with a=extmap.
const AbsCaptureTimeURI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time"

// Sizes of the abs-capture-time extension payload.
const (
	absCaptureTimeShort = 8
	absCaptureTimeLong  = 16
)

// AbsCaptureTime is the payload of the abs-capture-time RTP header extension:
// the NTP time at which the first packet's frame was captured, in the
// capturer's clock, and optionally the estimated offset of the capturer's
// clock to the sender's clock (add it to Timestamp to get the capture time in
// the sender's clock, the clock of the sender reports).
type AbsCaptureTime struct {
	// Timestamp is the capture time as a 64-bit NTP timestamp (UQ32.32).
	Timestamp uint64
	// Offset is the estimated capture clock offset (Q32.32 seconds), valid
	// when HasOffset is true.
	Offset    int64
	HasOffset bool
}

// UnmarshalAbsCaptureTime decodes an abs-capture-time extension payload of 8
// or 16 bytes.
func UnmarshalAbsCaptureTime(b []byte) (AbsCaptureTime, error) {
	switch len(b) {
	case absCaptureTimeShort:
		return AbsCaptureTime{Timestamp: binary.BigEndian.Uint64(b)}, nil
	case absCaptureTimeLong:
		return AbsCaptureTime{
			Timestamp: binary.BigEndian.Uint64(b),
			Offset:    int64(binary.BigEndian.Uint64(b[8:])),
			HasOffset: true,
		}, nil
	}
	return AbsCaptureTime{}, fmt.Errorf("abs-capture-time extension is %d bytes, want 8 or 16: "+
		"check that the extmap id negotiated for %s is not reused by another extension", len(b), AbsCaptureTimeURI)
}

// MarshalSize returns the encoded size of a.
func (a AbsCaptureTime) MarshalSize() int {
	if a.HasOffset {
		return absCaptureTimeLong
	}
	return absCaptureTimeShort
}

// MarshalTo encodes a into buf and returns the number of bytes written.
func (a AbsCaptureTime) MarshalTo(buf []byte) (int, error) {
	n := a.MarshalSize()
	if len(buf) < n {
		return 0, fmt.Errorf("abs-capture-time needs a %d-byte buffer, got %d", n, len(buf))
	}
	binary.BigEndian.PutUint64(buf, a.Timestamp)
	if a.HasOffset {
		binary.BigEndian.PutUint64(buf[8:], uint64(a.Offset))
	}
	return n, nil
}

// MarshalAbsCaptureTime encodes a into a new slice.
func MarshalAbsCaptureTime(a AbsCaptureTime) []byte {
	buf := make([]byte, a.MarshalSize())
	a.MarshalTo(buf) //nolint:errcheck // the buffer has the right size
	return buf
}

// Time returns the capture time in the capturer's clock. The NTP era is the
// one that puts the result nearest to near (pass the arrival time).
func (a AbsCaptureTime) Time(near time.Time) time.Time {
	return time.Unix(0, NTPToUnixNano(a.Timestamp, near.UnixNano()))
}

// SenderTime returns the capture time in the sender's clock: Time plus the
// estimated capture clock offset when present.
func (a AbsCaptureTime) SenderTime(near time.Time) time.Time {
	t := a.Time(near)
	if a.HasOffset {
		t = t.Add(q32ToDuration(a.Offset))
	}
	return t
}

// ntpEpochOffset is the number of seconds from 1900-01-01 to 1970-01-01.
const ntpEpochOffset = 2208988800

// NTPToUnixNano converts a 64-bit NTP timestamp to Unix nanoseconds, choosing
// the NTP era (136-year cycle) that puts the result nearest to nearUnixNano.
func NTPToUnixNano(ntp uint64, nearUnixNano int64) int64 {
	sec := int64(ntp>>32) - ntpEpochOffset
	frac := int64((ntp & 0xffffffff) * 1e9 >> 32)
	const era = int64(1) << 32
	nearSec := nearUnixNano / 1e9
	// Move sec by whole eras towards nearSec.
	if d := nearSec - sec; d > era/2 {
		sec += ((d + era/2) / era) * era
	} else if d < -era/2 {
		sec -= ((-d + era/2) / era) * era
	}
	return sec*1e9 + frac
}

// UnixNanoToNTP converts Unix nanoseconds to a 64-bit NTP timestamp.
func UnixNanoToNTP(ns int64) uint64 {
	sec := ns/1e9 + ntpEpochOffset
	rem := ns % 1e9
	if rem < 0 {
		rem += 1e9
		sec--
	}
	frac := (uint64(rem) << 32) / 1e9
	// Round up so that a round trip through NTPToUnixNano gives ns back.
	if (frac*1e9)>>32 < uint64(rem) {
		frac++
	}
	return uint64(sec)<<32 | frac
}

// q32ToDuration converts a signed Q32.32 number of seconds to a Duration,
// saturating at the limits of Duration.
func q32ToDuration(q int64) time.Duration {
	sec := q >> 32
	frac := int64(uint64(q)&0xffffffff) * 1e9 >> 32
	const maxSec = int64(time.Duration(1<<63-1) / time.Second)
	if sec > maxSec-1 {
		return time.Duration(1<<63 - 1)
	}
	if sec < -maxSec {
		return time.Duration(-1 << 63)
	}
	return time.Duration(sec*1e9 + frac)
}

// DurationToQ32 converts a Duration to a signed Q32.32 number of seconds.
func DurationToQ32(d time.Duration) int64 {
	sec := int64(d / time.Second)
	rem := int64(d % time.Second)
	if rem < 0 {
		rem += 1e9
		sec--
	}
	return sec<<32 | int64((uint64(rem)<<32)/1e9)
}
