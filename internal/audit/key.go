package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// The signing key file holds the 32-byte ed25519 seed as 64 hex digits and a
// newline, mode 0600. Its public key is kept beside it in <file>.pub as 64 hex
// digits: that file is what the verifier reads (audit verify -key).

// PublicKeyFile returns the path of the public key that belongs to keyFile.
func PublicKeyFile(keyFile string) string { return keyFile + ".pub" }

// loadSigningKey reads the audit log's key (LoadKey).
func loadSigningKey(file string, log *slog.Logger) (ed25519.PrivateKey, error) {
	return LoadKey(file, "audit signing key", "audit.signing_key_file", log)
}

// LoadKey reads the ed25519 key in file, creating it with a fresh random
// key when it is missing, and makes sure its public key file (<file>.pub)
// matches. what names the key and setting its configuration setting, in
// messages.
func LoadKey(file, what, setting string, log *slog.Logger) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		b, err = createSigningKey(file, what, log)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w (check %s and the permissions of its directory)", what, file, err, setting)
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%s %s is not 64 hex digits (an ed25519 seed): restore it from backup, "+
			"or move it away so that a new key is created (what was signed before then verifies only with the old %s)",
			what, file, PublicKeyFile(file))
	}
	key := ed25519.NewKeyFromSeed(seed)
	if fi, err := os.Stat(file); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn(what+" is readable by other users: anyone who reads it can forge signatures; chmod 600 it",
			"file", file, "mode", fi.Mode().Perm().String())
	}
	pub := key.Public().(ed25519.PublicKey)
	want := hex.EncodeToString(pub) + "\n"
	pubFile := PublicKeyFile(file)
	if have, err := os.ReadFile(pubFile); err != nil || string(have) != want {
		if err := os.WriteFile(pubFile, []byte(want), 0o644); err != nil {
			return nil, fmt.Errorf("public key %s cannot be written: %w (verifiers need it; check the permissions of its directory)", pubFile, err)
		}
	}
	return key, nil
}

// KeyID names a public key: the first 8 bytes of its SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string { return keyID(pub) }

// createSigningKey writes a fresh key to file, unless another process
// created it first, and returns the file's content.
func createSigningKey(file, what string, log *slog.Logger) ([]byte, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return os.ReadFile(file)
	}
	if err != nil {
		return nil, err
	}
	b := []byte(hex.EncodeToString(seed) + "\n")
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(file)
		return nil, err
	}
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	log.Warn("created a new "+what+"; keep a copy of its public key where signatures are verified",
		"file", file, "public_key", PublicKeyFile(file), "key_id", keyID(pub))
	return b, nil
}

// ReadPublicKey reads a public key file written beside the signing key
// (64 hex digits).
func ReadPublicKey(file string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("audit public key: %w (pass -key with the .pub file beside audit.signing_key_file on the server that wrote the log)", err)
	}
	pub, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("audit public key %s is not 64 hex digits; use the .pub file written beside audit.signing_key_file", file)
	}
	return ed25519.PublicKey(pub), nil
}
