package ingest

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"fieldvideo/internal/conf"
	"fieldvideo/internal/stream"
	"fieldvideo/internal/testkit"
)

// rtCamPass is the password of the run-time test cameras.
const rtCamPass = "rt-camera-pw-7f3a"

func strp(s string) *string { return &s }
func boolp(b bool) *bool    { return &b }

// cameraHooks counts OnLive and OnOffline calls per source.
type cameraHooks struct {
	mu            sync.Mutex
	live, offline map[string]int
}

func (h *cameraHooks) params(p *Params) {
	h.live, h.offline = map[string]int{}, map[string]int{}
	p.OnLive = func(name string, _ *stream.Stream) { h.mu.Lock(); h.live[name]++; h.mu.Unlock() }
	p.OnOffline = func(name string) { h.mu.Lock(); h.offline[name]++; h.mu.Unlock() }
}

func (h *cameraHooks) counts(name string) (live, offline int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.live[name], h.offline[name]
}

func (e *testEnv) waitCamera(t *testing.T, name string, st State) CameraInfo {
	t.Helper()
	var ci CameraInfo
	testkit.WaitFor(t, waitTimeout, "camera "+name+" to be "+string(st), func() bool {
		var ok bool
		ci, ok = e.srv.Camera(name)
		return ok && ci.State == st
	})
	return ci
}

