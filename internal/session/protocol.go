package session

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The signalling protocol: JSON text messages over one WebSocket, each an
// object with a "type" and, on requests the server answers, an "id" that the
// answer echoes. PROTOCOL.md describes every message and sequence.

// Message types a client sends.
const (
	TypeJoin        = "join"
	TypeOffer       = "offer"
	TypeAnswer      = "answer"
	TypeCandidate   = "candidate"
	TypeSubscribe   = "subscribe"
	TypeUnsubscribe = "unsubscribe"
	TypeMute        = "mute"
	TypeRestartICE  = "restart_ice"
	TypeLeave       = "leave"
	TypePing        = "ping"
	TypeRenew       = "renew"
)

// Message types the server sends (besides answer, offer and candidate).
const (
	TypeJoined           = "joined"
	TypeParticipantJoin  = "participant_joined"
	TypeParticipantLeft  = "participant_left"
	TypeTrackPublished   = "track_published"
	TypeTrackUnpublished = "track_unpublished"
	TypeTrackMuted       = "track_muted"
	TypeSubscribed       = "subscribed"
	TypeUnsubscribed     = "unsubscribed"
	TypeLayer            = "layer"
	TypeSpeakers         = "speakers"
	TypeError            = "error"
	TypePong             = "pong"
	TypeRenewed          = "renewed"
	TypeBye              = "bye"
	TypeMoved            = "moved"
)

// Peer connection names: the one the client offers to publish on, and the
// one the server offers subscriptions on.
const (
	PCPublish   = "publish"
	PCSubscribe = "subscribe"
)

// Track sources.
const (
	SourceCamera     = "camera"
	SourceMicrophone = "microphone"
	SourceScreen     = "screen"
	SourceScreenSnd  = "screen_audio"
	// SourceField is a field camera: a source of the SFU published by WHIP.
	SourceField = "field"
)

// Error codes.
const (
	CodeBadRequest   = "bad_request"
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
	CodeNotFound     = "not_found"
	CodeConflict     = "conflict"
	CodeRoomFull     = "room_full"
	CodeUnsupported  = "unsupported"
	CodeInternal     = "internal"
	// CodeRateLimited: more requests that make the server work than
	// RequestRate a second; the request was not served.
	CodeRateLimited = "rate_limited"
	// CodeElsewhere: the room lives on another node of the cluster; join
	// again at the error's url.
	CodeElsewhere = "elsewhere"
)

// MaxMessageBytes bounds one signalling message (an SDP with many simulcast
// tracks stays far below it).
const MaxMessageBytes = 256 << 10

// Request is a parsed client message.
type Request interface {
	// RequestID returns the id the answer must echo (0: none).
	RequestID() int64
	validate() error
}

// Header is what every message has.
type Header struct {
	Type string `json:"type"`
	ID   int64  `json:"id,omitempty"`
}

// RequestID implements Request.
func (h Header) RequestID() int64 { return h.ID }

// Join is the first message on a WebSocket: the token (browsers cannot set
// headers on WebSockets) and, when reattaching after a broken connection, the
// session to resume.
type Join struct {
	Header
	Token string `json:"token"`
	// Resume is the session of a previous join, from its joined reply.
	Resume string `json:"resume,omitempty"`
	// AutoSubscribe subscribes to every participant track as it appears.
	AutoSubscribe bool `json:"auto_subscribe,omitempty"`
	// Name is shown to the others; the token subject when empty.
	Name string `json:"name,omitempty"`
	// NewSections puts every subscription on a new media section: for clients
	// that stop a section the server makes inactive and cannot take it back
	// (pion). Otherwise a new subscription reuses a section an ended one left.
	NewSections bool `json:"new_sections,omitempty"`
}

// TrackMeta describes a track the client publishes, by the media section it
// is sent on.
type TrackMeta struct {
	Mid    string `json:"mid"`
	Source string `json:"source"`
}

