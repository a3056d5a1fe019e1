package ingest

import (
	"errors"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/headers"
	"github.com/bluenviron/gortsplib/v5/pkg/liberrors"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/netlimit"
)

// Audit actions.
const (
	actionPublish   = "publish"
	actionView      = "view"
	actionUnpublish = "unpublish"
	actionStop      = "stop"  // a player's session ended
	actionRenew     = "renew" // a live session moved to a newer token
)

// connState is kept on every RTSP connection. It is used from the
// connection's goroutine, and from the session's while the connection's
// waits for it.
type connState struct {
	remote string
	// nc is the accepted connection under this one, and conns the
	// listener that keeps it (nil in tests without one): until the
	// connection is granted access, each request must come within the
	// request timeout.
	nc    net.Conn
	conns *netlimit.Listener
	// method is the RTSP method of the request being handled.
	method string
	// challenged is set when a request came without credentials and got a
	// 401 challenge; if the connection closes without ever authenticating,
	// the refusal is audited then (a challenge alone is the normal first
	// step of Basic authentication, not a refusal).
	challenged      bool
	challengeAction string
	challengeSource string
	challengeMethod string
	authenticated   bool
	// granted remembers the last grant on this connection, and the token
	// it came from, for clients that send credentials once and not on every
	// request (GStreamer sends SETUP to a control URL without the query).
	granted                      *auth.Claims
	grantedToken                 string
	grantedAction, grantedSource string
}

func stateOf(c *gortsplib.ServerConn) *connState {
	if cs, ok := c.UserData().(*connState); ok {
		return cs
	}
	return &connState{remote: c.NetConn().RemoteAddr().String()}
}

// trust lifts the request deadline of a connection that was granted
// access: gortsplib's own read and idle timeouts apply from then on.
func (cs *connState) trust() {
	cs.authenticated = true
	cs.requestBy(time.Time{})
}

