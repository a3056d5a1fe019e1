package sync

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	gsdp "github.com/bluenviron/gortsplib/v5/pkg/sdp"
	"github.com/pion/sdp/v3"
)

// ClockSource is the reference clock a sender says its timestamps follow
// (RFC 7273 a=ts-refclk).
type ClockSource uint8

// Reference clock sources.
const (
	ClockNone     ClockSource = iota // nothing signalled
	ClockNTP                         // ntp=
	ClockPTP                         // ptp=
	ClockGPS                         // gps
	ClockGalileo                     // gal
	ClockGLONASS                     // glonass
	ClockLocal                       // local: the sender's own free-running clock
	ClockPrivate                     // private
	ClockLocalMAC                    // localmac= (IEEE 802.1AS local)
	ClockOther                       // an extension this parser does not know
)

func (c ClockSource) String() string {
	switch c {
	case ClockNone:
		return "none"
	case ClockNTP:
		return "ntp"
	case ClockPTP:
		return "ptp"
	case ClockGPS:
		return "gps"
	case ClockGalileo:
		return "gal"
	case ClockGLONASS:
		return "glonass"
	case ClockLocal:
		return "local"
	case ClockPrivate:
		return "private"
	case ClockLocalMAC:
		return "localmac"
	}
	return "other"
}

// MediaClockKind is how the RTP clock relates to the reference clock
// (RFC 7273 a=mediaclk).
type MediaClockKind uint8

// Media clock kinds.
const (
	MediaClockNone   MediaClockKind = iota // nothing signalled
	MediaClockDirect                       // direct[=offset]: RTP time is reference time × rate + offset
	MediaClockSender                       // sender: the sender's own media clock
	MediaClockStream                       // IEEE1722=<stream id>
	MediaClockOther                        // an extension this parser does not know
)

// MediaClock is a parsed a=mediaclk attribute.
type MediaClock struct {
	Kind MediaClockKind
	// ID is the optional media clock id (id=...).
	ID string
	// Offset is the RTP timestamp at the reference clock's epoch (direct).
	Offset uint64
	// RateNum/RateDen is the media clock rate when it differs from the
	// nominal one (rate=num/den); zero when not given.
	RateNum, RateDen uint64
	// StreamID is the IEEE 1722 stream id (IEEE1722=).
	StreamID string
}

// RefClock is what a sender signalled about its clocks in SDP. The zero value
// means nothing was signalled.
type RefClock struct {
	Source ClockSource
	// Traceable is set for ntp=/traceable/, ptp=<version>:traceable and
	// private:traceable: the clock is traceable to a global time scale without
	// naming the server or grandmaster.
	Traceable bool
	// Server is the NTP server (host[:port]) for ClockNTP.
	Server string
	// PTPVersion, PTPGrandmaster and PTPDomain describe a ClockPTP source;
	// PTPDomain is the domain number or name as written.
	PTPVersion     string
	PTPGrandmaster string
	PTPDomain      string
	// Ext holds the raw value for ClockLocalMAC and ClockOther.
	Ext        string
	MediaClock MediaClock
}

// Locked reports whether the signalled clock is a global time reference
// (NTP, PTP, GNSS, or a traceable private clock), so that the sender's wall
// clock in sender reports can be taken as the common baseline.
func (r RefClock) Locked() bool {
	switch r.Source {
	case ClockNTP, ClockPTP, ClockGPS, ClockGalileo, ClockGLONASS:
		return true
	case ClockPrivate:
		return r.Traceable
	}
	return false
}

// ParseRefClock reads RFC 7273 clock signalling from the attributes of an SDP
// session and of one of its media sections; media-level attributes take
// precedence. When an attribute is malformed, the others are still used and
// the error names the bad one; the caller can log it and go on.
func ParseRefClock(session, media []sdp.Attribute) (RefClock, error) {
	var rc RefClock
	var errs []error
	haveRef, haveMedia := false, false
	// Media level first, so that it wins.
	for _, level := range [2][]sdp.Attribute{media, session} {
		levelRef, levelMedia := false, false
		for _, a := range level {
			switch strings.ToLower(a.Key) {
			case "ts-refclk":
				if haveRef || levelRef {
					continue // alternatives: the first valid one is used
				}
				r, err := ParseTSRefClk(a.Value)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				mc := rc.MediaClock
				rc = r
				rc.MediaClock = mc
				levelRef = true
			case "mediaclk":
				if haveMedia || levelMedia {
					continue
				}
				m, err := ParseMediaClk(a.Value)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				rc.MediaClock = m
				levelMedia = true
			}
		}
		haveRef = haveRef || levelRef
		haveMedia = haveMedia || levelMedia
	}
	return rc, errors.Join(errs...)
}