// Offer carries an SDP offer: from the client on the publish connection, or
// from the server on the subscribe connection.
type Offer struct {
	Header
	PC     string      `json:"pc"`
	SDP    string      `json:"sdp"`
	Tracks []TrackMeta `json:"tracks,omitempty"`
}

// Answer carries an SDP answer.
type Answer struct {
	Header
	PC  string `json:"pc"`
	SDP string `json:"sdp"`
}

// Candidate is a trickled ICE candidate; an empty Candidate ends gathering.
type Candidate struct {
	Header
	PC            string  `json:"pc"`
	Candidate     string  `json:"candidate"`
	SDPMid        *string `json:"sdp_mid,omitempty"`
	SDPMLineIndex *uint16 `json:"sdp_mline_index,omitempty"`
}

// Subscribe asks for a track; Pinned raises it to the highest priority, so
// it degrades last when bandwidth is short. Subscribing again to a track
// already subscribed changes its pin.
type Subscribe struct {
	Header
	Track  string `json:"track"`
	Pinned bool   `json:"pinned,omitempty"`
}

// Unsubscribe stops a subscription.
type Unsubscribe struct {
	Header
	Track string `json:"track"`
}

// Mute tells the room that one of the sender's tracks is muted or unmuted.
type Mute struct {
	Header
	Track string `json:"track"`
	Muted bool   `json:"muted"`
}

// RestartICE asks the server to re-offer the subscribe connection with new
// ICE credentials (the publish connection is restarted by the client's own
// offer with new credentials).
type RestartICE struct{ Header }

// Leave ends the participation.
type Leave struct{ Header }

// Ping asks for a pong (browsers cannot see WebSocket pings).
type Ping struct{ Header }

// Renew hands the server a newer token of the same participant (a renewed
// sign-in), so that the participation outlasts the token it joined with.
type Renew struct {
	Header
	Token string `json:"token"`
}

// Limits on fields, so a hostile client cannot make the server hold much.
const (
	maxTokenLen = 16 << 10
	maxIDLen    = 256
	maxTracks   = 16
)

var errNoType = errors.New(`message has no "type"; see PROTOCOL.md`)

// ParseRequest decodes one client message. Errors name what was wrong.
func ParseRequest(b []byte) (Request, error) {
	if len(b) > MaxMessageBytes {
		return nil, fmt.Errorf("message of %d bytes is over the %d-byte limit", len(b), MaxMessageBytes)
	}
	var h Header
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("message is not a JSON object with a string type: %w", err)
	}
	var r Request
	switch h.Type {
	case "":
		return nil, errNoType
	case TypeJoin:
		r = &Join{}
	case TypeOffer:
		r = &Offer{}
	case TypeAnswer:
		r = &Answer{}
	case TypeCandidate:
		r = &Candidate{}
	case TypeSubscribe:
		r = &Subscribe{}
	case TypeUnsubscribe:
		r = &Unsubscribe{}
	case TypeMute:
		r = &Mute{}
	case TypeRestartICE:
		r = &RestartICE{}
	case TypeLeave:
		r = &Leave{}
	case TypePing:
		r = &Ping{}
	case TypeRenew:
		r = &Renew{}
	default:
		return nil, fmt.Errorf("unknown message type %q; see PROTOCOL.md for the types a client sends", truncate(h.Type))
	}
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("%s message: %w", h.Type, err)
	}
	if h.ID < 0 {
		return nil, fmt.Errorf("%s message: id %d must not be negative", h.Type, h.ID)
	}
	if err := r.validate(); err != nil {
		return nil, fmt.Errorf("%s message: %w", h.Type, err)
	}
	return r, nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

func checkID(field, v string) error {
	if v == "" {
		return fmt.Errorf("%s is empty", field)
	}
	if len(v) > maxIDLen {
		return fmt.Errorf("%s is longer than %d bytes", field, maxIDLen)
	}
	return nil
}

