package sfu

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"fieldvideo/internal/conf"
)

// fakeProvider serves a discovery document naming issuer (its own URL when
// empty) until broken is set, then 500s.
type fakeProvider struct {
	srv     *httptest.Server
	issuer  atomic.Value // string
	broken  atomic.Bool
	fetches atomic.Int64
}

func startFakeProvider(t *testing.T) *fakeProvider {
	t.Helper()
	p := &fakeProvider{}
	p.issuer.Store("")
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		p.fetches.Add(1)
		if p.broken.Load() {
			http.Error(w, "down for maintenance", http.StatusInternalServerError)
			return
		}
		iss := p.issuer.Load().(string)
		if iss == "" {
			iss = p.srv.URL
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                           iss,
			"authorization_endpoint":           p.srv.URL + "/authorize",
			"token_endpoint":                   p.srv.URL + "/oauth/token",
			"end_session_endpoint":             p.srv.URL + "/end_session",
			"jwks_uri":                         p.srv.URL + "/keys",
			"code_challenge_methods_supported": []string{"S256"},
			"response_types_supported":         []string{"code"},
		})
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func oidcConf(issuer string) func(*conf.SFU) {
	return func(c *conf.SFU) {
		c.Auth.OIDC = conf.OIDC{Issuer: issuer, Audience: "fieldvideo", JWKSURL: issuer + "/keys", ClientID: "console", Scopes: "openid  profile offline_access"}
	}
}

func getAuthConfig(t *testing.T, base string) (int, string) {
	t.Helper()
	res, err := http.Get(base + "/v1/auth/config")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}

func TestAuthConfig(t *testing.T) {
	t.Run("not configured", func(t *testing.T) {
		h := startSFU(t)
		status, body := getAuthConfig(t, h.base)
		if status != http.StatusOK || strings.TrimSpace(body) != `{"oidc":null}` {
			t.Fatalf("GET /v1/auth/config without a client = %d %s, want 200 {\"oidc\":null}", status, body)
		}
		b, err := os.ReadFile(h.audit)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `"path":"/v1/auth/config"`) || !strings.Contains(string(b), `"action":"sign-in-config"`) {
			t.Errorf("the request is not in the audit log:\n%s", b)
		}
	})

	t.Run("configured", func(t *testing.T) {
		op := startFakeProvider(t)
		h := startSFUWith(t, oidcConf(op.srv.URL))
		for range 2 {
			status, body := getAuthConfig(t, h.base)
			if status != http.StatusOK {
				t.Fatalf("GET /v1/auth/config = %d %s", status, body)
			}
			var got struct{ OIDC signInConfig }
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("%v: %s", err, body)
			}
			want := signInConfig{
				Issuer: op.srv.URL, ClientID: "console", Scopes: "openid profile offline_access",
				AuthorizationEndpoint: op.srv.URL + "/authorize", TokenEndpoint: op.srv.URL + "/oauth/token", EndSessionEndpoint: op.srv.URL + "/end_session",
			}
			if got.OIDC != want {
				t.Fatalf("oidc = %+v, want %+v", got.OIDC, want)
			}
		}
		if n := op.fetches.Load(); n != 1 {
			t.Errorf("the discovery document was fetched %d times for two requests, want once (cached)", n)
		}
	})

	t.Run("issuer mismatch", func(t *testing.T) {
		op := startFakeProvider(t)
		op.issuer.Store("https://login.example.org/realms/eoc")
		h := startSFUWith(t, oidcConf(op.srv.URL))
		status, body := getAuthConfig(t, h.base)
		if status != http.StatusBadGateway || !strings.Contains(body, `names itself issuer "https://login.example.org/realms/eoc", not auth.oidc.issuer`) {
			t.Fatalf("GET /v1/auth/config with a provider naming another issuer = %d %s, want 502 naming both issuers", status, body)
		}
	})
}

