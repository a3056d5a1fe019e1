package ingest

import (
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"

	"fieldvideo/internal/auth"
)

// tokenBinding ties a recording or playing session to the token that
// granted it (auth.Verifier.Bind): the session is closed when the token
// expires (after auth.BindGrace) or is revoked. A keepalive that carries a
// newer token of the same subject, with the same grant, moves the binding
// to it.
type tokenBinding struct {
	mu     sync.Mutex
	claims *auth.Claims // nil until bound
	token  string
	unbind func()
	gen    uint64 // counts binds; an end from an earlier bind is stale
	ended  string // why the token ended the session; "" while it has not
	closed bool   // the session closed; no more binds
}

// current returns the claims and token the session is bound to; nil claims
// when it is not bound.
func (b *tokenBinding) current() (*auth.Claims, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.ended != "" {
		return nil, ""
	}
	return b.claims, b.token
}

// close stops watching the token. It returns the claims the session was
// last bound to (nil when never bound), and why the token ended the
// session ("" when something else did).
func (b *tokenBinding) close() (*auth.Claims, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.unbind != nil {
		b.unbind()
		b.unbind = nil
	}
	return b.claims, b.ended
}

// bind ties ss to claims (from token), replacing an earlier binding. It
// reports false when the session has closed or its token already ended it.
func (h *rtspHandler) bind(ss *gortsplib.ServerSession, st *sessionState, claims *auth.Claims, token string) bool {
	b := &st.binding
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.ended != "" {
		return false
	}
	if b.unbind != nil {
		b.unbind()
	}
	b.gen++
	gen := b.gen
	b.claims, b.token = claims, token
	b.unbind = h.s.p.Verifier.Bind(claims, func(reason string) { h.tokenEnded(ss, st, gen, reason) })
	return true
}

// tokenEnded closes a session whose token expired or was revoked; the
// session's close is audited with the reason (OnSessionClose).
func (h *rtspHandler) tokenEnded(ss *gortsplib.ServerSession, st *sessionState, gen uint64, reason string) {
	b := &st.binding
	b.mu.Lock()
	if b.closed || b.gen != gen || b.ended != "" {
		b.mu.Unlock()
		return
	}
	b.ended, b.unbind = reason, nil
	who := b.claims.Who()
	b.mu.Unlock()
	kind := "player"
	if st.publisher {
		kind = "publisher"
	}
	h.s.log.Warn("RTSP "+kind+" disconnected: its token no longer grants access",
		"source", st.src.name, "remote", st.remote, "who", who, "reason", reason)
	ss.Close()
}

// renew moves a recording or playing session to the newer token a
// keepalive (GET_PARAMETER, SET_PARAMETER, OPTIONS) carries, when it is of
// the same subject and grants the same access. A token that would not do is
// audited as a refused renewal and changes nothing.
func (h *rtspHandler) renew(c *gortsplib.ServerConn, cs *connState, req *base.Request) {
	ss := c.Session()
	if ss == nil {
		return
	}
	st := sessionOf(ss)
	if st == nil {
		return
	}
	tok, how, err := credentials(req, requestQuery(req.URL))
	if how == "" || err != nil {
		return
	}
	bound, boundTok := st.binding.current()
	if bound == nil || tok == boundTok {
		return
	}
	action := actionView
	if st.publisher {
		action = actionPublish
	}
	claims, err := h.s.p.Verifier.Verify(tok)
	var why string
	switch {
	case err != nil:
		why = err.Error()
	case claims.Subject != bound.Subject:
		why = "the token is of " + claims.Who() + " but the session is of " + bound.Who() + "; open a new session"
	case !grants(claims, action, st.src.name):
		why = "the token does not allow to " + action + " " + st.src.name
	case !outlasts(claims, bound):
		return // not newer: the session keeps its token
	}
	ev := accessEvent{remote: cs.remote, method: cs.method, action: actionRenew, source: st.src.name, claims: bound}
	if why != "" {
		ev.result, ev.reason = "denied", why
		h.audit(ev)
		h.s.log.Warn("RTSP token renewal refused", "source", st.src.name, "remote", cs.remote, "who", bound.Who(), "reason", why)
		return
	}
	if !h.bind(ss, st, claims, tok) {
		return
	}
	if cs.granted != nil && cs.granted.Subject == claims.Subject && cs.grantedAction == action && cs.grantedSource == st.src.name {
		cs.granted, cs.grantedToken = claims, tok
	}
	ev.claims, ev.result, ev.reason = claims, "ok", "access now lasts until "+expiry(claims)
	h.audit(ev)
	h.s.log.Info("RTSP session moved to a newer token", "source", st.src.name, "remote", cs.remote, "who", claims.Who(),
		"until", expiry(claims))
}

// outlasts reports whether a expires after b.
func outlasts(a, b *auth.Claims) bool {
	switch {
	case b.ExpiresAt == nil:
		return false
	case a.ExpiresAt == nil:
		return true
	}
	return a.ExpiresAt.After(b.ExpiresAt.Time)
}

func expiry(c *auth.Claims) string {
	if c.ExpiresAt == nil {
		return "revoked"
	}
	return c.ExpiresAt.UTC().Format(time.RFC3339)
}
