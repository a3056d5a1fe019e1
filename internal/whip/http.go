package whip

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/pion/sdp/v3"

	"fieldvideo/internal/auth"
)

// Media types of WHIP/WHEP bodies.
const (
	ContentTypeSDP     = "application/sdp"
	ContentTypeTrickle = "application/trickle-ice-sdpfrag"
)

// MaxBody bounds request bodies (SDP offers and trickle fragments).
const MaxBody = 64 << 10

// Error is an HTTP error with a reason the client can act on.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Msg)
}

// Errorf returns an *Error.
func Errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// WriteError writes err as a plain-text response; errors that are not *Error
// become 500.
func WriteError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Status: http.StatusInternalServerError, Msg: err.Error()}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(e.Status)
	fmt.Fprintln(w, e.Msg)
}

// ReadBody reads a request body of the given media type, bounded by MaxBody.
func ReadBody(r *http.Request, contentType string) ([]byte, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != contentType {
		return nil, Errorf(http.StatusUnsupportedMediaType, "send the body as Content-Type: %s", contentType)
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	if err != nil {
		return nil, Errorf(http.StatusBadRequest, "reading body: %v", err)
	}
	if len(b) > MaxBody {
		return nil, Errorf(http.StatusRequestEntityTooLarge, "body larger than %d bytes", MaxBody)
	}
	return b, nil
}

// MaxMediaSections is the most media sections (m-lines) an offer may have.
const MaxMediaSections = 16

// MaxCandidates is the most distinct ICE candidates an offer may carry, and
// the most a session may be sent by trickle besides: a host with many
// interfaces offers a few dozen.
const MaxCandidates = 64

// MaxUfrag bounds an offer's ICE username fragment (RFC 8839 allows 256
// characters; browsers send 4 to 16): it is repeated in every connectivity
// check the server sends back.
const MaxUfrag = 64

// ParseOffer validates an SDP offer and returns it parsed. Errors are *Error
// with status 400 naming what is wrong.
func ParseOffer(b []byte) (*sdp.SessionDescription, error) {
	var s sdp.SessionDescription
	if err := s.UnmarshalString(string(b)); err != nil {
		return nil, Errorf(http.StatusBadRequest, "malformed SDP offer: %v", err)
	}
	if len(s.MediaDescriptions) == 0 {
		return nil, Errorf(http.StatusBadRequest, "SDP offer has no media sections")
	}
	if len(s.MediaDescriptions) > MaxMediaSections {
		return nil, Errorf(http.StatusBadRequest, "SDP offer has %d media sections; a source or a player has at most %d (audio and video)", len(s.MediaDescriptions), MaxMediaSections)
	}
	cands := map[string]bool{}
	for i, m := range s.MediaDescriptions {
		switch m.MediaName.Media {
		case "audio", "video":
		default:
			return nil, Errorf(http.StatusBadRequest, "SDP offer media section %d is %q; only audio and video are served", i, m.MediaName.Media)
		}
		for _, a := range m.Attributes {
			if a.Key == "candidate" {
				cands[candidateKey(a.Value)] = true
			}
		}
	}
	for _, a := range append(s.Attributes, mediaAttributes(s.MediaDescriptions, "ice-ufrag")...) {
		if a.Key == "ice-ufrag" && len(a.Value) > MaxUfrag {
			return nil, Errorf(http.StatusBadRequest, "SDP offer's ice-ufrag has %d characters; at most %d are taken", len(a.Value), MaxUfrag)
		}
	}
	if len(cands) > MaxCandidates {
		return nil, Errorf(http.StatusBadRequest, "SDP offer has %d ICE candidates; at most %d are taken", len(cands), MaxCandidates)
	}
	return &s, nil
}

// WithoutCandidates returns an offer or answer without its ICE candidates.
// A server gives its peer connections none of the addresses a peer names
// (an offer can name any, as many as it likes): it learns a peer's address
// from the peer's own connectivity checks, authenticated with the ICE
// password of the answer (peer-reflexive candidates, RFC 8445, 7.3.1.3),
// and checks back only there. Nothing it does sends anything to an address
// that did not reach it first.
func WithoutCandidates(sdp string) string {
	if !strings.Contains(sdp, "a=candidate:") && !strings.Contains(sdp, "a=end-of-candidates") {
		return sdp
	}
	var b strings.Builder
	b.Grow(len(sdp))
	for line := range strings.SplitAfterSeq(sdp, "\n") {
		if strings.HasPrefix(line, "a=candidate:") || strings.HasPrefix(line, "a=end-of-candidates") {
			continue
		}
		b.WriteString(line)
	}
	return b.String()
}

// mediaAttributes returns the attributes called key of every media section.
func mediaAttributes(ms []*sdp.MediaDescription, key string) []sdp.Attribute {
	var out []sdp.Attribute
	for _, m := range ms {
		for _, a := range m.Attributes {
			if a.Key == key {
				out = append(out, a)
			}
		}
	}
	return out
}

// candidateKey names a candidate by its transport, address and port, which
// a bundled offer repeats in every media section.
func candidateKey(v string) string {
	f := strings.Fields(v)
	if len(f) < 6 {
		return v
	}
	return strings.ToLower(f[2]) + " " + f[4] + " " + f[5]
}

// Fragment is a trickle-ICE SDP fragment (RFC 8840) as sent in WHIP/WHEP
// PATCH requests.
type Fragment struct {
	UFrag, Pwd string
	Candidates []Candidate
	// End is set when the sender has no more candidates.
	End bool
}

// Candidate is one ICE candidate of a media section.
type Candidate struct {
	Mid   string
	Index uint16 // m-line index within the fragment
	Value string // "candidate:..." without the "a="
}

// ParseFragment parses a trickle-ICE SDP fragment.
func ParseFragment(b []byte) (Fragment, error) {
	var f Fragment
	mline := -1
	mid := ""
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case line == "":
		case strings.HasPrefix(line, "m="):
			mline++
			mid = ""
		case strings.HasPrefix(line, "a=mid:"):
			mid = strings.TrimPrefix(line, "a=mid:")
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			f.UFrag = strings.TrimPrefix(line, "a=ice-ufrag:")
		case strings.HasPrefix(line, "a=ice-pwd:"):
			f.Pwd = strings.TrimPrefix(line, "a=ice-pwd:")
		case strings.HasPrefix(line, "a=candidate:"):
			if mline < 0 {
				return f, Errorf(http.StatusBadRequest, "candidate before any m= line in the SDP fragment")
			}
			v := strings.TrimPrefix(line, "a=")
			if len(strings.Fields(v)) < 8 {
				return f, Errorf(http.StatusBadRequest, "malformed candidate %q", v)
			}
			f.Candidates = append(f.Candidates, Candidate{Mid: mid, Index: uint16(mline), Value: v})
		case line == "a=end-of-candidates":
			f.End = true
		case strings.HasPrefix(line, "a="):
			// Other attributes (ice-options, group) carry nothing we need.
		default:
			return f, Errorf(http.StatusBadRequest, "unexpected line %q in the SDP fragment", truncate(line, 80))
		}
	}
	return f, nil
}

