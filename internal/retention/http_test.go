package retention

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"fieldvideo/internal/auth"
)

type httpClient struct {
	t   *testing.T
	url string
}

// do sends a request and decodes the JSON answer.
func (c httpClient) do(method, path, token, ctype, body string) (int, map[string]any) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.url+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		c.t.Fatalf("%s %s: Content-Type %q, body %s", method, path, ct, b)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		c.t.Fatalf("%s %s: %v in %s", method, path, err, b)
	}
	return res.StatusCode, v
}

const validHold = `{"source":"cam-*","from":"2026-11-23T04:00:00Z","to":"2026-11-23T07:00:00+02:00","reason":"case 42"}`

func TestHTTPCreate(t *testing.T) {
	e := newEnv(t, fsPair(t), 0, 0)
	srv := httptest.NewServer(e.r.Handler())
	defer srv.Close()
	c := httpClient{t, srv.URL}
	reviewer, wall := e.token(auth.RoleReviewer, "rita"), e.token(auth.RoleWall, "wall-1")

	for _, tc := range []struct {
		name, token, ctype, body string
		status                   int
		reason                   string
	}{
		{"reviewer creates", reviewer, "application/json", validHold, http.StatusCreated, ""},
		{"without content type", reviewer, "", validHold, http.StatusCreated, ""},
		{"wall cannot create", wall, "application/json", validHold, http.StatusForbidden, "reviewer"},
		{"no token", "", "application/json", validHold, http.StatusUnauthorized, "no token"},
		{"bad token", "x.y.z", "application/json", validHold, http.StatusUnauthorized, "invalid token"},
		{"not JSON", reviewer, "application/json", `{`, http.StatusBadRequest, "not a hold"},
		{"unknown field", reviewer, "application/json", `{"source":"cam-1","form":"2026-11-23T04:00:00Z","reason":"x"}`, http.StatusBadRequest, `unknown field "form"`},
		{"two objects", reviewer, "application/json", validHold + validHold, http.StatusBadRequest, "after the hold"},
		{"no from", reviewer, "application/json", `{"source":"cam-1","reason":"x"}`, http.StatusBadRequest, `"from" is missing`},
		{"bad time", reviewer, "application/json", `{"source":"cam-1","from":"yesterday","reason":"x"}`, http.StatusBadRequest, "RFC 3339"},
		{"time without zone", reviewer, "application/json", `{"source":"cam-1","from":"2026-11-23T04:00:00","reason":"x"}`, http.StatusBadRequest, "RFC 3339"},
		{"from after to", reviewer, "application/json", `{"source":"cam-1","from":"2026-11-23T05:00:00Z","to":"2026-11-23T04:00:00Z","reason":"x"}`, http.StatusBadRequest, "not before"},
		{"from equals to", reviewer, "application/json", `{"source":"cam-1","from":"2026-11-23T05:00:00Z","to":"2026-11-23T05:00:00Z","reason":"x"}`, http.StatusBadRequest, "not before"},
		{"source with slash", reviewer, "application/json", `{"source":"cam/1","from":"2026-11-23T04:00:00Z","reason":"x"}`, http.StatusBadRequest, "shell pattern"},
		{"bad pattern", reviewer, "application/json", `{"source":"cam-[","from":"2026-11-23T04:00:00Z","reason":"x"}`, http.StatusBadRequest, "shell pattern"},
		{"no source", reviewer, "application/json", `{"from":"2026-11-23T04:00:00Z","reason":"x"}`, http.StatusBadRequest, "source"},
		{"no reason", reviewer, "application/json", `{"source":"cam-1","from":"2026-11-23T04:00:00Z","reason":"  "}`, http.StatusBadRequest, `"reason" is empty`},
		{"bad incident", reviewer, "application/json", `{"incident":"a b","source":"cam-1","from":"2026-11-23T04:00:00Z","reason":"x"}`, http.StatusBadRequest, "incident"},
		{"not JSON content type", reviewer, "text/plain", validHold, http.StatusUnsupportedMediaType, "application/json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, v := c.do("POST", "/v1/holds", tc.token, tc.ctype, tc.body)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %v", status, tc.status, v)
			}
			if tc.status == http.StatusCreated {
				if v["incident"] != testIncident || v["created_by"] != "rita" || v["created_role"] != "reviewer" ||
					v["to"] != "2026-11-23T05:00:00Z" || v["pending"] != nil {
					t.Fatalf("hold %v", v)
				}
				return
			}
			if msg, _ := v["error"].(string); !strings.Contains(msg, tc.reason) || v["status"] != float64(tc.status) {
				t.Fatalf("error %v, want one mentioning %q", v, tc.reason)
			}
		})
	}

	var denied, held int
	for _, l := range e.events() {
		switch {
		case l.Action == "hold" && l.Result == "ok":
			held++
			if l.Actor != "rita" || l.Role != "reviewer" || l.Remote == "" || l.Method != "POST" || l.Path != "/v1/holds" || l.Session == "" {
				t.Fatalf("hold line %+v", l.Event)
			}
		case l.Action == "hold" && l.Result == "denied":
			denied++
		}
	}
	if held != 2 || denied != 17 {
		t.Fatalf("%d hold and %d denied lines audited, want 2 and 17", held, denied)
	}
}

