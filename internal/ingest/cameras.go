package ingest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"fieldvideo/internal/cluster"
	"fieldvideo/internal/conf"
)

// Where a camera comes from.
const (
	// OriginConfig: cameras: in the configuration file. Such a camera can
	// be edited and disabled at run time; the change is kept in the cameras
	// file and wins over the configuration's entry until that entry itself
	// changes (then the file's version is dropped, with a warning). It
	// cannot be removed at run time: remove it from the configuration.
	OriginConfig = "config"
	// OriginAPI: added at run time, kept in the cameras file.
	OriginAPI = "api"
)

// DefaultMaxCameras bounds the cameras of one ingest when Params.MaxCameras
// is 0.
const DefaultMaxCameras = 256

// CameraInfo is a camera as the cameras API lists it. The URL never carries
// the password: it reads rtsp://user:***@host/path.
type CameraInfo struct {
	Name      string         `json:"name"`
	Label     string         `json:"label,omitempty"`
	URL       string         `json:"url,omitempty"`
	Username  string         `json:"username,omitempty"`
	Transport string         `json:"transport"`
	Disabled  bool           `json:"disabled"`
	Position  *conf.Position `json:"position,omitempty"`
	// Origin is OriginConfig or OriginAPI; Overridden says a configuration
	// camera runs with settings changed at run time; Removable whether
	// DELETE may remove it.
	Origin     string `json:"origin"`
	Overridden bool   `json:"overridden,omitempty"`
	Removable  bool   `json:"removable"`
	// State is connecting, live, failed, disabled or offline (shutting
	// down); Reason the last error or why it is disabled, without
	// credentials; Since when the state began.
	State    State     `json:"state"`
	Reason   string    `json:"reason,omitempty"`
	Since    time.Time `json:"since"`
	Failures int       `json:"failures,omitempty"`
	RetryAt  time.Time `json:"retry_at,omitzero"`
	// ChangedBy and ChangedAt name the last run-time change.
	ChangedBy string    `json:"changed_by,omitempty"`
	ChangedAt time.Time `json:"changed_at,omitzero"`
}

// CameraErrorKind says why a camera change was refused.
type CameraErrorKind int

// Kinds of refused camera changes.
const (
	CameraInvalid  CameraErrorKind = iota + 1 // the settings cannot work
	CameraNotFound                            // no camera of that name
	CameraConflict                            // the name is taken, or the camera cannot be removed
	CameraLimit                               // the set is full
	CameraUnsaved                             // the cameras file cannot be written; nothing changed
	CameraClosed                              // ingest is shutting down
)

// CameraError is a refused camera change. Its message names the field when
// one is at fault ("url: ...") and says what to do; it never holds a
// password.
type CameraError struct {
	Kind CameraErrorKind
	Msg  string
}

func (e *CameraError) Error() string { return e.Msg }

