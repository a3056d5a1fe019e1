package conf

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
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
	// RevocationsFile lists revoked subjects and tokens (POST
	// /v1/revocations); processes on one host may share it, and each
	// applies the others' revocations within a second.
	RevocationsFile string `yaml:"revocations_file"`
}

// OIDC names a single-sign-on provider.
type OIDC struct {
	Issuer   string `yaml:"issuer"`
	Audience string `yaml:"audience"`
	JWKSURL  string `yaml:"jwks_url"`
	// ClientID, when set, is the console's client at the provider: a public
	// client (no secret) using the authorization code flow with PKCE, whose
	// redirect URI is the console's signin.html. The console then offers
	// "Sign in with" the provider.
	ClientID string `yaml:"client_id"`
	// Scopes the console asks for, separated by spaces; openid is required.
	// Add offline_access for providers that give refresh tokens only then.
	Scopes string `yaml:"scopes"`
}

// DefaultOIDCScopes are the scopes the console asks for unless told otherwise.
const DefaultOIDCScopes = "openid profile"

// Audit configures the append-only, hash-chained audit log.
type Audit struct {
	// File receives one JSON object per line; "-" writes to standard error.
	File string `yaml:"file"`
	// KeyFile holds the ed25519 key that signs checkpoints of the
	// chain; it is created with a random key if missing, and its public key
	// is written beside it (<file>.pub) for "audit verify".
	KeyFile string `yaml:"signing_key_file"`
	// CheckpointInterval is how often the lines written since the last
	// checkpoint are signed (also on shutdown).
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
}

func defaultAudit(file string) Audit {
	return Audit{File: file, KeyFile: "data/audit.key", CheckpointInterval: time.Minute}
}

func (a Audit) validate() error {
	switch {
	case a.File == "":
		return fmt.Errorf("audit.file is empty: every access must be audited; use a path or - for stderr")
	case a.KeyFile == "":
		return fmt.Errorf("audit.signing_key_file is empty: checkpoints must be signed; use a path such as data/audit.key (created on first start)")
	case a.KeyFile == a.File || a.KeyFile+".pub" == a.File:
		return fmt.Errorf("audit.signing_key_file %q must not be the audit file itself; use another path such as data/audit.key", a.KeyFile)
	case a.CheckpointInterval < time.Second:
		return fmt.Errorf("audit.checkpoint_interval %s is too short; use at least 1s (1m is usual)", a.CheckpointInterval)
	case a.CheckpointInterval > time.Hour:
		return fmt.Errorf("audit.checkpoint_interval %s is too long: lines stay unsigned that long; use at most 1h (1m is usual)", a.CheckpointInterval)
	}
	return nil
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

func defaultAuth() Auth {
	return Auth{SecretFile: "data/auth.key", RevocationsFile: "data/revocations.json", OIDC: OIDC{Scopes: DefaultOIDCScopes}}
}
func defaultStream() Stream {
	return Stream{QueueSize: 512, GOPCacheUnits: 600, GOPCacheBytes: 16 << 20, KeyframeInterval: time.Second}
}
func defaultLog() Log { return Log{Level: "info", Format: "text"} }

func (a Auth) validate() error {
	if a.Secret == "" && a.SecretFile == "" {
		return fmt.Errorf("auth: set auth.secret or auth.secret_file")
	}
	if a.RevocationsFile == "" {
		return fmt.Errorf("auth.revocations_file is empty: a lost token must be revocable; use a path such as data/revocations.json")
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
	return a.OIDC.validateSignIn()
}

// validateSignIn checks the settings the console's sign-in uses.
func (o OIDC) validateSignIn() error {
	if err := checkScopes(o.Scopes); err != nil {
		return err
	}
	if o.ClientID == "" {
		return nil
	}
	if o.Issuer == "" {
		return fmt.Errorf("auth.oidc.client_id is set but auth.oidc.issuer is not: the console signs in at the issuer; set issuer, audience and jwks_url too, or clear client_id")
	}
	if len(o.ClientID) > 255 || strings.IndexFunc(o.ClientID, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0 {
		return fmt.Errorf("auth.oidc.client_id %q is not a client id: use the id the provider gave the console's client (printable ASCII, at most 255 characters)", o.ClientID)
	}
	u, err := url.Parse(o.Issuer)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("auth.oidc.issuer %q is not an issuer URL: use the provider's https URL without query or fragment, exactly as its /.well-known/openid-configuration names it", o.Issuer)
	}
	if u.Scheme == "http" && !loopbackHost(u.Hostname()) {
		return fmt.Errorf("auth.oidc.issuer %q uses http: browsers would send passwords and codes in the clear; use the provider's https URL (http is accepted only on this machine, for tests)", o.Issuer)
	}
	return nil
}

// checkScopes checks a space-separated scope list (RFC 6749 section 3.3).
func checkScopes(scopes string) error {
	list := strings.Fields(scopes)
	if len(list) == 0 {
		return fmt.Errorf("auth.oidc.scopes is empty: use at least openid (the default is %q)", DefaultOIDCScopes)
	}
	for _, sc := range list {
		if strings.IndexFunc(sc, func(r rune) bool { return r < 0x21 || r > 0x7e || r == '"' || r == '\\' }) >= 0 {
			return fmt.Errorf("auth.oidc.scopes: %q is not a scope (printable ASCII without quotes or backslashes); separate scopes with spaces", sc)
		}
	}
	if !slices.Contains(list, "openid") {
		return fmt.Errorf("auth.oidc.scopes %q lacks openid: single sign-on needs it; use %q", scopes, "openid "+strings.Join(list, " "))
	}
	return nil
}

// loopbackHost reports whether host names this machine.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
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

// Shared is the part of a configuration every process has.
type Shared struct {
	Log    Log
	Auth   Auth
	Audit  Audit
	Record Record
	// Cluster and Role (sfu, ingest) name the node to the others.
	Cluster Cluster
	Role    string
}

// Shared returns the settings the SFU shares with every process.
func (c SFU) Shared() Shared {
	return Shared{Log: c.Log, Auth: c.Auth, Audit: c.Audit, Record: c.Record, Cluster: c.Cluster, Role: "sfu"}
}

// Shared returns the settings ingest shares with every process.
func (c Ingest) Shared() Shared {
	return Shared{Log: c.Log, Auth: c.Auth, Audit: c.Audit, Record: c.Record, Cluster: c.Cluster, Role: "ingest"}
}
