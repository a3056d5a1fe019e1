package auth

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func mintFor(t *testing.T, sub string, ttl time.Duration, now time.Time) (string, *Claims) {
	t.Helper()
	c := Claims{Role: RoleWall, View: []string{"*"}}
	c.Subject = sub
	tok, err := Mint(testSecret, c, ttl, now)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := NewVerifier(testSecret, func() time.Time { return now })
	got, err := v.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	return tok, got
}

func TestMintGivesEachTokenAnID(t *testing.T) {
	now := time.Now()
	_, a := mintFor(t, "x", time.Hour, now)
	_, b := mintFor(t, "x", time.Hour, now)
	if a.ID == "" || a.ID == b.ID {
		t.Fatalf("token ids %q and %q: want distinct, non-empty", a.ID, b.ID)
	}
}

func TestRevokedTokensAreRefused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "revocations.json")
	rl, err := OpenRevocations(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := NewVerifier(testSecret, nil)
	v.UseRevocations(rl)

	old := time.Now().Add(-time.Minute)
	phone, _ := mintFor(t, "phone-7", time.Hour, old)
	other, otherClaims := mintFor(t, "phone-8", time.Hour, old)
	if _, err := v.Verify(phone); err != nil {
		t.Fatalf("before revocation: %v", err)
	}
	if _, err := rl.Add(Revocation{Subject: "phone-7", By: "op", Reason: "phone lost"}); err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(phone)
	if !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked subject: got %v, want ErrRevoked", err)
	}
	if _, err := v.Verify(other); err != nil {
		t.Fatalf("another subject: %v", err)
	}
	// A token minted for the subject after the revocation works.
	fresh, _ := mintFor(t, "phone-7", time.Hour, time.Now().Add(2*time.Second))
	if _, err := v.Verify(fresh); err != nil {
		t.Fatalf("token issued after the revocation: %v", err)
	}
	// By token id.
	if _, err := rl.Add(Revocation{TokenID: otherClaims.ID, By: "op"}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(other); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked token id: got %v", err)
	}
	// The list survives a restart.
	rl2, err := OpenRevocations(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(rl2.List()); n != 2 {
		t.Fatalf("reloaded list has %d revocations, want 2", n)
	}
	if _, err := rl.Add(Revocation{}); err == nil {
		t.Fatal("a revocation naming nothing was accepted")
	}
}

func TestBoundSessionEndsWhenTokenExpires(t *testing.T) {
	v, _ := NewVerifier(testSecret, nil)
	c := &Claims{Role: RoleWall}
	c.Subject = "wall"
	c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-BindGrace + 200*time.Millisecond))
	ended := make(chan string, 1)
	unbind := v.Bind(c, func(reason string) { ended <- reason })
	defer unbind()
	select {
	case r := <-ended:
		if r == "" {
			t.Fatal("empty reason")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the session outlived its token")
	}
	if n := v.Bound(); n != 0 {
		t.Fatalf("%d bindings left after the session ended", n)
	}
}

func TestUnboundSessionIsNotEnded(t *testing.T) {
	// the verifier's clock stands still, with the token's expiry (whole seconds) plus the
	// grace 1–2 s ahead: the timer is that far out however late this goroutine runs (with the
	// wall clock and a 100 ms margin, which the expiry's rounding down to a second could
	// take below zero, the timer could fire at once and end the session before the unbind).
	at := time.Now()
	v, _ := NewVerifier(testSecret, func() time.Time { return at })
	c := &Claims{Role: RoleWall}
	c.ExpiresAt = jwt.NewNumericDate(at.Add(-BindGrace + 2*time.Second))
	ended := make(chan string, 1)
	v.Bind(c, func(reason string) { ended <- reason })()
	done := make(chan struct{})
	time.AfterFunc(2500*time.Millisecond, func() { close(done) })
	select {
	case <-ended:
		t.Fatal("an unbound session was ended")
	case <-done:
	}
}

// A revocation written by another process sharing the file ends the
// sessions bound here.
func TestRevocationFromAnotherProcessEndsSessions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "revocations.json")
	here, err := OpenRevocations(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	there, err := OpenRevocations(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := NewVerifier(testSecret, nil)
	v.UseRevocations(here)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go here.Run(ctx, 50*time.Millisecond)

	_, c := mintFor(t, "phone-9", time.Hour, time.Now().Add(-time.Minute))
	ended := make(chan string, 1)
	defer v.Bind(c, func(reason string) { ended <- reason })()
	start := time.Now()
	if _, err := there.Add(Revocation{Subject: "phone-9", By: "op"}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-ended:
		t.Logf("ended after %s: %s", time.Since(start).Round(time.Millisecond), r)
	case <-time.After(5 * time.Second):
		t.Fatal("the session of a revoked subject did not end")
	}
}

func TestDamagedRevocationListIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "revocations.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenRevocations(path, nil); err == nil {
		t.Fatal("a damaged revocation list was accepted")
	}
}
