package auth

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// LoadSecret returns secret when set; otherwise it reads file, creating it
// with a new random key (mode 0600) when it does not exist yet.
func LoadSecret(secret, file string) ([]byte, error) {
	b, err := ReadSecret(secret, file)
	if !errors.Is(err, fs.ErrNotExist) {
		return b, err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return nil, fmt.Errorf("create auth secret: %w", err)
	}
	if err := os.WriteFile(file, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("create auth secret: %w", err)
	}
	return ReadSecret("", file)
}

// ReadSecret is LoadSecret without creating a missing file: minting a token
// with a new secret nobody serves with would only give a token every server
// refuses. The error for a missing file wraps fs.ErrNotExist.
func ReadSecret(secret, file string) ([]byte, error) {
	if secret != "" {
		if len(secret) < MinSecretLen {
			return nil, fmt.Errorf("auth secret is %d bytes; use at least %d", len(secret), MinSecretLen)
		}
		return []byte(secret), nil
	}
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		abs, _ := filepath.Abs(file)
		return nil, fmt.Errorf("no auth secret at %s: a server creates it when it first starts; run this in the directory the server runs in, "+
			"or give the server's -config (auth.secret_file), or start the server once: %w", abs, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("read auth secret: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if len(s) < MinSecretLen {
		return nil, fmt.Errorf("auth secret in %s is %d bytes; use at least %d", file, len(s), MinSecretLen)
	}
	return []byte(s), nil
}

// NewVerifierFor returns the verifier the settings describe: tokens signed
// with secret, and those of the single-sign-on provider when one is named.
func NewVerifierFor(secret []byte, issuer, audience, jwksURL string) (*Verifier, error) {
	v, err := NewVerifier(secret, nil)
	if err != nil || issuer == "" {
		return v, err
	}
	return v, v.UseOIDC(OIDCParams{Issuer: issuer, Audience: audience, JWKSURL: jwksURL})
}
