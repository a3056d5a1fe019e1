package retention

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"time"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/whip"
)

// maxBody bounds a hold request's body.
const maxBody = 64 << 10

// holdBody is the JSON body of POST /v1/holds. Times are RFC 3339.
type holdBody struct {
	Incident string `json:"incident"`
	Source   string `json:"source"`
	From     string `json:"from"`
	To       string `json:"to"`
	Reason   string `json:"reason"`
}

// Handler serves the hold API:
//
//	GET    /v1/holds      list the holds of both sites, with the sites each is pending at
//	POST   /v1/holds      create a hold: {"incident", "source", "from", "to", "reason"}; 201
//	DELETE /v1/holds/{id} release a hold
//
// Listing needs an operator, commander or reviewer token (or the review
// grant); so does creating; releasing needs an operator or commander.
// Errors are JSON: {"error": "<what to do>", "status": <code>}.
func (r *Retention) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/holds", r.handleList)
	mux.HandleFunc("POST /v1/holds", r.handleCreate)
	mux.HandleFunc("DELETE /v1/holds/{id}", r.handleRelease)
	if r.p.AllowOrigin != "" {
		mux.HandleFunc("OPTIONS /v1/holds", r.handleOptions)
		mux.HandleFunc("OPTIONS /v1/holds/{id}", r.handleOptions)
	}
	return mux
}

func (r *Retention) handleOptions(w http.ResponseWriter, req *http.Request) {
	whip.SetCORS(w, r.p.AllowOrigin)
	w.WriteHeader(http.StatusNoContent)
}

// claims verifies the request's token, answering 401 when it fails.
func (r *Retention) claims(w http.ResponseWriter, req *http.Request) (*auth.Claims, error) {
	c, err := r.p.Verifier.Verify(auth.FromRequest(req))
	if err != nil {
		err = whip.Errorf(http.StatusUnauthorized, "%v", err)
		writeError(w, err)
		return nil, err
	}
	return c, nil
}

