package config

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDefaultsAreTheEmbeddedProfile(t *testing.T) {
	cfg, _, err := Load(nil, env(nil), io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:8080" || cfg.Issuer != "http://127.0.0.1:8080" {
		t.Errorf("addr/issuer = %q/%q", cfg.Addr, cfg.Issuer)
	}
	if cfg.Audience != "http://127.0.0.1:8080/api" || cfg.JWKSURL != "http://127.0.0.1:8080/.well-known/jwks.json" {
		t.Errorf("audience/jwks = %q/%q", cfg.Audience, cfg.JWKSURL)
	}
	if cfg.DatabaseURL != filepath.Join("data", "portaria.db") {
		t.Errorf("database = %q", cfg.DatabaseURL)
	}
	if cfg.RedisURL != "" || cfg.SMTPURL != "" {
		t.Error("embedded profile must need no other service")
	}
	if *cfg.CookieSecure {
		t.Error("cookies on http://127.0.0.1 cannot be Secure")
	}
	if cfg.AccessTokenTTL != 15*time.Minute || cfg.RefreshTokenTTL != 720*time.Hour || cfg.SigningAlg != "ES256" ||
		cfg.KeyRotation != 720*time.Hour || cfg.ClockSkew != 5*time.Second || cfg.RefreshGrace != 5*time.Second ||
		cfg.RedisPrefix != "portaria:" {
		t.Errorf("defaults differ from SPEC §2: %+v", cfg)
	}
}

func TestPrecedenceIsFlagsThenEnvironmentThenFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "portaria.yaml")
	os.WriteFile(file, []byte("addr: 127.0.0.1:7000\naccess_token_ttl: 10m\nsigning_alg: EdDSA\ncors_origins:\n  - https://a.example\n  - https://b.example\n"), 0o600)
	cfg, _, err := Load([]string{"--config", file, "--access-token-ttl", "5m"},
		env(map[string]string{"PORTARIA_ACCESS_TOKEN_TTL": "7m", "PORTARIA_SIGNING_ALG": "RS256"}), io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:7000" {
		t.Errorf("file value lost: addr %q", cfg.Addr)
	}
	if cfg.AccessTokenTTL != 5*time.Minute {
		t.Errorf("flag must win: ttl %s", cfg.AccessTokenTTL)
	}
	if cfg.SigningAlg != "RS256" {
		t.Errorf("environment must win over file: alg %s", cfg.SigningAlg)
	}
	if len(cfg.CORSOrigins) != 2 {
		t.Errorf("cors origins from a YAML list: %v", cfg.CORSOrigins)
	}
	if *cfg.CookieSecure {
		t.Error("issuer derived from a loopback address: not secure")
	}
}

// The embedded profile has no load balancer to wait for; a deployment behind one sets the delay.
// The settings that are off by default: 0 unless set, and set as given.
func TestOptionalDurationsAreOffByDefaultAndSettable(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		get         func(Config) time.Duration
		want        time.Duration
	}{
		{"PORTARIA_SHUTDOWN_DELAY", "5s", func(c Config) time.Duration { return c.ShutdownDelay }, 5 * time.Second},
		{"PORTARIA_RESULT_RETENTION", "43800h", func(c Config) time.Duration { return c.ResultRetention }, 43800 * time.Hour},
	} {
		cfg, _, err := Load(nil, env(nil), io.Discard, nil)
		if err != nil || tc.get(cfg) != 0 {
			t.Errorf("%s by default: %v (err %v), want 0", tc.name, tc.get(cfg), err)
		}
		cfg, _, err = Load(nil, env(map[string]string{tc.name: tc.value}), io.Discard, nil)
		if err != nil || tc.get(cfg) != tc.want {
			t.Errorf("%s=%s: %v (err %v), want %v", tc.name, tc.value, tc.get(cfg), err, tc.want)
		}
	}
}

// Client_credentials tokens are access-log lines unless their audit events are asked for.
func TestClientAuditIsOffByDefault(t *testing.T) {
	if cfg, _, err := Load(nil, env(nil), io.Discard, nil); err != nil || cfg.ClientAudit {
		t.Errorf("by default: %v (err %v)", cfg.ClientAudit, err)
	}
	if cfg, _, err := Load(nil, env(map[string]string{"PORTARIA_AUDIT_CLIENT_TOKENS": "true"}), io.Discard, nil); err != nil || !cfg.ClientAudit {
		t.Errorf("set: %v (err %v)", cfg.ClientAudit, err)
	}
}

