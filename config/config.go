// Package config holds Portaria's settings: defaults (the embedded profile), an optional YAML
// file, PORTARIA_* environment variables and flags, in increasing order of precedence.
package config

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is every setting of `portaria serve`. Field tags name the setting in the three sources:
// `env` is the variable after the PORTARIA_ prefix, the flag is its lower-case kebab form and
// the YAML key its lower-case snake form.
type Config struct {
	Addr            string        `env:"ADDR" help:"listen address"`
	Issuer          string        `env:"ISSUER" help:"iss of every token; base of discovery URLs (default http:// + addr)"`
	DataDir         string        `env:"DATA_DIR" help:"SQLite file, generated master key, e-mail outbox"`
	DatabaseURL     string        `env:"DATABASE_URL" help:"postgres://… selects PostgreSQL (default: SQLite file in the data dir)"`
	RedisURL        string        `env:"REDIS_URL" help:"redis:// or rediss:// (comma-separated addresses: Cluster); empty keeps token state in the database"`
	MasterKey       string        `env:"MASTER_KEY" help:"base64 of 32 bytes; encrypts signing keys and TOTP secrets (default: generated into the data dir)"`
	JWKSURL         string        `env:"JWKS_URL" help:"where --role api fetches verification keys (default: the issuer's JWKS)"`
	SMTPURL         string        `env:"SMTP_URL" help:"smtp://user:pass@host:port (default: .eml files in the data dir's outbox)"`
	MailFrom        string        `env:"MAIL_FROM" help:"From address of account e-mails (default: portaria@ the issuer's host)"`
	AccessTokenTTL  time.Duration `env:"ACCESS_TOKEN_TTL" help:"default access-token lifetime"`
	RefreshTokenTTL time.Duration `env:"REFRESH_TOKEN_TTL" help:"default refresh-token family lifetime (absolute)"`
	RefreshIdleTTL  time.Duration `env:"REFRESH_IDLE_TTL" help:"a session whose refresh token goes unused this long ends (0: no idle timeout)"`
	SigningAlg      string        `env:"SIGNING_ALG" help:"ES256, EdDSA or RS256"`
	KeyRotation     time.Duration `env:"KEY_ROTATION" help:"how often a new signing key becomes active"`
	Signup          bool          `env:"SIGNUP" help:"allow self sign-up"`
	CookieSecure    *bool         `env:"COOKIE_SECURE" help:"Secure flag on cookies (default: true unless the issuer is http://localhost or 127.0.0.1)"`
	CORSOrigins     []string      `env:"CORS_ORIGINS" help:"allowed browser origins, comma-separated"`
	Audience        string        `env:"AUDIENCE" help:"aud of access tokens for the resource API (default issuer + /api)"`
	ClockSkew       time.Duration `env:"CLOCK_SKEW" help:"leeway the verifier allows on exp/nbf/iat"`
	RefreshGrace    time.Duration `env:"REFRESH_GRACE" help:"window in which a repeated use of a refresh token gets the same successor"`
	RedisPrefix     string        `env:"REDIS_PREFIX" help:"prefix of every Redis key"`
	TrustedProxies  []string      `env:"TRUSTED_PROXIES" help:"CIDRs whose X-Forwarded-For is believed, comma-separated"`
	LogFormat       string        `env:"LOG_FORMAT" help:"text or json (default: text on a terminal, else json)"`
	JWKSMaxAge      time.Duration `env:"JWKS_MAX_AGE" help:"Cache-Control max-age of the JWKS; keys are published this long (twice, plus a margin) before they sign"`
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" help:"how long a graceful shutdown waits for in-flight requests"`
	ResultRetention time.Duration `env:"RESULT_RETENTION" help:"results applied longer ago than this are deleted for good, content and row (0: kept until deleted)"`
	ClientAudit     bool          `env:"AUDIT_CLIENT_TOKENS" help:"store every client_credentials token as an audit event, row and line (default: its access-log line names the client and the token's jti)"`
	ShutdownDelay   time.Duration `env:"SHUTDOWN_DELAY" help:"how long the server keeps serving after SIGTERM, /readyz failing, before it shuts down (0: at once)"`
}

