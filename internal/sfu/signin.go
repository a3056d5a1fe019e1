package sfu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/conf"
	"fieldvideo/internal/whip"
)

// signInParams configures the console's sign-in settings endpoint.
type signInParams struct {
	OIDC conf.OIDC
	// AllowOrigin is sent as Access-Control-Allow-Origin, as on the other APIs.
	AllowOrigin string
	Log         *slog.Logger
	// HTTP fetches the provider's discovery document; nil means a client
	// with a 5 s timeout.
	HTTP *http.Client
	// Fresh is how long a fetched discovery document is used before it is
	// fetched again (zero: an hour); a failed fetch is tried again on the
	// next request, at most once per Retry (zero: a second), and meanwhile
	// the last good document, if any, is served.
	Fresh, Retry time.Duration
	Now          func() time.Time
}

// signIn serves GET /v1/auth/config: what the console needs to sign in at
// the single-sign-on provider, read from the provider's discovery document
// (/.well-known/openid-configuration), or {"oidc": null} when the console
// has no client there. It needs no token: the sign-in page reads it before
// the user has one.
type signIn struct {
	p   signInParams
	log *slog.Logger

	mu sync.Mutex
	// doc is the last good discovery document, fetched at fetched; lastErr
	// the last failure, at failed. inflight, when not nil, is closed when
	// the fetch running now ends.
	doc      *oidcDiscovery
	fetched  time.Time
	lastErr  error
	failed   time.Time
	inflight chan struct{}
}

// oidcDiscovery holds what the console uses of a provider's discovery document.
type oidcDiscovery struct {
	Issuer                string `json:"issuer"`
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
	EndSessionEndpoint    string `json:"end_session_endpoint"`
}

// signInConfig is the answer's "oidc" member.
type signInConfig struct {
	Issuer                string `json:"issuer"`
	ClientID              string `json:"client_id"`
	Scopes                string `json:"scopes"`
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
	EndSessionEndpoint    string `json:"end_session_endpoint"`
}

// maxDiscoveryBytes bounds a discovery document (real ones are a few KiB).
const maxDiscoveryBytes = 256 << 10

func newSignIn(p signInParams) *signIn {
	if p.Log == nil {
		p.Log = slog.Default()
	}
	if p.HTTP == nil {
		p.HTTP = &http.Client{Timeout: 5 * time.Second}
	}
	if p.Fresh <= 0 {
		p.Fresh = time.Hour
	}
	if p.Retry <= 0 {
		p.Retry = time.Second
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	return &signIn{p: p, log: p.Log.With("component", "signin")}
}

func (s *signIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	whip.SetCORS(w, s.p.AllowOrigin)
	if ev := audit.Annotate(r); ev != nil {
		ev.Action = "sign-in-config"
	}
	w.Header().Set("Cache-Control", "no-store")
	o := s.p.OIDC
	if o.ClientID == "" {
		s.write(w, map[string]any{"oidc": nil})
		return
	}
	d, err := s.discover(r.Context())
	if err != nil {
		whip.WriteError(w, whip.Errorf(http.StatusBadGateway, "single sign-on is unavailable: %v", err))
		return
	}
	s.write(w, map[string]any{"oidc": signInConfig{
		Issuer: o.Issuer, ClientID: o.ClientID, Scopes: strings.Join(strings.Fields(o.Scopes), " "),
		AuthorizationEndpoint: d.AuthorizationEndpoint, TokenEndpoint: d.TokenEndpoint, EndSessionEndpoint: d.EndSessionEndpoint,
	}})
}

func (s *signIn) write(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// discover returns the provider's discovery document: the cached one while
// fresh, else fetched again (one fetch at a time; the others wait for it).
// When a fetch fails, the last good document is served if there is one.
func (s *signIn) discover(ctx context.Context) (*oidcDiscovery, error) {
	for {
		s.mu.Lock()
		now := s.p.Now()
		if s.doc != nil && now.Sub(s.fetched) < s.p.Fresh {
			d := s.doc
			s.mu.Unlock()
			return d, nil
		}
		if s.lastErr != nil && now.Sub(s.failed) < s.p.Retry {
			d, err := s.doc, s.lastErr
			s.mu.Unlock()
			if d != nil {
				return d, nil
			}
			return nil, err
		}
		if wait := s.inflight; wait != nil {
			s.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("gave up waiting for the provider's discovery document: %w", ctx.Err())
			}
		}
		done := make(chan struct{})
		s.inflight = done
		s.mu.Unlock()

		d, err := s.fetch(ctx)

		s.mu.Lock()
		s.inflight = nil
		close(done)
		if err != nil {
			s.lastErr, s.failed = err, s.p.Now()
			stale := s.doc
			s.mu.Unlock()
			if stale != nil {
				s.log.Warn("cannot refresh the single-sign-on provider's discovery document; using the one fetched before", "issuer", s.p.OIDC.Issuer, "error", err)
				return stale, nil
			}
			s.log.Warn("cannot fetch the single-sign-on provider's discovery document", "issuer", s.p.OIDC.Issuer, "error", err)
			return nil, err
		}
		s.doc, s.fetched, s.lastErr = d, s.p.Now(), nil
		s.mu.Unlock()
		return d, nil
	}
}

// fetch GETs and checks the provider's discovery document.
func (s *signIn) fetch(ctx context.Context) (*oidcDiscovery, error) {
	u := discoveryURL(s.p.OIDC.Issuer)
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("auth.oidc.issuer %q gives no discovery URL: %v", s.p.OIDC.Issuer, err)
	}
	req.Header.Set("Accept", "application/json")
	res, err := s.p.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the provider at %s (%v); check auth.oidc.issuer and that this server can reach it", u, unwrapURLError(err))
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the provider answered %s for %s; check auth.oidc.issuer (it must be the provider's issuer URL)", res.Status, u)
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, maxDiscoveryBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %v", u, err)
	}
	if len(b) > maxDiscoveryBytes {
		return nil, fmt.Errorf("%s is larger than %d KiB; it is not a discovery document", u, maxDiscoveryBytes>>10)
	}
	d, err := parseDiscovery(b, s.p.OIDC.Issuer)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	return d, nil
}

