package ingest

import (
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strings"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/conf"
	"fieldvideo/internal/whip"
)

// cameraOrigins explains the origins in every listing.
var cameraOrigins = map[string]string{
	OriginConfig: "from cameras: in the configuration file: can be edited and disabled here (the change is kept in the cameras file " +
		"and wins until the configuration's entry itself changes); cannot be removed here: remove it from the file and restart ingest",
	OriginAPI: "added here: kept in the cameras file; can be edited, disabled and removed",
}

// CameraRoutes adds the cameras API to mux:
//
//	GET    /v1/cameras         every camera with its state (operator, commander; a wall token sees
//	                           the cameras it may view, without their URLs)
//	GET    /v1/cameras/{name}  one camera
//	POST   /v1/cameras         add a camera: {"name", "url", "username", "password", "transport",
//	                           "disabled", "position": {"lat", "lon"}, "label"}
//	PUT    /v1/cameras/{name}  change it: the fields given replace the camera's (absent ones stay);
//	                           a url whose password is *** (as listed) keeps the stored password
//	                           while the scheme, host and port stay (else it is refused)
//	DELETE /v1/cameras/{name}  remove a camera added here
//
// Changes need an operator or commander token. Every request is audited
// by the handler mux is served through (audit.HTTP); a change's event
// names the camera and what changed, never the password.
func (s *Server) CameraRoutes(mux *http.ServeMux, v *auth.Verifier) {
	h := &cameraAPI{s: s, v: v}
	mux.HandleFunc("GET /v1/cameras", h.list)
	mux.HandleFunc("GET /v1/cameras/{name}", h.get)
	mux.HandleFunc("POST /v1/cameras", h.add)
	mux.HandleFunc("PUT /v1/cameras/{name}", h.update)
	mux.HandleFunc("DELETE /v1/cameras/{name}", h.remove)
}

type cameraAPI struct {
	s *Server
	v *auth.Verifier
}

// reader returns the claims of a request that may read cameras.
func (h *cameraAPI) reader(w http.ResponseWriter, r *http.Request, action string) *auth.Claims {
	w.Header().Set("Cache-Control", "no-store")
	if ev := audit.Annotate(r); ev != nil {
		ev.Action = action
		ev.Source = r.PathValue("name")
	}
	c, err := h.v.Verify(auth.FromRequest(r))
	if err != nil {
		whip.WriteError(w, whip.Errorf(http.StatusUnauthorized, "%v", err))
		return nil
	}
	if !c.CanOperate() && c.Role != auth.RoleWall {
		whip.WriteError(w, whip.Errorf(http.StatusForbidden, "the camera list needs an operator, commander or wall token; %s has role %s", c.Who(), c.Role))
		return nil
	}
	return c
}

// operator returns the claims of a request that may change cameras.
func (h *cameraAPI) operator(w http.ResponseWriter, r *http.Request, action string) *auth.Claims {
	c := h.reader(w, r, action)
	if c != nil && !c.CanOperate() {
		whip.WriteError(w, whip.Errorf(http.StatusForbidden, "changing cameras needs an operator or commander token; %s has role %s", c.Who(), c.Role))
		return nil
	}
	return c
}

// visible returns what c may see of a camera: all of it for operators; a
// wall sees the cameras it may view, without URL and user name, and with
// the addresses in the reason hidden.
func visible(c *auth.Claims, ci CameraInfo) (CameraInfo, bool) {
	if c.CanOperate() {
		return ci, true
	}
	if !c.CanView(ci.Name) {
		return CameraInfo{}, false
	}
	ci.Reason = HideAddresses(ci.Reason, ci.URL)
	ci.URL, ci.Username = "", ""
	return ci, true
}

func (h *cameraAPI) list(w http.ResponseWriter, r *http.Request) {
	c := h.reader(w, r, "camera-list")
	if c == nil {
		return
	}
	out := []CameraInfo{}
	for _, ci := range h.s.Cameras() {
		if v, ok := visible(c, ci); ok {
			out = append(out, v)
		}
	}
	writeCameraJSON(w, http.StatusOK, map[string]any{
		"cameras": out, "max_cameras": h.s.p.MaxCameras, "persisted": h.s.p.CamerasFile != "", "origins": cameraOrigins,
	})
}

