package ingest

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"fieldvideo/internal/conf"
)

// RedactMark stands for a password, or the value of a secret parameter, in
// the URLs the cameras API shows. A change that gives it in its place keeps
// the stored value, as long as the camera's scheme, host and port stay.
const RedactMark = "***"

// Limits of a camera request body.
const (
	MaxCameraBody       = 16 << 10
	maxCredentialLength = 256
)

// cameraFields lists the fields of a camera body, for error messages.
const cameraFields = "name, url, username, password, transport, disabled, position, label"

// CameraPatch is a parsed camera body of the cameras API: the fields it
// sets. A nil field is absent: a new camera leaves it at its zero value, a
// change leaves it as it was. PositionSet says the position was given,
// Position nil then clears it.
type CameraPatch struct {
	Name      *string
	URL       *string
	Username  *string
	Password  *string
	Transport *string
	Disabled  *bool
	Label     *string

	PositionSet bool
	Position    *conf.Position
}

// ParseCameraPatch decodes a camera body: one JSON object such as
//
//	{"name": "gate", "url": "rtsp://10.0.0.5:554/stream1", "username": "admin",
//	 "password": "…", "transport": "tcp", "disabled": false,
//	 "position": {"lat": 25.0330, "lon": 121.5654}, "label": "North gate"}
//
// Credentials go either in url (rtsp://user:password@host/path) or in
// username and password. Errors name the field and the fix; they never
// quote the url or the password.
func ParseCameraPatch(b []byte) (CameraPatch, error) {
	var p CameraPatch
	if len(bytes.TrimSpace(b)) == 0 {
		return p, cameraErr(CameraInvalid, "the body is empty; send a JSON object such as {\"name\": \"gate\", \"url\": \"rtsp://10.0.0.5/stream\"}")
	}
	if len(b) > MaxCameraBody {
		return p, cameraErr(CameraInvalid, "the body is %d bytes; a camera takes at most %d", len(b), MaxCameraBody)
	}
	var raw struct {
		Name      json.RawMessage `json:"name"`
		URL       json.RawMessage `json:"url"`
		Username  json.RawMessage `json:"username"`
		Password  json.RawMessage `json:"password"`
		Transport json.RawMessage `json:"transport"`
		Disabled  json.RawMessage `json:"disabled"`
		Position  json.RawMessage `json:"position"`
		Label     json.RawMessage `json:"label"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return p, bodyError(err)
	}
	if dec.More() {
		return p, cameraErr(CameraInvalid, "the body holds more than one JSON value; send one object")
	}
	if _, err := dec.Token(); err == nil {
		return p, cameraErr(CameraInvalid, "the body holds more than one JSON value; send one object")
	}
	var err error
	str := func(field string, r json.RawMessage) *string {
		if err != nil || isAbsent(r) {
			return nil
		}
		var s string
		if json.Unmarshal(r, &s) != nil {
			err = cameraErr(CameraInvalid, "%s must be a string (in double quotes)", field)
			return nil
		}
		return &s
	}
	p.Name = str("name", raw.Name)
	p.URL = str("url", raw.URL)
	p.Username = str("username", raw.Username)
	p.Password = str("password", raw.Password)
	p.Transport = str("transport", raw.Transport)
	p.Label = str("label", raw.Label)
	if err != nil {
		return CameraPatch{}, err
	}
	if !isAbsent(raw.Disabled) {
		var d bool
		if json.Unmarshal(raw.Disabled, &d) != nil {
			return CameraPatch{}, cameraErr(CameraInvalid, "disabled must be true or false")
		}
		p.Disabled = &d
	}
	if len(raw.Position) > 0 {
		p.PositionSet = true
		if !isAbsent(raw.Position) {
			pos, err := parsePosition(raw.Position)
			if err != nil {
				return CameraPatch{}, err
			}
			p.Position = pos
		}
	}
	return p, nil
}

// isAbsent reports whether a field was left out or given as null.
func isAbsent(r json.RawMessage) bool {
	return len(r) == 0 || bytes.Equal(bytes.TrimSpace(r), []byte("null"))
}

func parsePosition(r json.RawMessage) (*conf.Position, error) {
	var pos struct {
		Lat *float64 `json:"lat"`
		Lon *float64 `json:"lon"`
	}
	dec := json.NewDecoder(bytes.NewReader(r))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&pos); err != nil {
		return nil, cameraErr(CameraInvalid, "position must be {\"lat\": degrees north, \"lon\": degrees east}, or null for none")
	}
	if pos.Lat == nil || pos.Lon == nil {
		return nil, cameraErr(CameraInvalid, "position needs both lat and lon (degrees), or null for none")
	}
	return &conf.Position{Lat: *pos.Lat, Lon: *pos.Lon}, nil
}

// bodyError turns a JSON decoding error into one that names the field.
func bodyError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return cameraErr(CameraInvalid, "the body is not valid JSON (at byte %d: %v); send one object such as {\"name\": \"gate\", \"url\": \"rtsp://10.0.0.5/stream\"}", syn.Offset, err)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return cameraErr(CameraInvalid, "the body must be a JSON object {…}, not %s", typ.Value)
		}
		return cameraErr(CameraInvalid, "%s has the wrong type (%s)", typ.Field, typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.TrimPrefix(err.Error(), "json: unknown field ")
		return cameraErr(CameraInvalid, "unknown field %s; a camera has the fields %s", field, cameraFields)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return cameraErr(CameraInvalid, "the body ends in the middle of the JSON object; send the whole object")
	}
	return cameraErr(CameraInvalid, "the body is not a JSON camera object (%v); the fields are %s", err, cameraFields)
}

// Apply returns the camera p makes of old (nil: a new camera). The result
// is not checked (conf.Camera.Check does that); errors are *CameraError.
func (p CameraPatch) Apply(old *conf.Camera) (conf.Camera, error) {
	var c conf.Camera
	if old != nil {
		c = *old
		c.Position = clonePosition(old.Position)
	}
	switch {
	case p.Name == nil && old == nil:
		return c, cameraErr(CameraInvalid, "name is missing; give the camera a name of 1-64 letters, digits, '.', '_' or '-'")
	case p.Name != nil && old != nil && *p.Name != old.Name:
		return c, cameraErr(CameraInvalid, "name: a camera cannot be renamed (recordings are filed under its name); remove %s and add the camera under the new name", old.Name)
	case p.Name != nil:
		c.Name = *p.Name
	}
	if p.URL == nil && old == nil {
		return c, cameraErr(CameraInvalid, "url is missing; give the camera's RTSP address, such as rtsp://10.0.0.5:554/stream1")
	}
	if p.URL != nil || p.Username != nil || p.Password != nil {
		u, err := p.resolveURL(old)
		if err != nil {
			return c, err
		}
		if old == nil || !sameURL(u, old.URL) {
			c.URL = u
		}
	}
	if p.Transport != nil {
		tr := strings.ToLower(strings.TrimSpace(*p.Transport))
		if old == nil || transportOf(tr) != transportOf(old.Transport) {
			c.Transport = tr
		}
	}
	if p.Disabled != nil {
		c.Disabled = *p.Disabled
	}
	if p.Label != nil {
		c.Label = strings.TrimSpace(*p.Label)
	}
	if p.PositionSet {
		c.Position = clonePosition(p.Position)
	}
	return c, nil
}

// resolveURL returns the camera URL with its credentials: those of p.URL,
// or of username and password, with RedactMark (or an absent password)
// standing for the stored one, and RedactMark as the value of a secret in
// the path or the query standing for the stored value. A stored secret is
// only carried over while the camera's destination (scheme, host and port)
// stays the same: sent elsewhere, it would hand the camera's password to
// whoever answers there. The path may change (another stream of the same
// camera).
func (p CameraPatch) resolveURL(old *conf.Camera) (string, error) {
	var oldU *url.URL
	var oldUser, oldPass string
	oldHas := false
	if old != nil {
		if ou, err := url.Parse(old.URL); err == nil {
			oldU = ou
			if ou.User != nil {
				oldUser = ou.User.Username()
				oldPass, oldHas = ou.User.Password()
			}
		}
	}
	raw := ""
	if p.URL != nil {
		raw = strings.TrimSpace(*p.URL)
	} else if old != nil {
		raw = old.URL
	}
	if len(raw) > conf.MaxCameraURL {
		return "", cameraErr(CameraInvalid, "url is %d bytes; use at most %d", len(raw), conf.MaxCameraURL)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "rtsp" && u.Scheme != "rtsps") || u.Host == "" {
		// The parse error quotes the URL, password included: do not echo it.
		return "", cameraErr(CameraInvalid, "url is not an rtsp:// or rtsps:// URL; write it as rtsp://host:port/path (characters such as @ / # in a password go in the password field)")
	}
	user, pass, has := "", "", false
	keptPass := false // pass is the stored password
	switch {
	case p.URL != nil && u.User != nil:
		if p.Username != nil || p.Password != nil {
			return "", cameraErr(CameraInvalid, "username: give the credentials either in url or as username and password, not both")
		}
		user = u.User.Username()
		pass, has = u.User.Password()
	case p.Username != nil || p.Password != nil:
		user, pass, has, keptPass = oldUser, oldPass, oldHas, oldHas
		if p.Username != nil {
			user = strings.TrimSpace(*p.Username)
		}
		if p.Password != nil {
			pass, has, keptPass = *p.Password, *p.Password != "", false
		}
	case p.URL == nil:
		user, pass, has, keptPass = oldUser, oldPass, oldHas, oldHas
	}
	if has && !keptPass && pass != RedactMark && strings.Contains(pass, RedactMark) {
		// it would be shown as if it were the stored password (rtsp://u:***@h1@h2
		// has the password "***@h1")
		return "", cameraErr(CameraInvalid, "password: it contains %s, which stands for the stored password; give the camera's password alone (characters such as @ / # go in the password field)", RedactMark)
	}
	if has && pass == RedactMark && !keptPass {
		if !oldHas {
			return "", cameraErr(CameraInvalid, "password: %s stands for the stored password, and this camera has none; type the camera's password", RedactMark)
		}
		pass, keptPass = oldPass, true
	}
	oldPath, oldQuery := "", ""
	if oldU != nil {
		oldPath, oldQuery = oldU.EscapedPath(), oldU.RawQuery
	}
	path, missingPath, inPath := restoreSecrets(mapPathSecrets, u.EscapedPath(), oldPath)
	query, missingQuery, inQuery := restoreSecrets(mapSecrets, u.RawQuery, oldQuery)
	if missing := cmp.Or(missingPath, missingQuery); missing != "" {
		return "", cameraErr(CameraInvalid, "url: %s=%s stands for the stored value, and this camera has none; type it", missing, RedactMark)
	}
	// Only a stored URL has secrets to keep: oldU is set when one is kept.
	// An empty stored password is no secret.
	if kept := (keptPass && pass != "") || inPath+inQuery > 0; kept && destination(u) != destination(oldU) {
		from, to := addressChange(destination(oldU), destination(u))
		if keptPass && pass != "" {
			return "", cameraErr(CameraInvalid, "password: the camera's address changed from %s to %s; give its password again (the stored one is only kept for the same address)", from, to)
		}
		return "", cameraErr(CameraInvalid, "url: the camera's address changed from %s to %s; type the values of its secret parameters again instead of %s (the stored ones are only kept for the same address)", from, to, RedactMark)
	}
	setEscapedPath(u, path)
	u.RawQuery = query
	switch {
	case len(user) > maxCredentialLength:
		return "", cameraErr(CameraInvalid, "username is %d bytes; use at most %d", len(user), maxCredentialLength)
	case len(pass) > maxCredentialLength:
		return "", cameraErr(CameraInvalid, "password is %d bytes; use at most %d", len(pass), maxCredentialLength)
	case has && user == "":
		return "", cameraErr(CameraInvalid, "username is missing; a password needs the user name it belongs to")
	case strings.ContainsFunc(user+pass, isControl):
		return "", cameraErr(CameraInvalid, "username and password must not hold control characters (line breaks, tabs)")
	}
	switch {
	case has:
		u.User = url.UserPassword(user, pass)
	case user != "":
		u.User = url.User(user)
	default:
		u.User = nil
	}
	out := u.String()
	if len(out) > conf.MaxCameraURL {
		return "", cameraErr(CameraInvalid, "url with its credentials is %d bytes; use at most %d", len(out), conf.MaxCameraURL)
	}
	return out, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// sameURL reports whether two camera URLs name the same address with the
// same credentials, however they are written.
func sameURL(a, b string) bool {
	return canonicalURL(a) == canonicalURL(b)
}

func canonicalURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.String()
}

// transportOf returns a camera's transport, auto when it is not set.
func transportOf(t string) string {
	if t == "" {
		return "auto"
	}
	return t
}

// urlUser returns the user name of a camera URL.
func urlUser(raw string) string {
	u, _ := urlCredentials(raw)
	return u
}

// urlCredentials returns the user name and password of a camera URL.
func urlCredentials(raw string) (user, pass string) {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return "", ""
	}
	pass, _ = u.User.Password()
	return u.User.Username(), pass
}

// describeCamera summarises a camera for the audit log, without its
// password.
func describeCamera(c conf.Camera) string {
	parts := []string{"url " + RedactURL(c.URL)}
	if c.Transport != "" {
		parts = append(parts, "transport "+c.Transport)
	}
	if c.Disabled {
		parts = append(parts, "disabled")
	}
	if c.Position != nil {
		parts = append(parts, fmt.Sprintf("position %.6f,%.6f", c.Position.Lat, c.Position.Lon))
	}
	if c.Label != "" {
		parts = append(parts, fmt.Sprintf("label %q", c.Label))
	}
	return strings.Join(parts, ", ")
}