// Default returns the embedded profile: everything on one machine, no other service needed.
func Default() Config {
	return Config{
		Addr:            "127.0.0.1:8080",
		DataDir:         "./data",
		AccessTokenTTL:  15 * time.Minute,
		RefreshTokenTTL: 720 * time.Hour,
		SigningAlg:      "ES256",
		KeyRotation:     720 * time.Hour,
		ClockSkew:       5 * time.Second,
		RefreshGrace:    5 * time.Second,
		RedisPrefix:     "portaria:",
		JWKSMaxAge:      5 * time.Minute,
		ShutdownTimeout: 20 * time.Second,
	}
}

// TrustedPrefixes parses PORTARIA_TRUSTED_PROXIES (already validated).
func (c Config) TrustedPrefixes() ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(c.TrustedProxies))
	for _, p := range c.TrustedProxies {
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			return nil, fmt.Errorf("PORTARIA_TRUSTED_PROXIES: %q is not a CIDR", p)
		}
		out = append(out, pfx.Masked())
	}
	return out, nil
}

// MaxAccessTokenTTL bounds every access-token lifetime, a client's own maximum included; retired
// signing keys stay published this long (plus skew and the JWKS max-age).
const MaxAccessTokenTTL = 24 * time.Hour

// Load builds the configuration of `serve` from args (flags, after the command name) and getenv.
// extra, if not nil, registers the command's own flags on the same flag set before parsing.
func Load(args []string, getenv func(string) string, stderr io.Writer, extra func(*flag.FlagSet)) (Config, []string, error) {
	cfg := Default()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config", "", "optional YAML configuration file")
	if extra != nil {
		extra(fs)
	}
	// Flags win over the environment, which wins over the file: remember them, apply them last.
	flagVals := map[int]string{}
	for _, f := range fields() {
		fs.Func(f.flagName(), f.help+" (PORTARIA_"+f.env+")", func(s string) error {
			flagVals[f.index] = s
			return validateValue(f, s)
		})
	}
	if err := fs.Parse(args); err != nil {
		return cfg, nil, err
	}
	if *configFile != "" {
		if err := loadYAML(&cfg, *configFile); err != nil {
			return cfg, nil, err
		}
	}
	for _, f := range fields() {
		if v := getenv("PORTARIA_" + f.env); v != "" {
			if err := f.set(&cfg, v); err != nil {
				return cfg, nil, fmt.Errorf("PORTARIA_%s: %w", f.env, err)
			}
		}
	}
	for _, f := range fields() {
		if v, ok := flagVals[f.index]; ok {
			if err := f.set(&cfg, v); err != nil {
				return cfg, nil, fmt.Errorf("--%s: %w", f.flagName(), err)
			}
		}
	}
	cfg.applyDerived()
	return cfg, fs.Args(), cfg.Validate()
}

// applyDerived fills the defaults that depend on other settings.
func (c *Config) applyDerived() {
	if c.Issuer == "" {
		c.Issuer = "http://" + c.Addr
	}
	c.Issuer = strings.TrimSuffix(c.Issuer, "/")
	if c.Audience == "" {
		c.Audience = c.Issuer + "/api"
	}
	if c.JWKSURL == "" {
		c.JWKSURL = c.Issuer + "/.well-known/jwks.json"
	}
	if c.MailFrom == "" {
		host := "localhost"
		if u, err := url.Parse(c.Issuer); err == nil && u.Hostname() != "" {
			host = u.Hostname()
		}
		c.MailFrom = "Portaria <portaria@" + host + ">"
	}
	if c.DatabaseURL == "" {
		c.DatabaseURL = filepath.Join(c.DataDir, "portaria.db")
	}
	if c.CookieSecure == nil {
		secure := !isLocalHTTP(c.Issuer)
		c.CookieSecure = &secure
	}
}

func isLocalHTTP(issuer string) bool {
	u, err := url.Parse(issuer)
	if err != nil || u.Scheme != "http" {
		return false
	}
	h := u.Hostname()
	return h == "localhost" || h == "127.0.0.1" || h == "::1"
}

