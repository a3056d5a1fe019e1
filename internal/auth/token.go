// Package auth mints and verifies the bearer tokens every entry point
// requires: JWTs signed with HS256, carrying a role and the sources the
// holder may publish or view.
package auth

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"fieldvideo/internal/netlimit"
)

// Role says what kind of party holds a token.
type Role string

// Roles.
const (
	RoleCommander Role = "commander"
	RoleOperator  Role = "operator"
	RoleResponder Role = "responder"
	RoleCamera    Role = "camera"
	RoleWall      Role = "wall"
	RoleReviewer  Role = "reviewer"
)

// Roles lists every known role.
var Roles = []Role{RoleCommander, RoleOperator, RoleResponder, RoleCamera, RoleWall, RoleReviewer}

// Claims are the token's contents.
type Claims struct {
	jwt.RegisteredClaims
	Role Role `json:"role"`
	// Publish and View list the sources the holder may publish or view; each
	// entry is a name or a shell pattern such as "*" or "cam-*". An entry
	// holding SubjectPlaceholder stands for the holder's own subject: with
	// "report-{sub}-*" each responder publishes only reports under their own
	// name.
	Publish []string `json:"pub,omitempty"`
	View    []string `json:"view,omitempty"`
	// Room is the call room the holder may join: a name or a pattern. What
	// it may do there: publish its camera, microphone and screen; subscribe
	// to the others' tracks. Review gives a token of another role what the
	// reviewer role has (see CanReview).
	Room          string `json:"room,omitempty"`
	RoomPublish   bool   `json:"room_publish,omitempty"`
	RoomSubscribe bool   `json:"room_subscribe,omitempty"`
	Review        bool   `json:"review,omitempty"`
	// Recorded says the holder records what it publishes itself (ingest
	// records cameras at the edge), so the SFU does not record it again.
	Recorded bool `json:"recorded,omitempty"`
}

// CanJoin reports whether the claims allow joining room.
func (c *Claims) CanJoin(room string) bool { return c.Room != "" && matchAny([]string{c.Room}, room) }

// CanPublish reports whether the claims allow publishing source.
func (c *Claims) CanPublish(source string) bool { return c.matchGrant(c.Publish, source) }

// CanView reports whether the claims allow viewing source.
func (c *Claims) CanView(source string) bool { return c.matchGrant(c.View, source) }

// CanOperate reports whether the claims allow reading metrics and the state
// of the whole system.
func (c *Claims) CanOperate() bool { return c.Role == RoleOperator || c.Role == RoleCommander }

// CanReview reports whether the claims allow reviewing recordings: reading
// the recording state. The reviewer role may; another role only with the
// review grant. Reviewing grants neither live video (View) nor operating.
func (c *Claims) CanReview() bool { return c.Role == RoleReviewer || c.Review }

// Who returns the token's subject for logs and the audit trail, or
// "anonymous" when it has none.
func (c *Claims) Who() string {
	if c.RegisteredClaims.Subject == "" {
		return "anonymous"
	}
	return c.RegisteredClaims.Subject
}

// matchGrant is matchAny over patterns with SubjectPlaceholder replaced by
// the holder's SubjectName. An entry with the placeholder grants nothing to
// a token without a subject.
func (c *Claims) matchGrant(patterns []string, name string) bool {
	for _, p := range patterns {
		if strings.Contains(p, SubjectPlaceholder) {
			if c.Subject == "" {
				continue
			}
			p = strings.ReplaceAll(p, SubjectPlaceholder, SubjectName(c.Subject))
		}
		if matchAny([]string{p}, name) {
			return true
		}
	}
	return false
}

func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, err := path.Match(p, name); err == nil && ok {
			return true
		}
	}
	return false
}

// Errors returned by Verify; each wraps a reason the caller can show.
var (
	ErrMissing = errors.New("no token: send Authorization: Bearer <token> (RTSP: the token as password, or ?token=<token> in the URL)")
	ErrInvalid = errors.New("invalid token")
)

// MinSecretLen is the shortest HS256 secret accepted.
const MinSecretLen = 32

// Verifier checks tokens: its own, signed with one secret (HS256), and when
// configured with UseOIDC, those of a single-sign-on provider.
type Verifier struct {
	secret []byte
	now    func() time.Time
	oidc   *oidc
	rev    *Revocations
	binds  bindings
}

