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
		{"redacted URL keeps the password", `{"url":"rtsp://admin:***@10.0.0.6/stream2"}`, &storedGate,
			"rtsp://admin:old-secret-pw@10.0.0.6/stream2", nil},
		{"URL without password keeps the fields' password", `{"url":"rtsp://10.0.0.6/x","username":"admin"}`, &storedGate,
			"rtsp://admin:old-secret-pw@10.0.0.6/x", nil},
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
			if strings.Contains(err.Error(), "hunter2-long") || strings.Contains(err.Error(), "old-secret-pw") {
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
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzCameraPatch: no body makes the parser or Apply panic; an accepted
// body's camera passes its checks or is refused with a field named, and its
// redacted URL never carries the password.
func FuzzCameraPatch(f *testing.F) {
	f.Add([]byte(`{"name":"gate","url":"rtsp://10.0.0.5/s","username":"admin","password":"pw"}`), true)
	f.Add([]byte(`{"url":"rtsp://admin:***@10.0.0.6/x"}`), false)
	f.Add([]byte(`{"name":"q","url":"rtsp://h/s?channel=1&password=pw&Token=t%26u"}`), true)
	f.Add([]byte(`{"position":{"lat":1e309,"lon":0}}`), false)
	f.Add([]byte(`{"name":"a","url":"rtsp://[::1]:554/s","position":null,"label":"\u0000"}`), true)
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
		old := &storedGate
		if isNew {
			old = nil
		}
		c, err := p.Apply(old)
		if err != nil {
			if strings.Contains(err.Error(), "old-secret-pw") {
				t.Fatalf("error %q quotes the stored password", err)
			}
			return
		}
		if c.Check() != nil {
			return
		}
		u, err := url.Parse(RedactURL(c.URL))
		if err != nil {
			t.Fatalf("redacted URL of an accepted camera does not parse: %v", err)
		}
		if pw, ok := u.User.Password(); ok && pw != RedactMark {
			t.Fatalf("redacted URL %q shows a password", RedactURL(c.URL))
		}
		for k, vs := range u.Query() {
			for _, v := range vs {
				if secretParam(k) && v != "" && v != RedactMark {
					t.Fatalf("redacted URL %q shows %s", RedactURL(c.URL), k)
				}
			}
		}
	})
}
