package sfu

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/conf"
)

// fakeIngest is a cameras API on loopback that records what reaches it.
type fakeIngest struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen []string // "METHOD path auth body"
}

func startFakeIngest(t *testing.T, cameras string) *fakeIngest {
	t.Helper()
	f := &fakeIngest{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.seen = append(f.seen, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization")+" "+string(b))
		f.mu.Unlock()
		switch {
		case r.Header.Get("Authorization") == "":
			http.Error(w, "no token", http.StatusUnauthorized)
		case r.Method == http.MethodGet && r.URL.Path == "/v1/cameras":
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"cameras":`+cameras+`,"max_cameras":256,"persisted":true,"origins":{"api":"added here"}}`)
		case r.Method == http.MethodGet && strings.Contains(cameras, `"`+strings.TrimPrefix(r.URL.Path, "/v1/cameras/")+`"`):
			_, _ = io.WriteString(w, `{"camera":{}}`)
		case r.Method == http.MethodPost:
			w.Header().Set("Location", "/v1/cameras/gate")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, `{"camera":{"name":"gate"}}`)
		case r.Method == http.MethodPut:
			http.Error(w, "url is not an rtsp:// or rtsps:// URL", http.StatusBadRequest)
		default:
			http.Error(w, "no camera named x", http.StatusNotFound)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeIngest) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.seen...)
}

func relayDo(t *testing.T, method, url, token, body string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header
}

// deadAddress returns an http:// address on loopback where nothing listens.
func deadAddress(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// TestCameraRelay: the SFU passes the cameras API on to its ingests with
// the caller's token, merges their lists, and says clearly when no ingest
// is configured or one cannot be reached.
func TestCameraRelay(t *testing.T) {
	t.Run("no ingest configured", func(t *testing.T) {
		h := startSFU(t)
		tok := h.token(auth.RoleOperator, nil, nil)
		status, body, _ := relayDo(t, "GET", h.base+"/v1/cameras", tok, "")
		if status != http.StatusServiceUnavailable || !strings.Contains(body, "ingest_api") {
			t.Fatalf("%d %s: want 503 naming ingest_api", status, body)
		}
		if status, body, _ = relayDo(t, "GET", h.base+"/v1/cameras", "", ""); status != http.StatusUnauthorized {
			t.Fatalf("no token: %d %s", status, body)
		}
	})

	t.Run("one ingest", func(t *testing.T) {
		ing := startFakeIngest(t, `[{"name":"gate","state":"live"}]`)
		h := startSFUWith(t, func(c *conf.SFU) { c.IngestAPI = []string{ing.srv.URL + "/"} })
		tok := h.token(auth.RoleOperator, nil, nil)
		status, body, _ := relayDo(t, "GET", h.base+"/v1/cameras", tok, "")
		var l struct {
			Cameras []struct {
				Name   string `json:"name"`
				Ingest int    `json:"ingest"`
			} `json:"cameras"`
			Ingests []struct {
				OK bool `json:"ok"`
			} `json:"ingests"`
		}
		if status != http.StatusOK || json.Unmarshal([]byte(body), &l) != nil || len(l.Cameras) != 1 || l.Cameras[0].Name != "gate" || len(l.Ingests) != 1 || !l.Ingests[0].OK {
			t.Fatalf("list: %d %s", status, body)
		}
		status, body, hdr := relayDo(t, "POST", h.base+"/v1/cameras", tok, `{"name":"gate","url":"rtsp://h/"}`)
		if status != http.StatusCreated || hdr.Get("Location") != "/v1/cameras/gate" || !strings.Contains(body, `"gate"`) {
			t.Fatalf("add: %d %s %v", status, body, hdr)
		}
		if status, body, _ = relayDo(t, "PUT", h.base+"/v1/cameras/gate", tok, `{"url":"x"}`); status != http.StatusBadRequest || !strings.HasPrefix(body, "url is not") {
			t.Fatalf("the ingest's refusal: %d %s", status, body)
		}
		reqs := strings.Join(ing.requests(), "\n")
		for _, want := range []string{
			"GET /v1/cameras Bearer " + tok,
			"POST /v1/cameras Bearer " + tok + ` {"name":"gate","url":"rtsp://h/"}`,
			"PUT /v1/cameras/gate Bearer " + tok + ` {"url":"x"}`,
		} {
			if !strings.Contains(reqs, want) {
				t.Errorf("the ingest did not get %q; it got:\n%s", want, reqs)
			}
		}
	})

	t.Run("one of two ingests down", func(t *testing.T) {
		ing := startFakeIngest(t, `[{"name":"mast","state":"failed"}]`)
		dead := deadAddress(t)
		h := startSFUWith(t, func(c *conf.SFU) { c.IngestAPI = []string{dead, ing.srv.URL} })
		tok := h.token(auth.RoleCommander, nil, nil)
		status, body, _ := relayDo(t, "GET", h.base+"/v1/cameras", tok, "")
		if status != http.StatusOK || !strings.Contains(body, `"ingest":1`) || !strings.Contains(body, "ingest "+dead+" is unreachable") {
			t.Fatalf("list with one ingest down: %d %s", status, body)
		}
		// a change must name the ingest when there are several; the camera's owner is found otherwise.
		if status, body, _ = relayDo(t, "POST", h.base+"/v1/cameras", tok, `{"name":"x","url":"rtsp://h/"}`); status != http.StatusBadRequest || !strings.Contains(body, "?ingest=N") {
			t.Fatalf("add without ?ingest: %d %s", status, body)
		}
		if status, body, _ = relayDo(t, "POST", h.base+"/v1/cameras?ingest=1", tok, `{"name":"x","url":"rtsp://h/"}`); status != http.StatusCreated {
			t.Fatalf("add with ?ingest=1: %d %s", status, body)
		}
		if status, body, _ = relayDo(t, "POST", h.base+"/v1/cameras?ingest=0", tok, `{"name":"x","url":"rtsp://h/"}`); status != http.StatusBadGateway || !strings.Contains(body, dead) {
			t.Fatalf("add to the dead ingest: %d %s: want 502 naming it", status, body)
		}
		if status, body, _ = relayDo(t, "GET", h.base+"/v1/cameras/mast", tok, ""); status != http.StatusOK {
			t.Fatalf("a camera found on the ingest that has it: %d %s", status, body)
		}
	})

	t.Run("every ingest down", func(t *testing.T) {
		dead := deadAddress(t)
		h := startSFUWith(t, func(c *conf.SFU) { c.IngestAPI = []string{dead} })
		status, body, _ := relayDo(t, "GET", h.base+"/v1/cameras", h.token(auth.RoleOperator, nil, nil), "")
		if status != http.StatusBadGateway || !strings.Contains(body, "ingest "+dead+" is unreachable") || !strings.Contains(body, "ingest_api") {
			t.Fatalf("%d %s: want 502 naming the ingest and the setting", status, body)
		}
	})
}