// Validate reports every bad setting, one line each, naming the variable.
func (c Config) Validate() error {
	var errs []error
	bad := func(env, format string, a ...any) {
		errs = append(errs, fmt.Errorf("PORTARIA_%s: %s", env, fmt.Sprintf(format, a...)))
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		bad("ADDR", "%q is not host:port", c.Addr)
	}
	if err := checkBaseURL(c.Issuer); err != nil {
		bad("ISSUER", "%v", err)
	}
	if err := checkBaseURL(c.JWKSURL); err != nil {
		bad("JWKS_URL", "%v", err)
	}
	if c.Audience == "" || strings.ContainsAny(c.Audience, " \t\r\n") {
		bad("AUDIENCE", "must be a non-empty string without spaces")
	}
	if c.DataDir == "" {
		bad("DATA_DIR", "must not be empty")
	}
	if strings.HasPrefix(c.DatabaseURL, "postgres") {
		if u, err := url.Parse(c.DatabaseURL); err != nil || u.Host == "" {
			bad("DATABASE_URL", "is not a valid postgres:// URL")
		}
	} else if strings.Contains(c.DatabaseURL, "://") {
		bad("DATABASE_URL", "must be postgres://… or a SQLite file path")
	}
	if c.RedisURL != "" {
		for _, a := range strings.Split(c.RedisURL, ",") {
			a = strings.TrimSpace(a)
			if strings.Contains(a, "://") && !strings.HasPrefix(a, "redis://") && !strings.HasPrefix(a, "rediss://") {
				bad("REDIS_URL", "must use redis:// or rediss://")
				break
			}
			if !strings.Contains(a, "://") {
				if _, _, err := net.SplitHostPort(a); err != nil {
					bad("REDIS_URL", "a Cluster address must be host:port")
					break
				}
			}
		}
	}
	if c.MasterKey != "" {
		if k, err := decodeKey(c.MasterKey); err != nil || len(k) != 32 {
			bad("MASTER_KEY", "must be base64 of exactly 32 bytes")
		}
	}
	if _, err := mail.ParseAddress(c.MailFrom); err != nil {
		bad("MAIL_FROM", "%q is not an e-mail address", c.MailFrom)
	}
	if c.SMTPURL != "" {
		if u, err := url.Parse(c.SMTPURL); err != nil || (u.Scheme != "smtp" && u.Scheme != "smtps") || u.Host == "" {
			bad("SMTP_URL", "must be smtp://[user:pass@]host:port")
		}
	}
	positive := []struct {
		env string
		d   time.Duration
	}{
		{"ACCESS_TOKEN_TTL", c.AccessTokenTTL}, {"REFRESH_TOKEN_TTL", c.RefreshTokenTTL},
		{"KEY_ROTATION", c.KeyRotation}, {"JWKS_MAX_AGE", c.JWKSMaxAge}, {"SHUTDOWN_TIMEOUT", c.ShutdownTimeout},
	}
	for _, p := range positive {
		if p.d <= 0 {
			bad(p.env, "must be a positive duration")
		}
	}
	if c.RefreshIdleTTL < 0 {
		bad("REFRESH_IDLE_TTL", "must not be negative")
	}
	// A retention of minutes is a typo for one of days: results would vanish within the hour.
	if c.ResultRetention != 0 && c.ResultRetention < 24*time.Hour {
		bad("RESULT_RETENTION", "must be 0 (keep results) or at least 24h")
	}
	if c.ShutdownDelay < 0 {
		bad("SHUTDOWN_DELAY", "must not be negative")
	}
	if c.AccessTokenTTL > MaxAccessTokenTTL {
		bad("ACCESS_TOKEN_TTL", "must be at most %s", MaxAccessTokenTTL)
	}
	if c.AccessTokenTTL > c.RefreshTokenTTL && c.RefreshTokenTTL > 0 {
		bad("REFRESH_TOKEN_TTL", "must not be shorter than PORTARIA_ACCESS_TOKEN_TTL")
	}
	if c.KeyRotation > 0 && c.KeyRotation < 4*c.JWKSMaxAge {
		bad("KEY_ROTATION", "must be at least four times PORTARIA_JWKS_MAX_AGE (%s) so keys are published before they sign", c.JWKSMaxAge)
	}
	if c.ClockSkew < 0 || c.ClockSkew > time.Minute {
		bad("CLOCK_SKEW", "must be between 0s and 1m")
	}
	if c.RefreshGrace < 0 || c.RefreshGrace > time.Minute {
		bad("REFRESH_GRACE", "must be between 0s and 1m")
	}
	switch c.SigningAlg {
	case "ES256", "EdDSA", "RS256":
	default:
		bad("SIGNING_ALG", "%q is not one of ES256, EdDSA, RS256", c.SigningAlg)
	}
	for _, o := range c.CORSOrigins {
		if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			bad("CORS_ORIGINS", "%q is not an origin (scheme://host[:port])", o)
		}
	}
	for _, p := range c.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			bad("TRUSTED_PROXIES", "%q is not a CIDR", p)
		}
	}
	switch c.LogFormat {
	case "", "text", "json":
	default:
		bad("LOG_FORMAT", "%q is not text or json", c.LogFormat)
	}
	if c.RedisPrefix == "" {
		bad("REDIS_PREFIX", "must not be empty")
	}
	return errors.Join(errs...)
}

func checkBaseURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q must have no query, fragment or user info", s)
	}
	return nil
}

// decodeKey decodes PORTARIA_MASTER_KEY (standard or URL base64, padded or not).
func decodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not base64")
}

// field describes one setting, found by reflection over Config's tags.
type field struct {
	index int
	env   string
	help  string
	kind  reflect.Type
}

func (f field) flagName() string { return strings.ReplaceAll(strings.ToLower(f.env), "_", "-") }
func (f field) yamlName() string { return strings.ToLower(f.env) }

func fields() []field {
	t := reflect.TypeOf(Config{})
	out := make([]field, 0, t.NumField())
	for i := range t.NumField() {
		sf := t.Field(i)
		out = append(out, field{index: i, env: sf.Tag.Get("env"), help: sf.Tag.Get("help"), kind: sf.Type})
	}
	return out
}

func validateValue(f field, s string) error {
	var c Config
	return f.set(&c, s)
}

// set parses s into the field.
func (f field) set(c *Config, s string) error {
	v := reflect.ValueOf(c).Elem().Field(f.index)
	switch f.kind {
	case reflect.TypeOf(""):
		v.SetString(s)
	case reflect.TypeOf(time.Duration(0)):
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration (e.g. 15m, 720h)", s)
		}
		v.SetInt(int64(d))
	case reflect.TypeOf(false):
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
		v.SetBool(b)
	case reflect.TypeOf((*bool)(nil)):
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
		v.Set(reflect.ValueOf(&b))
	case reflect.TypeOf([]string(nil)):
		var list []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				list = append(list, p)
			}
		}
		v.Set(reflect.ValueOf(list))
	default:
		return fmt.Errorf("unsupported setting type %s", f.kind)
	}
	return nil
}

// loadYAML reads the optional file: a mapping of snake_case setting names to scalar values
// (lists may be YAML sequences). Unknown keys are an error, so a typo does not pass silently.
func loadYAML(c *Config, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("--config %s: %w", path, err)
	}
	byName := map[string]field{}
	for _, f := range fields() {
		byName[f.yamlName()] = f
	}
	for k, val := range raw {
		f, ok := byName[k]
		if !ok {
			return fmt.Errorf("--config %s: unknown setting %q", path, k)
		}
		var s string
		switch x := val.(type) {
		case []any:
			parts := make([]string, len(x))
			for i, p := range x {
				parts[i] = fmt.Sprint(p)
			}
			s = strings.Join(parts, ",")
		default:
			s = fmt.Sprint(x)
		}
		if err := f.set(c, s); err != nil {
			return fmt.Errorf("--config %s: %s: %w", path, k, err)
		}
	}
	return nil
}

// Usage writes the table of settings, for `portaria serve --help` and the README.
func Usage(w io.Writer) {
	d := Default()
	dv := reflect.ValueOf(d)
	for _, f := range fields() {
		def := fmt.Sprint(dv.Field(f.index).Interface())
		fmt.Fprintf(w, "PORTARIA_%-20s --%-20s %s (default %s)\n", f.env, f.flagName(), f.help, def)
	}
}
