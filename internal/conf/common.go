package conf

import (
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"time"
)

// Auth configures token verification.
type Auth struct {
	// Secret is the HS256 key tokens are signed with (at least 32 bytes).
	// When empty, SecretFile is read, and created with a random key if missing.
	Secret     string `yaml:"secret"`
	SecretFile string `yaml:"secret_file"`
	// OIDC, when its issuer is set, also accepts tokens from a single-sign-on
	// provider, verified with the keys it publishes at jwks_url.
	OIDC OIDC `yaml:"oidc"`
}

// OIDC names a single-sign-on provider.
type OIDC struct {
	Issuer   string `yaml:"issuer"`
	Audience string `yaml:"audience"`
	JWKSURL  string `yaml:"jwks_url"`
}

// Audit configures the append-only audit log.
type Audit struct {
	// File receives one JSON object per line; "-" writes to standard error.
	File string `yaml:"file"`
}

// Stream configures the fan-out hub of every source.
type Stream struct {
	QueueSize        int           `yaml:"queue_size"`
	GOPCacheUnits    int           `yaml:"gop_cache_units"`
	GOPCacheBytes    int           `yaml:"gop_cache_bytes"`
	KeyframeInterval time.Duration `yaml:"keyframe_interval"`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

func defaultAuth() Auth { return Auth{SecretFile: "data/auth.key"} }
func defaultStream() Stream {
	return Stream{QueueSize: 512, GOPCacheUnits: 600, GOPCacheBytes: 16 << 20, KeyframeInterval: time.Second}
}
func defaultLog() Log { return Log{Level: "info", Format: "text"} }

func (a Auth) validate() error {
	if a.Secret == "" && a.SecretFile == "" {
		return fmt.Errorf("auth: set auth.secret or auth.secret_file")
	}
	if a.Secret != "" && len(a.Secret) < 32 {
		return fmt.Errorf("auth.secret is %d bytes; use at least 32 random bytes", len(a.Secret))
	}
	if o := a.OIDC; o.Issuer != "" || o.JWKSURL != "" || o.Audience != "" {
		if o.Issuer == "" || o.JWKSURL == "" || o.Audience == "" {
			return fmt.Errorf("auth.oidc: set issuer, audience and jwks_url together, or none")
		}
		if u, err := url.Parse(o.JWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("auth.oidc.jwks_url %q is not an http(s) URL", o.JWKSURL)
		}
	}
	return nil
}

func (s Stream) validate() error {
	if s.QueueSize < 16 {
		return fmt.Errorf("stream.queue_size %d is too small; use at least 16 units", s.QueueSize)
	}
	if s.KeyframeInterval < 0 {
		return fmt.Errorf("stream.keyframe_interval must not be negative")
	}
	return nil
}

func (l Log) validate() error {
	switch l.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level %q: use debug, info, warn or error", l.Level)
	}
	switch l.Format {
	case "text", "json":
	default:
		return fmt.Errorf("log.format %q: use text or json", l.Format)
	}
	return nil
}

// NewLogger returns the logger the Log settings describe, writing to w.
func (l Log) NewLogger(w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(l.Level))
	opts := &slog.HandlerOptions{Level: level}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// LoadFile loads the config at path over the defaults in dst. A missing file
// is an error only when required is set (the path was given explicitly).
func LoadFile(path string, required bool, prefix string, dst any) error {
	if _, err := os.Stat(path); err != nil && !required {
		path = ""
	}
	return Load(path, prefix, dst, os.Environ())
}