func checkPC(pc string, allowed ...string) error {
	for _, a := range allowed {
		if pc == a {
			return nil
		}
	}
	return fmt.Errorf("pc %q: use %s", truncate(pc), strings.Join(allowed, " or "))
}

func checkSDP(sdp string) error {
	if !strings.HasPrefix(sdp, "v=0") {
		return errors.New("sdp does not start with v=0")
	}
	return nil
}

func (m *Join) validate() error {
	if m.Token == "" {
		return errors.New(`token is empty: send the access token in the join message`)
	}
	if len(m.Token) > maxTokenLen {
		return fmt.Errorf("token is longer than %d bytes", maxTokenLen)
	}
	if len(m.Resume) > maxIDLen || len(m.Name) > maxIDLen {
		return fmt.Errorf("resume and name must be at most %d bytes", maxIDLen)
	}
	if !utf8.ValidString(m.Name) || strings.ContainsFunc(m.Name, HiddenRune) {
		return errors.New("name must be text without control characters or text-direction marks (what the others read must be what was typed)")
	}
	return nil
}

// HiddenRune tells the characters a display name or a note may not hold: controls (line
// breaks, escapes, NUL), and the marks that reorder or hide the text around them.
func HiddenRune(r rune) bool {
	switch {
	case unicode.IsControl(r):
		return true
	case r >= 0x200b && r <= 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0xfeff:
		return true
	}
	return false
}

func (m *Offer) validate() error {
	if err := checkPC(m.PC, PCPublish); err != nil {
		return fmt.Errorf("%w (clients offer on the publish connection only)", err)
	}
	if err := checkSDP(m.SDP); err != nil {
		return err
	}
	if len(m.Tracks) > maxTracks {
		return fmt.Errorf("%d tracks; at most %d", len(m.Tracks), maxTracks)
	}
	seen := map[string]bool{}
	for _, t := range m.Tracks {
		if err := checkID("tracks[].mid", t.Mid); err != nil {
			return err
		}
		if seen[t.Mid] {
			return fmt.Errorf("mid %q is listed twice", truncate(t.Mid))
		}
		seen[t.Mid] = true
		switch t.Source {
		case SourceCamera, SourceMicrophone, SourceScreen, SourceScreenSnd:
		default:
			return fmt.Errorf("track source %q: use camera, microphone, screen or screen_audio", truncate(t.Source))
		}
	}
	return nil
}

func (m *Answer) validate() error {
	if err := checkPC(m.PC, PCSubscribe); err != nil {
		return fmt.Errorf("%w (the server offers only on the subscribe connection)", err)
	}
	return checkSDP(m.SDP)
}

func (m *Candidate) validate() error {
	if len(m.Candidate) > 1024 {
		return errors.New("candidate is longer than 1024 bytes")
	}
	return checkPC(m.PC, PCPublish, PCSubscribe)
}

func (m *Subscribe) validate() error   { return checkID("track", m.Track) }
func (m *Unsubscribe) validate() error { return checkID("track", m.Track) }
func (m *Mute) validate() error        { return checkID("track", m.Track) }
func (m *RestartICE) validate() error  { return nil }
func (m *Leave) validate() error       { return nil }
func (m *Ping) validate() error        { return nil }

func (m *Renew) validate() error {
	if m.Token == "" {
		return errors.New(`token is empty: send the new access token`)
	}
	if len(m.Token) > maxTokenLen {
		return fmt.Errorf("token is longer than %d bytes", maxTokenLen)
	}
	return nil
}

// Server messages.

// ParticipantInfo describes a participant to the others.
type ParticipantInfo struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Role string `json:"role"`
}

