package sfu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/whip"
)

// Bounds of the cameras API relay.
const (
	cameraRelayTimeout = 10 * time.Second
	maxCameraRequest   = 64 << 10
	maxCameraAnswer    = 4 << 20
)

// cameraRelay passes the cameras API (/v1/cameras...) on to the ingests
// named by ingest_api, so that the console, which the SFU serves, manages
// the cameras of every ingest. It passes the caller's token on: ingest
// checks it and audits the change with its subject, as the SFU audits the
// request. GET /v1/cameras merges the ingests' lists; each camera carries
// "ingest", the index of its ingest in ingest_api, which a change names
// with ?ingest=N when there are several.
type cameraRelay struct {
	s      *Server
	bases  []string
	client *http.Client
}

// cameraRoutes adds the cameras API relay to mux.
func (s *Server) cameraRoutes(mux *http.ServeMux) {
	bases := make([]string, len(s.p.Conf.IngestAPI))
	for i, b := range s.p.Conf.IngestAPI {
		bases[i] = strings.TrimRight(b, "/")
	}
	cr := &cameraRelay{s: s, bases: bases, client: &http.Client{
		Timeout: cameraRelayTimeout,
		// The token goes to the configured ingests only, never to where
		// one redirects.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	mux.HandleFunc("GET /v1/cameras", cr.list)
	mux.HandleFunc("POST /v1/cameras", cr.forward)
	mux.HandleFunc("GET /v1/cameras/{name}", cr.forward)
	mux.HandleFunc("PUT /v1/cameras/{name}", cr.forward)
	mux.HandleFunc("DELETE /v1/cameras/{name}", cr.forward)
	mux.HandleFunc("OPTIONS /v1/cameras", s.handleOptions)
	mux.HandleFunc("OPTIONS /v1/cameras/{name}", s.handleOptions)
}

// start checks what every relayed request needs: a valid token and an
// ingest to ask. It returns the token, or "" after answering.
func (cr *cameraRelay) start(w http.ResponseWriter, r *http.Request) string {
	cr.s.cors(w)
	w.Header().Set("Cache-Control", "no-store")
	if ev := audit.Annotate(r); ev != nil {
		ev.Action, ev.Source = "cameras", r.PathValue("name")
	}
	token := auth.FromRequest(r)
	if _, err := cr.s.p.Verifier.Verify(token); err != nil {
		whip.WriteError(w, whip.Errorf(http.StatusUnauthorized, "%v", err))
		return ""
	}
	if len(cr.bases) == 0 {
		whip.WriteError(w, whip.Errorf(http.StatusServiceUnavailable,
			"this SFU knows no ingest, so there are no cameras to manage here: set ingest_api in the SFU's configuration "+
				"(configs/sfu.yml, or FV_SFU_INGEST_API) to the address of each ingest's API, e.g. [\"http://127.0.0.1:9997\"]"))
		return ""
	}
	return token
}

// ingestAnswer is one ingest's answer to a relayed request.
type ingestAnswer struct {
	status int
	header http.Header
	body   []byte
	err    error // the ingest could not be asked; the message names it
}

// ask sends one request to ingest i.
func (cr *cameraRelay) ask(ctx context.Context, i int, method, path, token string, body []byte, contentType string) ingestAnswer {
	base := cr.bases[i]
	req, err := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(body))
	if err != nil {
		return ingestAnswer{err: fmt.Errorf("ingest %s: %v", base, err)}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := cr.client.Do(req)
	if err != nil {
		why := err.Error()
		if errors.Is(err, context.DeadlineExceeded) || strings.Contains(why, "Client.Timeout") {
			why = fmt.Sprintf("no answer within %s", cameraRelayTimeout)
		}
		return ingestAnswer{err: fmt.Errorf("ingest %s is unreachable (%s); check that it runs and that ingest_api in the SFU's configuration names its API address", base, why)}
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxCameraAnswer+1))
	if err == nil && len(b) > maxCameraAnswer {
		err = fmt.Errorf("the answer is larger than %d bytes", maxCameraAnswer)
	}
	if err != nil {
		return ingestAnswer{err: fmt.Errorf("ingest %s: reading its answer: %v", base, err)}
	}
	return ingestAnswer{status: res.StatusCode, header: res.Header, body: b}
}

// list merges the camera lists of every ingest. Ingests that cannot answer
// are named in "ingests"; when none answers, the answer is 502 naming them
// (or the ingests' own refusal, such as 401 or 403, when they refused).
func (cr *cameraRelay) list(w http.ResponseWriter, r *http.Request) {
	token := cr.start(w, r)
	if token == "" {
		return
	}
	answers := make([]ingestAnswer, len(cr.bases))
	var wg sync.WaitGroup
	for i := range cr.bases {
		wg.Go(func() { answers[i] = cr.ask(r.Context(), i, http.MethodGet, "/v1/cameras", token, nil, "") })
	}
	wg.Wait()

	type ingestState struct {
		Index      int    `json:"index"`
		URL        string `json:"url"`
		OK         bool   `json:"ok"`
		Error      string `json:"error,omitempty"`
		MaxCameras int    `json:"max_cameras,omitempty"`
		Persisted  bool   `json:"persisted,omitempty"`
	}
	cameras := []map[string]json.RawMessage{}
	states := make([]ingestState, len(cr.bases))
	var origins json.RawMessage
	var failures []string
	var refused *ingestAnswer
	for i, a := range answers {
		st := ingestState{Index: i, URL: cr.bases[i]}
		var body struct {
			Cameras    []map[string]json.RawMessage `json:"cameras"`
			MaxCameras int                          `json:"max_cameras"`
			Persisted  bool                         `json:"persisted"`
			Origins    json.RawMessage              `json:"origins"`
		}
		switch {
		case a.err != nil:
			st.Error = a.err.Error()
		case a.status != http.StatusOK:
			st.Error = fmt.Sprintf("ingest %s answered %d: %s", cr.bases[i], a.status, firstLine(a.body))
			if refused == nil {
				refused = &answers[i]
			}
		case json.Unmarshal(a.body, &body) != nil || body.Cameras == nil:
			st.Error = fmt.Sprintf("ingest %s sent no camera list; is the address that of ingest's API (api.address)?", cr.bases[i])
		default:
			st.OK, st.MaxCameras, st.Persisted = true, body.MaxCameras, body.Persisted
			if origins == nil {
				origins = body.Origins
			}
			for _, c := range body.Cameras {
				c["ingest"] = json.RawMessage(strconv.Itoa(i))
				cameras = append(cameras, c)
			}
		}
		if !st.OK {
			failures = append(failures, st.Error)
		}
		states[i] = st
	}
	if len(failures) == len(cr.bases) {
		if refused != nil {
			relay(w, *refused)
			return
		}
		whip.WriteError(w, whip.Errorf(http.StatusBadGateway, "%s", strings.Join(failures, "; ")))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"cameras": cameras, "ingests": states, "origins": origins})
}

