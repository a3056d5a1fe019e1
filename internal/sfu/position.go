package sfu

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/conf"
	rooms "fieldvideo/internal/session"
	"fieldvideo/internal/whip"
)

// Position is where a source is, as its publisher last said: a phone's
// satellite fix, or a fixed camera's configured place (sent by ingest).
type Position struct {
	Lat float64 `json:"lat"` // degrees north, WGS 84
	Lon float64 `json:"lon"` // degrees east
	// AccuracyM is the radius in metres within which the source is (0:
	// not stated).
	AccuracyM float64 `json:"accuracy_m"`
	// Heading is the direction of travel or view in degrees clockwise from
	// true north, when known.
	Heading *float64 `json:"heading,omitempty"`
	// At is when the position was measured.
	At time.Time `json:"at"`
}

// sourceTags are what a source carries besides its media; guarded by
// Server.mu. The reporter and its role are noted whenever the source is
// listed or tagged while live from its publisher (a relay's are the node's,
// not the source's), so they stay once it is offline.
type sourceTags struct {
	reporter string
	role     auth.Role
	kind     string
	incident string
	note     string
	pos      *Position
	labelled labelTimes
}

// labelTimes are when a source's kind, incident and note were set by an
// update (zero: never; a kind derived from the publisher's role has none).
type labelTimes struct{ kind, incident, note time.Time }

// fill copies the tags into in; p is the source's publisher (nil when
// offline).
func (t *sourceTags) fill(in *SourceInfo, p *publisher) {
	if p != nil && p.ss != nil && p.relay == "" {
		t.reporter, t.role = p.who, auth.Role(p.ss.role)
	}
	in.Reporter, in.Incident, in.Note = t.reporter, t.incident, t.note
	in.Kind, in.labelled = t.kind, t.labelled
	if in.Kind == "" {
		switch t.role {
		case "":
		case auth.RoleCamera:
			in.Kind = "camera"
		default:
			in.Kind = "report"
		}
	}
	if t.pos != nil {
		pos := *t.pos
		in.Position = &pos
	}
}

// apply sets what u carries. A position measured before the one held is
// out of date (requests overtaken on a slow network) and is not taken.
func (t *sourceTags) apply(u positionUpdate) {
	if u.pos != nil && (t.pos == nil || !u.pos.At.Before(t.pos.At)) {
		t.pos = u.pos
	}
	if u.kind != nil {
		t.kind, t.labelled.kind = *u.kind, u.at
	}
	if u.incident != nil {
		t.incident, t.labelled.incident = *u.incident, u.at
	}
	if u.note != nil {
		t.note, t.labelled.note = *u.note, u.at
	}
}

// Limits of a position update.
const (
	maxPositionBody = 4 << 10
	maxAccuracyM    = 1_000_000
	maxNoteRunes    = 200
	// positionClockSkew is how far in the server's future a position's
	// time may be (the phone's clock runs a little ahead).
	positionClockSkew = time.Minute
)

// positionKind is the pattern of a source's kind: camera, report, call, …
var positionKind = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)

// positionUpdate is a parsed PUT /v1/sources/{source}/position body; nil
// fields are left as they are.
type positionUpdate struct {
	pos                  *Position
	kind, incident, note *string
	at                   time.Time // when it was received
}

// positionBody is the JSON of a position update.
type positionBody struct {
	Lat       *float64 `json:"lat"`
	Lon       *float64 `json:"lon"`
	AccuracyM *float64 `json:"accuracy_m"`
	Heading   *float64 `json:"heading"`
	At        *string  `json:"at"`
	Kind      *string  `json:"kind"`
	Incident  *string  `json:"incident"`
	Note      *string  `json:"note"`
}

