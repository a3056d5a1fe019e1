package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/conf"
	"fieldvideo/internal/ingest"
	"fieldvideo/internal/node"
	"fieldvideo/internal/testkit"
)

var apiSecret = []byte("ingest-api-test-secret-ingest-api-test-secret")

// camPass is the password of the test camera; it must never come back.
const camPass = "api-camera-pw-5c1e"

// apiEnv is ingest's API (the handler main serves) over an ingest with a
// cameras file, on loopback.
type apiEnv struct {
	t         *testing.T
	base      string
	auditPath string
	srv       *ingest.Server
	logs      *syncBuffer // ingest's log, debug lines included
}

func startAPI(t *testing.T, camerasFile string, maxCameras int) *apiEnv {
	t.Helper()
	v, err := auth.NewVerifier(apiSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	auditPath := filepath.Join(dir, "audit.log")
	al, err := audit.Open(audit.Params{File: auditPath, KeyFile: filepath.Join(dir, "audit.key")})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	in, err := ingest.New(ingest.Params{
		RTSP: conf.RTSP{Address: "127.0.0.1:0"}, CamerasFile: camerasFile, MaxCameras: maxCameras,
		Reconnect: conf.Reconnect{Min: 50 * time.Millisecond, Max: 400 * time.Millisecond},
		Stream:    conf.DefaultIngest().Stream, Verifier: v, Audit: al, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	a := &api{ingest: in, uplinks: &uplinks{log: log}, node: &node.Node{Name: "ingest", Log: log, Verifier: v, Audit: al}}
	hs := httptest.NewServer(a.handler())
	t.Cleanup(func() {
		hs.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		al.Close()
	})
	return &apiEnv{t: t, base: hs.URL, auditPath: auditPath, srv: in, logs: logs}
}

func (e *apiEnv) token(role auth.Role, sub string, view ...string) string {
	e.t.Helper()
	c := auth.Claims{Role: role, View: view}
	c.Subject = sub
	tok, err := auth.Mint(apiSecret, c, time.Hour, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// do sends a request and returns the status and body.
func (e *apiEnv) do(method, path, token, contentType, body string) (int, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.base+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return res.StatusCode, string(b)
}

type cameraList struct {
	Cameras    []ingest.CameraInfo `json:"cameras"`
	MaxCameras int                 `json:"max_cameras"`
	Persisted  bool                `json:"persisted"`
	Origins    map[string]string   `json:"origins"`
}

func (e *apiEnv) list(token string) cameraList {
	e.t.Helper()
	status, body := e.do("GET", "/v1/cameras", token, "", "")
	if status != http.StatusOK {
		e.t.Fatalf("GET /v1/cameras: %d %s", status, body)
	}
	var l cameraList
	if err := json.Unmarshal([]byte(body), &l); err != nil {
		e.t.Fatal(err)
	}
	return l
}

func (e *apiEnv) waitState(token, name string, st ingest.State) ingest.CameraInfo {
	e.t.Helper()
	var found ingest.CameraInfo
	testkit.WaitFor(e.t, 20*time.Second, "camera "+name+" "+string(st), func() bool {
		for _, c := range e.list(token).Cameras {
			if c.Name == name && c.State == st {
				found = c
				return true
			}
		}
		return false
	})
	return found
}

// TestCamerasAPI drives the cameras API as the console does: roles, bad
// bodies, add → live, edit keeping the password, disable, remove, limits;
// no answer and no audit line ever carries the camera's password.
func TestCamerasAPI(t *testing.T) {
	cam := testkit.StartRTSPCamera(t, testkit.RTSPCameraParams{User: "admin", Pass: camPass})
	e := startAPI(t, filepath.Join(t.TempDir(), "cameras.json"), 2)
	op := e.token(auth.RoleOperator, "op-anna")
	wall := e.token(auth.RoleWall, "eoc-wall", "gate")
	responder := e.token(auth.RoleResponder, "resp-1", "*")
	var answers []string
	keep := func(status int, body string) (int, string) { answers = append(answers, body); return status, body }

	// roles
	if status, body := keep(e.do("GET", "/v1/cameras", "", "", "")); status != http.StatusUnauthorized || !strings.Contains(body, "no token") {
		t.Fatalf("no token: %d %s", status, body)
	}
	if status, body := keep(e.do("GET", "/v1/cameras", responder, "", "")); status != http.StatusForbidden || !strings.Contains(body, "operator, commander or wall") {
		t.Fatalf("responder: %d %s", status, body)
	}
	if status, body := keep(e.do("POST", "/v1/cameras", wall, "application/json", `{"name":"x","url":"rtsp://h/"}`)); status != http.StatusForbidden || !strings.Contains(body, "operator or commander") {
		t.Fatalf("wall adding: %d %s", status, body)
	}

	// bad bodies: 4xx naming the field, never echoing the password.
	for _, tc := range []struct {
		name, contentType, body string
		status                  int
		want                    string
	}{
		{"not JSON", "application/json", `name=gate`, 400, "not valid JSON"},
		{"unknown field", "application/json", `{"name":"gate","pass":"` + camPass + `"}`, 400, `unknown field "pass"`},
		{"bad url", "application/json", `{"name":"gate","url":"http://admin:` + camPass + `@h/"}`, 400, "url is not an rtsp://"},
		{"bad lat", "application/json", `{"name":"gate","url":"rtsp://h/","position":{"lat":100,"lon":0}}`, 400, "position.lat"},
		{"bad transport", "application/json", `{"name":"gate","url":"rtsp://h/","transport":"sctp"}`, 400, "transport"},
		{"text body", "text/plain", `{"name":"gate","url":"rtsp://h/"}`, 415, "application/json"},
		{"too large", "application/json", `{"name":"gate","label":"` + strings.Repeat("x", ingest.MaxCameraBody) + `"}`, 413, "larger than"},
	} {
		status, body := keep(e.do("POST", "/v1/cameras", op, tc.contentType, tc.body))
		if status != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %q, want %d mentioning %q", tc.name, status, body, tc.status, tc.want)
		}
	}

	// add with the credentials in their own fields: 201, listed with the password redacted, live.
	status, body := keep(e.do("POST", "/v1/cameras", op, "application/json",
		`{"name":"gate","url":"rtsp://`+cam.Addr()+`/stream","username":"admin","password":"`+camPass+`","transport":"tcp","position":{"lat":25.033,"lon":121.5654},"label":"North gate"}`))
	if status != http.StatusCreated || !strings.Contains(body, `"url":"rtsp://admin:***@`+cam.Addr()+`/stream"`) {
		t.Fatalf("add: %d %s", status, body)
	}
	ci := e.waitState(op, "gate", ingest.StateLive)
	if ci.Origin != ingest.OriginAPI || ci.Position == nil || ci.Label != "North gate" || ci.ChangedBy != "op-anna" {
		t.Fatalf("listed camera %+v", ci)
	}
	l := e.list(op)
	if l.MaxCameras != 2 || !l.Persisted || l.Origins[ingest.OriginConfig] == "" {
		t.Fatalf("list %+v: want the limit, persistence and what the origins mean", l)
	}
	if status, body = keep(e.do("POST", "/v1/cameras", op, "application/json", `{"name":"gate","url":"rtsp://h/"}`)); status != http.StatusConflict {
		t.Fatalf("same name again: %d %s", status, body)
	}

	// a wall sees the cameras it may view, without their address, in the cameras and in
	// the sources; an operator sees the address without the password.
	_, body = keep(e.do("GET", "/v1/cameras", wall, "", ""))
	if !strings.Contains(body, `"name":"gate"`) || strings.Contains(body, "rtsp://") || strings.Contains(body, `"username"`) {
		t.Fatalf("wall list: %s", body)
	}
	_, body = keep(e.do("GET", "/v1/sources", wall, "", ""))
	if !strings.Contains(body, `"name":"gate"`) || strings.Contains(body, "rtsp://") {
		t.Fatalf("wall's sources: %s", body)
	}
	_, body = keep(e.do("GET", "/v1/sources", op, "", ""))
	if !strings.Contains(body, `"url":"rtsp://admin:***@`+cam.Addr()+`/stream"`) {
		t.Fatalf("operator's sources: %s", body)
	}

	// edit: the listed URL sent back with another path keeps the password (the camera asks for it).
	before := cam.Plays()
	status, body = keep(e.do("PUT", "/v1/cameras/gate", op, "application/json", `{"url":"rtsp://admin:***@`+cam.Addr()+`/moved","label":"North gate, moved"}`))
	if status != http.StatusOK || !strings.Contains(body, `"changed":["url","label"]`) {
		t.Fatalf("edit: %d %s", status, body)
	}
	testkit.WaitFor(t, 20*time.Second, "the camera to be played again", func() bool { return cam.Plays() > before && cam.Playing() == 1 })
	e.waitState(op, "gate", ingest.StateLive)

	// disable: the camera's session ends, it stays listed as disabled.
	status, body = keep(e.do("PUT", "/v1/cameras/gate", op, "application/json", `{"disabled":true}`))
	if status != http.StatusOK {
		t.Fatalf("disable: %d %s", status, body)
	}
	testkit.WaitFor(t, 20*time.Second, "the camera's session to end", func() bool { return cam.Playing() == 0 })
	if ci = e.waitState(op, "gate", ingest.StateDisabled); ci.Reason != "disabled by op-anna" {
		t.Fatalf("disabled camera %+v", ci)
	}

	// a secret in the address's query is hidden as the password is, and kept on edits.
	status, body = keep(e.do("PUT", "/v1/cameras/gate", op, "application/json", `{"url":"rtsp://`+cam.Addr()+`/stream?channel=1&password=`+camPass+`"}`))
	if status != http.StatusOK || !strings.Contains(body, `/stream?channel=1\u0026password=***`) {
		t.Fatalf("query secret: %d %s", status, body)
	}
	status, body = keep(e.do("PUT", "/v1/cameras/gate", op, "application/json", `{"url":"rtsp://`+cam.Addr()+`/stream?channel=2&password=***"}`))
	if status != http.StatusOK || !strings.Contains(body, `"changed":["url"]`) {
		t.Fatalf("query secret kept: %d %s", status, body)
	}
	_, body = keep(e.do("GET", "/v1/sources", op, "", ""))
	_, body2 := keep(e.do("GET", "/v1/cameras/gate", op, "", ""))
	if !strings.Contains(body+body2, "password=***") {
		t.Fatalf("sources %s, camera %s: want the query secret hidden", body, body2)
	}

	// the limit: two cameras at most.
	if status, body = keep(e.do("POST", "/v1/cameras", op, "application/json", `{"name":"b","url":"rtsp://127.0.0.1:1/b","disabled":true}`)); status != http.StatusCreated {
		t.Fatalf("second camera: %d %s", status, body)
	}
	if status, body = keep(e.do("POST", "/v1/cameras", op, "application/json", `{"name":"c","url":"rtsp://127.0.0.1:1/c"}`)); status != http.StatusConflict || !strings.Contains(body, "the most it takes") {
		t.Fatalf("third camera: %d %s", status, body)
	}

	// remove
	if status, body = keep(e.do("DELETE", "/v1/cameras/gate", op, "", "")); status != http.StatusNoContent {
		t.Fatalf("remove: %d %s", status, body)
	}
	if status, body = keep(e.do("GET", "/v1/cameras/gate", op, "", "")); status != http.StatusNotFound {
		t.Fatalf("removed camera: %d %s", status, body)
	}
	if status, body = keep(e.do("DELETE", "/v1/cameras/gate", op, "", "")); status != http.StatusNotFound {
		t.Fatalf("removing twice: %d %s", status, body)
	}

	// every change is audited with who and what, never the password.
	b, err := os.ReadFile(e.auditPath)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"camera-add": false, "camera-edit": false, "camera-disable": false, "camera-remove": false}
	for _, line := range bytes.Split(b, []byte("\n")) {
		var ev audit.Event
		if json.Unmarshal(line, &ev) != nil || ev.Status >= 400 {
			continue
		}
		if _, ok := want[ev.Action]; ok && ev.Actor == "op-anna" && ev.Source == "gate" && ev.Reason != "" {
			want[ev.Action] = true
		}
	}
	for action, seen := range want {
		if !seen {
			t.Errorf("no audit event %s of gate by op-anna with what changed:\n%s", action, b)
		}
	}
	for _, text := range append(answers, string(b)) {
		if strings.Contains(text, camPass) {
			t.Fatalf("the camera password leaked: %s", text)
		}
	}
}

// The Go profiler is for operators only, as on the SFU.
func TestProfilerIsOperatorOnly(t *testing.T) {
	e := startAPI(t, filepath.Join(t.TempDir(), "cameras.json"), 2)
	for _, tc := range []struct {
		who, token string
		status     int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"wall", e.token(auth.RoleWall, "eoc-wall", "gate"), http.StatusForbidden},
		{"operator", e.token(auth.RoleOperator, "op-anna"), http.StatusOK},
	} {
		if status, body := e.do("GET", "/debug/pprof/", tc.token, "", ""); status != tc.status {
			t.Errorf("%s: %d %.80s, want %d", tc.who, status, body, tc.status)
		}
	}
}

// TestRefusalDoesNotWaitForTheBody: a request refused for its token is answered and its
// connection closed at once, not held open while the server waits for a body the client
// trickles (or never sends).
func TestRefusalDoesNotWaitForTheBody(t *testing.T) {
	e := startAPI(t, filepath.Join(t.TempDir(), "cameras.json"), 2)
	for _, path := range []string{"/v1/signout", "/v1/cameras", "/v1/revocations"} {
		c, err := net.Dial("tcp", strings.TrimPrefix(e.base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: ingest\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{}", path); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		if err != nil {
			t.Fatalf("%s: the connection stayed open after %q: %v", path, b, err)
		}
		if !bytes.HasPrefix(b, []byte("HTTP/1.1 401")) {
			t.Fatalf("%s: %q, want 401", path, b)
		}
	}
}
