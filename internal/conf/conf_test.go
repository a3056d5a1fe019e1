package conf

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestShippedConfigsEqualDefaults(t *testing.T) {
	var sfu SFU
	if err := Load("../../configs/sfu.yml", "FV_SFU", &sfu, nil); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(sfu, DefaultSFU()) {
		t.Errorf("configs/sfu.yml differs from DefaultSFU():\n%+v\n%+v", sfu, DefaultSFU())
	}
	var in Ingest
	if err := Load("../../configs/ingest.yml", "FV_INGEST", &in, nil); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, DefaultIngest()) {
		t.Errorf("configs/ingest.yml differs from DefaultIngest():\n%+v\n%+v", in, DefaultIngest())
	}
	if err := DefaultSFU().Validate(); err != nil {
		t.Error(err)
	}
	if err := DefaultIngest().Validate(); err != nil {
		t.Error(err)
	}
}

func TestEnvOverrides(t *testing.T) {
	c := DefaultIngest()
	env := []string{
		"FV_INGEST_RTSP_ADDRESS=127.0.0.1:0",
		"FV_INGEST_RECONNECT_MAX=5s",
		`FV_INGEST_CAMERAS=[{name: cam1, url: "rtsp://10.0.0.1/a", transport: tcp}]`,
		"OTHER=1",
	}
	if err := Load("", "FV_INGEST", &c, env); err != nil {
		t.Fatal(err)
	}
	if c.RTSP.Address != "127.0.0.1:0" || c.Reconnect.Max != 5*time.Second || len(c.Cameras) != 1 || c.Cameras[0].Transport != "tcp" {
		t.Fatalf("overrides not applied: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	err := Load("", "FV_INGEST", &c, []string{"FV_INGEST_RTSP_ADRESS=x"})
	if err == nil || !strings.Contains(err.Error(), "FV_INGEST_RTSP_ADRESS names no setting") {
		t.Fatalf("misspelt variable: %v", err)
	}
	err = Load("", "FV_INGEST", &c, []string{"FV_INGEST_RECONNECT_MAX=soon"})
	if err == nil || !strings.Contains(err.Error(), "FV_INGEST_RECONNECT_MAX") {
		t.Fatalf("bad duration: %v", err)
	}
}

func TestDecodeRejectsUnknownKeys(t *testing.T) {
	c := DefaultSFU()
	err := Decode([]byte("http:\n  adress: :1\n"), &c)
	if err == nil || !strings.Contains(err.Error(), "adress") {
		t.Fatalf("unknown key: %v", err)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		mod  func(*Ingest)
		want string
	}{
		{"bad camera name", func(c *Ingest) { c.Cameras = []Camera{{Name: "a b", URL: "rtsp://h/x"}} }, "name"},
		{"duplicate camera", func(c *Ingest) {
			c.Cameras = []Camera{{Name: "a", URL: "rtsp://h/x"}, {Name: "a", URL: "rtsp://h/y"}}
		}, "twice"},
		{"http camera", func(c *Ingest) { c.Cameras = []Camera{{Name: "a", URL: "http://h/x"}} }, "rtsp://"},
		{"bad transport", func(c *Ingest) { c.Cameras = []Camera{{Name: "a", URL: "rtsp://h/x", Transport: "quic"}} }, "transport"},
		{"backoff", func(c *Ingest) { c.Reconnect.Max = 0 }, "reconnect"},
		{"short secret", func(c *Ingest) { c.Auth.Secret = "short" }, "at least 32"},
		{"no audit", func(c *Ingest) { c.Audit.File = "" }, "audit"},
		{"uplink", func(c *Ingest) { c.Uplink.URL = "ftp://x" }, "uplink.url"},
		{"log level", func(c *Ingest) { c.Log.Level = "loud" }, "log.level"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultIngest()
			c.mod(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, c.want)
			}
		})
	}
	s := DefaultSFU()
	s.WebRTC.AdvertiseIPs = []string{"not-an-ip"}
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "advertise_ips") {
		t.Fatalf("advertise ip: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte("cameras:\n  - name: a\n    url: rtsp://x/y\n"))
	f.Add([]byte("rtsp: {address: ':1'}\nreconnect: {min: 1s, max: 2s}"))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := DefaultIngest()
		if Decode(b, &c) == nil {
			_ = c.Validate()
		}
		s := DefaultSFU()
		if Decode(b, &s) == nil {
			_ = s.Validate()
		}
	})
}
