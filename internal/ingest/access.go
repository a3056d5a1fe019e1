package ingest

import (
	"errors"
	"net/url"
	"strings"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/headers"
	"github.com/bluenviron/gortsplib/v5/pkg/liberrors"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
)

// Audit actions.
const (
	actionPublish   = "publish"
	actionView      = "view"
	actionUnpublish = "unpublish"
)

// connState is kept on every RTSP connection.
type connState struct {
	remote string
	// challenged is set when a request came without credentials and got a
	// 401 challenge; if the connection closes without ever authenticating,
	// the refusal is audited then (a challenge alone is the normal first
	// step of Basic authentication, not a refusal).
	challenged      bool
	challengeAction string
	challengeSource string
	authenticated   bool
	// granted remembers the last grant on this connection, for clients
	// that send credentials once and not on every request.
	granted                      *auth.Claims
	grantedAction, grantedSource string
}

func stateOf(c *gortsplib.ServerConn) *connState {
	if cs, ok := c.UserData().(*connState); ok {
		return cs
	}
	return &connState{remote: c.NetConn().RemoteAddr().String()}
}

// refusal is an RTSP response refusing a request, and the error that makes
// gortsplib close the connection after sending it.
type refusal struct {
	res *base.Response
	err error
}

// refuse builds a refusal with a status line that says what was wrong.
func refuse(code base.StatusCode, reason string) *refusal {
	return &refusal{
		res: &base.Response{StatusCode: code, StatusMessage: statusMessage(code, reason)},
		err: refusalError(reason),
	}
}

type refusalError string

func (e refusalError) Error() string { return string(e) }

// statusMessage is the reason phrase: the standard one, then the reason.
func statusMessage(code base.StatusCode, reason string) string {
	std := base.StatusMessages[code]
	if std == "" {
		std = "Refused"
	}
	reason = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, reason)
	if len(reason) > 200 {
		reason = reason[:200]
	}
	return std + " - " + reason
}

// tokenQueryKey is the URL query parameter that can carry the token, for
// clients whose RTSP credentials are too short for a JWT: ffmpeg and ffprobe
// keep at most 127 bytes of user:password.
const tokenQueryKey = "token"

// credentials returns the token of a request: the token query parameter, or
// the password of Basic authentication. how is "" when the request carries
// no credentials at all.
func credentials(req *base.Request, query string) (token, how string, err error) {
	if q, qerr := url.ParseQuery(query); qerr == nil && q.Get(tokenQueryKey) != "" {
		return q.Get(tokenQueryKey), "query", nil
	}
	hdr := req.Header["Authorization"]
	if len(hdr) == 0 {
		return "", "", nil
	}
	var a headers.Authorization
	if err := a.Unmarshal(hdr); err != nil || a.Method != headers.AuthMethodBasic {
		return "", "header", errors.New("use Basic authentication with the token as the password " +
			"(rtsp://user:TOKEN@host/source), or ?token=TOKEN")
	}
	return a.BasicPass, "basic", nil
}

// authorize checks the token of req (see credentials) for action on source.
// On success it returns the claims; otherwise a refusal, audited unless it
// is the initial challenge.
func (h *rtspHandler) authorize(c *gortsplib.ServerConn, req *base.Request, query, action, source string) (*auth.Claims, *refusal) {
	cs := stateOf(c)
	tok, how, err := credentials(req, query)
	if how == "" && cs.granted != nil && cs.grantedAction == action && cs.grantedSource == source {
		return cs.granted, nil
	}
	if how == "" {
		// First step of Basic authentication: ask for credentials. The
		// connection stays open for the retry.
		cs.challenged, cs.challengeAction, cs.challengeSource = true, action, source
		return nil, &refusal{res: &base.Response{StatusCode: base.StatusUnauthorized}, err: liberrors.ErrServerAuth{}}
	}
	cs.challenged = false // this attempt is audited on its own
	if err != nil {
		return nil, h.deny(cs, action, source, nil, base.StatusUnauthorized, err.Error(), true)
	}
	claims, err := h.s.p.Verifier.Verify(tok)
	if err != nil {
		// A refused query token must not be answered with a challenge,
		// which would make the client retry the same token.
		return nil, h.deny(cs, action, source, nil, base.StatusUnauthorized, err.Error(), how == "basic")
	}
	allowed := false
	switch action {
	case actionPublish:
		allowed = claims.CanPublish(source)
	case actionView:
		allowed = claims.CanView(source)
	}
	if !allowed {
		return nil, h.deny(cs, action, source, claims, base.StatusForbidden,
			"the token does not allow to "+action+" "+source+"; ask for a token that grants it", false)
	}
	cs.authenticated = true
	cs.granted, cs.grantedAction, cs.grantedSource = claims, action, source
	return claims, nil
}

// deny audits and logs a refusal and returns it. auth401 refusals make
// gortsplib close the connection without a new challenge.
func (h *rtspHandler) deny(cs *connState, action, source string, claims *auth.Claims, code base.StatusCode, reason string, auth401 bool) *refusal {
	h.audit(cs, claims, action, source, "denied", reason)
	h.s.log.Warn("RTSP "+action+" refused", "source", source, "remote", cs.remote, "status", int(code), "reason", reason)
	r := refuse(code, reason)
	if auth401 {
		r.err = liberrors.ErrServerAuth{}
	}
	return r
}

func (h *rtspHandler) audit(cs *connState, claims *auth.Claims, action, source, result, reason string) {
	ev := audit.Event{Actor: "anonymous", Action: action, Source: source, Via: "rtsp", Remote: cs.remote, Result: result, Reason: reason}
	if claims != nil {
		ev.Actor, ev.Role = claims.Who(), string(claims.Role)
	}
	h.s.p.Audit.Write(ev)
}