func cameraErr(kind CameraErrorKind, format string, args ...any) *CameraError {
	return &CameraError{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// cameraEntry is one camera of the set. cam, overridden, changedBy,
// changedAt are written with both cameraSet locks held and read with
// either; run only with change held.
type cameraEntry struct {
	cam        conf.Camera
	origin     string
	overridden bool
	changedBy  string
	changedAt  time.Time
	src        *source
	run        *pullerRun
}

// pullerRun is a running puller and how to stop it.
type pullerRun struct {
	cancel context.CancelCauseFunc
	done   chan struct{}
}

// cameraSet holds the pulled cameras: the configuration's, and those added
// or changed at run time, which it keeps in a file.
type cameraSet struct {
	s    *Server
	file string
	max  int
	now  func() time.Time
	// config are the configuration's cameras by name, and configSum the
	// digest of each, which a run-time change records.
	config    map[string]conf.Camera
	configSum map[string]string

	// change serialises changes: each is checked, saved to the file, then
	// applied (pullers stopped and started). It is held across that I/O;
	// mu is not.
	change  sync.Mutex
	started bool
	closed  bool

	mu      sync.Mutex
	entries map[string]*cameraEntry
}

// newCameraSet registers the configuration's cameras and those of file.
func newCameraSet(s *Server, config []conf.Camera, file string, max int) (*cameraSet, error) {
	cs := &cameraSet{
		s: s, file: file, max: max, now: time.Now,
		config: map[string]conf.Camera{}, configSum: map[string]string{}, entries: map[string]*cameraEntry{},
	}
	for i, cam := range config {
		if _, err := newPuller(s, cam); err != nil {
			return nil, fmt.Errorf("ingest: cameras[%d]: %w", i, err)
		}
		if err := cam.Check(); err != nil {
			return nil, fmt.Errorf("ingest: cameras[%d] (%s): %w", i, cam.Name, err)
		}
		if _, ok := cs.config[cam.Name]; ok {
			return nil, fmt.Errorf("ingest: cameras[%d]: name %q is used twice", i, cam.Name)
		}
		cs.config[cam.Name] = cam
		cs.configSum[cam.Name] = cameraSum(cam)
		cs.entries[cam.Name] = &cameraEntry{cam: cam, origin: OriginConfig}
	}
	stored, err := loadCameraFile(file)
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	for _, sc := range stored {
		e := cs.entries[sc.Name]
		switch {
		case sc.Origin == OriginConfig && e == nil:
			s.log.Warn("a camera changed at run time is no longer in the configuration; its run-time settings are dropped",
				"camera", sc.Name, "cameras_file", file)
			continue
		case sc.Origin == OriginConfig && sc.ConfigSHA256 != cs.configSum[sc.Name]:
			s.log.Warn("the configuration's entry of a camera changed since it was changed at run time; the configuration wins",
				"camera", sc.Name, "cameras_file", file)
			continue
		case sc.Origin == OriginAPI && e != nil:
			s.log.Warn("a camera added at run time now has an entry of the same name in the configuration; the configuration wins",
				"camera", sc.Name, "cameras_file", file)
			continue
		}
		if _, err := newPuller(s, sc.Camera); err != nil {
			return nil, fmt.Errorf("ingest: cameras_file %s: %w; fix the entry or remove it", file, err)
		}
		cs.entries[sc.Name] = &cameraEntry{
			cam: sc.Camera, origin: sc.Origin, overridden: sc.Origin == OriginConfig,
			changedBy: sc.ChangedBy, changedAt: sc.ChangedAt,
		}
	}
	for _, name := range slices.Sorted(maps.Keys(cs.entries)) {
		e := cs.entries[name]
		st := StateConnecting
		if e.cam.Disabled {
			st = StateDisabled
		}
		if e.src, err = s.reg.addCamera(name, redactForLog(e.cam.URL), st); err != nil {
			return nil, fmt.Errorf("ingest: camera %s: %w", name, err)
		}
		if e.cam.Disabled {
			s.reg.setDisabled(e.src, disabledReason(e.changedBy))
		}
	}
	return cs, nil
}

func (cs *cameraSet) count() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.entries)
}

// start starts the pullers of the enabled cameras; later changes start and
// stop them at once.
func (cs *cameraSet) start() {
	cs.change.Lock()
	defer cs.change.Unlock()
	if cs.closed {
		return
	}
	cs.started = true
	for _, e := range cs.all() {
		if !e.cam.Disabled {
			cs.startLocked(e)
		}
	}
}

// close stops every puller and refuses changes from now on.
func (cs *cameraSet) close() {
	cs.change.Lock()
	defer cs.change.Unlock()
	cs.closed = true
	for _, e := range cs.all() {
		if e.run != nil {
			e.run.cancel(nil)
		}
	}
	for _, e := range cs.all() {
		if e.run != nil {
			<-e.run.done
			e.run = nil
		}
	}
}

// all returns the entries, sorted by name.
func (cs *cameraSet) all() []*cameraEntry {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	out := make([]*cameraEntry, 0, len(cs.entries))
	for _, name := range slices.Sorted(maps.Keys(cs.entries)) {
		out = append(out, cs.entries[name])
	}
	return out
}

// startLocked starts e's puller; change must be held.
func (cs *cameraSet) startLocked(e *cameraEntry) {
	pl, err := newPuller(cs.s, e.cam)
	if err != nil { // checked when the camera was set: cannot happen
		cs.s.log.Error("cannot pull camera", "camera", e.cam.Name, "err", err)
		return
	}
	pl.src = e.src
	ctx, cancel := context.WithCancelCause(cs.s.ctx)
	run := &pullerRun{cancel: cancel, done: make(chan struct{})}
	e.run = run
	cs.s.wg.Add(1)
	go func() {
		defer cs.s.wg.Done()
		defer close(run.done)
		if cs.s.p.Leases == nil {
			pl.run(ctx)
			return
		}
		cs.s.p.Leases.Hold(ctx, e.cam.Name, pl.run, func(h cluster.Holder) {
			cs.s.reg.setStandby(e.src, standbyReason(h))
		})
	}()
}