// TestCamerasAtRunTime adds, edits, disables, enables and removes a camera
// while ingest runs, against real RTSP cameras on loopback, and restarts
// ingest on the same cameras file.
func TestCamerasAtRunTime(t *testing.T) {
	camA := testkit.StartRTSPCamera(t, testkit.RTSPCameraParams{User: "admin", Pass: rtCamPass})
	camB := testkit.StartRTSPCamera(t, testkit.RTSPCameraParams{User: "admin", Pass: rtCamPass})
	file := filepath.Join(t.TempDir(), "data", "cameras.json")
	logs := &lockedBuffer{}
	hooks := &cameraHooks{}
	setup := func(p *Params) {
		p.CamerasFile = file
		p.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		hooks.params(p)
	}
	env := newTestServer(t, setup)

	// add: live within the deadline, the camera sees one session.
	ci, err := env.srv.AddCamera(conf.Camera{Name: "gate", URL: camA.URL("stream"), Transport: "tcp", Label: "North gate",
		Position: &conf.Position{Lat: 25.033, Lon: 121.5654}}, "op1")
	if err != nil {
		t.Fatal(err)
	}
	if ci.Origin != OriginAPI || !ci.Removable || ci.URL != "rtsp://admin:***@"+camA.Addr()+"/stream" || ci.Username != "admin" {
		t.Fatalf("added camera %+v: want origin api, removable, the URL redacted as rtsp://admin:***@host/stream", ci)
	}
	ci = env.waitCamera(t, "gate", StateLive)
	if ci.Since.IsZero() || ci.Reason != "" {
		t.Fatalf("live camera %+v: want a since time and no reason", ci)
	}
	testkit.WaitFor(t, waitTimeout, "camera A to play one session", func() bool { return camA.Playing() == 1 })

	// move it to B sending the password back as ***: refused, the stored password stays
	// with A's address; typed again, it reconnects to B.
	_, _, err = env.srv.UpdateCamera("gate", CameraPatch{URL: strp("rtsp://admin:***@" + camB.Addr() + "/other")}, "op2")
	if !isKind(err, CameraInvalid) || !strings.Contains(err.Error(), "address changed from "+camA.Addr()+" to "+camB.Addr()) {
		t.Fatalf("moving the camera with ***: %v, want it refused naming both addresses", err)
	}
	if ci, _ := env.srv.Camera("gate"); ci.State != StateLive || camA.Plays() != 1 || camB.Plays() != 0 {
		t.Fatalf("camera %+v, A played %d, B %d: a refused change must change nothing", ci, camA.Plays(), camB.Plays())
	}
	_, changed, err := env.srv.UpdateCamera("gate", CameraPatch{URL: strp("rtsp://admin:" + rtCamPass + "@" + camB.Addr() + "/other")}, "op2")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(changed, ",") != "url" {
		t.Fatalf("changed %v: want url only (the same password)", changed)
	}
	testkit.WaitFor(t, waitTimeout, "A's session to end and B to play", func() bool {
		return camA.Playing() == 0 && camA.Ended() == 1 && camB.Playing() == 1
	})
	env.waitCamera(t, "gate", StateLive)
	if live, offline := hooks.counts("gate"); live < 2 || offline < 1 {
		t.Fatalf("hooks live %d, offline %d: want the source to leave and come back on the edit", live, offline)
	}

	// a label change does not reconnect.
	if _, changed, err = env.srv.UpdateCamera("gate", CameraPatch{Label: strp("North gate, car park")}, "op2"); err != nil || strings.Join(changed, ",") != "label" {
		t.Fatalf("label change: %v %v", changed, err)
	}
	if camB.Plays() != 1 {
		t.Fatalf("camera B answered %d PLAYs: a label change must not reconnect", camB.Plays())
	}

	// disable: the session ends, the camera stays listed as disabled, the source leaves.
	if _, _, err = env.srv.UpdateCamera("gate", CameraPatch{Disabled: boolp(true)}, "op3"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, waitTimeout, "B's session to end", func() bool { return camB.Playing() == 0 && camB.Ended() == 1 })
	ci = env.waitCamera(t, "gate", StateDisabled)
	if !ci.Disabled || ci.Reason != "disabled by op3" {
		t.Fatalf("disabled camera %+v: want disabled, reason naming who", ci)
	}
	testkit.WaitFor(t, waitTimeout, "OnOffline after disabling", func() bool {
		live, offline := hooks.counts("gate")
		return offline == live
	})
	if si, ok := env.srv.Source("gate"); !ok || si.State != StateDisabled {
		t.Fatalf("source %+v: want it listed as disabled", si)
	}

	// name clashes: another camera, and a pushed source.
	if _, err := env.srv.AddCamera(conf.Camera{Name: "gate", URL: camA.URL("x")}, "op1"); !isKind(err, CameraConflict) || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second camera named gate: %v", err)
	}
	if _, err := env.srv.reg.claim("field1", nil, "encoder", "127.0.0.1:1", nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := env.srv.AddCamera(conf.Camera{Name: "field1", URL: camA.URL("x")}, "op1"); !isKind(err, CameraConflict) || !strings.Contains(err.Error(), "pushed source") {
		t.Fatalf("camera named like a pushed source: %v", err)
	}

	// restart on the same file: the camera is back, disabled, with B's URL; enabling pulls B.
	env.srv.Close()
	env = newTestServer(t, setup)
	ci = env.waitCamera(t, "gate", StateDisabled)
	if ci.URL != "rtsp://admin:***@"+camB.Addr()+"/other" || ci.Label != "North gate, car park" || ci.Position == nil || ci.ChangedBy != "op3" {
		t.Fatalf("camera after the restart %+v: want B's URL, the label, the position and the last changer", ci)
	}
	if _, _, err = env.srv.UpdateCamera("gate", CameraPatch{Disabled: boolp(false)}, "op1"); err != nil {
		t.Fatal(err)
	}
	env.waitCamera(t, "gate", StateLive)
	testkit.WaitFor(t, waitTimeout, "B to play again", func() bool { return camB.Playing() == 1 })

	// remove: the session ends, the camera and its source are gone, also from the file.
	if err := env.srv.RemoveCamera("gate", "op1"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, waitTimeout, "B's session to end after the removal", func() bool { return camB.Playing() == 0 })
	if _, ok := env.srv.Camera("gate"); ok {
		t.Fatal("the removed camera is still listed")
	}
	if _, ok := env.srv.Source("gate"); ok {
		t.Fatal("the removed camera's source is still listed")
	}
	stored, err := loadCameraFile(file)
	if err != nil || len(stored) != 0 {
		t.Fatalf("cameras file after the removal: %v %v", stored, err)
	}
	if err := env.srv.RemoveCamera("gate", "op1"); !isKind(err, CameraNotFound) {
		t.Fatalf("removing it twice: %v", err)
	}
	// the name is free again.
	if _, err := env.srv.AddCamera(conf.Camera{Name: "gate", URL: camA.URL("again"), Transport: "tcp"}, "op1"); err != nil {
		t.Fatal(err)
	}
	env.waitCamera(t, "gate", StateLive)

	for _, text := range []string{logs.String(), mustJSON(t, env.srv.Cameras()), mustJSON(t, env.srv.Sources())} {
		if strings.Contains(text, rtCamPass) {
			t.Fatalf("the camera password leaked: %s", text)
		}
	}
	st, err := os.Stat(file)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("cameras file %v %v: want mode 0600 (it holds passwords)", st, err)
	}
	if tmp, _ := filepath.Glob(filepath.Join(filepath.Dir(file), ".*.tmp")); len(tmp) != 0 {
		t.Fatalf("temporary files left: %v", tmp)
	}
}

