package testkit

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"html/template"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/rs/cors"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// OIDCUser is an account of an OIDCProvider.
type OIDCUser struct {
	Username, Password string
	// Role is the role claim of the user's access tokens; empty puts none.
	Role string
	// View is the view claim (the sources the tokens may view).
	View []string
	// Audience, when set, replaces the provider's audience in the user's
	// access tokens (a token meant for another service).
	Audience string
}

// OIDCParams configures an OIDCProvider.
type OIDCParams struct {
	// Audience is the aud of the access tokens: the server's auth.oidc.audience.
	Audience string
	// ClientID is the console's public client; empty means "fieldvideo-console".
	ClientID string
	Users    []OIDCUser
	// AccessTokenTTL is the access tokens' lifetime; zero means 5 minutes.
	AccessTokenTTL time.Duration
}

// OIDCProvider is a real OpenID Connect provider (github.com/zitadel/oidc's
// op package) on loopback, for tests of single sign-on: a user name and
// password login page, one public client doing the authorization code flow
// with PKCE (S256), JWT access tokens (ES256) carrying the audience and the
// user's role and view claims, rotating refresh tokens (with offline_access),
// and CORS for the console origins registered with AllowConsole.
type OIDCProvider struct {
	// Issuer is the provider's issuer URL, http://127.0.0.1:<port>.
	Issuer   string
	ClientID string

	st  *oidcStorage
	srv *http.Server
}

// StartOIDCProvider starts a provider on 127.0.0.1:0; it stops when the test ends.
func StartOIDCProvider(t testing.TB, p OIDCParams) *OIDCProvider {
	t.Helper()
	if p.ClientID == "" {
		p.ClientID = "fieldvideo-console"
	}
	if p.AccessTokenTTL <= 0 {
		p.AccessTokenTTL = 5 * time.Minute
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testkit: OIDC provider: %v", err)
	}
	issuer := "http://" + ln.Addr().String()
	st := &oidcStorage{
		audience: p.Audience, clientID: p.ClientID, users: p.Users,
		key:      oidcKey{id: randomID(), key: key},
		requests: map[string]*oidcAuthRequest{}, codes: map[string]string{},
		refresh: map[string]*oidcRefreshToken{}, access: map[string]string{},
	}
	st.ttl.Store(int64(p.AccessTokenTTL))
	var cryptoKey [32]byte
	if _, err := rand.Read(cryptoKey[:]); err != nil {
		t.Fatal(err)
	}
	provider, err := op.NewProvider(&op.Config{
		CryptoKey:             cryptoKey,
		CryptoKeyId:           "k1",
		CodeMethodS256:        true,
		GrantTypeRefreshToken: true,
	}, st, op.StaticIssuer(issuer),
		op.WithAllowInsecure(),
		op.WithCORSOptions(&cors.Options{
			AllowOriginFunc: st.allowedOrigin,
			AllowedMethods:  []string{http.MethodGet, http.MethodPost},
			AllowedHeaders:  []string{"Accept", "Authorization", "Content-Type"},
		}),
	)
	if err != nil {
		_ = ln.Close()
		t.Fatalf("testkit: OIDC provider: %v", err)
	}
	login := &oidcLogin{st: st, callback: op.AuthCallbackURL(provider)}
	intercept := op.NewIssuerInterceptor(provider.IssuerFromRequest)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", login.form)
	mux.Handle("POST /login", intercept.HandlerFunc(login.submit))
	mux.Handle("/", provider)
	o := &OIDCProvider{Issuer: issuer, ClientID: p.ClientID, st: st,
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	done := make(chan struct{})
	go func() { _ = o.srv.Serve(ln); close(done) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = o.srv.Shutdown(ctx)
		<-done
	})
	return o
}

// JWKSURL is where the provider publishes its signing keys.
func (o *OIDCProvider) JWKSURL() string { return o.Issuer + "/keys" }

// AllowConsole registers the console served at origin (scheme://host:port):
// its signin.html as the client's redirect and post-logout URI, and origin
// for CORS.
func (o *OIDCProvider) AllowConsole(origin string) {
	o.st.mu.Lock()
	defer o.st.mu.Unlock()
	o.st.origins = append(o.st.origins, strings.TrimSuffix(origin, "/"))
}

// SetAccessTokenTTL changes the lifetime of the access tokens issued from now on.
func (o *OIDCProvider) SetAccessTokenTTL(d time.Duration) { o.st.ttl.Store(int64(d)) }

// Refreshes counts the refresh_token grants the provider has answered with new tokens.
func (o *OIDCProvider) Refreshes() int { return int(o.st.refreshes.Load()) }