// parsePositionUpdate reads a position update: {"lat", "lon",
// "accuracy_m"?, "heading"?, "at"?} (at defaults to now), and/or "kind",
// "incident" and "note". Errors name the field and the range it must be in.
func parsePositionUpdate(b []byte, now time.Time) (positionUpdate, error) {
	u := positionUpdate{at: now.UTC()}
	if len(b) > maxPositionBody {
		return u, fmt.Errorf("the body is %d bytes; a position update is at most %d", len(b), maxPositionBody)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var in positionBody
	if err := dec.Decode(&in); err != nil {
		return u, fmt.Errorf("the body is not a position update (%v); send a JSON object such as "+
			`{"lat":25.0339,"lon":121.5645,"accuracy_m":12}`, jsonReason(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return u, errors.New("the body holds more after its JSON object; send one object")
	}
	if (in.Lat == nil) != (in.Lon == nil) {
		return u, errors.New("send lat and lon together")
	}
	if in.Lat == nil && (in.AccuracyM != nil || in.Heading != nil || in.At != nil) {
		return u, errors.New("accuracy_m, heading and at describe a position: send them with lat and lon")
	}
	if in.Lat != nil {
		pos, err := parsePosition(in, now)
		if err != nil {
			return u, err
		}
		u.pos = pos
	}
	if in.Kind != nil {
		if !positionKind.MatchString(*in.Kind) {
			return u, fmt.Errorf("kind %q: use 1-32 lower-case letters, digits, '_' or '-', starting with a letter (camera, report, call)", clip(*in.Kind))
		}
		u.kind = in.Kind
	}
	if in.Incident != nil {
		if !conf.SourceName.MatchString(*in.Incident) {
			return u, fmt.Errorf("incident %q: use 1-64 letters, digits, '.', '_' or '-'", clip(*in.Incident))
		}
		u.incident = in.Incident
	}
	if in.Note != nil {
		note := strings.TrimSpace(*in.Note)
		if n := utf8.RuneCountInString(note); n > maxNoteRunes || !utf8.ValidString(note) {
			return u, fmt.Errorf("note: use valid UTF-8 text of at most %d characters (have %d)", maxNoteRunes, n)
		}
		if strings.ContainsFunc(note, rooms.HiddenRune) {
			return u, errors.New("note: use one line of text without control characters or marks that reorder or hide text")
		}
		u.note = &note
	}
	if u.pos == nil && u.kind == nil && u.incident == nil && u.note == nil {
		return u, errors.New("the body sets nothing; send lat and lon (with accuracy_m, heading, at), and/or kind, incident, note")
	}
	return u, nil
}

func parsePosition(in positionBody, now time.Time) (*Position, error) {
	pos := &Position{Lat: *in.Lat, Lon: *in.Lon, At: now.UTC().Truncate(time.Millisecond)}
	switch {
	case !(pos.Lat >= -90 && pos.Lat <= 90):
		return nil, fmt.Errorf("lat %v is out of range; use degrees from -90 to 90", pos.Lat)
	case !(pos.Lon >= -180 && pos.Lon <= 180):
		return nil, fmt.Errorf("lon %v is out of range; use degrees from -180 to 180", pos.Lon)
	}
	if in.AccuracyM != nil {
		if a := *in.AccuracyM; !(a >= 0 && a <= maxAccuracyM) {
			return nil, fmt.Errorf("accuracy_m %v is out of range; use metres from 0 to %d (0: not known)", a, maxAccuracyM)
		}
		pos.AccuracyM = *in.AccuracyM
	}
	if in.Heading != nil {
		h := *in.Heading
		if !(h >= 0 && h < 360) {
			return nil, fmt.Errorf("heading %v is out of range; use degrees from 0 (north) up to 360, or leave it out", h)
		}
		pos.Heading = &h
	}
	if in.At != nil {
		at, err := time.Parse(time.RFC3339Nano, *in.At)
		if err != nil {
			return nil, fmt.Errorf("at %q is not an RFC 3339 time such as 2026-12-05T18:30:00Z; send when the position was measured, or leave it out", clip(*in.At))
		}
		switch {
		case at.After(now.Add(positionClockSkew)):
			return nil, fmt.Errorf("at %s is %s ahead of the server's clock; check the device's clock, or leave at out", at.Format(time.RFC3339), at.Sub(now).Round(time.Second))
		case at.Year() < 2000:
			return nil, fmt.Errorf("at %s is before 2000; check the device's clock, or leave at out", at.Format(time.RFC3339))
		}
		pos.At = at.UTC()
	}
	return pos, nil
}

// jsonReason is the part of a JSON error a client can act on.
func jsonReason(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return "it is empty"
	case errors.As(err, &syn):
		return fmt.Sprintf("JSON syntax error at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ) && typ.Field == "":
		return fmt.Sprintf("it must be a JSON object, not a JSON %s", typ.Value)
	case errors.As(err, &typ):
		want := typ.Type.String()
		switch typ.Type.Kind() {
		case reflect.Float64:
			want = "number"
		case reflect.String:
			want = "string"
		}
		return fmt.Sprintf("%s must be a %s, not a JSON %s", typ.Field, want, typ.Value)
	}
	return err.Error()
}

// clip shortens s for an error message.
func clip(s string) string {
	if r := []rune(s); len(r) > 40 {
		return string(r[:40]) + "…"
	}
	return s
}

// handlePosition serves PUT /v1/sources/{source}/position: the token that
// publishes the source (or may publish it while it is offline, as ingest
// does for a fixed camera), or an operator or commander, sets where the
// source is and its tags. The answer is the source's tags as listed.
func (s *Server) handlePosition(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("source")
	c := s.sourceChanger(w, r, "position", name, "set its position")
	if c == nil {
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		whip.WriteError(w, whip.Errorf(http.StatusUnsupportedMediaType, "send the position as Content-Type: application/json"))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxPositionBody+1))
	if err != nil {
		whip.WriteError(w, whip.Errorf(http.StatusBadRequest, "reading the body: %v", err))
		return
	}
	if len(body) > maxPositionBody {
		whip.WriteError(w, whip.Errorf(http.StatusRequestEntityTooLarge, "the body is larger than %d bytes; a position update is a small JSON object", maxPositionBody))
		return
	}
	u, err := parsePositionUpdate(body, time.Now())
	if err != nil {
		whip.WriteError(w, whip.Errorf(http.StatusBadRequest, "position of %s: %v", name, err))
		return
	}
	if u.kind != nil && *u.kind == "camera" && c.Role != auth.RoleCamera && !c.CanOperate() {
		whip.WriteError(w, whip.Errorf(http.StatusForbidden, "kind camera: only a camera's token, an operator or a commander labels a source a camera; token of %s has role %s", c.Who(), c.Role))
		return
	}
	elsewhere := s.p.Remote != nil && s.p.Remote()[name] != ""
	s.mu.Lock()
	src := s.sources[name]
	if src == nil && elsewhere {
		// published on another node of the cluster: the tags are kept here
		// and shared with the others (LocalTags).
		src = &source{name: name, viewers: map[*viewer]struct{}{}}
		s.sources[name] = src
	}
	if src == nil {
		s.mu.Unlock()
		whip.WriteError(w, whip.Errorf(http.StatusNotFound, "source %q has not been published here; publish it by WHIP first, then set its position", name))
		return
	}
	if p := src.pub.Load(); p != nil && !c.CanOperate() && !p.sameOwner(c) {
		who := p.who
		s.mu.Unlock()
		whip.WriteError(w, whip.Errorf(http.StatusForbidden, "source %q is being published by %s; only that publisher or an operator or commander may set its position", name, who))
		return
	}
	src.tags.apply(u)
	in := src.info()
	s.mu.Unlock()
	s.log.Debug("source tagged", "source", name, "who", c.Who(), "position", in.Position != nil)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"name": in.Name, "state": in.State, "reporter": in.Reporter, "kind": in.Kind,
		"incident": in.Incident, "note": in.Note, "position": in.Position,
	})
}