// RefClocksFromSDP parses an SDP document (an RTSP DESCRIBE answer or
// ANNOUNCE body, or a WHIP offer) and returns the clock signalling of each
// media section, in m= order (the order of gortsplib's description.Medias).
func RefClocksFromSDP(body []byte) ([]RefClock, error) {
	var sd gsdp.SessionDescription
	if err := sd.Unmarshal(body); err != nil {
		return nil, fmt.Errorf("SDP is not valid, so no clock signalling can be read from it: %w", err)
	}
	out := make([]RefClock, len(sd.MediaDescriptions))
	var errs []error
	for i, md := range sd.MediaDescriptions {
		rc, err := ParseRefClock(sd.Attributes, md.Attributes)
		if err != nil {
			errs = append(errs, fmt.Errorf("media %d: %w", i+1, err))
		}
		out[i] = rc
	}
	return out, errors.Join(errs...)
}

// ParseTSRefClk parses the value of an a=ts-refclk attribute (the text after
// "ts-refclk:").
func ParseTSRefClk(v string) (RefClock, error) {
	v = strings.TrimSpace(v)
	bad := func(why string) (RefClock, error) {
		return RefClock{}, fmt.Errorf("a=ts-refclk value %s is not valid (%s); see RFC 7273 section 4.8 "+
			"for the syntax, or remove the attribute", truncate(v), why)
	}
	name, val, hasVal := strings.Cut(v, "=")
	switch strings.ToLower(name) {
	case "ntp":
		if !hasVal || val == "" {
			return bad("ntp= needs a server or /traceable/")
		}
		if val == "/traceable/" {
			return RefClock{Source: ClockNTP, Traceable: true}, nil
		}
		if !validHost(val) {
			return bad("the NTP server is not a host[:port]")
		}
		return RefClock{Source: ClockNTP, Server: val}, nil
	case "ptp":
		return parsePTP(v, val, hasVal)
	case "gps", "gal", "glonass", "local":
		if hasVal {
			return bad(name + " takes no value")
		}
		return RefClock{Source: map[string]ClockSource{
			"gps": ClockGPS, "gal": ClockGalileo, "glonass": ClockGLONASS, "local": ClockLocal,
		}[strings.ToLower(name)]}, nil
	case "private", "private:traceable":
		if hasVal {
			return bad("private takes no value")
		}
		return RefClock{Source: ClockPrivate, Traceable: strings.HasSuffix(strings.ToLower(name), ":traceable")}, nil
	case "localmac":
		if !hasVal || !validEUI(val, 6) {
			return bad("localmac= needs a MAC address like 7C-E9-D3-1B-9A-AF")
		}
		return RefClock{Source: ClockLocalMAC, Ext: val}, nil
	}
	if hasVal && validToken(name) && val != "" && !strings.ContainsAny(val, " \t") {
		return RefClock{Source: ClockOther, Ext: v}, nil
	}
	return bad("unknown clock source")
}

func parsePTP(v, val string, hasVal bool) (RefClock, error) {
	bad := func(why string) (RefClock, error) {
		return RefClock{}, fmt.Errorf("a=ts-refclk value %s is not valid (%s); the form is "+
			"ptp=IEEE1588-2008:39-A7-94-FF-FE-07-CB-D0[:domain] or ptp=IEEE1588-2008:traceable", truncate(v), why)
	}
	if !hasVal || val == "" {
		return bad("ptp= needs a version")
	}
	parts := strings.SplitN(val, ":", 3)
	rc := RefClock{Source: ClockPTP, PTPVersion: parts[0]}
	if !validToken(parts[0]) {
		return bad("the PTP version is not a token")
	}
	if len(parts) == 1 {
		return rc, nil
	}
	if strings.EqualFold(parts[1], "traceable") {
		if len(parts) > 2 {
			return bad("nothing may follow traceable")
		}
		rc.Traceable = true
		return rc, nil
	}
	if !validEUI(parts[1], 8) {
		return bad("the grandmaster id is not an EUI-64 like 39-A7-94-FF-FE-07-CB-D0")
	}
	rc.PTPGrandmaster = parts[1]
	if len(parts) == 3 {
		d := parts[2]
		switch {
		case strings.HasPrefix(d, "domain-name="):
			name := strings.TrimPrefix(d, "domain-name=")
			if name == "" || len(name) > 16 || strings.ContainsAny(name, " \t") {
				return bad("the domain name must be 1 to 16 characters")
			}
		default:
			n, err := strconv.Atoi(d)
			if err != nil || n < 0 || n > 255 || len(d) > 3 {
				return bad("the domain must be a number from 0 to 255 or domain-name=...")
			}
		}
		rc.PTPDomain = d
	}
	return rc, nil
}