// forward passes one request on to the ingest it concerns: the one
// ?ingest=N names, the only one, or (for a named camera) the one that
// lists it.
func (cr *cameraRelay) forward(w http.ResponseWriter, r *http.Request) {
	token := cr.start(w, r)
	if token == "" {
		return
	}
	var body []byte
	if r.Method == http.MethodPost || r.Method == http.MethodPut {
		var err error
		body, err = io.ReadAll(io.LimitReader(r.Body, maxCameraRequest+1))
		if err != nil {
			whip.WriteError(w, whip.Errorf(http.StatusBadRequest, "reading the body: %v", err))
			return
		}
		if len(body) > maxCameraRequest {
			whip.WriteError(w, whip.Errorf(http.StatusRequestEntityTooLarge, "the body is larger than %d bytes; a camera takes far less", maxCameraRequest))
			return
		}
	}
	path := r.URL.EscapedPath()
	i, err := cr.pick(r, token, path)
	if err != nil {
		whip.WriteError(w, err)
		return
	}
	a := cr.ask(r.Context(), i, r.Method, path, token, body, r.Header.Get("Content-Type"))
	if a.err != nil {
		whip.WriteError(w, whip.Errorf(http.StatusBadGateway, "%v", a.err))
		return
	}
	relay(w, a)
}

// pick returns the index of the ingest a request goes to.
func (cr *cameraRelay) pick(r *http.Request, token, path string) (int, error) {
	if q := r.URL.Query().Get("ingest"); q != "" {
		i, err := strconv.Atoi(q)
		if err != nil || i < 0 || i >= len(cr.bases) {
			return 0, whip.Errorf(http.StatusBadRequest, "ingest=%q: use the index of an ingest, 0 to %d, as GET /v1/cameras lists them", q, len(cr.bases)-1)
		}
		return i, nil
	}
	if len(cr.bases) == 1 {
		return 0, nil
	}
	if r.PathValue("name") == "" {
		return 0, whip.Errorf(http.StatusBadRequest, "%d ingests are configured; say which one takes the camera with ?ingest=N (0 to %d, as GET /v1/cameras lists them)",
			len(cr.bases), len(cr.bases)-1)
	}
	var unreachable []string
	for i := range cr.bases {
		a := cr.ask(r.Context(), i, http.MethodGet, path, token, nil, "")
		switch {
		case a.err != nil:
			unreachable = append(unreachable, a.err.Error())
		case a.status == http.StatusOK:
			return i, nil
		}
	}
	if len(unreachable) > 0 {
		return 0, whip.Errorf(http.StatusBadGateway, "no reachable ingest has camera %s; %s", r.PathValue("name"), strings.Join(unreachable, "; "))
	}
	return 0, whip.Errorf(http.StatusNotFound, "no ingest has a camera named %s; GET /v1/cameras lists them", r.PathValue("name"))
}

// relay sends an ingest's answer on.
func relay(w http.ResponseWriter, a ingestAnswer) {
	for _, h := range []string{"Content-Type", "Location"} {
		if v := a.header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
}

func firstLine(b []byte) string {
	line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if len(line) > 300 {
		line = line[:300] + "…"
	}
	return line
}
