package session

import (
	"time"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
)

// Renewed confirms a renew: the participation now lasts until Expires
// (when the token has an expiry).
type Renewed struct {
	Header
	Expires *time.Time `json:"expires,omitempty"`
}

// renew checks a newer token of the participant: valid, of the same
// subject, still allowed into the room. The grants the participant joined
// with stay; only how long it lasts changes (the caller rebinds it when the
// new token expires later). Every renew is audited.
func (p *participant) renew(m *Renew) (*auth.Claims, error) {
	ev := audit.Event{Action: "renew", Source: p.room.name, Remote: p.remote, Session: p.session, Actor: p.id, Role: string(p.claims.Role), Result: "ok"}
	c, err := p.m.p.Verifier.Verify(m.Token)
	switch {
	case err != nil:
		err = errorf(CodeUnauthorized, "the new token is refused: %v; the participation goes on until the token it has expires", err)
	case participantID(c) != p.id:
		err = errorf(CodeForbidden, "the new token is for %s, not for %s who joined; a token renews its own participant only", c.Who(), p.id)
	case !c.CanJoin(p.room.name):
		err = errorf(CodeForbidden, "the new token of %s may not join room %q; ask for a token for this room", c.Who(), p.room.name)
	}
	if err != nil {
		ev.Result, ev.Reason = "denied", err.Error()
	}
	if aerr := p.m.audit(ev); aerr != nil && err == nil {
		err = errorf(CodeInternal, "the renew cannot be written to the audit trail: %v", aerr)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// later tells whether claims c expire after bound does.
func later(c, bound *auth.Claims) bool {
	return c.ExpiresAt != nil && bound.ExpiresAt != nil && c.ExpiresAt.After(bound.ExpiresAt.Time)
}
