package auth

import (
	"bytes"
	"errors"
	"io/fs"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func TestVerifyMatrix(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	v, err := NewVerifier(secret, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	good, _ := Mint(secret, Claims{Role: RoleWall, View: []string{"cam-*"}}, time.Hour, now)
	expired, _ := Mint(secret, Claims{Role: RoleWall}, time.Minute, now.Add(-time.Hour))
	otherKey, _ := Mint([]byte("ffffffffffffffffffffffffffffffff"), Claims{Role: RoleWall}, time.Hour, now)
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, Claims{Role: RoleWall}).SignedString(secret)
	badRole, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, Claims{Role: "king",
		RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}}).SignedString(secret)
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, Claims{Role: RoleWall,
		RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}}).SignedString(jwt.UnsafeAllowNoneSignatureType)

	for _, c := range []struct {
		name, token, want string
	}{
		{"missing", "", "no token"},
		{"garbage", "abc.def", "malformed"},
		{"expired", expired, "expired"},
		{"wrong key", otherKey, "signature"},
		{"no exp", noExp, "no expiry"},
		{"unknown role", badRole, "unknown role"},
		{"alg none", none, "HS256"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := v.Verify(c.token)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want error mentioning %q", err, c.want)
			}
		})
	}
	claims, err := v.Verify(good)
	if err != nil {
		t.Fatal(err)
	}
	if !claims.CanView("cam-1") || claims.CanView("field1") || claims.CanPublish("cam-1") {
		t.Fatalf("grants wrong: %+v", claims)
	}
	if claims.Who() != "anonymous" {
		t.Fatalf("who %q", claims.Who())
	}
}

// What each role may do beyond its source and room grants: operators and
// commanders operate; the reviewer role, or the review grant on another
// role, reviews recordings; reviewing never brings live video or operating.
func TestRoleGrants(t *testing.T) {
	v, err := NewVerifier(secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name              string
		claims            Claims
		operate, review   bool
		viewCam1, publish bool
	}{
		{"commander", Claims{Role: RoleCommander}, true, false, false, false},
		{"operator", Claims{Role: RoleOperator}, true, false, false, false},
		{"reviewer", Claims{Role: RoleReviewer}, false, true, false, false},
		{"reviewer with view", Claims{Role: RoleReviewer, View: []string{"cam*"}}, false, true, true, false},
		{"wall", Claims{Role: RoleWall, View: []string{"*"}}, false, false, true, false},
		{"wall with review", Claims{Role: RoleWall, Review: true}, false, true, false, false},
		{"responder", Claims{Role: RoleResponder}, false, false, false, false},
		{"camera", Claims{Role: RoleCamera, Publish: []string{"cam1"}}, false, false, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			tok, err := Mint(secret, c.claims, time.Hour, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			got, err := v.Verify(tok)
			if err != nil {
				t.Fatal(err)
			}
			if got.CanOperate() != c.operate || got.CanReview() != c.review || got.CanView("cam1") != c.viewCam1 || got.CanPublish("cam1") != c.publish {
				t.Errorf("operate %v review %v view %v publish %v; want %v %v %v %v", got.CanOperate(), got.CanReview(),
					got.CanView("cam1"), got.CanPublish("cam1"), c.operate, c.review, c.viewCam1, c.publish)
			}
		})
	}
	var out bytes.Buffer
	if err := Command([]string{"-role", "reviewer", "-sub", "auditor"}, secret, &out); err != nil {
		t.Fatal(err)
	}
	if c, err := v.Verify(strings.TrimSpace(out.String())); err != nil || !c.CanReview() || c.CanOperate() || c.CanView("cam1") {
		t.Fatalf("token -role reviewer: %+v, %v; want review only", c, err)
	}
}

func TestMintRejects(t *testing.T) {
	if _, err := Mint([]byte("short"), Claims{Role: RoleWall}, time.Hour, time.Now()); err == nil {
		t.Error("short secret accepted")
	}
	if _, err := Mint(secret, Claims{Role: "x"}, time.Hour, time.Now()); err == nil {
		t.Error("unknown role accepted")
	}
}

func TestCommand(t *testing.T) {
	var out bytes.Buffer
	if err := Command([]string{"-role", "camera", "-publish", "cam1, cam2", "-sub", "enc-7"}, secret, &out); err != nil {
		t.Fatal(err)
	}
	v, _ := NewVerifier(secret, nil)
	c, err := v.Verify(strings.TrimSpace(out.String()))
	if err != nil {
		t.Fatal(err)
	}
	if c.Role != RoleCamera || !c.CanPublish("cam2") || c.Who() != "enc-7" {
		t.Fatalf("claims %+v", c)
	}
	if err := Command([]string{"-role", "pilot"}, secret, &out); err == nil {
		t.Fatal("unknown role accepted")
	}
}