// standbyReason says why a camera waits for its lease.
func standbyReason(h cluster.Holder) string {
	switch {
	case h.Err != nil:
		return "waiting for the cluster: " + h.Err.Error()
	case h.Node != "":
		return "pulled by " + h.Node
	}
	return "waiting for its lease"
}

// stopLocked stops e's puller, if it runs, and waits for it to end; change
// must be held.
func (cs *cameraSet) stopLocked(e *cameraEntry, reason string) {
	if e.run == nil {
		return
	}
	e.run.cancel(&pullerStop{reason: reason})
	<-e.run.done
	e.run = nil
}

// list returns every camera, sorted by name.
func (cs *cameraSet) list() []CameraInfo {
	entries := cs.all()
	out := make([]CameraInfo, 0, len(entries))
	for _, e := range entries {
		out = append(out, cs.info(e))
	}
	return out
}

func (cs *cameraSet) get(name string) (CameraInfo, bool) {
	cs.mu.Lock()
	e := cs.entries[name]
	cs.mu.Unlock()
	if e == nil {
		return CameraInfo{}, false
	}
	return cs.info(e), true
}

// settings returns a camera's settings, password included.
func (cs *cameraSet) settings(name string) (conf.Camera, bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if e := cs.entries[name]; e != nil {
		return e.cam, true
	}
	return conf.Camera{}, false
}

func (cs *cameraSet) info(e *cameraEntry) CameraInfo {
	cs.mu.Lock()
	cam, origin, over, by, at := e.cam, e.origin, e.overridden, e.changedBy, e.changedAt
	cs.mu.Unlock()
	si := cs.s.reg.info(e.src)
	ci := CameraInfo{
		Name: cam.Name, Label: cam.Label, URL: RedactURL(cam.URL), Username: urlUser(cam.URL),
		Transport: cam.Transport, Disabled: cam.Disabled, Position: clonePosition(cam.Position),
		Origin: origin, Overridden: over, Removable: origin == OriginAPI,
		State: si.State, Reason: si.Reason, Since: si.Since, Failures: si.Failures, RetryAt: si.RetryAt,
		ChangedBy: by, ChangedAt: at,
	}
	ci.Transport = transportOf(ci.Transport)
	return ci
}

// add adds a camera and starts pulling it (unless it is disabled).
func (cs *cameraSet) add(cam conf.Camera, who string) (CameraInfo, error) {
	cs.change.Lock()
	defer cs.change.Unlock()
	if cs.closed {
		return CameraInfo{}, cameraErr(CameraClosed, "ingest is shutting down; add the camera once it runs again")
	}
	if err := checkCamera(cs.s, cam); err != nil {
		return CameraInfo{}, err
	}
	cs.mu.Lock()
	old, n := cs.entries[cam.Name], len(cs.entries)
	cs.mu.Unlock()
	if old != nil {
		return CameraInfo{}, cameraErr(CameraConflict, "name: a camera named %s already exists; change it with PUT /v1/cameras/%s, or choose another name", cam.Name, cam.Name)
	}
	if n >= cs.max {
		return CameraInfo{}, cameraErr(CameraLimit, "this ingest already has %d cameras, the most it takes; remove one first", n)
	}
	st := StateConnecting
	if cam.Disabled {
		st = StateDisabled
	}
	src, err := cs.s.reg.addCamera(cam.Name, redactForLog(cam.URL), st)
	if err != nil {
		return CameraInfo{}, cameraErr(CameraConflict, "name: %s %v (an encoder publishes to it over RTSP); choose another name", cam.Name, err)
	}
	e := &cameraEntry{cam: cam, origin: OriginAPI, changedBy: who, changedAt: cs.now().UTC(), src: src}
	if err := cs.save(e, false); err != nil {
		cs.s.reg.remove(src, "the camera could not be saved")
		return CameraInfo{}, err
	}
	if cam.Disabled {
		cs.s.reg.setDisabled(src, disabledReason(who))
	}
	cs.mu.Lock()
	cs.entries[cam.Name] = e
	cs.mu.Unlock()
	if cs.started && !cam.Disabled {
		cs.startLocked(e)
	}
	cs.s.log.Info("camera added", "camera", cam.Name, "url", RedactURL(cam.URL), "by", who, "disabled", cam.Disabled)
	return cs.info(e), nil
}

