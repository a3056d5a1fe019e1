package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// OIDCParams configures verification of tokens from a single-sign-on
// provider.
type OIDCParams struct {
	// Issuer must equal the tokens' iss claim.
	Issuer string
	// Audience must be among the tokens' aud claim.
	Audience string
	// JWKSURL is where the provider publishes its signing keys.
	JWKSURL string
	// HTTP fetches the keys; nil means a client with a 10 s timeout.
	HTTP *http.Client
	// MinRefresh bounds how often an unknown key id makes the keys be
	// fetched again; zero means 30 s.
	MinRefresh time.Duration
}

// oidcAlgs are the signature algorithms accepted from a provider.
var oidcAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// oidc holds a provider's keys, fetched on first use and again when a token
// names a key id not seen yet (the provider rotated its keys).
type oidc struct {
	p   OIDCParams
	now func() time.Time

	mu      sync.Mutex
	keys    map[string]crypto.PublicKey
	fetched time.Time
	lastErr error
}

// UseOIDC makes the verifier also accept tokens signed by the provider p
// describes, next to its own HS256 tokens.
func (v *Verifier) UseOIDC(p OIDCParams) error {
	if p.Issuer == "" || p.Audience == "" || p.JWKSURL == "" {
		return errors.New("oidc: set issuer, audience and jwks_url")
	}
	if p.HTTP == nil {
		p.HTTP = &http.Client{Timeout: 10 * time.Second}
	}
	if p.MinRefresh <= 0 {
		p.MinRefresh = 30 * time.Second
	}
	v.oidc = &oidc{p: p, now: v.now}
	return nil
}

func (o *oidc) verify(token string) (*Claims, error) {
	c := &Claims{}
	_, err := jwt.ParseWithClaims(token, c, o.key,
		jwt.WithValidMethods(oidcAlgs),
		jwt.WithExpirationRequired(),
		jwt.WithIssuer(o.p.Issuer),
		jwt.WithAudience(o.p.Audience),
		jwt.WithTimeFunc(o.now),
		jwt.WithLeeway(30*time.Second),
	)
	if err != nil {
		switch {
		case errors.Is(err, jwt.ErrTokenInvalidIssuer):
			return nil, fmt.Errorf("%w: issuer is not %s", ErrInvalid, o.p.Issuer)
		case errors.Is(err, jwt.ErrTokenInvalidAudience):
			return nil, fmt.Errorf("%w: token is not for audience %s", ErrInvalid, o.p.Audience)
		case errors.Is(err, jwt.ErrTokenSignatureInvalid):
			return nil, fmt.Errorf("%w: signature does not match the identity provider's key", ErrInvalid)
		}
		return nil, fmt.Errorf("%w: %s", ErrInvalid, reason(err))
	}
	return c, nil
}

// key finds the token's signing key by its kid, fetching the provider's
// keys when the kid is unknown (at most once per MinRefresh).
func (o *oidc) key(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	o.mu.Lock()
	defer o.mu.Unlock()
	if k, ok := o.keys[kid]; ok {
		return k, nil
	}
	if now := o.now(); o.fetched.IsZero() || now.Sub(o.fetched) >= o.p.MinRefresh {
		o.fetched = now
		keys, err := o.fetch()
		if err != nil {
			o.lastErr = err
			return nil, fmt.Errorf("cannot get the identity provider's keys: %w", err)
		}
		o.keys, o.lastErr = keys, nil
		if k, ok := o.keys[kid]; ok {
			return k, nil
		}
	}
	if o.lastErr != nil {
		return nil, fmt.Errorf("cannot get the identity provider's keys: %w", o.lastErr)
	}
	return nil, fmt.Errorf("the identity provider has no key %q", kid)
}

func (o *oidc) fetch() (map[string]crypto.PublicKey, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.p.JWKSURL, nil)
	if err != nil {
		return nil, err
	}
	res, err := o.p.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", o.p.JWKSURL, res.Status)
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	return ParseJWKS(b)
}

// ParseJWKS parses a JSON Web Key Set (RFC 7517) into public keys by key id.
// Keys of unknown types, or meant for encryption only, are skipped.
func ParseJWKS(b []byte) (map[string]crypto.PublicKey, error) {
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Kid string `json:"kid"`
			Use string `json:"use"`
			Crv string `json:"crv"`
			N   string `json:"n"`
			E   string `json:"e"`
			X   string `json:"x"`
			Y   string `json:"y"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("JWKS: %w", err)
	}
	keys := map[string]crypto.PublicKey{}
	for i, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		var pub crypto.PublicKey
		var err error
		switch k.Kty {
		case "RSA":
			pub, err = rsaKey(k.N, k.E)
		case "EC":
			pub, err = ecKey(k.Crv, k.X, k.Y)
		case "OKP":
			pub, err = edKey(k.Crv, k.X)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("JWKS key %d (kid %q): %w", i, k.Kid, err)
		}
		keys[k.Kid] = pub
	}
	if len(keys) == 0 {
		return nil, errors.New("JWKS has no signing key")
	}
	return keys, nil
}

func b64(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

func rsaKey(n, e string) (crypto.PublicKey, error) {
	nb, err := b64(n)
	if err != nil || len(nb) < 256 {
		return nil, errors.New("RSA modulus missing, malformed or shorter than 2048 bits")
	}
	eb, err := b64(e)
	if err != nil || len(eb) == 0 || len(eb) > 4 {
		return nil, errors.New("RSA exponent missing or malformed")
	}
	exp := int(new(big.Int).SetBytes(eb).Int64())
	if exp < 3 || exp%2 == 0 {
		return nil, errors.New("RSA exponent is not an odd number >= 3")
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(nb), E: exp}, nil
}

func ecKey(crv, x, y string) (crypto.PublicKey, error) {
	var curve elliptic.Curve
	switch crv {
	case "P-256":
		curve = elliptic.P256()
	case "P-384":
		curve = elliptic.P384()
	case "P-521":
		curve = elliptic.P521()
	default:
		return nil, fmt.Errorf("unsupported curve %q", crv)
	}
	xb, err1 := b64(x)
	yb, err2 := b64(y)
	size := (curve.Params().BitSize + 7) / 8
	if err1 != nil || err2 != nil || len(xb) != size || len(yb) != size {
		return nil, errors.New("EC coordinates missing or malformed")
	}
	raw := append([]byte{4}, append(xb, yb...)...)
	pub, err := ecdsa.ParseUncompressedPublicKey(curve, raw)
	if err != nil {
		return nil, fmt.Errorf("EC point: %w", err)
	}
	return pub, nil
}

func edKey(crv, x string) (crypto.PublicKey, error) {
	if crv != "Ed25519" {
		return nil, fmt.Errorf("unsupported OKP curve %q", crv)
	}
	xb, err := b64(x)
	if err != nil || len(xb) != ed25519.PublicKeySize {
		return nil, errors.New("Ed25519 key missing or malformed")
	}
	return ed25519.PublicKey(xb), nil
}