// TrackInfo describes a track that can be subscribed to.
type TrackInfo struct {
	ID string `json:"id"`
	// Participant publishes it; for field cameras it is "field:<source>".
	Participant string `json:"participant"`
	Source      string `json:"source"`
	Kind        string `json:"kind"`
	Codec       string `json:"codec"`
	// Layers are the simulcast layers' rids, lowest first; one unnamed
	// layer when not simulcast.
	Layers []string `json:"layers"`
	Muted  bool     `json:"muted"`
}

// ICEServer is a STUN or TURN server for the client's peer connections.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// Grants says what the token allows in the room.
type Grants struct {
	Publish   bool `json:"publish"`
	Subscribe bool `json:"subscribe"`
}

// Joined answers a join.
type Joined struct {
	Header
	Room         string            `json:"room"`
	Session      string            `json:"session"`
	Resumed      bool              `json:"resumed"`
	Participant  ParticipantInfo   `json:"participant"`
	Grants       Grants            `json:"grants"`
	Participants []ParticipantInfo `json:"participants"`
	Tracks       []TrackInfo       `json:"tracks"`
	ICEServers   []ICEServer       `json:"ice_servers"`
	// Recorded says that what is published in the room is recorded.
	Recorded bool `json:"recorded"`
}

// ParticipantEvent reports a participant joining or leaving.
type ParticipantEvent struct {
	Header
	Participant ParticipantInfo `json:"participant"`
	Reason      string          `json:"reason,omitempty"`
}

// TrackEvent reports a track published, unpublished or (un)muted.
type TrackEvent struct {
	Header
	Track  TrackInfo `json:"track"`
	Reason string    `json:"reason,omitempty"`
}

// SubscriptionEvent confirms or ends a subscription.
type SubscriptionEvent struct {
	Header
	Track  string `json:"track"`
	Pinned bool   `json:"pinned,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// LayerEvent tells a subscriber which layer of a video track it now gets.
type LayerEvent struct {
	Header
	Track string `json:"track"`
	// Layer is the rid forwarded, "" for a track without simulcast, or
	// "off" when the track is paused for lack of bandwidth.
	Layer string `json:"layer"`
	// EstimateBPS is the downlink bandwidth estimate the choice was made on.
	EstimateBPS int    `json:"estimate_bps"`
	Reason      string `json:"reason"`
}

// Speaker is one entry of the active speaker list.
type Speaker struct {
	Participant string  `json:"participant"`
	Level       float64 `json:"level"` // 0 (silence) .. 1 (loudest)
}

// SpeakersEvent lists the active speakers, loudest first.
type SpeakersEvent struct {
	Header
	Speakers []Speaker `json:"speakers"`
}

// ErrorMessage reports a refused request or a failure, with a reason meant
// for people.
type ErrorMessage struct {
	Header
	Code   string `json:"code"`
	Reason string `json:"reason"`
	// URL is the room's WebSocket on the node it lives on (CodeElsewhere).
	URL string `json:"url,omitempty"`
}

// Bye is the last message before the server closes the WebSocket.
type Bye struct {
	Header
	Reason string `json:"reason"`
}

// Moved is the last message before the server closes the WebSocket when
// the room has moved to another node of the cluster (its home there, after
// a partition healed): the client joins again at URL, as a new participant.
type Moved struct {
	Header
	URL    string `json:"url"`
	Reason string `json:"reason"`
}

// Error is a refusal with a code, sent to the client as an error message.
type Error struct {
	Code   string
	Reason string
	URL    string // CodeElsewhere: where to join
}

func (e *Error) Error() string { return e.Code + ": " + e.Reason }

func errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Reason: fmt.Sprintf(format, args...)}
}

func errorMessage(id int64, err error) ErrorMessage {
	var e *Error
	if errors.As(err, &e) {
		return ErrorMessage{Header: Header{Type: TypeError, ID: id}, Code: e.Code, Reason: e.Reason, URL: e.URL}
	}
	return ErrorMessage{Header: Header{Type: TypeError, ID: id}, Code: CodeInternal, Reason: err.Error()}
}