// update applies p to a camera: a new URL or transport reconnects it,
// disabling stops it (it goes offline), enabling starts it; a new label or
// position changes nothing else. It returns the names of the fields that
// changed (none: nothing was saved).
func (cs *cameraSet) update(name string, p CameraPatch, who string) (CameraInfo, []string, error) {
	cs.change.Lock()
	defer cs.change.Unlock()
	if cs.closed {
		return CameraInfo{}, nil, cameraErr(CameraClosed, "ingest is shutting down; change the camera once it runs again")
	}
	cs.mu.Lock()
	e := cs.entries[name]
	cs.mu.Unlock()
	if e == nil {
		return CameraInfo{}, nil, cameraErr(CameraNotFound, "no camera named %s; GET /v1/cameras lists them", name)
	}
	old := e.cam
	cam, err := p.Apply(&old)
	if err != nil {
		return CameraInfo{}, nil, err
	}
	if err := checkCamera(cs.s, cam); err != nil {
		return CameraInfo{}, nil, err
	}
	changed := changedFields(old, cam)
	if len(changed) == 0 {
		return cs.info(e), nil, nil
	}
	// A configuration camera set back to its configuration's settings is
	// no longer overridden, and leaves the file.
	overridden := e.origin == OriginConfig && !reflect.DeepEqual(cam, cs.config[name])
	next := &cameraEntry{cam: cam, origin: e.origin, overridden: overridden, changedBy: who, changedAt: cs.now().UTC(), src: e.src}
	if err := cs.save(next, false); err != nil {
		return CameraInfo{}, nil, err
	}
	cs.mu.Lock()
	e.cam, e.overridden, e.changedBy, e.changedAt = next.cam, next.overridden, next.changedBy, next.changedAt
	cs.mu.Unlock()

	reconnect := slices.ContainsFunc(changed, func(f string) bool { return f == "url" || f == "password" || f == "transport" })
	switch {
	case cam.Disabled && !old.Disabled:
		cs.stopLocked(e, disabledReason(who))
		cs.s.reg.setURL(e.src, redactForLog(cam.URL))
		cs.s.reg.setDisabled(e.src, disabledReason(who))
	case !cam.Disabled && (old.Disabled || reconnect):
		cs.stopLocked(e, "settings changed by "+who+"; reconnecting")
		cs.s.reg.setURL(e.src, redactForLog(cam.URL))
		cs.s.reg.setConnecting(e.src, "")
		if cs.started {
			cs.startLocked(e)
		}
	case reconnect:
		cs.s.reg.setURL(e.src, redactForLog(cam.URL))
	}
	cs.s.log.Info("camera changed", "camera", name, "changed", strings.Join(changed, ","), "url", RedactURL(cam.URL), "by", who)
	return cs.info(e), changed, nil
}

// remove stops a camera added at run time and forgets it.
func (cs *cameraSet) remove(name, who string) error {
	cs.change.Lock()
	defer cs.change.Unlock()
	if cs.closed {
		return cameraErr(CameraClosed, "ingest is shutting down; remove the camera once it runs again")
	}
	cs.mu.Lock()
	e := cs.entries[name]
	cs.mu.Unlock()
	if e == nil {
		return cameraErr(CameraNotFound, "no camera named %s; GET /v1/cameras lists them", name)
	}
	if e.origin == OriginConfig {
		return cameraErr(CameraConflict, "camera %s comes from the configuration (cameras: in the file, or FV_INGEST_CAMERAS) and cannot be removed here; disable it (PUT {\"disabled\": true}), or remove it there and restart ingest", name)
	}
	if err := cs.save(&cameraEntry{cam: conf.Camera{Name: name}}, true); err != nil {
		return err
	}
	reason := "removed by " + who
	cs.stopLocked(e, reason)
	cs.s.reg.remove(e.src, reason)
	cs.mu.Lock()
	delete(cs.entries, name)
	cs.mu.Unlock()
	cs.s.log.Info("camera removed", "camera", name, "by", who)
	if f := cs.s.p.OnRemoved; f != nil {
		go f(name)
	}
	return nil
}