func (r *Retention) handleList(w http.ResponseWriter, req *http.Request) {
	whip.SetCORS(w, r.p.AllowOrigin)
	c, err := r.claims(w, req)
	if err != nil {
		return
	}
	if !c.CanOperate() && !c.CanReview() {
		writeError(w, whip.Errorf(http.StatusForbidden, "listing evidence holds needs an operator, commander or reviewer token, or the review grant; %s has role %s", c.Who(), c.Role))
		return
	}
	list, err := r.Holds(req.Context())
	if err != nil {
		writeError(w, httpError(err))
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (r *Retention) handleCreate(w http.ResponseWriter, req *http.Request) {
	whip.SetCORS(w, r.p.AllowOrigin)
	by := Actor{Name: "anonymous", Remote: req.RemoteAddr, Method: req.Method, Path: req.URL.Path}
	c, err := r.claims(w, req)
	if err != nil {
		r.denied(by, "hold", "", err)
		return
	}
	by.Name, by.Role = c.Who(), string(c.Role)
	if !c.CanOperate() && !c.CanReview() {
		err := whip.Errorf(http.StatusForbidden, "creating an evidence hold needs an operator, commander or reviewer token, or the review grant; %s has role %s", c.Who(), c.Role)
		r.denied(by, "hold", "", err)
		writeError(w, err)
		return
	}
	hr, err := readHoldBody(req)
	if err != nil {
		r.denied(by, "hold", "", err)
		writeError(w, err)
		return
	}
	v, err := r.CreateHold(req.Context(), hr, by)
	if err != nil {
		err = httpError(err)
		if errors.Is(err, ErrInvalid) {
			r.denied(by, "hold", "", err)
		}
		writeError(w, err)
		return
	}
	w.Header().Set("Location", "/v1/holds/"+v.ID)
	writeJSON(w, http.StatusCreated, v)
}

func (r *Retention) handleRelease(w http.ResponseWriter, req *http.Request) {
	whip.SetCORS(w, r.p.AllowOrigin)
	id := req.PathValue("id")
	by := Actor{Name: "anonymous", Remote: req.RemoteAddr, Method: req.Method, Path: req.URL.Path}
	c, err := r.claims(w, req)
	if err != nil {
		r.denied(by, "release", id, err)
		return
	}
	by.Name, by.Role = c.Who(), string(c.Role)
	if !c.CanOperate() {
		err := whip.Errorf(http.StatusForbidden, "releasing an evidence hold needs an operator or commander token; %s has role %s", c.Who(), c.Role)
		r.denied(by, "release", id, err)
		writeError(w, err)
		return
	}
	v, err := r.ReleaseHold(req.Context(), id, by)
	if err != nil {
		err = httpError(err)
		if errors.Is(err, ErrInvalid) || errors.Is(err, ErrNotFound) {
			r.denied(by, "release", id, err)
		}
		writeError(w, err)
		return
	}
	status := http.StatusOK
	if len(v.Pending) > 0 {
		status = http.StatusAccepted
	}
	writeJSON(w, status, v)
}

// denied audits a refused hold request.
func (r *Retention) denied(by Actor, action, id string, err error) {
	ev := by.event(action, Hold{ID: id}, "denied", reasonOf(err))
	ev.Source = ""
	ev.Status = statusOf(err)
	if aerr := r.audit(ev); aerr != nil {
		r.log.Warn("cannot audit a refused hold request", "error", aerr)
	}
}

// readHoldBody decodes and checks the body of POST /v1/holds.
func readHoldBody(req *http.Request) (HoldRequest, error) {
	var hr HoldRequest
	if ct := req.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return hr, whip.Errorf(http.StatusUnsupportedMediaType, "send the hold as Content-Type: application/json")
		}
	}
	b, err := io.ReadAll(io.LimitReader(req.Body, maxBody+1))
	if err != nil {
		return hr, whip.Errorf(http.StatusBadRequest, "reading the body: %v", err)
	}
	if len(b) > maxBody {
		return hr, whip.Errorf(http.StatusRequestEntityTooLarge, "body larger than %d bytes", maxBody)
	}
	var body holdBody
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return hr, whip.Errorf(http.StatusBadRequest, `the body is not a hold: %v; send {"source": "cam-1", "from": "2026-11-23T04:00:00Z", "to": "2026-11-23T05:00:00Z", "reason": "…"}`, err)
	}
	if dec.More() {
		return hr, whip.Errorf(http.StatusBadRequest, "the body has data after the hold object; send one JSON object")
	}
	hr = HoldRequest{Incident: body.Incident, Source: body.Source, Reason: body.Reason}
	if hr.From, err = parseTime("from", body.From, true); err != nil {
		return hr, err
	}
	if hr.To, err = parseTime("to", body.To, false); err != nil {
		return hr, err
	}
	return hr, nil
}

func parseTime(field, s string, required bool) (time.Time, error) {
	if s == "" {
		if required {
			return time.Time{}, whip.Errorf(http.StatusBadRequest, "%q is missing: give the capture time in RFC 3339, e.g. 2026-11-23T04:00:00Z", field)
		}
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, whip.Errorf(http.StatusBadRequest, "%q is %q, not an RFC 3339 time; write e.g. 2026-11-23T04:00:00Z or 2026-11-23T06:00:00+02:00", field, s)
	}
	return t, nil
}

// httpErr is an error of the hold operations with its HTTP status; it
// keeps the sentinel it wraps.
type httpErr struct {
	status int
	err    error
}

func (e *httpErr) Error() string { return e.err.Error() }
func (e *httpErr) Unwrap() error { return e.err }

// httpError gives err its HTTP status.
func httpError(err error) error {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, ErrUnavailable):
		status = http.StatusServiceUnavailable
	}
	return &httpErr{status: status, err: err}
}

// statusOf returns the HTTP status of err; 500 when it has none.
func statusOf(err error) int {
	var he *httpErr
	var we *whip.Error
	switch {
	case errors.As(err, &he):
		return he.status
	case errors.As(err, &we):
		return we.Status
	}
	return http.StatusInternalServerError
}

// reasonOf returns the message of err without the HTTP status prefix.
func reasonOf(err error) string {
	var we *whip.Error
	if errors.As(err, &we) {
		return we.Msg
	}
	return err.Error()
}

// writeError answers err as JSON: {"error": "...", "status": N}.
func writeError(w http.ResponseWriter, err error) {
	status := statusOf(err)
	writeJSON(w, status, map[string]any{"error": reasonOf(err), "status": status})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