// TestAuthConfigDiscoveryFailure checks the answers while the provider is
// unreachable or failing, and that it is used again once it is back.
func TestAuthConfigDiscoveryFailure(t *testing.T) {
	op := startFakeProvider(t)
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	get := func(s *signIn) (int, string) {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/auth/config", nil))
		return rec.Code, rec.Body.String()
	}

	// nothing listens at the issuer.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	s := newSignIn(signInParams{OIDC: conf.OIDC{Issuer: deadURL, ClientID: "console", Scopes: "openid"}, Now: clock, Log: log})
	status, body := get(s)
	if status != http.StatusBadGateway || !strings.Contains(body, "single sign-on is unavailable: cannot reach the provider at "+deadURL+"/.well-known/openid-configuration") {
		t.Fatalf("unreachable provider: %d %s, want 502 naming the discovery URL", status, body)
	}

	// the provider fails, then comes back.
	op.broken.Store(true)
	s = newSignIn(signInParams{OIDC: conf.OIDC{Issuer: op.srv.URL, ClientID: "console", Scopes: "openid"}, Now: clock, Log: log, Retry: time.Second, Fresh: time.Minute})
	status, body = get(s)
	if status != http.StatusBadGateway || !strings.Contains(body, "the provider answered 500 Internal Server Error") {
		t.Fatalf("failing provider: %d %s, want 502 with its status", status, body)
	}
	op.broken.Store(false)
	if status, _ = get(s); status != http.StatusBadGateway || op.fetches.Load() != 1 {
		t.Fatalf("within the retry interval: %d after %d fetches, want the last error without fetching again", status, op.fetches.Load())
	}
	now = now.Add(time.Second)
	if status, body = get(s); status != http.StatusOK || !strings.Contains(body, `"token_endpoint":"`+op.srv.URL+`/oauth/token"`) {
		t.Fatalf("provider back: %d %s, want 200 with its endpoints", status, body)
	}

	// once stale, a failed fetch serves the document fetched before.
	op.broken.Store(true)
	now = now.Add(2 * time.Minute)
	if status, body = get(s); status != http.StatusOK || !strings.Contains(body, "/oauth/token") {
		t.Fatalf("stale document, provider failing: %d %s, want 200 with the last good document", status, body)
	}
	if n := op.fetches.Load(); n != 3 {
		t.Errorf("%d fetches, want 3 (failed, good, failed again once stale)", n)
	}
}

func TestParseDiscovery(t *testing.T) {
	const iss = "https://id.example.org"
	ok := `{"issuer":"https://id.example.org","authorization_endpoint":"https://id.example.org/auth","token_endpoint":"https://id.example.org/token"}`
	if d, err := parseDiscovery([]byte(ok), iss); err != nil || d.TokenEndpoint != "https://id.example.org/token" || d.EndSessionEndpoint != "" {
		t.Fatalf("parseDiscovery(good) = %+v, %v", d, err)
	}
	for _, c := range []struct{ name, doc, want string }{
		{"not json", `<html>`, "not a discovery document"},
		{"trailing slash", strings.Replace(ok, `"issuer":"https://id.example.org"`, `"issuer":"https://id.example.org/"`, 1), "names itself issuer"},
		{"no token endpoint", strings.Replace(ok, `,"token_endpoint":"https://id.example.org/token"`, "", 1), "token_endpoint \"\": missing"},
		{"relative endpoint", strings.Replace(ok, `"https://id.example.org/auth"`, `"/auth"`, 1), "authorization_endpoint \"/auth\": not an absolute URL"},
		{"javascript endpoint", strings.Replace(ok, `"https://id.example.org/auth"`, `"javascript:alert(1)"`, 1), "not an absolute URL"},
		{"http elsewhere", strings.Replace(ok, `"https://id.example.org/token"`, `"http://id.example.org/token"`, 1), "http outside this machine"},
		{"no S256", strings.Replace(ok, `}`, `,"code_challenge_methods_supported":["plain"]}`, 1), "S256"},
		{"no code flow", strings.Replace(ok, `}`, `,"response_types_supported":["id_token"]}`, 1), "authorization code flow"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseDiscovery([]byte(c.doc), iss)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("parseDiscovery(%s) = %v, want an error containing %q", c.doc, err, c.want)
			}
		})
	}
	if _, err := parseDiscovery([]byte(strings.ReplaceAll(ok, "https://id.example.org", "http://127.0.0.1:5556")), "http://127.0.0.1:5556"); err != nil {
		t.Errorf("a provider on loopback over http: %v", err)
	}
}

func FuzzParseDiscovery(f *testing.F) {
	f.Add([]byte(`{"issuer":"https://id.example.org","authorization_endpoint":"https://id.example.org/auth","token_endpoint":"https://id.example.org/token","end_session_endpoint":"https://id.example.org/logout"}`), "https://id.example.org")
	f.Add([]byte(`{"issuer":"http://127.0.0.1:1","authorization_endpoint":"http://127.0.0.1:1/a","token_endpoint":"http://[::1]:1/t","code_challenge_methods_supported":["S256"]}`), "http://127.0.0.1:1")
	f.Add([]byte(`{"issuer":1}`), "")
	f.Fuzz(func(t *testing.T, b []byte, issuer string) {
		in := string(b)
		d, err := parseDiscovery(b, issuer)
		if string(b) != in {
			t.Fatal("parseDiscovery modified its input")
		}
		if err != nil {
			return
		}
		if d.Issuer != issuer {
			t.Fatalf("accepted issuer %q for %q", d.Issuer, issuer)
		}
		for _, u := range []string{d.AuthorizationEndpoint, d.TokenEndpoint} {
			if checkOIDCEndpoint(u) != nil {
				t.Fatalf("accepted endpoint %q", u)
			}
		}
	})
}