// save writes the cameras file as it is with e in place of the entry of its
// name (or without it, when drop is set). change must be held.
func (cs *cameraSet) save(e *cameraEntry, drop bool) error {
	if cs.file == "" {
		return nil
	}
	var out []storedCamera
	for _, x := range cs.all() {
		if x.cam.Name == e.cam.Name {
			continue
		}
		cs.mu.Lock()
		out = appendStored(out, x, cs.configSum)
		cs.mu.Unlock()
	}
	if !drop {
		out = appendStored(out, e, cs.configSum)
	}
	slices.SortFunc(out, func(a, b storedCamera) int { return strings.Compare(a.Name, b.Name) })
	if err := saveCameraFile(cs.file, out); err != nil {
		cs.s.log.Error("cannot save the cameras file; the change was refused", "cameras_file", cs.file, "err", err)
		return cameraErr(CameraUnsaved, "cannot save the cameras to %s (%v); nothing was changed: free space or fix the permissions, then try again", cs.file, err)
	}
	return nil
}

// appendStored adds e to out when the file must keep it: every camera added
// at run time, and the configuration's cameras changed at run time.
func appendStored(out []storedCamera, e *cameraEntry, sums map[string]string) []storedCamera {
	switch {
	case e.origin == OriginAPI:
		return append(out, storedCamera{Camera: e.cam, Origin: OriginAPI, ChangedBy: e.changedBy, ChangedAt: e.changedAt})
	case e.overridden:
		return append(out, storedCamera{Camera: e.cam, Origin: OriginConfig, ConfigSHA256: sums[e.cam.Name], ChangedBy: e.changedBy, ChangedAt: e.changedAt})
	}
	return out
}

// checkCamera reports what in cam cannot work, as an invalid-camera error.
func checkCamera(s *Server, cam conf.Camera) error {
	if err := cam.Check(); err != nil {
		return cameraErr(CameraInvalid, "%v", err)
	}
	if _, err := newPuller(s, cam); err != nil {
		return cameraErr(CameraInvalid, "url: %v", strings.TrimPrefix(err.Error(), "camera "+cam.Name+": "))
	}
	return nil
}

// changedFields names the settings that differ between a and b.
func changedFields(a, b conf.Camera) []string {
	var out []string
	ua, pa := urlCredentials(a.URL)
	ub, pb := urlCredentials(b.URL)
	addressChanged := RedactURL(a.URL) != RedactURL(b.URL) || ua != ub
	if addressChanged {
		out = append(out, "url")
	}
	if pa != pb || (!addressChanged && !sameURL(a.URL, b.URL)) {
		out = append(out, "password")
	}
	if transportOf(a.Transport) != transportOf(b.Transport) {
		out = append(out, "transport")
	}
	if a.Disabled != b.Disabled {
		out = append(out, "disabled")
	}
	if !reflect.DeepEqual(a.Position, b.Position) {
		out = append(out, "position")
	}
	if a.Label != b.Label {
		out = append(out, "label")
	}
	return out
}

func disabledReason(who string) string {
	if who == "" {
		return "disabled"
	}
	return "disabled by " + who
}

func clonePosition(p *conf.Position) *conf.Position {
	if p == nil {
		return nil
	}
	c := *p
	return &c
}

// Cameras returns every pulled camera, sorted by name, with its state.
func (s *Server) Cameras() []CameraInfo { return s.cams.list() }

// Camera returns one pulled camera.
func (s *Server) Camera(name string) (CameraInfo, bool) { return s.cams.get(name) }

// AddCamera adds a camera, saves it to the cameras file and starts pulling
// it at once (unless it is disabled). who names the actor for the reason
// and the file. Errors are *CameraError.
func (s *Server) AddCamera(cam conf.Camera, who string) (CameraInfo, error) {
	return s.cams.add(cam, who)
}

// UpdateCamera changes a camera by p and saves it; see cameraSet.update for
// what each change does. It returns the names of the changed fields.
func (s *Server) UpdateCamera(name string, p CameraPatch, who string) (CameraInfo, []string, error) {
	return s.cams.update(name, p, who)
}

// RemoveCamera stops a camera added at run time and forgets it; the
// configuration's cameras can only be disabled.
func (s *Server) RemoveCamera(name, who string) error { return s.cams.remove(name, who) }

// IsCameraError reports whether err is a refused camera change, and which.
func IsCameraError(err error) (*CameraError, bool) {
	var ce *CameraError
	ok := errors.As(err, &ce)
	return ce, ok
}