// MapSettings is what GET /v1/map tells the map page.
type MapSettings struct {
	// Tiles is the tile URL template; empty draws the plain grid.
	Tiles       string `json:"tiles"`
	Attribution string `json:"attribution"`
}

// handleMapSettings serves GET /v1/map to any valid token.
func (s *Server) handleMapSettings(w http.ResponseWriter, r *http.Request) {
	s.cors(w)
	if _, err := s.p.Verifier.Verify(auth.FromRequest(r)); err != nil {
		whip.WriteError(w, whip.Errorf(http.StatusUnauthorized, "%v", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(MapSettings{Tiles: s.p.Conf.Console.MapTiles, Attribution: s.p.Conf.Console.MapAttribution})
}

// mapImageSources is the img-src directive of map.html's
// Content-Security-Policy, which the tile server's origin joins.
const mapImageSources = "img-src 'self' data:"

// handleMapPage serves the console's map.html with the configured tile
// server's origin allowed in its Content-Security-Policy, so the page may
// load images from that host and no other.
func (s *Server) handleMapPage(w http.ResponseWriter, r *http.Request) {
	if s.p.Console == nil {
		http.NotFound(w, r)
		return
	}
	b, err := fs.ReadFile(s.p.Console, "map.html")
	if err != nil {
		http.NotFound(w, r)
		return
	}
	origin, err := conf.TileOrigin(s.p.Conf.Console.MapTiles)
	if err != nil {
		origin = "" // Validate refused it at start; never widen the policy with it
	}
	if origin != "" {
		b = bytes.Replace(b, []byte(mapImageSources), []byte(mapImageSources+" "+origin), 1)
	}
	h := w.Header()
	pageHeaders(h)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}

// sourceChanger returns the claims of r's token when they may change how
// source is listed (action, audited; what, for the refusal): a token that may
// publish it, or an operator's or commander's. Otherwise it answers the
// refusal and returns nil.
func (s *Server) sourceChanger(w http.ResponseWriter, r *http.Request, action, source, what string) *auth.Claims {
	s.cors(w)
	if ev := audit.Annotate(r); ev != nil {
		ev.Action, ev.Source, ev.Via = action, source, "api"
	}
	c, err := s.p.Verifier.Verify(auth.FromRequest(r))
	if err != nil {
		whip.WriteError(w, whip.Errorf(http.StatusUnauthorized, "%v", err))
		return nil
	}
	if !c.CanOperate() && !c.CanPublish(source) {
		whip.WriteError(w, whip.Errorf(http.StatusForbidden, "token of %s (role %s) may not publish source %q, so may not %s; its publisher or an operator or commander may", c.Who(), c.Role, source, what))
		return nil
	}
	return c
}

// handleForget serves DELETE /v1/sources/{source}: an offline source leaves
// the list with its tags and position, for a camera taken away for good (ingest
// asks when one is removed). Its recordings stay. Viewers still waiting for it
// are ended. The token that may publish it, or an operator or commander; a
// live source is refused (409).
func (s *Server) handleForget(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("source")
	c := s.sourceChanger(w, r, "forget", name, "remove it from the list")
	if c == nil {
		return
	}
	s.mu.Lock()
	src := s.sources[name]
	if src == nil {
		s.mu.Unlock()
		whip.WriteError(w, whip.Errorf(http.StatusNotFound, "source %q is not listed here", name))
		return
	}
	if p := src.pub.Load(); p != nil {
		who := p.who
		s.mu.Unlock()
		whip.WriteError(w, whip.Errorf(http.StatusConflict, "source %q is live, published by %s; end its session first, then remove it", name, who))
		return
	}
	delete(s.sources, name)
	st := src.stream
	s.mu.Unlock()
	if st != nil {
		st.Close() // the viewers still waiting for it end
	}
	s.log.Info("source removed from the list", "source", name, "by", c.Who())
	w.WriteHeader(http.StatusNoContent)
}