func (h *cameraAPI) get(w http.ResponseWriter, r *http.Request) {
	c := h.reader(w, r, "camera-list")
	if c == nil {
		return
	}
	ci, ok := h.s.Camera(r.PathValue("name"))
	if ok {
		ci, ok = visible(c, ci)
	}
	if !ok {
		whip.WriteError(w, whip.Errorf(http.StatusNotFound, "no camera named %s; GET /v1/cameras lists them", r.PathValue("name")))
		return
	}
	writeCameraJSON(w, http.StatusOK, map[string]any{"camera": ci})
}

func (h *cameraAPI) add(w http.ResponseWriter, r *http.Request) {
	c := h.operator(w, r, "camera-add")
	if c == nil {
		return
	}
	p, err := readCameraPatch(r)
	if err != nil {
		writeCameraError(w, err)
		return
	}
	if p.Name != nil {
		setAuditSource(r, *p.Name)
	}
	cam, err := p.Apply(nil)
	if err != nil {
		writeCameraError(w, err)
		return
	}
	ci, err := h.s.AddCamera(cam, c.Who())
	if err != nil {
		writeCameraError(w, err)
		return
	}
	if ev := audit.Annotate(r); ev != nil {
		ev.Reason = "added: " + describeCamera(cam)
	}
	w.Header().Set("Location", "/v1/cameras/"+ci.Name)
	writeCameraJSON(w, http.StatusCreated, map[string]any{"camera": ci})
}

func (h *cameraAPI) update(w http.ResponseWriter, r *http.Request) {
	c := h.operator(w, r, "camera-edit")
	if c == nil {
		return
	}
	p, err := readCameraPatch(r)
	if err != nil {
		writeCameraError(w, err)
		return
	}
	name := r.PathValue("name")
	ci, changed, err := h.s.UpdateCamera(name, p, c.Who())
	if err != nil {
		writeCameraError(w, err)
		return
	}
	if ev := audit.Annotate(r); ev != nil {
		switch {
		case len(changed) == 1 && changed[0] == "disabled" && ci.Disabled:
			ev.Action = "camera-disable"
		case len(changed) == 1 && changed[0] == "disabled":
			ev.Action = "camera-enable"
		}
		if len(changed) == 0 {
			ev.Reason = "unchanged"
		} else {
			cam, _ := h.s.cams.settings(name)
			ev.Reason = "changed " + strings.Join(changed, ", ") + ": " + describeCamera(cam)
		}
	}
	writeCameraJSON(w, http.StatusOK, map[string]any{"camera": ci, "changed": nonNilStrings(changed)})
}

func (h *cameraAPI) remove(w http.ResponseWriter, r *http.Request) {
	c := h.operator(w, r, "camera-remove")
	if c == nil {
		return
	}
	name := r.PathValue("name")
	if err := h.s.RemoveCamera(name, c.Who()); err != nil {
		writeCameraError(w, err)
		return
	}
	if ev := audit.Annotate(r); ev != nil {
		ev.Reason = "removed"
	}
	w.WriteHeader(http.StatusNoContent)
}

// readCameraPatch reads and parses a camera body of at most MaxCameraBody
// bytes.
func readCameraPatch(r *http.Request) (CameraPatch, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return CameraPatch{}, whip.Errorf(http.StatusUnsupportedMediaType, "send the camera as Content-Type: application/json")
		}
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, MaxCameraBody+1))
	if err != nil {
		return CameraPatch{}, whip.Errorf(http.StatusBadRequest, "reading the body: %v", err)
	}
	if len(b) > MaxCameraBody {
		return CameraPatch{}, whip.Errorf(http.StatusRequestEntityTooLarge, "the body is larger than %d bytes; a camera takes far less", MaxCameraBody)
	}
	return ParseCameraPatch(b)
}

func setAuditSource(r *http.Request, name string) {
	if ev := audit.Annotate(r); ev != nil && conf.SourceName.MatchString(name) {
		ev.Source = name
	}
}

// writeCameraError answers a refused request: the status of its kind and
// the message as plain text.
func writeCameraError(w http.ResponseWriter, err error) {
	ce, ok := IsCameraError(err)
	if !ok {
		whip.WriteError(w, err)
		return
	}
	status := map[CameraErrorKind]int{
		CameraInvalid: http.StatusBadRequest, CameraNotFound: http.StatusNotFound, CameraConflict: http.StatusConflict,
		CameraLimit: http.StatusConflict, CameraUnsaved: http.StatusInternalServerError, CameraClosed: http.StatusServiceUnavailable,
	}[ce.Kind]
	if status == 0 {
		status = http.StatusInternalServerError
	}
	whip.WriteError(w, whip.Errorf(status, "%s", ce.Msg))
}

func writeCameraJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
