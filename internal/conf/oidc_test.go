package conf

import (
	"strings"
	"testing"
)

// TestOIDCSignIn checks the settings of the console's single sign-on.
func TestOIDCSignIn(t *testing.T) {
	provider := OIDC{Issuer: "https://id.example.org/realms/eoc", Audience: "fieldvideo", JWKSURL: "https://id.example.org/realms/eoc/certs", Scopes: DefaultOIDCScopes}
	for _, c := range []struct {
		name string
		oidc OIDC
		want string // "" when valid
	}{
		{"defaults", DefaultSFU().Auth.OIDC, ""},
		{"verification only", provider, ""},
		{"console client", withOIDC(provider, func(o *OIDC) { o.ClientID = "fieldvideo-console" }), ""},
		{"offline access", withOIDC(provider, func(o *OIDC) { o.ClientID = "c"; o.Scopes = "openid profile offline_access" }), ""},
		{"loopback http provider", OIDC{Issuer: "http://127.0.0.1:5556", Audience: "a", JWKSURL: "http://127.0.0.1:5556/keys", ClientID: "c", Scopes: "openid"}, ""},
		{"client without issuer", OIDC{ClientID: "c", Scopes: "openid"}, "auth.oidc.client_id is set but auth.oidc.issuer is not"},
		{"http provider elsewhere", withOIDC(provider, func(o *OIDC) { o.ClientID = "c"; o.Issuer = "http://id.example.org" }), "uses http"},
		{"issuer with query", withOIDC(provider, func(o *OIDC) { o.ClientID = "c"; o.Issuer = "https://id.example.org/?x=1" }), "not an issuer URL"},
		{"client id with a newline", withOIDC(provider, func(o *OIDC) { o.ClientID = "c\nd" }), "auth.oidc.client_id"},
		{"no scopes", withOIDC(provider, func(o *OIDC) { o.Scopes = " " }), "auth.oidc.scopes is empty"},
		{"no openid", withOIDC(provider, func(o *OIDC) { o.ClientID = "c"; o.Scopes = "profile email" }), `lacks openid: single sign-on needs it; use "openid profile email"`},
		{"bad scope", withOIDC(provider, func(o *OIDC) { o.Scopes = `openid "profile"` }), "is not a scope"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultSFU()
			cfg.Auth.OIDC = c.oidc
			err := cfg.Validate()
			if c.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want no error", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func withOIDC(o OIDC, set func(*OIDC)) OIDC {
	set(&o)
	return o
}

// TestOIDCEnv checks that the sign-in settings can come from the environment.
func TestOIDCEnv(t *testing.T) {
	c := DefaultSFU()
	env := []string{
		"FV_SFU_AUTH_OIDC_ISSUER=https://id.example.org",
		"FV_SFU_AUTH_OIDC_AUDIENCE=fieldvideo",
		"FV_SFU_AUTH_OIDC_JWKS_URL=https://id.example.org/keys",
		"FV_SFU_AUTH_OIDC_CLIENT_ID=fieldvideo-console",
		"FV_SFU_AUTH_OIDC_SCOPES=openid profile offline_access",
	}
	if err := Load("", "FV_SFU", &c, env); err != nil {
		t.Fatal(err)
	}
	if c.Auth.OIDC.ClientID != "fieldvideo-console" || c.Auth.OIDC.Scopes != "openid profile offline_access" {
		t.Fatalf("oidc = %+v", c.Auth.OIDC)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