// RevokeRefreshTokens makes every refresh token issued so far unusable, as an
// administrator ending the users' sessions would.
func (o *OIDCProvider) RevokeRefreshTokens() {
	o.st.mu.Lock()
	defer o.st.mu.Unlock()
	clear(o.st.refresh)
}

// RefreshTokens counts the refresh tokens of subject the provider would still honour: its
// sessions with the console.
func (o *OIDCProvider) RefreshTokens(subject string) int {
	o.st.mu.Lock()
	defer o.st.mu.Unlock()
	n := 0
	for _, rt := range o.st.refresh {
		if rt.subject == subject {
			n++
		}
	}
	return n
}

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// oidcLogin is the provider's login page.
type oidcLogin struct {
	st       *oidcStorage
	callback func(context.Context, string) string
}

var oidcLoginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Test identity provider: sign in</title></head>
<body><h1>Test identity provider</h1>
<form method="post" action="/login">
<input type="hidden" name="id" value="{{.ID}}">
{{if .Error}}<p id="login-error" role="alert">{{.Error}}</p>{{end}}
<p><label for="username">User name</label> <input id="username" name="username" autocomplete="username" value="{{.Username}}"></p>
<p><label for="password">Password</label> <input id="password" name="password" type="password" autocomplete="current-password"></p>
<p><button id="login-submit" type="submit">Sign in</button></p>
</form></body></html>`))

type oidcLoginData struct{ ID, Username, Error string }

func (l *oidcLogin) form(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = oidcLoginPage.Execute(w, oidcLoginData{ID: r.URL.Query().Get("authRequestID")})
}

func (l *oidcLogin) submit(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "cannot parse the form: "+err.Error(), http.StatusBadRequest)
		return
	}
	id, name := r.PostForm.Get("id"), r.PostForm.Get("username")
	if err := l.st.login(id, name, r.PostForm.Get("password")); err != nil {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		_ = oidcLoginPage.Execute(w, oidcLoginData{ID: id, Username: name, Error: err.Error()})
		return
	}
	http.Redirect(w, r, l.callback(r.Context(), id), http.StatusFound)
}

// oidcStorage is the provider's state, in memory: op.Storage.
type oidcStorage struct {
	audience, clientID string
	users              []OIDCUser
	key                oidcKey
	ttl                atomic.Int64
	refreshes          atomic.Int64

	mu       sync.Mutex
	origins  []string
	requests map[string]*oidcAuthRequest
	codes    map[string]string // code → auth request id
	refresh  map[string]*oidcRefreshToken
	access   map[string]string // access token id → subject
}

var _ op.Storage = (*oidcStorage)(nil)

func (s *oidcStorage) allowedOrigin(origin string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.origins, origin)
}

func (s *oidcStorage) user(name string) (OIDCUser, bool) {
	for _, u := range s.users {
		if u.Username == name {
			return u, true
		}
	}
	return OIDCUser{}, false
}

func (s *oidcStorage) login(id, name, password string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	req, ok := s.requests[id]
	if !ok {
		return errors.New("This sign-in request is unknown or expired; start again from the application.")
	}
	u, ok := s.user(name)
	if !ok || u.Password != password {
		return errors.New("Wrong user name or password.")
	}
	req.subject, req.done, req.authTime = u.Username, true, time.Now()
	req.audience = s.audienceOf(u.Username)
	return nil
}

// audienceOf is the aud of subject's tokens: the console's client and the
// server's audience (or the user's own).
func (s *oidcStorage) audienceOf(subject string) []string {
	aud := s.audience
	if u, ok := s.user(subject); ok && u.Audience != "" {
		aud = u.Audience
	}
	return []string{s.clientID, aud}
}

// oidcAuthRequest is an authorization request being served: op.AuthRequest.
type oidcAuthRequest struct {
	id, clientID, redirectURI, state, nonce string
	scopes                                  []string
	responseType                            oidc.ResponseType
	responseMode                            oidc.ResponseMode
	challenge                               *oidc.CodeChallenge
	audience                                []string

	subject  string
	done     bool
	authTime time.Time
}

func (a *oidcAuthRequest) GetID() string                         { return a.id }
func (a *oidcAuthRequest) GetACR() string                        { return "" }
func (a *oidcAuthRequest) GetAMR() []string                      { return []string{"pwd"} }
func (a *oidcAuthRequest) GetAudience() []string                 { return a.audience }
func (a *oidcAuthRequest) GetAuthTime() time.Time                { return a.authTime }
func (a *oidcAuthRequest) GetClientID() string                   { return a.clientID }
func (a *oidcAuthRequest) GetCodeChallenge() *oidc.CodeChallenge { return a.challenge }
func (a *oidcAuthRequest) GetNonce() string                      { return a.nonce }
func (a *oidcAuthRequest) GetRedirectURI() string                { return a.redirectURI }
func (a *oidcAuthRequest) GetResponseType() oidc.ResponseType    { return a.responseType }
func (a *oidcAuthRequest) GetResponseMode() oidc.ResponseMode    { return a.responseMode }
func (a *oidcAuthRequest) GetScopes() []string                   { return a.scopes }
func (a *oidcAuthRequest) GetState() string                      { return a.state }
func (a *oidcAuthRequest) GetSubject() string                    { return a.subject }
func (a *oidcAuthRequest) Done() bool                            { return a.done }

// oidcRefreshToken is a refresh token: op.RefreshTokenRequest.
type oidcRefreshToken struct {
	subject, clientID string
	scopes, audience  []string
	authTime          time.Time
	expires           time.Time
}

func (r *oidcRefreshToken) GetAMR() []string                 { return []string{"pwd"} }
func (r *oidcRefreshToken) GetAudience() []string            { return r.audience }
func (r *oidcRefreshToken) GetAuthTime() time.Time           { return r.authTime }
func (r *oidcRefreshToken) GetClientID() string              { return r.clientID }
func (r *oidcRefreshToken) GetScopes() []string              { return r.scopes }
func (r *oidcRefreshToken) GetSubject() string               { return r.subject }
func (r *oidcRefreshToken) SetCurrentScopes(scopes []string) { r.scopes = scopes }

func (s *oidcStorage) CreateAuthRequest(_ context.Context, r *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Contains(r.Prompt, oidc.PromptNone) {
		return nil, oidc.ErrLoginRequired()
	}
	req := &oidcAuthRequest{
		id: randomID(), clientID: r.ClientID, redirectURI: r.RedirectURI, state: r.State, nonce: r.Nonce,
		scopes: r.Scopes, responseType: r.ResponseType, responseMode: r.ResponseMode,
	}
	if r.CodeChallenge != "" {
		req.challenge = &oidc.CodeChallenge{Challenge: r.CodeChallenge, Method: r.CodeChallengeMethod}
	}
	s.requests[req.id] = req
	return req, nil
}

func (s *oidcStorage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	req, ok := s.requests[id]
	if !ok {
		return nil, errors.New("auth request not found")
	}
	return req, nil
}

func (s *oidcStorage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	id, ok := s.codes[code]
	s.mu.Unlock()
	if !ok {
		return nil, errors.New("code invalid or used")
	}
	return s.AuthRequestByID(ctx, id)
}

func (s *oidcStorage) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes[code] = id
	return nil
}

func (s *oidcStorage) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.requests, id)
	for code, rid := range s.codes {
		if rid == id {
			delete(s.codes, code)
		}
	}
	return nil
}

func (s *oidcStorage) newAccess(subject string) (string, time.Time) {
	id := randomID()
	s.mu.Lock()
	s.access[id] = subject
	s.mu.Unlock()
	return id, time.Now().Add(time.Duration(s.ttl.Load()))
}

func (s *oidcStorage) CreateAccessToken(_ context.Context, r op.TokenRequest) (string, time.Time, error) {
	id, exp := s.newAccess(r.GetSubject())
	return id, exp, nil
}

func (s *oidcStorage) CreateAccessAndRefreshTokens(_ context.Context, r op.TokenRequest, current string) (string, string, time.Time, error) {
	next := &oidcRefreshToken{subject: r.GetSubject(), scopes: r.GetScopes(), audience: r.GetAudience(), expires: time.Now().Add(time.Hour)}
	switch req := r.(type) {
	case *oidcAuthRequest:
		next.clientID, next.authTime = req.clientID, req.authTime
	case *oidcRefreshToken:
		next.clientID, next.authTime = req.clientID, req.authTime
	}
	s.mu.Lock()
	if current != "" {
		if _, ok := s.refresh[current]; !ok {
			s.mu.Unlock()
			return "", "", time.Time{}, errors.New("refresh token unknown, used or revoked")
		}
		delete(s.refresh, current)
		s.refreshes.Add(1)
	}
	token := randomID()
	s.refresh[token] = next
	s.mu.Unlock()
	id, exp := s.newAccess(r.GetSubject())
	return id, token, exp, nil
}

func (s *oidcStorage) TokenRequestByRefreshToken(_ context.Context, token string) (op.RefreshTokenRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, ok := s.refresh[token]
	if !ok || time.Now().After(rt.expires) {
		return nil, errors.New("refresh token unknown, expired or revoked")
	}
	c := *rt
	return &c, nil
}

func (s *oidcStorage) TerminateSession(_ context.Context, userID, clientID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, rt := range s.refresh {
		if rt.subject == userID && rt.clientID == clientID {
			delete(s.refresh, k)
		}
	}
	return nil
}

func (s *oidcStorage) RevokeToken(_ context.Context, token, _, clientID string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rt, ok := s.refresh[token]; ok {
		if rt.clientID != clientID {
			return oidc.ErrInvalidClient().WithDescription("token was not issued for this client")
		}
		delete(s.refresh, token)
	}
	delete(s.access, token)
	return nil
}

func (s *oidcStorage) GetRefreshTokenInfo(_ context.Context, _, token string) (string, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, ok := s.refresh[token]
	if !ok {
		return "", "", op.ErrInvalidRefreshToken
	}
	return rt.subject, token, nil
}

// oidcKey is the provider's ES256 signing key.
type oidcKey struct {
	id  string
	key *ecdsa.PrivateKey
}

func (k *oidcKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.ES256 }
func (k *oidcKey) Key() any                                    { return k.key }
func (k *oidcKey) ID() string                                  { return k.id }

// oidcPublicKey is the public half of oidcKey: op.Key.
type oidcPublicKey struct{ k *oidcKey }

func (p oidcPublicKey) ID() string                         { return p.k.id }
func (p oidcPublicKey) Algorithm() jose.SignatureAlgorithm { return jose.ES256 }
func (p oidcPublicKey) Use() string                        { return "sig" }
func (p oidcPublicKey) Key() any                           { return &p.k.key.PublicKey }

func (s *oidcStorage) SigningKey(context.Context) (op.SigningKey, error) { return &s.key, nil }
func (s *oidcStorage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.ES256}, nil
}
func (s *oidcStorage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{oidcPublicKey{&s.key}}, nil
}

func (s *oidcStorage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	if id != s.clientID {
		return nil, errors.New("client not found")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &oidcClient{id: id}
	for _, o := range s.origins {
		c.redirects = append(c.redirects, o+"/signin.html")
	}
	return c, nil
}

func (s *oidcStorage) AuthorizeClientIDSecret(context.Context, string, string) error {
	return errors.New("the console's client is public: it has no secret")
}

func (s *oidcStorage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest fills the ID token's user claims.
func (s *oidcStorage) SetUserinfoFromRequest(_ context.Context, info *oidc.UserInfo, r op.IDTokenRequest, _ []string) error {
	info.Subject, info.PreferredUsername, info.Name = r.GetSubject(), r.GetSubject(), r.GetSubject()
	return nil
}

func (s *oidcStorage) SetUserinfoFromToken(_ context.Context, info *oidc.UserInfo, tokenID, _, _ string) error {
	s.mu.Lock()
	sub, ok := s.access[tokenID]
	s.mu.Unlock()
	if !ok {
		return errors.New("token unknown")
	}
	info.Subject, info.PreferredUsername, info.Name = sub, sub, sub
	return nil
}

func (s *oidcStorage) SetIntrospectionFromToken(context.Context, *oidc.IntrospectionResponse, string, string, string) error {
	return errors.New("introspection is not offered")
}

// GetPrivateClaimsFromScopes gives the access tokens the user's role and view claims.
func (s *oidcStorage) GetPrivateClaimsFromScopes(_ context.Context, userID, _ string, _ []string) (map[string]any, error) {
	u, ok := s.user(userID)
	if !ok {
		return nil, errors.New("user not found")
	}
	claims := map[string]any{}
	if u.Role != "" {
		claims["role"] = u.Role
	}
	if len(u.View) > 0 {
		claims["view"] = u.View
	}
	return claims, nil
}

func (s *oidcStorage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("no client keys: JWT profile is not offered")
}

func (s *oidcStorage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("JWT profile is not offered")
}

func (s *oidcStorage) Health(context.Context) error { return nil }

// oidcClient is the console: a public user-agent client (PKCE, no
// secret) allowed http redirects, which are on loopback here.
type oidcClient struct {
	id        string
	redirects []string
}

func (c *oidcClient) GetID() string                       { return c.id }
func (c *oidcClient) RedirectURIs() []string              { return c.redirects }
func (c *oidcClient) PostLogoutRedirectURIs() []string    { return c.redirects }
func (c *oidcClient) ApplicationType() op.ApplicationType { return op.ApplicationTypeUserAgent }
func (c *oidcClient) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodNone }
func (c *oidcClient) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *oidcClient) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken}
}
func (c *oidcClient) LoginURL(id string) string           { return "/login?authRequestID=" + id }
func (c *oidcClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }
func (c *oidcClient) IDTokenLifetime() time.Duration      { return time.Hour }
func (c *oidcClient) DevMode() bool                       { return true }
func (c *oidcClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *oidcClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *oidcClient) IsScopeAllowed(string) bool           { return false }
func (c *oidcClient) IDTokenUserinfoClaimsAssertion() bool { return false }
func (c *oidcClient) ClockSkew() time.Duration             { return 0 }
