package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// provider is an identity provider the test runs itself: it serves a JWKS
// and signs tokens.
type provider struct {
	mu   sync.Mutex
	keys []map[string]string
	srv  *httptest.Server
	hits int
}

func newProvider(t *testing.T) *provider {
	p := &provider{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.hits++
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": p.keys})
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func enc(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func (p *provider) addRSA(kid string, k *rsa.PrivateKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys = append(p.keys, map[string]string{"kty": "RSA", "kid": kid, "use": "sig",
		"n": enc(k.N.Bytes()), "e": enc(big.NewInt(int64(k.E)).Bytes())})
}

func (p *provider) addEC(kid string, k *ecdsa.PrivateKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, _ := k.PublicKey.Bytes()
	p.keys = append(p.keys, map[string]string{"kty": "EC", "kid": kid, "crv": "P-256", "x": enc(b[1:33]), "y": enc(b[33:])})
}

func sign(t *testing.T, m jwt.SigningMethod, kid string, key any, c Claims) string {
	tok := jwt.NewWithClaims(m, c)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestOIDCMatrix(t *testing.T) {
	now := time.Now()
	p := newProvider(t)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	p.addRSA("r1", rk)
	p.addEC("e1", ek)

	clock := now
	v, _ := NewVerifier(secret, func() time.Time { return clock })
	if err := v.UseOIDC(OIDCParams{Issuer: "https://idp.example", Audience: "fieldvideo", JWKSURL: p.srv.URL, MinRefresh: time.Second}); err != nil {
		t.Fatal(err)
	}
	claims := func(mod func(*Claims)) Claims {
		c := Claims{Role: RoleCommander, Room: "incident-*", RoomPublish: true, RoomSubscribe: true}
		c.Issuer, c.Audience, c.Subject = "https://idp.example", jwt.ClaimStrings{"fieldvideo"}, "alice"
		c.ExpiresAt = jwt.NewNumericDate(now.Add(time.Hour))
		if mod != nil {
			mod(&c)
		}
		return c
	}
	for _, c := range []struct {
		name, token, want string
	}{
		{"rs256", sign(t, jwt.SigningMethodRS256, "r1", rk, claims(nil)), ""},
		{"es256", sign(t, jwt.SigningMethodES256, "e1", ek, claims(nil)), ""},
		{"expired", sign(t, jwt.SigningMethodRS256, "r1", rk, claims(func(c *Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Hour)) })), "expired"},
		{"wrong issuer", sign(t, jwt.SigningMethodRS256, "r1", rk, claims(func(c *Claims) { c.Issuer = "https://evil" })), "issuer"},
		{"wrong audience", sign(t, jwt.SigningMethodRS256, "r1", rk, claims(func(c *Claims) { c.Audience = jwt.ClaimStrings{"other"} })), "audience"},
		{"wrong key", sign(t, jwt.SigningMethodRS256, "r1", other, claims(nil)), "signature"},
		{"unknown kid", sign(t, jwt.SigningMethodRS256, "zz", other, claims(nil)), "no key"},
		{"no role", sign(t, jwt.SigningMethodRS256, "r1", rk, claims(func(c *Claims) { c.Role = "" })), "role"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := v.Verify(c.token)
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got.Who() != "alice" || !got.CanJoin("incident-7") || got.CanJoin("other") || !got.RoomPublish {
					t.Fatalf("claims %+v", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, c.want)
			}
		})
	}

	// Key rotation: a token with a new kid makes the keys be fetched again.
	rk2, _ := rsa.GenerateKey(rand.Reader, 2048)
	p.addRSA("r2", rk2)
	clock = clock.Add(2 * time.Second) // past MinRefresh since the last fetch
	if _, err := v.Verify(sign(t, jwt.SigningMethodRS256, "r2", rk2, claims(nil))); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
	// The local HS256 tokens keep working next to the provider's.
	local, _ := Mint(secret, Claims{Role: RoleWall, View: []string{"*"}}, time.Hour, now)
	if _, err := v.Verify(local); err != nil {
		t.Fatalf("local token: %v", err)
	}
	// Provider down: a clear error.
	p.srv.Close()
	clock = clock.Add(2 * time.Second)
	if _, err := v.Verify(sign(t, jwt.SigningMethodRS256, "r3", rk2, claims(nil))); err == nil || !strings.Contains(err.Error(), "cannot get the identity provider's keys") {
		t.Fatalf("provider down: %v", err)
	}
}

func TestRS256WithoutOIDCIsRefused(t *testing.T) {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	v, _ := NewVerifier(secret, nil)
	tok := sign(t, jwt.SigningMethodRS256, "r1", rk, Claims{Role: RoleWall, RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}})
	if _, err := v.Verify(tok); err == nil || !strings.Contains(err.Error(), "no single-sign-on provider") {
		t.Fatalf("got %v", err)
	}
}

func TestParseJWKSRejects(t *testing.T) {
	for _, bad := range []string{`{`, `{"keys":[]}`, `{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`,
		`{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`, `{"keys":[{"kty":"EC","crv":"P-999"}]}`,
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AA"}]}`} {
		if _, err := ParseJWKS([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func FuzzParseJWKS(f *testing.F) {
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"a","n":"` + strings.Repeat("A", 344) + `","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","kid":"e","crv":"P-256","x":"` + strings.Repeat("A", 43) + `","y":"` + strings.Repeat("A", 43) + `"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + strings.Repeat("A", 43) + `"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, err := ParseJWKS(b)
		if err == nil && len(keys) == 0 {
			t.Fatal("no keys and no error")
		}
	})
}
