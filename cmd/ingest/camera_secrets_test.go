package main

import (
	"bytes"
	"encoding/base64"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/auth"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/liberrors"

	fvauth "fieldvideo/internal/auth"
	"fieldvideo/internal/ingest"
	"fieldvideo/internal/testkit"
)

// syncBuffer is a bytes.Buffer many goroutines may write.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// rtspCapture is an RTSP server on 127.0.0.1:0 that asks for a user name and
// password (Basic only, as many cameras do), accepts none, and records every
// DESCRIBE: the URL asked for and the credentials sent. It stands for a host
// a camera's address is pointed at.
type rtspCapture struct {
	srv *gortsplib.Server

	mu    sync.Mutex
	urls  []string
	creds []string // "user:password" of each Authorization: Basic
}

func startCapture(t *testing.T) *rtspCapture {
	t.Helper()
	c := &rtspCapture{}
	c.srv = &gortsplib.Server{Handler: c, RTSPAddress: "127.0.0.1:0", AuthMethods: []auth.VerifyMethod{auth.VerifyMethodBasic}}
	if err := c.srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.srv.Close)
	return c
}

func (c *rtspCapture) Addr() string { return c.srv.NetListener().Addr().String() }

// OnDescribe implements gortsplib.ServerHandlerOnDescribe.
func (c *rtspCapture) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	c.mu.Lock()
	c.urls = append(c.urls, ctx.Request.URL.String())
	for _, h := range ctx.Request.Header["Authorization"] {
		if b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(h, "Basic ")); err == nil {
			c.creds = append(c.creds, string(b))
		} else {
			c.creds = append(c.creds, h)
		}
	}
	c.mu.Unlock()
	ctx.Conn.VerifyCredentials(ctx.Request, "admin", "no password opens this")
	return &base.Response{StatusCode: base.StatusUnauthorized}, nil, liberrors.ErrServerAuth{}
}

// seen returns the URLs asked for and the credentials sent so far.
func (c *rtspCapture) seen() (urls, creds []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.urls...), append([]string(nil), c.creds...)
}

// TestCameraPasswordStaysWithItsAddress: an operator who sees only *** cannot
// send a camera's stored password (in userinfo, the query or the path) to
// another host by pointing the camera there; a change on the same host keeps
// it, and a move with the password typed again sends only that.
func TestCameraPasswordStaysWithItsAddress(t *testing.T) {
	const (
		querySecret = "q-secret-81d0"
		pathSecret  = "P4thSecret-6a2e"
	)
	cam := testkit.StartRTSPCamera(t, testkit.RTSPCameraParams{User: "admin", Pass: camPass})
	evil := startCapture(t) // a host operator B controls
	dvr := startCapture(t)  // a camera that takes its credentials in the path
	e := startAPI(t, filepath.Join(t.TempDir(), "cameras.json"), 4)
	opA := e.token(fvauth.RoleOperator, "op-a")
	opB := e.token(fvauth.RoleOperator, "op-b")
	var answers []string
	put := func(name, body string) (int, string) {
		t.Helper()
		status, answer := e.do("PUT", "/v1/cameras/"+name, opB, "application/json", body)
		answers = append(answers, answer)
		return status, answer
	}

	status, body := e.do("POST", "/v1/cameras", opA, "application/json",
		`{"name":"gate","url":"rtsp://admin:`+camPass+`@`+cam.Addr()+`/cam1?channel=1&token=`+querySecret+`","transport":"tcp"}`)
	if status != http.StatusCreated {
		t.Fatalf("add: %d %s", status, body)
	}
	e.waitState(opA, "gate", ingest.StateLive)
	plays := cam.Plays()

	moved := "the camera's address changed from " + cam.Addr() + " to " + evil.Addr()
	for _, tc := range []struct{ name, body, want string }{
		{"*** in the URL", `{"url":"rtsp://admin:***@` + evil.Addr() + `/cam1"}`, "password: " + moved + "; give its password again"},
		{"user name only", `{"url":"rtsp://` + evil.Addr() + `/cam1","username":"admin"}`, "password: " + moved},
		{"*** as the password", `{"url":"rtsp://` + evil.Addr() + `/cam1","username":"admin","password":"***"}`, "password: " + moved},
		{"query secret", `{"url":"rtsp://` + evil.Addr() + `/cam1?channel=1&token=***"}`, "url: " + moved},
		{"another scheme", `{"url":"rtsps://admin:***@` + cam.Addr() + `/cam1"}`, "password: the camera's address changed from rtsp://"},
	} {
		if status, body := put("gate", tc.body); status != http.StatusBadRequest || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %q, want 400 with %q", tc.name, status, body, tc.want)
		}
	}
	if t.Failed() {
		testkit.WaitFor(t, 20*time.Second, "the other host to be asked for the camera", func() bool {
			_, creds := evil.seen()
			return len(creds) > 0
		})
		_, creds := evil.seen()
		t.Fatalf("a move was accepted: the other host was sent the credentials %q", creds)
	}
	if ci := e.waitState(opA, "gate", ingest.StateLive); ci.URL != "rtsp://admin:***@"+cam.Addr()+"/cam1?channel=1&token=***" || cam.Plays() != plays {
		t.Fatalf("camera %+v after refused moves, played %d times (was %d): want it unchanged", ci, cam.Plays(), plays)
	}

	// on the same address a change keeps the stored secrets: the camera is played again.
	if status, body := put("gate", `{"url":"rtsp://admin:***@`+cam.Addr()+`/cam2?channel=2&token=***"}`); status != http.StatusOK || !strings.Contains(body, `"changed":["url"]`) {
		t.Fatalf("same address, another stream: %d %s", status, body)
	}
	testkit.WaitFor(t, 20*time.Second, "the camera to be played again", func() bool { return cam.Plays() > plays && cam.Playing() == 1 })

	// secrets in the path: kept on the same address, refused elsewhere.
	status, body = e.do("POST", "/v1/cameras", opA, "application/json",
		`{"name":"dvr","url":"rtsp://`+dvr.Addr()+`/user=admin&password=`+pathSecret+`&channel=1&stream=0.sdp?","transport":"tcp"}`)
	if status != http.StatusCreated || !strings.Contains(body, `/user=admin\u0026password=***\u0026channel=1`) {
		t.Fatalf("add dvr: %d %s", status, body)
	}
	answers = append(answers, body)
	if status, body := put("dvr", `{"url":"rtsp://`+evil.Addr()+`/user=admin&password=***&channel=1&stream=0.sdp?"}`); status != http.StatusBadRequest ||
		!strings.Contains(body, "url: the camera's address changed from "+dvr.Addr()+" to "+evil.Addr()) {
		t.Fatalf("dvr moved with its path secret: %d %s", status, body)
	}
	if status, body := put("dvr", `{"url":"rtsp://`+dvr.Addr()+`/user=admin&password=***&channel=2&stream=0.sdp?"}`); status != http.StatusOK {
		t.Fatalf("dvr on channel 2: %d %s", status, body)
	}
	testkit.WaitFor(t, 20*time.Second, "the dvr to be asked for channel 2 with its password", func() bool {
		urls, _ := dvr.seen()
		return len(urls) > 0 && strings.Contains(urls[len(urls)-1], "password="+pathSecret+"&channel=2")
	})
	testkit.WaitFor(t, 20*time.Second, "the dvr's failure on channel 2 to be logged", func() bool {
		for _, line := range strings.Split(e.logs.String(), "\n") {
			if strings.Contains(line, "camera failed") && strings.Contains(line, "source=dvr") && strings.Contains(line, "channel=2") {
				return true
			}
		}
		return false
	})

	// moved with the password typed again: the new host gets that one, never the stored one.
	if status, body := put("gate", `{"url":"rtsp://`+evil.Addr()+`/cam1","username":"admin","password":"typed-for-the-new-host"}`); status != http.StatusOK {
		t.Fatalf("move with a new password: %d %s", status, body)
	}
	testkit.WaitFor(t, 20*time.Second, "the new host to be sent the new password", func() bool {
		_, creds := evil.seen()
		return len(creds) > 0
	})
	urls, creds := evil.seen()
	for _, c := range creds {
		if c != "admin:typed-for-the-new-host" {
			t.Errorf("the new host was sent %q", c)
		}
	}
	for _, u := range urls {
		if strings.Contains(u, querySecret) || strings.Contains(u, pathSecret) {
			t.Errorf("the new host was asked for %q", u)
		}
	}

	b, err := os.ReadFile(e.auditPath)
	if err != nil {
		t.Fatal(err)
	}
	_, list := e.do("GET", "/v1/cameras", opB, "", "")
	_, sources := e.do("GET", "/v1/sources", opB, "", "")
	for _, text := range append(answers, string(b), e.logs.String(), list, sources) {
		for _, secret := range []string{camPass, querySecret, pathSecret} {
			if strings.Contains(text, secret) {
				t.Fatalf("a secret leaked: %s", text)
			}
		}
	}
	if !strings.Contains(string(b), "password=***") {
		t.Fatalf("want the dvr's change audited with the path secret hidden:\n%s", b)
	}
}

