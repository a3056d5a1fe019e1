package console_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/conf"
	"fieldvideo/internal/sfu"
	"fieldvideo/internal/testkit"
	"fieldvideo/web/console"
)

const ssoAudience = "fieldvideo-test"

// startSSOSFU starts an SFU serving the console whose single sign-on is op: it verifies op's
// tokens and offers op's sign-in (with refresh tokens: offline_access).
func startSSOSFU(t *testing.T, op *testkit.OIDCProvider) *wallSFU {
	t.Helper()
	h := &wallSFU{t: t, auditDir: t.TempDir()}
	c := conf.DefaultSFU()
	c.HTTP.Address = "127.0.0.1:0"
	c.WebRTC.UDPAddress = "127.0.0.1:0"
	c.Log.Level = "warn"
	c.Auth.OIDC = conf.OIDC{Issuer: op.Issuer, Audience: ssoAudience, JWKSURL: op.JWKSURL(), ClientID: op.ClientID, Scopes: "openid profile offline_access"}
	v, err := auth.NewVerifier(testSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.UseOIDC(auth.OIDCParams{Issuer: op.Issuer, Audience: ssoAudience, JWKSURL: op.JWKSURL()}); err != nil {
		t.Fatal(err)
	}
	rl, err := auth.OpenRevocations("", nil)
	if err != nil {
		t.Fatal(err)
	}
	v.UseRevocations(rl)
	auditFile := filepath.Join(h.auditDir, "audit-1.log")
	al, err := audit.Open(audit.Params{File: auditFile, KeyFile: auditFile + ".key"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sfu.New(sfu.Params{Conf: c, Verifier: v, Audit: al, Log: c.Log.NewLogger(testWriter{t}), Console: console.FS(),
		Routes: func(mux *http.ServeMux) { mux.Handle("POST /v1/signout", auth.SignOutHandler(v)) }})
	if err != nil {
		al.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Run(ctx); close(done) }()
	h.srv, h.stop = srv, func() { cancel(); <-done; al.Close() }
	h.httpAddr = srv.HTTPAddr()
	h.base = "http://" + h.httpAddr
	t.Cleanup(h.close)
	op.AllowConsole(h.base)
	return h
}

// pageWait waits until expr is truthy in the page, through the navigations of a sign-in
// (an evaluation cut short by one is tried again), and returns its value.
func pageWait(t *testing.T, p *testkit.Page, what, expr string, timeout time.Duration) json.RawMessage {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		v, err := p.Try("waitFor", min(2*time.Second, time.Until(deadline)), map[string]any{"expr": expr})
		if err == nil {
			return v
		}
		last = err
	}
	p.LogConsole()
	t.Fatalf("waiting for %s: %v", what, last)
	return nil
}

// ssoLogin starts single sign-on on signin.html (coming back to the wall) and signs in at
// the provider's login form as user.
func ssoLogin(t *testing.T, p *testkit.Page, h *wallSFU, user, password string) {
	t.Helper()
	p.Open(h.base + "/signin.html?return=index.html")
	label := pageWait(t, p, "the single sign-on button", `(() => { const b = document.getElementById('sso-button'); return b && !b.hidden && b.textContent; })()`, 10*time.Second)
	if !strings.Contains(string(label), "Sign in with 127.0.0.1:") {
		t.Errorf("sign-in button says %s, want it to name the provider's host", label)
	}
	p.Do("click", 10*time.Second, map[string]any{"selector": "#sso-button"})
	p.Do("fill", 15*time.Second, map[string]any{"selector": "#username", "value": user})
	p.Do("fill", 5*time.Second, map[string]any{"selector": "#password", "value": password})
	p.Do("click", 10*time.Second, map[string]any{"selector": "#login-submit"})
}

const storedTokensExpr = `JSON.stringify([sessionStorage.getItem('fieldvideo.token'), sessionStorage.getItem('fieldvideo.sso'), sessionStorage.getItem('fieldvideo.signin')])`

func TestSignIn(t *testing.T) {
	op := testkit.StartOIDCProvider(t, testkit.OIDCParams{Audience: ssoAudience, Users: []testkit.OIDCUser{
		{Username: "wall-1", Password: "wall-pass", Role: "wall", View: []string{"*"}},
		{Username: "nobody", Password: "nobody-pass", View: []string{"*"}},
		{Username: "elsewhere", Password: "elsewhere-pass", Role: "wall", View: []string{"*"}, Audience: "another-service"},
	}})
	h := startSSOSFU(t, op)
	h.publish("cam1", false)

	t.Run("wall user signs in and the token is refreshed", func(t *testing.T) {
		op.SetAccessTokenTTL(3 * time.Second)
		p := testkit.PooledPage(t)
		ssoLogin(t, p, h, "wall-1", "wall-pass")
		pageWait(t, p, "the wall", `['/', '/index.html'].includes(location.pathname) && document.readyState === 'complete'`, 20*time.Second)
		p.WaitPlaying("cam1", 10, 30*time.Second)
		var first string
		p.Eval(`sessionStorage.getItem('fieldvideo.token') ?? ''`, &first)
		claims := jwtClaims(t, first)
		if claims.Subject != "wall-1" || claims.Role != auth.RoleWall || claims.Issuer != op.Issuer {
			t.Fatalf("stored token: sub %q role %q iss %q, want wall-1, wall, %s", claims.Subject, claims.Role, claims.Issuer, op.Issuer)
		}
		firstExp := claims.ExpiresAt.Time
		if left := time.Until(firstExp); left > 4*time.Second {
			t.Fatalf("the first access token lives %s more, want at most 3 s (SetAccessTokenTTL)", left)
		}
		var stored string
		p.Eval(storedTokensExpr, &stored)
		if !strings.Contains(stored, `\"refreshToken\"`) || !strings.HasSuffix(stored, `,null]`) {
			t.Errorf("after sign-in sessionStorage holds %s, want the token, the refresh token and no pending sign-in (verifier, state)", stored)
		}

		// past the first token's end (and the 5 s a session may outlive it), with no one
		// touching the page: the same WHEP session still plays, renewed with new tokens.
		wait := time.Until(firstExp.Add(auth.BindGrace + time.Second))
		pageWait(t, p, "a token refreshed twice", fmt.Sprintf(`(() => {
			const tok = sessionStorage.getItem('fieldvideo.token') ?? '';
			const exp = JSON.parse(atob(tok.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).exp;
			return Date.now() > %d && exp > %d && exp; })()`, firstExp.Add(auth.BindGrace+time.Second).UnixMilli(), firstExp.Unix()+3), wait+15*time.Second)
		p.WaitPlaying("cam1", 10, 10*time.Second)
		if n := op.Refreshes(); n < 2 {
			t.Errorf("the provider answered %d refreshes, want at least 2", n)
		}
		if s, _ := h.source("cam1"); s.Viewers != 1 {
			t.Errorf("cam1 has %d viewers, want 1", s.Viewers)
		}
		views, renewals := 0, 0
		for _, e := range h.auditEvents() {
			if e.Actor == "wall-1" && e.Action == "view" && e.Result == "ok" {
				views++
			}
			if e.Actor == "wall-1" && e.Action == "trickle" && e.Result == "ok" {
				renewals++
			}
		}
		if views != 1 || renewals < 2 {
			t.Errorf("audit: %d WHEP sessions and %d renewals by wall-1, want 1 session (never replaced) renewed at least twice", views, renewals)
		}
		var signedOut bool
		p.Eval(`document.getElementById('signed-out') !== null`, &signedOut)
		if signedOut {
			t.Error("the page says signed out although the refreshes worked")
		}

		// the provider ends the session: the next refresh fails and the page says so.
		op.RevokeRefreshTokens()
		var link string
		raw := pageWait(t, p, "the signed-out notice", `(() => { const e = document.getElementById('signed-out');
			return e && e.offsetHeight > 0 && e.textContent.includes('Signed out: sign in again') && e.querySelector('a')?.getAttribute('href'); })()`, 10*time.Second)
		if err := json.Unmarshal(raw, &link); err != nil {
			t.Fatal(err)
		}
		if link != "signin.html?return=index.html" {
			t.Errorf("signed-out link = %q, want signin.html?return=index.html", link)
		}
		p.Eval(storedTokensExpr, &stored)
		if strings.Contains(stored, "refreshToken") {
			t.Errorf("after the refresh failed sessionStorage still holds the refresh token: %s", stored)
		}
	})
	op.SetAccessTokenTTL(5 * time.Minute)

	t.Run("sign out ends the token, its video and the provider's session", func(t *testing.T) {
		p := testkit.PooledPage(t)
		ssoLogin(t, p, h, "wall-1", "wall-pass")
		pageWait(t, p, "the wall", `['/', '/index.html'].includes(location.pathname) && document.readyState === 'complete'`, 20*time.Second)
		p.WaitPlaying("cam1", 5, 30*time.Second)
		h.waitViewers("cam1", 1, 10*time.Second)
		var tok string
		p.Eval(`sessionStorage.getItem('fieldvideo.token') ?? ''`, &tok)
		if op.RefreshTokens("wall-1") == 0 {
			t.Fatal("signed in without a refresh token at the provider")
		}
		p.Do("click", 10*time.Second, map[string]any{"selector": "#sign-out"})
		raw := pageWait(t, p, "the sign-in page saying signed out", `location.pathname === '/signin.html' &&
			document.getElementById('signed-in')?.dataset.signedOut === 'revoked' && document.getElementById('signed-in').textContent`, 20*time.Second)
		if !strings.Contains(string(raw), "Signed out") {
			t.Errorf("the sign-in page says %s, want signed out", raw)
		}
		var stored string
		p.Eval(storedTokensExpr, &stored)
		if stored != "[null,null,null]" {
			t.Errorf("after signing out sessionStorage holds %s, want nothing", stored)
		}
		var hidden bool
		p.Eval(`document.getElementById('sign-out').hidden`, &hidden)
		if !hidden {
			t.Error("the sign-out button shows on the sign-in page with no token kept")
		}
		req, _ := http.NewRequest(http.MethodGet, h.base+"/v1/sources", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Errorf("the signed-out token listing sources: %s, want 401", res.Status)
		}
		h.waitViewers("cam1", 0, 10*time.Second)
		if n := op.RefreshTokens("wall-1"); n != 0 {
			t.Errorf("the provider still honours %d refresh tokens of wall-1 after the sign-out", n)
		}
		signOuts := 0
		for _, e := range h.auditEvents() {
			if e.Actor == "wall-1" && e.Action == "sign-out" && e.Result == "ok" {
				signOuts++
			}
		}
		if signOuts != 1 {
			t.Errorf("audit: %d sign-outs by wall-1, want 1", signOuts)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		p := testkit.PooledPage(t)
		ssoLogin(t, p, h, "wall-1", "not-the-password")
		var msg string
		raw := pageWait(t, p, "the provider's refusal", `location.origin === `+jsString(op.Issuer)+` && document.getElementById('login-error')?.textContent`, 10*time.Second)
		if err := json.Unmarshal(raw, &msg); err != nil {
			t.Fatal(err)
		}
		if msg != "Wrong user name or password." {
			t.Errorf("the provider says %q, want its wrong-password message", msg)
		}
		p.Open(h.base + "/signin.html")
		var stored string
		p.Eval(storedTokensExpr, &stored)
		if !strings.HasPrefix(stored, "[null,null,") {
			t.Errorf("after a refused password sessionStorage holds %s, want no token", stored)
		}
	})

	for _, c := range []struct{ name, user, password, want, todo string }{
		{"no role", "nobody", "nobody-pass", "You signed in as nobody, but your account has no role on this server", "Ask your administrator to give your account a role"},
		{"wrong audience", "elsewhere", "elsewhere-pass", "is not meant for this server (its audience is wrong)", "auth.oidc.audience"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := testkit.PooledPage(t)
			ssoLogin(t, p, h, c.user, c.password)
			var shown string
			raw := pageWait(t, p, "the server's refusal on signin.html", `(() => { const e = document.getElementById('sso-error');
				return location.pathname === '/signin.html' && e && !e.hidden && e.offsetHeight > 0 && e.textContent; })()`, 20*time.Second)
			if err := json.Unmarshal(raw, &shown); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(shown, c.want) || !strings.Contains(shown, c.todo) {
				t.Errorf("signin.html says %q, want %q and what to do (%q)", shown, c.want, c.todo)
			}
			var stored, search string
			p.Eval(storedTokensExpr, &stored)
			p.Eval(`location.search`, &search)
			if stored != "[null,null,null]" || search != "" {
				t.Errorf("after the server refused the token: sessionStorage %s, address query %q; want nothing stored and the code gone from the address", stored, search)
			}
		})
	}

	t.Run("refused answers", func(t *testing.T) {
		res, err := http.Get(h.base + "/v1/auth/config")
		if err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			OIDC struct {
				TokenEndpoint string `json:"token_endpoint"`
			} `json:"oidc"`
		}
		err = json.NewDecoder(res.Body).Decode(&cfg)
		res.Body.Close()
		if err != nil || cfg.OIDC.TokenEndpoint == "" {
			t.Fatalf("GET /v1/auth/config: %v %+v", err, cfg)
		}
		p := testkit.PooledPage(t)
		p.Open(h.base + "/signin.html")
		shown := func(what string) string {
			var text string
			raw := pageWait(t, p, what, `(() => { const e = document.getElementById('sso-error'); return !e.hidden && e.textContent; })()`, 10*time.Second)
			if err := json.Unmarshal(raw, &text); err != nil {
				t.Fatal(err)
			}
			return text
		}
		pending := func(state string) {
			var ok bool
			p.Eval(fmt.Sprintf(`(sessionStorage.setItem('fieldvideo.signin', JSON.stringify({ state: %q, nonce: 'n', verifier: 'v'.repeat(43),
				returnTo: 'index.html', issuer: %q, clientID: %q, tokenEndpoint: %q, redirectURI: location.origin + '/signin.html', at: Date.now() })), true)`,
				state, op.Issuer, op.ClientID, cfg.OIDC.TokenEndpoint), &ok)
		}
		for _, c := range []struct {
			name, pending, query, want string
		}{
			{"forged state", "s1", "?code=abc&state=s2", "does not belong to a sign-in started in this tab"},
			{"no sign-in started", "", "?code=abc&state=s1", "does not belong to a sign-in started in this tab"},
			{"provider error", "s1", "?error=access_denied&error_description=The+user+said+no&state=s1", "The sign-in service refused the sign-in: The user said no (access_denied)"},
			{"code refused", "s1", "?code=not-a-code&state=s1", "The sign-in service refused to issue a token: invalid_grant"},
		} {
			if c.pending != "" {
				pending(c.pending)
			}
			p.Open(h.base + "/signin.html" + c.query)
			if text := shown(c.name); !strings.Contains(text, c.want) {
				t.Errorf("%s: signin.html says %q, want %q", c.name, text, c.want)
			}
			var stored, search string
			p.Eval(storedTokensExpr, &stored)
			p.Eval(`location.search`, &search)
			if stored != "[null,null,null]" || search != "" {
				t.Errorf("%s: sessionStorage %s, address query %q; want nothing stored and the answer gone from the address", c.name, stored, search)
			}
		}
	})

	t.Run("layout", func(t *testing.T) {
		p := testkit.PooledPage(t)
		for _, size := range []struct{ w, h int }{{390, 844}, {1920, 1080}} {
			p.Do("viewport", 5*time.Second, map[string]any{"width": size.w, "height": size.h})
			p.Open(h.base + "/signin.html?return=review.html")
			pageWait(t, p, "the sign-in button", `!document.getElementById('sso-button').hidden`, 10*time.Second)
			var boxes map[string]struct{ X, Y, W, H float64 }
			p.Eval(`Object.fromEntries(['nav', 'sso-button', 'token-input', 'token-submit', 'sso-heading', 'paste-heading'].map((id) => {
				const r = document.getElementById(id).getBoundingClientRect();
				return [id, { X: r.x, Y: r.y, W: r.width, H: r.height }]; }))`, &boxes)
			for id, b := range boxes {
				if b.W <= 0 || b.H <= 0 || b.X < 0 || b.X+b.W > float64(size.w)+0.5 {
					t.Errorf("%dx%d: #%s at %+v is not inside the page's width", size.w, size.h, id, b)
				}
			}
			order := []string{"sso-heading", "sso-button", "paste-heading", "token-input", "token-submit"}
			for i := 1; i < len(order); i++ {
				a, b := boxes[order[i-1]], boxes[order[i]]
				if a.Y+a.H > b.Y+0.5 {
					t.Errorf("%dx%d: #%s (%+v) overlaps #%s below it (%+v)", size.w, size.h, order[i-1], a, order[i], b)
				}
			}
			var scrollW int
			p.Eval(`document.documentElement.scrollWidth`, &scrollW)
			if scrollW > size.w {
				t.Errorf("%dx%d: the page is %d px wide: it scrolls sideways", size.w, size.h, scrollW)
			}
			shot := filepath.Join(artifactDir(t), fmt.Sprintf("signin-%dx%d.png", size.w, size.h))
			p.Do("screenshot", 10*time.Second, map[string]any{"path": shot})
			t.Logf("screenshot of the sign-in page: %s", shot)
		}
		// a pasted token still works, and goes on to the page asked for.
		p.Do("fill", 5*time.Second, map[string]any{"selector": "#token-input", "value": h.token(auth.Claims{Role: auth.RoleReviewer})})
		p.Do("press", 5*time.Second, map[string]any{"selector": "#token-input", "key": "Enter"})
		pageWait(t, p, "the review page", `location.pathname === '/review.html'`, 10*time.Second)
	})
}

// artifactDir is where screenshots go: $TEST_ARTIFACTS when set, else the test's temporary
// directory.
func artifactDir(t *testing.T) string {
	if d := os.Getenv("TEST_ARTIFACTS"); d != "" {
		return d
	}
	return t.TempDir()
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func jwtClaims(t *testing.T, token string) *auth.Claims {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("stored token %q is not a JWT", token)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c auth.Claims
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return &c
}

// TestSignInHelpers runs api.js's pure sign-in helpers in node: which return addresses are
// accepted (this site's pages only) and reading a JWT's claims.
func TestSignInHelpers(t *testing.T) {
	const script = `
import { jwtClaims, safeReturn } from './api.js';
const loc = { href: 'http://127.0.0.1:8889/signin.html?return=x', origin: 'http://127.0.0.1:8889' };
const cases = ['index.html', 'review.html?incident=a&sources=c1,c2#t', '/index.html', 'index.html?token=abc&x=1',
  'http://evil.example/', '//evil.example/x', 'javascript:alert(1)', 'signin.html', ' index.html', '\\\\evil.example', '', null];
const payload = btoa(JSON.stringify({ sub: 'wall-1', exp: 5 })).replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
console.log(JSON.stringify({ returns: cases.map((c) => safeReturn(c, loc)), claims: jwtClaims('x.' + payload + '.y'), bad: jwtClaims('nope') }));
`
	var res struct {
		Returns []string       `json:"returns"`
		Claims  map[string]any `json:"claims"`
		Bad     any            `json:"bad"`
	}
	runModule(t, script, &res)
	want := []string{"index.html", "review.html?incident=a&sources=c1,c2#t", "index.html", "index.html?x=1", "", "", "", "", "", "", "", ""}
	if strings.Join(res.Returns, "|") != strings.Join(want, "|") {
		t.Errorf("safeReturn = %q, want %q", res.Returns, want)
	}
	if res.Claims["sub"] != "wall-1" || res.Claims["exp"] != float64(5) || res.Bad != nil {
		t.Errorf("jwtClaims = %v and %v for a non-JWT, want sub wall-1, exp 5, and null", res.Claims, res.Bad)
	}
}
