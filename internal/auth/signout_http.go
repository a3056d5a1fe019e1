package auth

import (
	"fmt"
	"net/http"
	"time"

	"fieldvideo/internal/audit"
)

// SignOutHandler ends the sign-in of the token a request carries: POST revokes
// that one token (by its id), which ends its live sessions at once, as an
// operator's revocation does. Any valid token may sign itself out; the
// subject's other tokens (another device, another tab's sign-in) stay valid.
func SignOutHandler(v *Verifier) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			httpError(w, http.StatusMethodNotAllowed, "sign out with POST")
			return
		}
		c, err := v.Verify(FromRequest(r))
		if err != nil {
			httpError(w, http.StatusUnauthorized, err.Error())
			return
		}
		rl := v.Revocations()
		if rl == nil {
			httpError(w, http.StatusNotImplemented, "this server keeps no revocation list (auth.revocations_file): the token stays valid until it expires")
			return
		}
		if c.ID == "" {
			httpError(w, http.StatusUnprocessableEntity, fmt.Sprintf("this token carries no id (jti), so it cannot be revoked alone: it stays valid until it expires; an operator can revoke every token of %s", c.Who()))
			return
		}
		rv := Revocation{TokenID: c.ID, By: c.Who(), Reason: "signed out"}
		if c.ExpiresAt != nil {
			rv.Expires = c.ExpiresAt.UTC()
		}
		rv, err = rl.Add(rv)
		if err != nil {
			httpError(w, http.StatusInternalServerError, err.Error())
			return
		}
		if ev := audit.Annotate(r); ev != nil {
			ev.Action, ev.Source, ev.Reason = "sign-out", rv.TokenID, rv.String()
		}
		writeJSON(w, http.StatusOK, rv)
	})
}

// expiredEntryGrace is how long past its token's expiry a token's revocation is
// kept: beyond the verifier's leeway and the clock skew between hosts sharing the list.
const expiredEntryGrace = time.Hour
