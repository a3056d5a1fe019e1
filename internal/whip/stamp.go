package whip

import (
	"encoding/binary"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	tsync "fieldvideo/internal/sync"
	"fieldvideo/internal/unit"
)

// CaptureStamp puts a unit's capture time on the common baseline (abs-capture-time) and
// its trust and error (capture-quality) on the headers of the unit's packets, without
// allocating. AbsID and QualID are the negotiated extension ids, 0 when not negotiated.
// WHEP viewers and call subscribers get the same stamps.
type CaptureStamp struct {
	AbsID, QualID uint8
	abs           [8]byte
	qual          [tsync.CaptureQualitySize]byte
	hasAbs        bool
}

// Negotiated sets the ids from a track's negotiated header extensions.
func (s *CaptureStamp) Negotiated(exts []webrtc.RTPHeaderExtensionParameter) {
	for _, e := range exts {
		switch e.URI {
		case tsync.AbsCaptureTimeURI:
			s.AbsID = uint8(e.ID)
		case tsync.CaptureQualityURI:
			s.QualID = uint8(e.ID)
		}
	}
}

// Unit prepares the stamps of u.
func (s *CaptureStamp) Unit(u *unit.Unit) {
	s.hasAbs = s.AbsID != 0 && !u.Capture.IsZero()
	if s.hasAbs {
		binary.BigEndian.PutUint64(s.abs[:], tsync.UnixNanoToNTP(u.Capture.UnixNano()))
	}
	if s.QualID != 0 {
		_, _ = tsync.CaptureQuality{Trust: tsync.Trust(u.CaptureTrust), Err: u.CaptureErr}.MarshalTo(s.qual[:])
	}
}

// Extend adds the prepared stamps to h (its Extensions need room for them).
func (s *CaptureStamp) Extend(h *rtp.Header) {
	if s.hasAbs {
		_ = h.SetExtension(s.AbsID, s.abs[:])
	}
	if s.QualID != 0 {
		_ = h.SetExtension(s.QualID, s.qual[:])
	}
}