func TestHTTPReleaseAndList(t *testing.T) {
	e := newEnv(t, fsPair(t), 0, 0)
	srv := httptest.NewServer(e.r.Handler())
	defer srv.Close()
	c := httpClient{t, srv.URL}
	reviewer, operator, wall := e.token(auth.RoleReviewer, "rita"), e.token(auth.RoleOperator, "oscar"), e.token(auth.RoleWall, "wall-1")

	status, v := c.do("POST", "/v1/holds", reviewer, "application/json", validHold)
	if status != http.StatusCreated {
		t.Fatalf("create: %d %v", status, v)
	}
	id := v["id"].(string)

	for _, tc := range []struct {
		name, method, path, token string
		status                    int
	}{
		{"wall cannot list", "GET", "/v1/holds", wall, http.StatusForbidden},
		{"reviewer cannot release", "DELETE", "/v1/holds/" + id, reviewer, http.StatusForbidden},
		{"wall cannot release", "DELETE", "/v1/holds/" + id, wall, http.StatusForbidden},
		{"bad id", "DELETE", "/v1/holds/-x", operator, http.StatusBadRequest},
		{"unknown id", "DELETE", "/v1/holds/abc", operator, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, v := c.do(tc.method, tc.path, tc.token, "", ""); status != tc.status {
				t.Fatalf("status %d, want %d: %v", status, tc.status, v)
			}
		})
	}

	status, v = c.do("GET", "/v1/holds", reviewer, "", "")
	holds, _ := v["holds"].([]any)
	if status != http.StatusOK || len(holds) != 1 || holds[0].(map[string]any)["id"] != id {
		t.Fatalf("list: %d %v", status, v)
	}

	// With the off-site store down, a new hold is stored at the primary
	// and reported pending off-site, here and in the list.
	e.stores[Offsite].down.Store(true)
	status, v = c.do("POST", "/v1/holds", operator, "application/json", validHold)
	if status != http.StatusCreated || !slices.Equal(anyStrings(v["pending"]), []string{"offsite"}) {
		t.Fatalf("create with the off-site down: %d %v", status, v)
	}
	pendingID := v["id"].(string)
	status, v = c.do("GET", "/v1/holds", operator, "", "")
	if status != http.StatusOK || v["unreadable"].(map[string]any)["offsite"] == nil {
		t.Fatalf("list with the off-site down: %d %v", status, v)
	}
	for _, h := range v["holds"].([]any) {
		h := h.(map[string]any)
		if h["id"] == pendingID && !slices.Equal(anyStrings(h["pending"]), []string{"offsite"}) {
			t.Fatalf("hold %v: want it pending off-site", h)
		}
	}
	e.stores[Primary].down.Store(true)
	if status, v := c.do("POST", "/v1/holds", operator, "application/json", validHold); status != http.StatusServiceUnavailable {
		t.Fatalf("create with both stores down: %d %v", status, v)
	}
	e.stores[Primary].down.Store(false)
	e.stores[Offsite].down.Store(false)

	status, v = c.do("DELETE", "/v1/holds/"+id, operator, "", "")
	if status != http.StatusOK || v["id"] != id {
		t.Fatalf("release: %d %v", status, v)
	}
	for _, s := range both {
		if e.exists(s, HoldKey(id)) {
			t.Fatalf("released hold still at %s", s)
		}
	}
	if status, v := c.do("DELETE", "/v1/holds/"+id, operator, "", ""); status != http.StatusNotFound {
		t.Fatalf("second release: %d %v", status, v)
	}

	var released, deniedRelease int
	for _, l := range e.events() {
		switch {
		case l.Action == "release" && l.Result == "ok":
			released++
			if l.Actor != "oscar" || l.Role != "operator" || l.Session != id || l.Method != "DELETE" {
				t.Fatalf("release line %+v", l.Event)
			}
		case l.Action == "release" && l.Result == "denied":
			deniedRelease++
		}
	}
	if released != 1 || deniedRelease != 5 {
		t.Fatalf("%d release and %d denied release lines, want 1 and 5", released, deniedRelease)
	}
}

func anyStrings(v any) []string {
	l, _ := v.([]any)
	out := []string{}
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}