func TestFromRequest(t *testing.T) {
	r := httptest.NewRequest("GET", "/x?token=q", nil)
	if FromRequest(r) != "q" {
		t.Error("query token")
	}
	r.Header.Set("Authorization", "Bearer h")
	if FromRequest(r) != "h" {
		t.Error("header token")
	}
	r.Header.Set("Authorization", "bearer  h2")
	if FromRequest(r) != "h2" {
		t.Error("header token with the scheme in lower case")
	}
	r.Header.Set("Authorization", "Basic abc")
	if FromRequest(r) != "" {
		t.Error("basic taken as bearer")
	}
	r.Header.Set("Authorization", "Bearerh")
	if FromRequest(r) != "" {
		t.Error("no space after the scheme taken as bearer")
	}
}

func TestLoadSecretCreatesFile(t *testing.T) {
	f := t.TempDir() + "/k/auth.key"
	// minting reads the secret and never makes one: a token signed with a
	// secret no server has is refused everywhere
	if _, err := ReadSecret("", f); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "start the server once") {
		t.Fatalf("ReadSecret of a missing file: %v", err)
	}
	if _, err := os.Stat(f); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadSecret created %s", f)
	}
	a, err := LoadSecret("", f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadSecret("", f)
	if err != nil || !bytes.Equal(a, b) {
		t.Fatalf("second load: %v", err)
	}
	if c, err := ReadSecret("", f); err != nil || !bytes.Equal(a, c) {
		t.Fatalf("ReadSecret after the server made it: %v", err)
	}
	if _, err := LoadSecret("short", ""); err == nil {
		t.Fatal("short secret accepted")
	}
	if _, err := NewVerifier([]byte("x"), nil); !errors.Is(err, err) || err == nil {
		t.Fatal("short verifier secret accepted")
	}
}

func FuzzVerify(f *testing.F) {
	tok, _ := Mint(secret, Claims{Role: RoleWall, View: []string{"*"}}, time.Hour, time.Now())
	f.Add(tok)
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	v, _ := NewVerifier(secret, nil)
	f.Fuzz(func(t *testing.T, s string) {
		c, err := v.Verify(s)
		if err == nil && c == nil {
			t.Fatal("nil claims without error")
		}
	})
}

// A {sub} grant lets each holder publish or view only under their own
// subject as SubjectName writes it: no subject's grant reaches another
// subject's names (one that starts like it, differs only in case, or shares
// its first 24 characters); a token without a subject gets nothing from it;
// a subject made of pattern characters is matched literally.
func TestSubjectGrant(t *testing.T) {
	names := map[string]string{}
	for _, sub := range []string{"alice", "alice.smith", "Alice", "alice-smith", "alice smith", "alice_smith", "a*", "*", "[!x]", "..",
		"abcdefghijklmnopqrstuvwxyz-victim", "abcdefghijklmnopqrstuvwx-other", "abcdefghijklmnopqrstuvwx", "José Núñez", "李安娜", "f81d4fae-7dec-11d0-a765-00a0c91e6bf6"} {
		n := SubjectName(sub)
		if strings.ContainsAny(n, "-*?[\\/") || n == "" || len(n) > 24 {
			t.Errorf("SubjectName(%q) = %q: want up to 24 characters without '-' or pattern characters", sub, n)
		}
		if other, dup := names[n]; dup {
			t.Errorf("subjects %q and %q are both written %q", other, sub, n)
		}
		names[n] = sub
	}
	for n, sub := range names {
		cl := Claims{Role: RoleResponder, Publish: []string{"report-{sub}-*"}, View: []string{"{sub}"}}
		cl.Subject = sub
		if !cl.CanPublish("report-"+n+"-20261206-120000") || !cl.CanView(n) {
			t.Errorf("subject %q may not publish its own report-%s-…", sub, n)
		}
		for other := range names {
			if other != n && (cl.CanPublish("report-"+other+"-20261206-120000") || cl.CanPublish("report-"+other+"-x-1")) {
				t.Errorf("subject %q (%s) may publish report-%s-…, another subject's", sub, n, other)
			}
		}
	}
	for sub, want := range map[string]string{"alice": "alice", "unit.7": "unit.7", "abcdefghijklmnopqrstuvwx": "abcdefghijklmnopqrstuvwx"} {
		if got := SubjectName(sub); got != want {
			t.Errorf("SubjectName(%q) = %q, want it kept", sub, got)
		}
	}
	if n := SubjectName("José Núñez"); !strings.HasPrefix(n, "jose.nunez_") {
		t.Errorf("SubjectName(José Núñez) = %q, want jose.nunez_<hash>", n)
	}
	anon := Claims{Role: RoleResponder, Publish: []string{"report-{sub}-*"}}
	if anon.CanPublish("report--1") || anon.CanPublish("report-_-1") || anon.CanPublish("report-alice-1") {
		t.Error("a token without a subject publishes under a {sub} grant")
	}
}