// TestWallReasonHidesAddresses: a wall token reads why a camera is down
// without learning where the camera is; operators read the whole reason.
func TestWallReasonHidesAddresses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String() // nothing listens there once closed: connection refused
	ln.Close()
	_, port, _ := net.SplitHostPort(closed)
	e := startAPI(t, filepath.Join(t.TempDir(), "cameras.json"), 2)
	op := e.token(fvauth.RoleOperator, "op-anna")
	wall := e.token(fvauth.RoleWall, "eoc-wall", "gate")
	if status, body := e.do("POST", "/v1/cameras", op, "application/json", `{"name":"gate","url":"rtsp://`+closed+`/cam1","transport":"tcp"}`); status != http.StatusCreated {
		t.Fatalf("add: %d %s", status, body)
	}
	ci := e.waitState(op, "gate", ingest.StateFailed)
	if !strings.Contains(ci.Reason, closed) || !strings.Contains(ci.Reason, "connection refused") {
		t.Fatalf("operator's reason %q: want the address and the cause", ci.Reason)
	}

	// between attempts the reason is "retrying": read until a failure's reason shows.
	for _, path := range []string{"/v1/cameras/gate", "/v1/cameras", "/v1/sources"} {
		var text string
		testkit.WaitFor(t, 20*time.Second, "the wall to read why gate failed in "+path, func() bool {
			var status int
			status, text = e.do("GET", path, wall, "", "")
			if status != http.StatusOK || strings.Contains(text, "127.0.0.1") || strings.Contains(text, ":"+port) {
				t.Fatalf("wall's %s: %d %s: want it without the camera's address", path, status, text)
			}
			return strings.Contains(text, "connection refused")
		})
		if !strings.Contains(text, `"reason":"describe: dial tcp `+ingest.HiddenAddress+`: connect: connection refused"`) {
			t.Errorf("wall's %s %s: want the cause with the address hidden", path, text)
		}
	}
	testkit.WaitFor(t, 20*time.Second, "the operator to read the whole reason in /v1/sources", func() bool {
		_, sources := e.do("GET", "/v1/sources", op, "", "")
		return strings.Contains(sources, "dial tcp "+closed+": connect: connection refused")
	})
}