// Marshal renders the fragment; mids gives the media sections to list.
func (f Fragment) Marshal(mids []string) []byte {
	var b strings.Builder
	if f.UFrag != "" {
		b.WriteString("a=ice-ufrag:" + f.UFrag + "\r\n")
	}
	if f.Pwd != "" {
		b.WriteString("a=ice-pwd:" + f.Pwd + "\r\n")
	}
	for i, mid := range mids {
		b.WriteString("m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:" + mid + "\r\n")
		for _, c := range f.Candidates {
			if c.Mid == mid || (c.Mid == "" && int(c.Index) == i) {
				b.WriteString("a=" + c.Value + "\r\n")
			}
		}
		if f.End {
			b.WriteString("a=end-of-candidates\r\n")
		}
	}
	return []byte(b.String())
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// SetCORS adds the CORS headers WHIP/WHEP players on other origins need.
func SetCORS(w http.ResponseWriter, origin string) {
	if origin == "" {
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Methods", "OPTIONS, GET, POST, PUT, PATCH, DELETE")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match")
	h.Set("Access-Control-Expose-Headers", "Location, ETag, Link, Accept-Patch")
}

// OperatorOnly lets through requests whose token (verified by v) may operate the system.
func OperatorOnly(v *auth.Verifier, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := v.Verify(auth.FromRequest(r))
		if err != nil {
			WriteError(w, Errorf(http.StatusUnauthorized, "%v", err))
			return
		}
		if !c.CanOperate() {
			WriteError(w, Errorf(http.StatusForbidden, "%s needs an operator or commander token; %s has role %s", r.URL.Path, c.Who(), c.Role))
			return
		}
		h.ServeHTTP(w, r)
	})
}
