package ingest

import (
	"bytes"
	"net/url"
	"strings"
	"testing"

	"fieldvideo/internal/conf"
)

// storedGate is the camera the body tests change.
var storedGate = conf.Camera{Name: "gate", URL: "rtsp://admin:old-secret-pw@10.0.0.5:554/stream1", Transport: "tcp"}

// storedPath is a camera that takes its credentials in the path, as XMEye and
// Dahua cameras do.
var storedPath = conf.Camera{Name: "dvr", URL: "rtsp://10.0.0.5/user=admin&password=P4th%2FSecret&channel=1&stream=0.sdp?"}

// storedSecrets holds a stored secret in each place a URL can: the fuzz
// target edits it.
var storedSecrets = conf.Camera{Name: "all",
	URL: "rtsp://admin:old-secret-pw@10.0.0.5:554/user=admin&password=old-path-pw&channel=1?token=old-query-tok"}

// TestCameraBody: good bodies make the camera they describe; bad ones get
// an error that names the field, and never the password or the URL.
func TestCameraBody(t *testing.T) {
	for _, tc := range []struct {
		name    string
		body    string
		old     *conf.Camera
		wantURL string // of the resulting camera
		check   func(conf.Camera) bool
	}{
		{"new with fields", `{"name":"gate","url":"rtsp://10.0.0.5/s","username":"admin","password":"p@ss/w#rd"}`, nil,
			"rtsp://admin:p%40ss%2Fw%23rd@10.0.0.5/s", nil},
		{"new with URL credentials", `{"name":"gate","url":"rtsp://admin:pw@10.0.0.5/s","transport":"UDP"}`, nil,
			"rtsp://admin:pw@10.0.0.5/s", func(c conf.Camera) bool { return c.Transport == "udp" }},
		{"new without credentials", `{"name":"gate","url":"rtsp://10.0.0.5/s","username":"","password":""}`, nil, "rtsp://10.0.0.5/s", nil},
		{"position and label", `{"name":"g","url":"rtsp://h/s","position":{"lat":-33.9,"lon":151.2},"label":" Gate "}`, nil, "rtsp://h/s",
			func(c conf.Camera) bool { return c.Position != nil && c.Position.Lat == -33.9 && c.Label == "Gate" }},
		{"redacted URL keeps the password", `{"url":"rtsp://admin:***@10.0.0.5:554/stream2"}`, &storedGate,
			"rtsp://admin:old-secret-pw@10.0.0.5:554/stream2", nil},
		{"redacted URL keeps the password at the default port", `{"url":"rtsp://admin:***@10.0.0.5/stream2"}`, &storedGate,
			"rtsp://admin:old-secret-pw@10.0.0.5/stream2", nil},
		{"URL without password keeps the fields' password", `{"url":"rtsp://10.0.0.5:554/x","username":"admin"}`, &storedGate,
			"rtsp://admin:old-secret-pw@10.0.0.5:554/x", nil},
		{"another address with a new password", `{"url":"rtsp://127.0.0.1:8600/cam1","username":"admin","password":"typed-again"}`, &storedGate,
			"rtsp://admin:typed-again@127.0.0.1:8600/cam1", nil},
		{"another address without credentials", `{"url":"rtsp://127.0.0.1:8600/cam1"}`, &storedGate, "rtsp://127.0.0.1:8600/cam1", nil},
		{"host in capitals", `{"url":"rtsp://admin:***@CAM.example:554/s"}`, &conf.Camera{Name: "c", URL: "rtsp://admin:pw@cam.example/s"},
			"rtsp://admin:pw@CAM.example:554/s", nil},
		{"redacted path secret keeps its value", `{"url":"rtsp://10.0.0.5/user=admin&password=***&channel=2&stream=0.sdp?"}`, &storedPath,
			"rtsp://10.0.0.5/user=admin&password=P4th%2FSecret&channel=2&stream=0.sdp?", nil},
		{"redacted path secret, underscores", `{"url":"rtsp://10.0.0.5/user=admin_password=***_channel=2_stream=0.sdp"}`,
			&conf.Camera{Name: "x", URL: "rtsp://10.0.0.5/user=admin_password=P4th_Secret_channel=1_stream=0.sdp"},
			"rtsp://10.0.0.5/user=admin_password=P4th_Secret_channel=2_stream=0.sdp", nil},
		{"new path secret", `{"url":"rtsp://10.0.0.9/user=admin&password=fresh&channel=1"}`, &storedPath,
			"rtsp://10.0.0.9/user=admin&password=fresh&channel=1", nil},
		{"the console's edit on the same address", `{"url":"rtsp://10.0.0.5:554/user=admin&password=***&channel=2?token=***",` +
			`"transport":"auto","disabled":false,"label":"","username":"admin","position":null}`, &storedSecrets,
			"rtsp://admin:old-secret-pw@10.0.0.5:554/user=admin&password=old-path-pw&channel=2?token=old-query-tok", nil},
		{"an empty stored password may move", `{"url":"rtsp://10.0.0.9/s","username":"admin"}`, &conf.Camera{Name: "e", URL: "rtsp://admin:@10.0.0.5/s"},
			"rtsp://admin:@10.0.0.9/s", nil},
		{"two query secrets of one name", `{"url":"rtsp://h/live?key=***&key=***"}`, &conf.Camera{Name: "q", URL: "rtsp://h/live?key=one&key=two"},
			"rtsp://h/live?key=one&key=two", nil},
		{"new password", `{"password":"fresh-pw"}`, &storedGate, "rtsp://admin:fresh-pw@10.0.0.5:554/stream1", nil},
		{"absent fields stay", `{"disabled":true}`, &storedGate, storedGate.URL,
			func(c conf.Camera) bool { return c.Disabled && c.Transport == "tcp" }},
		{"URL with no credentials drops them", `{"url":"rtsp://10.0.0.5/open"}`, &storedGate, "rtsp://10.0.0.5/open", nil},
		{"position cleared", `{"position":null}`, &conf.Camera{Name: "g", URL: "rtsp://h/", Position: &conf.Position{Lat: 1, Lon: 2}}, "rtsp://h/",
			func(c conf.Camera) bool { return c.Position == nil }},
		{"same name", `{"name":"gate"}`, &storedGate, storedGate.URL, nil},
		{"redacted query secret keeps its value", `{"url":"rtsp://h/live?channel=2&password=***"}`,
			&conf.Camera{Name: "q", URL: "rtsp://h/live?channel=1&password=q%26secret"}, "rtsp://h/live?channel=2&password=q%26secret", nil},
		{"new query secret", `{"url":"rtsp://h/live?password=fresh"}`,
			&conf.Camera{Name: "q", URL: "rtsp://h/live?password=old"}, "rtsp://h/live?password=fresh", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseCameraPatch([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			c, err := p.Apply(tc.old)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Check(); err != nil {
				t.Fatal(err)
			}
			if c.URL != tc.wantURL {
				t.Fatalf("url %q, want %q", c.URL, tc.wantURL)
			}
			if tc.check != nil && !tc.check(c) {
				t.Fatalf("camera %+v", c)
			}
		})
	}

	for _, tc := range []struct {
		name, body string
		old        *conf.Camera
		want       string // the start of the error: the field it names
	}{
		{"empty", ``, nil, "the body is empty"},
		{"not JSON", `name=gate`, nil, "the body is not valid JSON"},
		{"array", `[{"name":"gate"}]`, nil, "the body must be a JSON object"},
		{"two objects", `{"name":"a","url":"rtsp://h/"} {}`, nil, "the body holds more than one"},
		{"truncated", `{"name":"gate","password":"hunter2-long`, nil, "the body ends in the middle"},
		{"unknown field", `{"name":"gate","passwd":"x"}`, nil, `unknown field "passwd"`},
		{"name type", `{"name":5,"url":"rtsp://h/"}`, nil, "name must be a string"},
		{"disabled type", `{"name":"a","url":"rtsp://h/","disabled":"yes"}`, nil, "disabled must be true or false"},
		{"position type", `{"name":"a","url":"rtsp://h/","position":[1,2]}`, nil, "position must be"},
		{"position half", `{"name":"a","url":"rtsp://h/","position":{"lat":1}}`, nil, "position needs both"},
		{"no name", `{"url":"rtsp://h/"}`, nil, "name is missing"},
		{"no url", `{"name":"gate"}`, nil, "url is missing"},
		{"http url", `{"name":"gate","url":"http://admin:hunter2-long@h/"}`, nil, "url is not an rtsp://"},
		{"broken url", `{"name":"gate","url":"rtsp://admin:hunter2-long@h:x:y/%zz"}`, nil, "url is not an rtsp://"},
		{"both credentials", `{"name":"gate","url":"rtsp://a:hunter2-long@h/","password":"hunter2-long"}`, nil, "username: give the credentials either"},
		{"mark on a new camera", `{"name":"gate","url":"rtsp://admin:***@h/"}`, nil, "password: *** stands for"},
		{"query mark on a new camera", `{"name":"gate","url":"rtsp://h/live?password=***"}`, nil, "url: password=*** stands for"},
		{"password without user", `{"name":"gate","url":"rtsp://h/","password":"hunter2-long"}`, nil, "username is missing"},
		{"rename", `{"name":"other"}`, &storedGate, "name: a camera cannot be renamed"},
		{"control characters", `{"name":"gate","url":"rtsp://h/","username":"a\nb"}`, nil, "username and password must not"},
		{"long password", `{"name":"gate","url":"rtsp://h/","username":"a","password":"` + strings.Repeat("x", 300) + `"}`, nil, "password is 300 bytes"},

		// a stored secret is kept for the camera's own address only.
		{"redacted URL to another host", `{"url":"rtsp://admin:***@127.0.0.1:8600/cam1"}`, &storedGate,
			"password: the camera's address changed from 10.0.0.5:554 to 127.0.0.1:8600; give its password again"},
		{"redacted URL to another port", `{"url":"rtsp://admin:***@10.0.0.5:8554/stream1"}`, &storedGate,
			"password: the camera's address changed from 10.0.0.5:554 to 10.0.0.5:8554"},
		{"redacted URL to rtsps", `{"url":"rtsps://admin:***@10.0.0.5:554/stream1"}`, &storedGate,
			"password: the camera's address changed from rtsp://10.0.0.5:554 to rtsps://10.0.0.5:554"},
		{"user name only, another host", `{"url":"rtsp://127.0.0.1:8600/cam1","username":"admin"}`, &storedGate,
			"password: the camera's address changed from 10.0.0.5:554 to 127.0.0.1:8600"},
		{"other user name, another host", `{"url":"rtsp://127.0.0.1:8600/cam1","username":"root"}`, &storedGate,
			"password: the camera's address changed"},
		{"password field mark, another host", `{"url":"rtsp://127.0.0.1:8600/cam1","username":"admin","password":"***"}`, &storedGate,
			"password: the camera's address changed"},
		{"query secret to another host", `{"url":"rtsp://127.0.0.1:8600/live?channel=1&password=***"}`,
			&conf.Camera{Name: "q", URL: "rtsp://10.0.0.5/live?channel=1&password=old-secret-pw"},
			"url: the camera's address changed from 10.0.0.5:554 to 127.0.0.1:8600; type the values of its secret parameters again"},
		{"path secret to another host", `{"url":"rtsp://127.0.0.1:8600/user=admin&password=***&channel=1&stream=0.sdp?"}`, &storedPath,
			"url: the camera's address changed from 10.0.0.5:554 to 127.0.0.1:8600"},
		{"the console's edit to another address", `{"url":"rtsp://10.0.0.6:554/user=admin&password=***&channel=1?token=***",` +
			`"transport":"auto","disabled":false,"label":"","username":"admin","position":null}`, &storedSecrets,
			"password: the camera's address changed from 10.0.0.5:554 to 10.0.0.6:554"},
		{"path mark on a new camera", `{"name":"gate","url":"rtsp://h/user=admin&password=***&channel=1"}`, nil, "url: password=*** stands for"},
		{"a password holding the mark, another host", `{"url":"rtsp://admin:***@10.0.0.5:554@127.0.0.1:8600/cam1"}`, &storedGate,
			"password: it contains ***, which stands for the stored password"},
		{"a password field holding the mark", `{"password":"x***"}`, &storedGate, "password: it contains ***"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseCameraPatch([]byte(tc.body))
			if err == nil {
				_, err = p.Apply(tc.old)
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if _, ok := IsCameraError(err); !ok {
				t.Fatalf("error %T %v: want a *CameraError", err, err)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error %q: want it to start with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2-long") || strings.Contains(err.Error(), "old-secret-pw") ||
				strings.Contains(err.Error(), "old-path-pw") || strings.Contains(err.Error(), "old-query-tok") || strings.Contains(err.Error(), "P4th") {
				t.Fatalf("error %q quotes a password", err)
			}
		})
	}

	// the checks of the resulting camera name the field too.
	for body, want := range map[string]string{
		`{"name":"a b","url":"rtsp://h/"}`:                                          "name ",
		`{"name":"a","url":"rtsp://h/","transport":"quic"}`:                         "transport ",
		`{"name":"a","url":"rtsp://h/","position":{"lat":91,"lon":0}}`:              "position.lat ",
		`{"name":"a","url":"rtsp://h/","position":{"lat":0,"lon":-181}}`:            "position.lon ",
		`{"name":"a","url":"rtsp://h/","label":"` + strings.Repeat("é", 201) + `"}`: "label:",
	} {
		p, err := ParseCameraPatch([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		c, err := p.Apply(nil)
		if err == nil {
			err = c.Check()
		}
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: error %v, want it to start with %q", body, err, want)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"rtsp://admin:s3cret@10.0.0.5:554/stream1?x=1": "rtsp://admin:***@10.0.0.5:554/stream1?x=1",
		"rtsp://admin@10.0.0.5/s":                      "rtsp://admin@10.0.0.5/s",
		"rtsp://10.0.0.5/s":                            "rtsp://10.0.0.5/s",
		"rtsp://a%40b:p%2Fw@h/s":                       "rtsp://a%40b:***@h/s",
		"rtsp://admin:s3cret@h:x:y/%zz":                "(the URL cannot be parsed and is hidden)",
		"rtsp://h/live?channel=1&user=admin&password=s3cret&Auth_Token=t0k&subtype=0": "rtsp://h/live?channel=1&user=admin&password=***&Auth_Token=***&subtype=0",
		"rtsp://u:p@h/s?pwd=a%26b&apikey=k":                                           "rtsp://u:***@h/s?pwd=***&apikey=***",
		// credentials in the path, as XMEye and Dahua cameras take them
		"rtsp://h:554/user=admin&password=P4thSecret&channel=1&stream=0.sdp?": "rtsp://h:554/user=admin&password=***&channel=1&stream=0.sdp?",
		"rtsp://h/user=admin_password=P4th_Secret_channel=1_stream=0.sdp":     "rtsp://h/user=admin_password=***_channel=1_stream=0.sdp",
		"rtsp://h/cam;user=admin;pwd=P4thSecret/live?token=t":                 "rtsp://h/cam;user=admin;pwd=***/live?token=***",
		"rtsp://h/a/Auth_Token=P4thSecret/b":                                  "rtsp://h/a/Auth_Token=***/b",
		"rtsp://h/user=admin&password=P4th%2F%26Secret&channel=1":             "rtsp://h/user=admin&password=***&channel=1",
		"rtsp://h/stream=1&channel=2":                                         "rtsp://h/stream=1&channel=2",
		"rtsp://u:p@h/user=a&passwd=P4thSecret?x=1":                           "rtsp://u:***@h/user=a&passwd=***?x=1",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzCameraPatch: no body makes the parser or Apply panic; an accepted
// body's camera passes its checks or is refused with a field named; its
// redacted URL never carries a secret (the password, a secret in the query
// or the path), and sent back as it is, it makes the same camera; a stored
// secret never goes to another address than the stored camera's.
func FuzzCameraPatch(f *testing.F) {
	f.Add([]byte(`{"name":"gate","url":"rtsp://10.0.0.5/s","username":"admin","password":"pw"}`), true)
	f.Add([]byte(`{"url":"rtsp://admin:***@10.0.0.6/x"}`), false)
	f.Add([]byte(`{"url":"rtsp://admin:***@10.0.0.5/x"}`), false)
	f.Add([]byte(`{"name":"q","url":"rtsp://h/s?channel=1&password=pw&Token=t%26u"}`), true)
	f.Add([]byte(`{"position":{"lat":1e309,"lon":0}}`), false)
	f.Add([]byte(`{"name":"a","url":"rtsp://[::1]:554/s","position":null,"label":"\u0000"}`), true)
	f.Add([]byte(`{"name":"x","url":"rtsp://h/user=admin&password=P4th%26&channel=1&stream=0.sdp?"}`), true)
	f.Add([]byte(`{"name":"x","url":"rtsp://h/user=admin_password=a_b_channel=1_stream=0.sdp"}`), true)
	f.Add([]byte(`{"url":"rtsp://10.0.0.5/user=admin&password=***&channel=2?token=***"}`), false)
	f.Add([]byte(`{"url":"rtsp://127.0.0.1:8600/user=admin&password=***&channel=1"}`), false)
	f.Add([]byte(`{"url":"rtsp://127.0.0.1:8600/cam1","username":"admin"}`), false)
	f.Fuzz(func(t *testing.T, body []byte, isNew bool) {
		orig := bytes.Clone(body)
		p, err := ParseCameraPatch(body)
		if !bytes.Equal(orig, body) {
			t.Fatal("the parser modified its input")
		}
		if err != nil {
			if _, ok := IsCameraError(err); !ok || err.Error() == "" {
				t.Fatalf("error %T %q: want a *CameraError with a message", err, err)
			}
			return
		}
		old := &storedSecrets
		if isNew {
			old = nil
		}
		c, err := p.Apply(old)
		if err != nil {
			if strings.Contains(err.Error(), "old-") {
				t.Fatalf("error %q quotes a stored secret", err)
			}
			return
		}
		if c.Check() != nil {
			return
		}
		redacted := RedactURL(c.URL)
		u, err := url.Parse(redacted)
		if err != nil {
			t.Fatalf("redacted URL of an accepted camera does not parse: %v", err)
		}
		if pw, ok := u.User.Password(); ok && pw != RedactMark {
			t.Fatalf("redacted URL %q shows a password", redacted)
		}
		for k, vs := range u.Query() {
			for _, v := range vs {
				if secretParam(k) && v != "" && v != RedactMark {
					t.Fatalf("redacted URL %q shows %s", redacted, k)
				}
			}
		}
		mapPathSecrets(u.EscapedPath(), func(name, raw string) string {
			if raw != "" && raw != RedactMark {
				t.Fatalf("redacted URL %q shows %s in its path", redacted, name)
			}
			return raw
		})
		if old != nil && !bytes.Contains(body, []byte("old-")) && strings.Contains(c.URL, "old-") {
			cu, err := url.Parse(c.URL)
			if err != nil {
				t.Fatal(err)
			}
			if ou, _ := url.Parse(old.URL); destination(cu) != destination(ou) {
				t.Fatalf("a stored secret went from %s to %s: %q", destination(ou), destination(cu), c.URL)
			}
		}
		// the redacted URL sent back in an edit keeps every secret.
		back, err := CameraPatch{URL: &redacted}.Apply(&c)
		if err != nil {
			if ce, ok := IsCameraError(err); ok && strings.HasPrefix(ce.Msg, "url is ") && strings.Contains(ce.Msg, " bytes;") {
				return // the marks made it longer than a URL may be
			}
			t.Fatalf("the redacted URL %q of %q sent back: %v", redacted, c.URL, err)
		}
		if !sameURL(back.URL, c.URL) {
			t.Fatalf("the redacted URL %q of %q sent back makes %q", redacted, c.URL, back.URL)
		}
	})
}

// TestHideAddresses: the reasons a wall sees name no host, address or port;
// the rest of the reason stays.
func TestHideAddresses(t *testing.T) {
	for _, tc := range []struct {
		reason string
		known  []string
		want   string
	}{
		{"describe: dial tcp 127.0.0.1:8601: connect: connection refused", nil,
			"describe: dial tcp (address hidden): connect: connection refused"},
		{"describe: dial tcp [fe80::1%eth0]:554: i/o timeout", nil, "describe: dial tcp (address hidden): i/o timeout"},
		{"describe: dial tcp [::1]:554: connect: connection refused", nil, "describe: dial tcp (address hidden): connect: connection refused"},
		{"read tcp 10.1.2.3:50412->10.0.0.5:554: read: connection reset by peer", nil,
			"read tcp (address hidden)->(address hidden): read: connection reset by peer"},
		{"describe: dial tcp: lookup gate-cam.site.example on 127.0.0.53:53: no such host", []string{"rtsp://admin:***@gate-cam.site.example/s"},
			"describe: dial tcp: lookup (address hidden) on (address hidden): no such host"},
		{"describe: dial tcp: lookup gatecam: i/o timeout", []string{"rtsp://gatecam:8554/s"}, "describe: dial tcp: lookup (address hidden): i/o timeout"},
		{"dial tcp gatecam:8554: i/o timeout, gatecam-2 too", []string{"rtsp://gatecam-2/s"}, "dial tcp (address hidden): i/o timeout, (address hidden) too"},
		{"dial tcp cam.example:8554: connect: no route to host", nil, "dial tcp (address hidden): connect: no route to host"},
		{"redirected to rtsp://10.9.9.9:554/other, refused", nil, "redirected to (address hidden) refused"},
		{"the publisher left: read tcp 127.0.0.1:8554->192.0.2.7:40000: i/o timeout", []string{"192.0.2.7:40000"},
			"the publisher left: read tcp (address hidden)->(address hidden): i/o timeout"},
		// what is not an address stays
		{"no media for 10s (rtsp.read_timeout): the camera stalled", []string{"rtsp://h/s"}, "no media for 10s (rtsp.read_timeout): the camera stalled"},
		{"describe: bad status code: 401 (Unauthorized)", nil, "describe: bad status code: 401 (Unauthorized)"},
		{"stream ended after 1m2s: the camera closed the connection", []string{"rtsp://the/s"}, "stream ended after 1m2s: the camera closed the connection"},
		{"", nil, ""},
	} {
		if got := HideAddresses(tc.reason, tc.known...); got != tc.want {
			t.Errorf("HideAddresses(%q, %q)\n got %q\nwant %q", tc.reason, tc.known, got, tc.want)
		}
	}
}