// requestBy sets the time by which the peer must send its next request
// (zero: none). Of an HTTP tunnel, requests come on the POST half; the
// GET half only carries what the server sends.
func (cs *connState) requestBy(t time.Time) {
	if cs.conns == nil || cs.nc == nil {
		return
	}
	halves := []net.Conn{cs.nc}
	if tc, ok := cs.nc.(*tunnelConn); ok {
		halves = tc.Halves()
	}
	for i, h := range halves {
		if c := cs.conns.Lookup(h); c != nil {
			if i > 0 {
				_ = c.SetRequestDeadline(time.Time{})
				continue
			}
			_ = c.SetRequestDeadline(t)
		}
	}
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

// A refused Basic password of cutPasswordMin up to clientAuthMax bytes was
// most likely a token cut by such a client (this system's tokens are longer).
const (
	cutPasswordMin = 96
	clientAuthMax  = 128
)

// requestQuery is the query of a request URL without what clients append
// to it: a trailing slash, or a control path ("/trackID=0", FFmpeg style).
func requestQuery(u *base.URL) string {
	if u == nil {
		return ""
	}
	q := u.RawQuery
	if i := strings.LastIndex(q, "/trackID="); i >= 0 {
		q = q[:i]
	}
	return strings.TrimSuffix(q, "/")
}

// contentBase returns a DESCRIBE response's Content-Base without the
// request URL's query and credentials. Players resolve the SDP's control
// URLs against it: with a query inside, GStreamer makes
// rtsp://host/trackID=0 of it, and the token would spread to every later
// request and log line.
func contentBase(v string) string {
	u, err := url.Parse(v)
	if err != nil || u.Opaque != "" {
		base, _, _ := strings.Cut(v, "?")
		if !strings.HasSuffix(base, "/") {
			base += "/"
		}
		return base
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
		u.RawPath = ""
	}
	return u.String()
}

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
// On success it returns the claims, remembers the grant on the connection
// and lifts its request deadline; otherwise it returns a refusal, audited
// unless it is the initial challenge.
func (h *rtspHandler) authorize(c *gortsplib.ServerConn, req *base.Request, query, action, source string) (*auth.Claims, *refusal) {
	cs := stateOf(c)
	tok, how, err := credentials(req, query)
	if how == "" && cs.granted != nil && cs.grantedAction == action && cs.grantedSource == source {
		if why := h.lapsed(cs.granted); why != "" {
			return nil, h.deny(cs, action, source, cs.granted, base.StatusUnauthorized, why, false)
		}
		return cs.granted, nil
	}
	if how == "" {
		// First step of Basic authentication: ask for credentials. The
		// connection stays open for the retry.
		cs.challenged, cs.challengeAction, cs.challengeSource, cs.challengeMethod = true, action, source, cs.method
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
		why := err.Error()
		if how == "basic" && len(tok) >= cutPasswordMin && len(tok) < clientAuthMax {
			why += "; the password looks cut short: ffmpeg and ffprobe send at most 127 bytes of user:password, " +
				"so put the token in the URL as ?token=TOKEN instead"
		}
		return nil, h.deny(cs, action, source, nil, base.StatusUnauthorized, why, how == "basic")
	}
	if !grants(claims, action, source) {
		return nil, h.deny(cs, action, source, claims, base.StatusForbidden,
			"the token does not allow to "+action+" "+source+"; ask for a token that grants it", false)
	}
	cs.trust()
	cs.granted, cs.grantedToken, cs.grantedAction, cs.grantedSource = claims, tok, action, source
	return claims, nil
}

// grants reports whether claims allow action on source.
func grants(claims *auth.Claims, action, source string) bool {
	switch action {
	case actionPublish:
		return claims.CanPublish(source)
	case actionView:
		return claims.CanView(source)
	}
	return false
}

// lapsed says why claims granted earlier on a connection no longer hold
// (expired beyond the verifier's leeway, or revoked); "" while they do.
func (h *rtspHandler) lapsed(c *auth.Claims) string {
	if c.ExpiresAt != nil && time.Now().After(c.ExpiresAt.Add(auth.BindGrace)) {
		return "token of " + c.Who() + " expired at " + c.ExpiresAt.UTC().Format(time.RFC3339) + "; reconnect with a new token"
	}
	if r := h.s.p.Verifier.Revocations(); r != nil {
		if rv, ok := r.Revoked(c); ok {
			return rv.String() + "; ask for a new token"
		}
	}
	return ""
}

// deny audits and logs a refusal and returns it. auth401 refusals make
// gortsplib close the connection without a new challenge.
func (h *rtspHandler) deny(cs *connState, action, source string, claims *auth.Claims, code base.StatusCode, reason string, auth401 bool) *refusal {
	h.refused(accessEvent{remote: cs.remote, method: cs.method, action: action, source: source, claims: claims,
		result: "denied", status: int(code), reason: reason})
	r := refuse(code, reason)
	if auth401 {
		r.err = liberrors.ErrServerAuth{}
	}
	return r
}

// grant audits a request that was granted access. When the audit log
// cannot be written the access is refused instead (fail closed).
func (h *rtspHandler) grant(cs *connState, action, source string, claims *auth.Claims) *refusal {
	err := h.audit(accessEvent{remote: cs.remote, method: cs.method, action: action, source: source, claims: claims, result: "ok"})
	if err != nil {
		h.s.log.Error("RTSP "+action+" refused: the audit log cannot be written", "source", source, "remote", cs.remote, "error", err)
		return refuse(base.StatusServiceUnavailable, "access refused: "+err.Error())
	}
	return nil
}

// refused audits and logs a refusal. The warnings of refusals without a
// valid identity are spaced by the handler's anonWarn.
func (h *rtspHandler) refused(a accessEvent) {
	h.audit(a)
	warn := func(more ...any) {
		h.s.log.Warn("RTSP "+a.action+" refused", append([]any{"source", a.source, "remote", a.remote, "method", a.method,
			"status", a.status, "reason", a.reason}, more...)...)
	}
	if !a.anonymous() {
		warn()
		return
	}
	h.anonRefusals.Add(1)
	h.anonWarn.Do(func() { warn("refusals_without_identity_since_last_warning", h.anonRefusals.Swap(0)) })
}

// anonWarnEvery spaces the warnings of refusals without a valid identity.
const anonWarnEvery = 10 * time.Second

// accessEvent is what an RTSP audit event says.
type accessEvent struct {
	remote, method, action, source string
	claims                         *auth.Claims // nil: no valid token
	result, reason                 string
	status                         int // RTSP status of a refusal
}

// anonymous reports whether the event is of a request without a valid
// identity, which anyone can send as often as they like: no valid token,
// or (401) one that expired or was revoked since it was granted.
func (a accessEvent) anonymous() bool {
	return a.claims == nil || a.status == int(base.StatusUnauthorized)
}

// audit writes the event of a; the events of requests without a valid
// identity are clipped and rate-limited (audit.Log.WriteAnonymous).
func (h *rtspHandler) audit(a accessEvent) error {
	ev := audit.Event{Actor: "anonymous", Action: a.action, Source: a.source, Via: "rtsp", Remote: a.remote,
		Result: a.result, Reason: a.reason, Method: a.method, Status: a.status}
	if a.method != "" {
		ev.Path = "/" + a.source
	}
	if a.claims != nil {
		ev.Actor, ev.Role = a.claims.Who(), string(a.claims.Role)
	}
	if a.anonymous() {
		return h.s.p.Audit.WriteAnonymous(ev)
	}
	return h.s.p.Audit.Write(ev)
}
