package sync

import (
	"encoding/binary"
	"errors"
	stdsync "sync"
	"time"
)

// Clock is a Track for use from several goroutines: packets arrive on one,
// RTCP on another, and an API reads its health.
type Clock struct {
	mu stdsync.Mutex
	t  *Track
}

// NewClock returns a Clock for a track with params p.
func NewClock(p TrackParams) (*Clock, error) {
	t, err := NewTrack(p)
	if err != nil {
		return nil, err
	}
	return &Clock{t: t}, nil
}

// Frame is Track.Frame; it also returns what the capture time rests on.
func (c *Clock) Frame(ssrc uint32, rtp uint64, arrival time.Time) (time.Time, time.Duration, Trust) {
	c.mu.Lock()
	defer c.mu.Unlock()
	capture, errEst := c.t.Frame(ssrc, rtp, arrival)
	return capture, errEst, c.t.trust
}

// SenderReport is Track.SenderReport.
func (c *Clock) SenderReport(ssrc uint32, ntp uint64, rtp uint32, arrival time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t.SenderReport(ssrc, ntp, rtp, arrival)
}

// AbsCaptureTime is Track.AbsCaptureTime.
func (c *Clock) AbsCaptureTime(ssrc uint32, rtp uint64, act AbsCaptureTime, arrival time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t.AbsCaptureTime(ssrc, rtp, act, arrival)
}

// Health is Track.Health.
func (c *Clock) Health(now time.Time) Health {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t.Health(now)
}

// ClockInfo is a track's alignment as the APIs report it.
type ClockInfo struct {
	Trust       string  `json:"trust"`
	ErrorMS     float64 `json:"error_ms"` // negative while unaligned
	Converged   bool    `json:"converged"`
	SkewPPM     float64 `json:"skew_ppm"`
	OffsetMS    float64 `json:"offset_ms"`     // sender wall clock minus the baseline
	ReportAgeMS float64 `json:"report_age_ms"` // negative when no report came yet
	PathDelayMS float64 `json:"path_delay_ms"`
	// Upstream is set when the alignment was made upstream (by ingest) and
	// carried in the stream; skew, offset and report age are then unknown.
	Upstream bool `json:"upstream,omitempty"`
}

// Info renders the health for an API.
func (h Health) Info() ClockInfo {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return ClockInfo{
		Trust: h.Trust.String(), ErrorMS: ms(h.ErrEst), Converged: h.Converged, SkewPPM: h.SkewPPM,
		OffsetMS: ms(h.WallOffset), ReportAgeMS: ms(h.ReportAge), PathDelayMS: ms(h.PathDelay),
	}
}

// CaptureQualityURI names the RTP header extension that carries, next to
// abs-capture-time, how well a frame's capture time is known. Only this
// system's own binaries negotiate it (ingest to SFU), so the SFU can report
// the alignment ingest made instead of trusting abs-capture-time blindly.
const CaptureQualityURI = "urn:fieldvideo:rtp-hdrext:capture-quality"

// CaptureQuality is the payload of the capture-quality extension: the trust
// level and the estimated error of the capture time.
type CaptureQuality struct {
	Trust Trust
	// Err is the estimated error; negative when unaligned.
	Err time.Duration
}

// CaptureQualitySize is the extension's payload size.
const CaptureQualitySize = 3

const qualityUnit = 100 * time.Microsecond

// MarshalTo writes the extension payload — trust (1 byte), error in 100 µs
// units (2 bytes, 0xffff: unknown or larger) — into b.
func (q CaptureQuality) MarshalTo(b []byte) (int, error) {
	if len(b) < CaptureQualitySize {
		return 0, errors.New("capture-quality: buffer too short")
	}
	b[0] = byte(q.Trust)
	e := uint16(0xffff)
	if q.Err >= 0 && q.Err/qualityUnit < 0xffff {
		e = uint16(q.Err / qualityUnit)
	}
	binary.BigEndian.PutUint16(b[1:], e)
	return CaptureQualitySize, nil
}

// UnmarshalCaptureQuality parses the extension payload.
func UnmarshalCaptureQuality(b []byte) (CaptureQuality, error) {
	if len(b) != CaptureQualitySize {
		return CaptureQuality{}, errors.New("capture-quality: payload is not 3 bytes")
	}
	if b[0] > byte(TrustRefClock) {
		return CaptureQuality{}, errors.New("capture-quality: unknown trust level")
	}
	q := CaptureQuality{Trust: Trust(b[0]), Err: -1}
	if e := binary.BigEndian.Uint16(b[1:]); e != 0xffff {
		q.Err = time.Duration(e) * qualityUnit
	}
	return q, nil
}