func TestHTTPSIssuerMakesCookiesSecure(t *testing.T) {
	cfg, _, err := Load(nil, env(map[string]string{"PORTARIA_ISSUER": "https://auth.example.com/"}), io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !*cfg.CookieSecure || cfg.Issuer != "https://auth.example.com" {
		t.Errorf("secure=%v issuer=%q", *cfg.CookieSecure, cfg.Issuer)
	}
}

func TestInvalidSettingsAreNamedOnePerLine(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"a duration that does not parse", map[string]string{"PORTARIA_ACCESS_TOKEN_TTL": "soon"}, nil, "PORTARIA_ACCESS_TOKEN_TTL"},
		{"an unknown signing algorithm", map[string]string{"PORTARIA_SIGNING_ALG": "HS256"}, nil, "PORTARIA_SIGNING_ALG"},
		{"a master key of the wrong length", map[string]string{"PORTARIA_MASTER_KEY": "c2hvcnQ="}, nil, "PORTARIA_MASTER_KEY"},
		{"an issuer with a query", map[string]string{"PORTARIA_ISSUER": "https://a.example/?x=1"}, nil, "PORTARIA_ISSUER"},
		{"a CORS origin with a path", map[string]string{"PORTARIA_CORS_ORIGINS": "https://a.example/app"}, nil, "PORTARIA_CORS_ORIGINS"},
		{"a trusted proxy that is not a CIDR", map[string]string{"PORTARIA_TRUSTED_PROXIES": "10.0.0.1"}, nil, "PORTARIA_TRUSTED_PROXIES"},
		{"a non-Redis URL", map[string]string{"PORTARIA_REDIS_URL": "http://x:1"}, nil, "PORTARIA_REDIS_URL"},
		{"a MySQL URL", map[string]string{"PORTARIA_DATABASE_URL": "mysql://x/y"}, nil, "PORTARIA_DATABASE_URL"},
		{"a grace window over a minute", map[string]string{"PORTARIA_REFRESH_GRACE": "2m"}, nil, "PORTARIA_REFRESH_GRACE"},
		{"a rotation shorter than publication needs", map[string]string{"PORTARIA_KEY_ROTATION": "10m"}, nil, "PORTARIA_KEY_ROTATION"},
		{"an unknown log format", map[string]string{"PORTARIA_LOG_FORMAT": "xml"}, nil, "PORTARIA_LOG_FORMAT"},
		{"a negative shutdown delay", map[string]string{"PORTARIA_SHUTDOWN_DELAY": "-1s"}, nil, "PORTARIA_SHUTDOWN_DELAY"},
		{"a result retention of minutes", map[string]string{"PORTARIA_RESULT_RETENTION": "30m"}, nil, "PORTARIA_RESULT_RETENTION"},
		{"a negative result retention", map[string]string{"PORTARIA_RESULT_RETENTION": "-24h"}, nil, "PORTARIA_RESULT_RETENTION"},
		{"a bad boolean flag", nil, []string{"--signup", "maybe"}, "signup"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := Load(c.args, env(c.env), io.Discard, nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one naming %s", err, c.want)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.Contains(line, "PORTARIA_") && !strings.Contains(line, "--") && !strings.Contains(line, "invalid value") {
					t.Errorf("line %q does not name the setting", line)
				}
			}
		})
	}
}

func TestUnknownKeyInTheFileIsAnError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "portaria.yaml")
	os.WriteFile(file, []byte("adress: 127.0.0.1:1\n"), 0o600)
	_, _, err := Load([]string{"--config", file}, env(nil), io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "adress") {
		t.Fatalf("err = %v", err)
	}
}

func TestEverySettingHasAVariableAndHelp(t *testing.T) {
	for _, f := range fields() {
		if f.env == "" || f.help == "" {
			t.Errorf("field %d lacks env or help tag", f.index)
		}
	}
}
