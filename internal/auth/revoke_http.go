package auth

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"fieldvideo/internal/audit"
)

// RevocationsHandler serves the revocation list to operators and
// commanders: GET lists it; POST {"subject": "...", "reason": "..."} (or
// {"token_id": "..."}) revokes every token of a subject issued until now,
// or one token, and ends their live sessions at once.
func RevocationsHandler(v *Verifier) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := v.Verify(FromRequest(r))
		if err != nil {
			httpError(w, http.StatusUnauthorized, err.Error())
			return
		}
		if !c.CanOperate() {
			httpError(w, http.StatusForbidden, fmt.Sprintf("revoking tokens needs an operator or commander token; %s has role %s", c.Who(), c.Role))
			return
		}
		rl := v.Revocations()
		if rl == nil {
			httpError(w, http.StatusNotImplemented, "this server keeps no revocation list (auth.revocations_file)")
			return
		}
		switch r.Method {
		case http.MethodGet:
			writeJSON(w, http.StatusOK, map[string]any{"revocations": nonNil(rl.List())})
		case http.MethodPost:
			var req struct {
				Subject string `json:"subject"`
				TokenID string `json:"token_id"`
				Reason  string `json:"reason"`
			}
			dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil {
				httpError(w, http.StatusBadRequest, fmt.Sprintf("the body must be JSON {\"subject\": ..., \"reason\": ...} or {\"token_id\": ..., \"reason\": ...}: %v", err))
				return
			}
			if (req.Subject == "") == (req.TokenID == "") {
				httpError(w, http.StatusBadRequest, "name either a subject or a token_id to revoke")
				return
			}
			if len(req.Subject) > 256 || len(req.TokenID) > 256 || len(req.Reason) > 1024 {
				httpError(w, http.StatusBadRequest, "subject and token_id are at most 256 bytes, reason at most 1024")
				return
			}
			rv, err := rl.Add(Revocation{Subject: req.Subject, TokenID: req.TokenID, By: c.Who(), Reason: req.Reason})
			if err != nil {
				httpError(w, http.StatusInternalServerError, err.Error())
				return
			}
			if ev := audit.Annotate(r); ev != nil {
				ev.Action, ev.Source, ev.Reason = "revoke", rv.Subject+rv.TokenID, rv.String()
			}
			writeJSON(w, http.StatusCreated, rv)
		default:
			w.Header().Set("Allow", "GET, POST")
			httpError(w, http.StatusMethodNotAllowed, "use GET or POST")
		}
	})
}

func nonNil(l []Revocation) []Revocation {
	if l == nil {
		return []Revocation{}
	}
	return l
}

func httpError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintln(w, msg)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