// ParseMediaClk parses the value of an a=mediaclk attribute (the text after
// "mediaclk:").
func ParseMediaClk(v string) (MediaClock, error) {
	v = strings.TrimSpace(v)
	bad := func(why string) (MediaClock, error) {
		return MediaClock{}, fmt.Errorf("a=mediaclk value %s is not valid (%s); see RFC 7273 section 5.2 "+
			"for the syntax, or remove the attribute", truncate(v), why)
	}
	fields := strings.Fields(v)
	if len(fields) == 0 {
		return bad("it is empty")
	}
	var mc MediaClock
	if strings.HasPrefix(fields[0], "id=") {
		mc.ID = strings.TrimPrefix(fields[0], "id=")
		if mc.ID == "" {
			return bad("id= is empty")
		}
		fields = fields[1:]
		if len(fields) == 0 {
			return bad("a clock source must follow id=")
		}
	}
	name, val, hasVal := strings.Cut(fields[0], "=")
	rest := fields[1:]
	switch strings.ToLower(name) {
	case "direct":
		mc.Kind = MediaClockDirect
		if hasVal {
			n, err := strconv.ParseUint(val, 10, 64)
			if err != nil {
				return bad("the direct offset must be a decimal number")
			}
			mc.Offset = n
		}
		if len(rest) > 0 {
			r, ok := strings.CutPrefix(rest[0], "rate=")
			if !ok {
				return bad("only rate= may follow direct")
			}
			ns, ds, ok := strings.Cut(r, "/")
			num, err1 := strconv.ParseUint(ns, 10, 64)
			den, err2 := strconv.ParseUint(ds, 10, 64)
			if !ok || err1 != nil || err2 != nil || num == 0 || den == 0 {
				return bad("rate= must be two positive numbers num/den")
			}
			mc.RateNum, mc.RateDen = num, den
			rest = rest[1:]
		}
	case "sender":
		if hasVal {
			return bad("sender takes no value")
		}
		mc.Kind = MediaClockSender
	case "ieee1722":
		if !hasVal || !validEUI(val, 8) {
			return bad("IEEE1722= needs a stream id like 38-D6-6D-8E-D2-78-13-2F")
		}
		mc.Kind = MediaClockStream
		mc.StreamID = val
	default:
		if !validToken(name) {
			return bad("unknown media clock source")
		}
		mc.Kind = MediaClockOther
		return mc, nil
	}
	if len(rest) > 0 {
		return bad("unexpected " + truncate(rest[0]))
	}
	return mc, nil
}

// validEUI reports whether s is n hex byte pairs separated by '-'.
func validEUI(s string, n int) bool {
	if len(s) != 3*n-1 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if i%3 == 2 {
			if s[i] != '-' {
				return false
			}
			continue
		}
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// validHost accepts host, host:port, [v6] and [v6]:port without resolving.
func validHost(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return false
		}
		host, port = s[1:end], s[end+1:]
		if port != "" && port[0] != ':' {
			return false
		}
		for i := 0; i < len(host); i++ {
			if !isHex(host[i]) && host[i] != ':' && host[i] != '.' {
				return false
			}
		}
	} else if i := strings.LastIndexByte(s, ':'); i >= 0 {
		host, port = s[:i], s[i:]
	}
	if port != "" {
		n, err := strconv.Atoi(port[1:])
		if err != nil || n < 1 || n > 65535 {
			return false
		}
	}
	if host == "" {
		return false
	}
	if strings.HasPrefix(s, "[") {
		return true
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// validToken reports whether s is a non-empty SDP token.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

// truncate keeps error messages short when the input is long.
func truncate(s string) string {
	const max = 64
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}