// discoveryURL is where the issuer publishes its discovery document (OpenID
// Connect Discovery 1.0, section 4).
func discoveryURL(issuer string) string {
	return strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// parseDiscovery parses a discovery document and checks what the console
// relies on: the issuer is the configured one (section 4.3: a document
// naming another issuer must not be used), the endpoints the browser is
// sent to are absolute https URLs (http only on loopback), and the provider
// does PKCE with S256 when it lists its methods.
func parseDiscovery(b []byte, issuer string) (*oidcDiscovery, error) {
	var raw struct {
		oidcDiscovery
		CodeChallengeMethods []string `json:"code_challenge_methods_supported"`
		ResponseTypes        []string `json:"response_types_supported"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("not a discovery document (JSON: %v)", err)
	}
	d := raw.oidcDiscovery
	if d.Issuer != issuer {
		return nil, fmt.Errorf("the provider names itself issuer %q, not auth.oidc.issuer %q: set auth.oidc.issuer to exactly the issuer the provider publishes (a trailing slash counts)", d.Issuer, issuer)
	}
	for _, e := range []struct{ name, url string }{
		{"authorization_endpoint", d.AuthorizationEndpoint},
		{"token_endpoint", d.TokenEndpoint},
		{"end_session_endpoint", d.EndSessionEndpoint},
	} {
		if e.url == "" && e.name == "end_session_endpoint" {
			continue
		}
		if err := checkOIDCEndpoint(e.url); err != nil {
			return nil, fmt.Errorf("%s %q: %v", e.name, e.url, err)
		}
	}
	if len(raw.CodeChallengeMethods) > 0 && !slices.Contains(raw.CodeChallengeMethods, "S256") {
		return nil, fmt.Errorf("the provider does not do PKCE with S256 (code_challenge_methods_supported: %v); the console needs it", raw.CodeChallengeMethods)
	}
	if len(raw.ResponseTypes) > 0 && !slices.Contains(raw.ResponseTypes, "code") {
		return nil, fmt.Errorf("the provider does not offer the authorization code flow (response_types_supported: %v); the console needs it", raw.ResponseTypes)
	}
	return &d, nil
}

// checkOIDCEndpoint accepts an absolute https URL, or http on loopback.
func checkOIDCEndpoint(s string) error {
	if s == "" {
		return errors.New("missing")
	}
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Host == "" || u.User != nil || u.Fragment != "" {
		return errors.New("not an absolute URL without user or fragment")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if h := u.Hostname(); h == "localhost" || net.ParseIP(h) != nil && net.ParseIP(h).IsLoopback() {
			return nil
		}
		return errors.New("http outside this machine: browsers would send codes and tokens in the clear; the provider must use https")
	}
	return fmt.Errorf("scheme %q: use https", u.Scheme)
}