// TestConfigCameras: cameras of the configuration can be disabled at run
// time (kept across restarts) but not removed; an edit of the
// configuration's entry wins over the run-time change.
func TestConfigCameras(t *testing.T) {
	cam := testkit.StartRTSPCamera(t, testkit.RTSPCameraParams{User: "admin", Pass: rtCamPass})
	file := filepath.Join(t.TempDir(), "cameras.json")
	yaml := []conf.Camera{{Name: "mast", URL: cam.URL("a"), Transport: "tcp"}}
	start := func() *testEnv {
		return newTestServer(t, func(p *Params) { p.Cameras, p.CamerasFile = yaml, file })
	}
	env := start()
	ci := env.waitCamera(t, "mast", StateLive)
	if ci.Origin != OriginConfig || ci.Removable || ci.Overridden {
		t.Fatalf("configuration camera %+v", ci)
	}
	if err := env.srv.RemoveCamera("mast", "op"); !isKind(err, CameraConflict) || !strings.Contains(err.Error(), "FV_INGEST_CAMERAS") {
		t.Fatalf("removing a configuration camera: %v", err)
	}
	// its password stays with its address, as a run-time camera's does.
	other := testkit.StartRTSPCamera(t, testkit.RTSPCameraParams{User: "admin", Pass: rtCamPass})
	if _, _, err := env.srv.UpdateCamera("mast", CameraPatch{URL: strp("rtsp://admin:***@" + other.Addr() + "/a")}, "op"); !isKind(err, CameraInvalid) ||
		!strings.HasPrefix(err.Error(), "password: the camera's address changed from "+cam.Addr()+" to "+other.Addr()) {
		t.Fatalf("moving a configuration camera with ***: %v, want it refused", err)
	}
	if _, _, err := env.srv.UpdateCamera("mast", CameraPatch{Disabled: boolp(true)}, "op"); err != nil {
		t.Fatal(err)
	}
	env.waitCamera(t, "mast", StateDisabled)
	testkit.WaitFor(t, waitTimeout, "the camera's session to end", func() bool { return cam.Playing() == 0 })
	if other.Plays() != 0 {
		t.Fatalf("the other camera was played %d times: the stored password went there", other.Plays())
	}

	env.srv.Close()
	env = start()
	ci = env.waitCamera(t, "mast", StateDisabled)
	if !ci.Overridden {
		t.Fatalf("camera after the restart %+v: want the run-time change kept", ci)
	}
	// enabling again sets it back to the configuration's settings: it leaves the file.
	if _, _, err := env.srv.UpdateCamera("mast", CameraPatch{Disabled: boolp(false)}, "op"); err != nil {
		t.Fatal(err)
	}
	if ci = env.waitCamera(t, "mast", StateLive); ci.Overridden {
		t.Fatalf("camera back at its configuration %+v: want it not overridden", ci)
	}
	if stored, err := loadCameraFile(file); err != nil || len(stored) != 0 {
		t.Fatalf("cameras file: %+v %v: want no entry", stored, err)
	}

	// disabled again, then the configuration's entry changes: the configuration wins.
	if _, _, err := env.srv.UpdateCamera("mast", CameraPatch{Disabled: boolp(true)}, "op"); err != nil {
		t.Fatal(err)
	}
	env.srv.Close()
	yaml[0].URL = cam.URL("b")
	env = start()
	if ci = env.waitCamera(t, "mast", StateLive); ci.Overridden || !strings.HasSuffix(ci.URL, "/b") {
		t.Fatalf("camera after the configuration changed %+v: want the configuration's settings", ci)
	}
}

// TestCamerasLimitsAndBadFile: the camera count is bounded, a bad cameras
// file stops the start with a message naming it, and a file that cannot
// be written refuses the change.
func TestCamerasLimitsAndBadFile(t *testing.T) {
	dir := t.TempDir()
	env := newTestServer(t, func(p *Params) { p.MaxCameras = 1; p.CamerasFile = filepath.Join(dir, "ok.json") })
	if _, err := env.srv.AddCamera(conf.Camera{Name: "a", URL: "rtsp://127.0.0.1:1/a", Disabled: true}, "op"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.srv.AddCamera(conf.Camera{Name: "b", URL: "rtsp://127.0.0.1:1/b"}, "op"); !isKind(err, CameraLimit) {
		t.Fatalf("second camera over a limit of 1: %v", err)
	}
	if _, err := env.srv.AddCamera(conf.Camera{Name: "bad name", URL: "rtsp://127.0.0.1:1/b"}, "op"); !isKind(err, CameraInvalid) {
		t.Fatalf("bad name: %v", err)
	}

	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"version":1,"cameras":[{"name":"x","url":"http://admin:filepw-123@h/"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New(Params{RTSP: conf.RTSP{Address: "127.0.0.1:0"}, Verifier: env.srv.p.Verifier, Audit: env.srv.p.Audit, CamerasFile: bad})
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "rtsp://") || strings.Contains(err.Error(), "filepw-123") {
		t.Fatalf("bad cameras file: %v: want an error naming the file and the fix, without the password", err)
	}

	// a directory where the file should be: the change is refused and not made.
	blocked := filepath.Join(dir, "blocked", "cameras.json")
	env2 := newTestServer(t, func(p *Params) { p.CamerasFile = blocked })
	if err := os.MkdirAll(blocked, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := env2.srv.AddCamera(conf.Camera{Name: "c", URL: "rtsp://127.0.0.1:1/c", Disabled: true}, "op"); !isKind(err, CameraUnsaved) {
		t.Fatalf("unwritable file: %v", err)
	}
	if _, ok := env2.srv.Camera("c"); ok {
		t.Fatal("a camera that could not be saved was added")
	}
	if _, ok := env2.srv.Source("c"); ok {
		t.Fatal("a camera that could not be saved left a source")
	}
}

func isKind(err error, k CameraErrorKind) bool {
	ce, ok := IsCameraError(err)
	return ok && ce.Kind == k
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