// NewVerifier returns a verifier for secret. now may be nil.
func NewVerifier(secret []byte, now func() time.Time) (*Verifier, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("auth secret is %d bytes; use at least %d random bytes", len(secret), MinSecretLen)
	}
	if now == nil {
		now = time.Now
	}
	return &Verifier{secret: slices.Clone(secret), now: now}, nil
}

// Verify parses and checks a token: signature, algorithm, expiry and role.
func (v *Verifier) Verify(token string) (*Claims, error) {
	if token == "" {
		return nil, ErrMissing
	}
	if t, _, err := jwt.NewParser().ParseUnverified(token, &Claims{}); err == nil && t.Method.Alg() != jwt.SigningMethodHS256.Alg() {
		if v.oidc == nil || !slices.Contains(oidcAlgs, t.Method.Alg()) {
			return nil, fmt.Errorf("%w: token is signed with %s; this server accepts HS256%s", ErrInvalid, t.Method.Alg(), v.oidcHint())
		}
		c, err := v.oidc.verify(token)
		if err != nil {
			return nil, err
		}
		return v.check(c)
	}
	c := &Claims{}
	_, err := jwt.ParseWithClaims(token, c, func(*jwt.Token) (any, error) { return v.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(v.now),
		jwt.WithLeeway(5*time.Second),
	)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalid, reason(err))
	}
	return v.check(c)
}

// check refuses unknown roles and revoked tokens.
func (v *Verifier) check(c *Claims) (*Claims, error) {
	if !slices.Contains(Roles, c.Role) {
		return nil, fmt.Errorf("%w: unknown role %q", ErrInvalid, c.Role)
	}
	if v.rev != nil {
		if rv, ok := v.rev.Revoked(c); ok {
			return nil, fmt.Errorf("%w: %s; ask for a new token", ErrRevoked, rv)
		}
	}
	return c, nil
}

func (v *Verifier) oidcHint() string {
	if v.oidc == nil {
		return " (no single-sign-on provider is configured)"
	}
	return " and " + strings.Join(oidcAlgs, ", ") + " from " + v.oidc.p.Issuer
}

func reason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired; mint a new one"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token not valid yet; check the clocks"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "signature does not match this server's secret"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "token has no expiry (exp)"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	}
	return err.Error()
}

// Mint signs claims with secret, valid for ttl from now.
func Mint(secret []byte, c Claims, ttl time.Duration, now time.Time) (string, error) {
	if len(secret) < MinSecretLen {
		return "", fmt.Errorf("auth secret is %d bytes; use at least %d", len(secret), MinSecretLen)
	}
	if !slices.Contains(Roles, c.Role) {
		return "", fmt.Errorf("unknown role %q; use one of %v", c.Role, Roles)
	}
	if ttl <= 0 {
		return "", fmt.Errorf("token lifetime must be positive")
	}
	c.IssuedAt = jwt.NewNumericDate(now)
	c.ExpiresAt = jwt.NewNumericDate(now.Add(ttl))
	if c.ID == "" {
		id := make([]byte, 12)
		if _, err := rand.Read(id); err != nil {
			return "", err
		}
		c.ID = hex.EncodeToString(id)
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}

// Identify names who makes an HTTP request, from its token, for the audit
// log: the subject and role, or "anonymous" when the token is missing or
// refused.
func (v *Verifier) Identify(r *http.Request) (actor, role string) {
	c, err := v.Verify(FromRequest(r))
	if err != nil {
		return "anonymous", ""
	}
	return c.Who(), string(c.Role)
}

// IdentifyGranting is Identify for a server's HTTP handler: a request whose
// token is valid also grants the connection it came on its place under the
// listener's limits (netlimit.GrantRequest), so that a flood of connections
// that never show a token can take only each other's places.
func (v *Verifier) IdentifyGranting(r *http.Request) (actor, role string) {
	actor, role = v.Identify(r)
	if role != "" {
		netlimit.GrantRequest(r)
	}
	return actor, role
}

// FromRequest returns the bearer token of an HTTP request: the Authorization
// header, or the token query parameter for clients that cannot set headers
// (browser WebSockets, media elements).
func FromRequest(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		// the scheme is case-insensitive (RFC 9110, 11.1)
		if scheme, t, ok := strings.Cut(strings.TrimSpace(h), " "); ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(t)
		}
		return ""
	}
	return r.URL.Query().Get("token")
}
