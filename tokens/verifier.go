package tokens

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/lestrrat-go/httprc/v3"
	"github.com/lestrrat-go/httprc/v3/errsink"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws/jwsbb"
)

// ErrInvalidToken is wrapped by every error Verify returns: the token must be refused (RFC 6750
// invalid_token). The wrapping error carries a short reason for logs, never for the client.
var ErrInvalidToken = errors.New("tokens: invalid access token")

// Limits of offline verification (SECURITY.md JW-03, JW-05, JW-08).
const (
	// MaxAccessTokenLength caps what Verify looks at: longer input is refused before any
	// split or decode, so a hostile header costs nothing (CVE-2025-30204).
	MaxAccessTokenLength = 8 << 10

	jwksFetchTimeout = 2 * time.Second
	jwksMaxBody      = 64 << 10
	// The JWKS is refetched when its Cache-Control max-age says so, but never more often than
	// jwksMinRefresh (also the retry delay after a failed fetch) nor less often than jwksMaxRefresh.
	jwksMinRefresh = 30 * time.Second
	jwksMaxRefresh = time.Hour
	// jwksMaxStale bounds how long a key set is used while every fetch fails.
	jwksMaxStale = 24 * time.Hour

	defaultVerifierSkew    = 5 * time.Second
	maxVerifierSkew        = time.Minute
	defaultRefetchCooldown = 30 * time.Second
	maxKIDLength           = 256
	minRSABits             = 2048
)

// defaultAlgorithms are the signature algorithms a Verifier accepts unless told otherwise: what
// keys.Ring can sign with. RS256 is there because RFC 9068 §4 requires resource servers to
// support it.
func defaultAlgorithms() []string { return []string{"ES256", "EdDSA", "RS256"} }

// VerifierOptions configures a Verifier. JWKSURL, Issuer and Audience are required.
type VerifierOptions struct {
	// JWKSURL is the issuer's key set (PORTARIA_JWKS_URL). It is the only place keys come from.
	JWKSURL string
	// Issuer must equal the token's iss byte for byte.
	Issuer string
	// Audience must be the token's aud, or one of its elements.
	Audience string
	// Skew is the clock tolerance on exp, nbf and iat (PORTARIA_CLOCK_SKEW; default 5s, at most 1m).
	Skew time.Duration
	// Algorithms is the allowlist of JWS algorithms (default ES256, EdDSA, RS256). Only asymmetric
	// algorithms are accepted: ES256, ES384, ES512, EdDSA, RS256, RS384, RS512, PS256, PS384, PS512.
	Algorithms []string
	// RefetchCooldown is the least time between two fetches caused by an unknown kid (default 30s).
	RefetchCooldown time.Duration
	// HTTPClient fetches the JWKS (default: a plain client). Its timeout is capped at 2s and its
	// transport is wrapped so that a response body beyond 64 KiB fails the fetch.
	HTTPClient *http.Client
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives JWKS fetch failures (default: discarded). Verify itself never logs.
	Logger *slog.Logger
}

// Verifier checks access tokens offline against the issuer's JWKS (SPEC §3, DESIGN §4): no call
// to the token server per request. The JWKS is cached by jwx's jwk.Cache, refreshed in the
// background as its Cache-Control allows, and refetched on an unknown kid at most once per
// RefetchCooldown, all concurrent misses sharing that one fetch. A failed or unusable fetch
// keeps the last good keys. It is safe for concurrent use.
type Verifier struct {
	issuer, audience string
	skew             time.Duration
	algs             map[string]bool
	cooldown         time.Duration
	now              func() time.Time
	log              *slog.Logger

	life   context.Context // background fetches end with it
	url    string
	logURL string // url without credentials
	cache  *jwk.Cache
	res    *httprc.ResourceBase[jwk.Set]

	snap         atomic.Pointer[keySnapshot]
	adoptMu      sync.Mutex // one goroutine turns a newly fetched set into a snapshot
	lastProblems string     // guarded by adoptMu: what was last logged about unusable keys

	fetchMu   sync.Mutex
	fetched   bool          // an on-demand fetch has started at least once
	lastFetch time.Time     // when the last on-demand fetch started
	inflight  chan struct{} // closed when the on-demand fetch in progress ends
}

// keySnapshot is an immutable view of the usable keys, by kid.
type keySnapshot struct {
	source   jwk.Set // the fetched set this snapshot was derived from (or kept despite)
	keys     map[string]*verificationKey
	loadedAt time.Time // when keys were taken from a fetched set; zero: never
}

// verificationKey is a published key checked against its algorithm once, when its set is
// adopted: Verify only compares names and lengths.
type verificationKey struct {
	alg    string
	sigLen int
	verify func(input, sig []byte) error
}

// NewVerifier returns a Verifier whose JWKS cache runs until ctx ends. It does not wait for the
// first fetch, and an unreachable JWKS is not an error: keys are fetched in the background and
// on demand, and Ready says when some are loaded.
func NewVerifier(ctx context.Context, opts VerifierOptions) (*Verifier, error) {
	if opts.JWKSURL == "" || opts.Issuer == "" || opts.Audience == "" {
		return nil, errors.New("tokens: NewVerifier needs JWKSURL, Issuer and Audience")
	}
	u, err := url.Parse(opts.JWKSURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("tokens: JWKS URL %q is not an absolute http(s) URL", opts.JWKSURL)
	}
	switch {
	case opts.Skew == 0:
		opts.Skew = defaultVerifierSkew
	case opts.Skew < 0 || opts.Skew > maxVerifierSkew:
		return nil, fmt.Errorf("tokens: clock skew %v is outside [0, %v]", opts.Skew, maxVerifierSkew)
	}
	switch {
	case opts.RefetchCooldown == 0:
		opts.RefetchCooldown = defaultRefetchCooldown
	case opts.RefetchCooldown < 0:
		return nil, errors.New("tokens: RefetchCooldown must not be negative")
	}
	if len(opts.Algorithms) == 0 {
		opts.Algorithms = defaultAlgorithms()
	}
	algs := make(map[string]bool, len(opts.Algorithms))
	for _, a := range opts.Algorithms {
		if _, ok := signatureAlgs[a]; !ok {
			return nil, fmt.Errorf("tokens: algorithm %q is not an accepted asymmetric JWS algorithm", a)
		}
		algs[a] = true
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	v := &Verifier{
		issuer:   opts.Issuer,
		audience: opts.Audience,
		skew:     opts.Skew,
		algs:     algs,
		cooldown: opts.RefetchCooldown,
		now:      opts.Now,
		log:      opts.Logger,
		life:     ctx,
		url:      opts.JWKSURL,
		logURL:   u.Redacted(),
	}

	client := httprc.NewClient(
		httprc.WithWorkers(1),
		httprc.WithWhitelist(httprc.NewMapWhitelist().Add(opts.JWKSURL)),
		httprc.WithErrorSink(errsink.NewFunc(func(ctx context.Context, err error) {
			v.log.WarnContext(ctx, "JWKS fetch failed; keeping the last good key set", "url", v.logURL, "err", err)
		})),
	)
	if v.cache, err = jwk.NewCache(ctx, client); err != nil {
		return nil, fmt.Errorf("tokens: start JWKS cache: %w", err)
	}
	err = v.cache.Register(ctx, opts.JWKSURL,
		jwk.WithHTTPClient(jwksHTTPClient(opts.HTTPClient)),
		jwk.WithMaxFetchBodySize(jwksMaxBody),
		jwk.WithMinInterval(jwksMinRefresh),
		jwk.WithMaxInterval(jwksMaxRefresh),
		jwk.WithWaitReady(false),
	)
	if err == nil {
		v.res, err = v.cache.LookupResource(ctx, opts.JWKSURL)
	}
	if err != nil {
		v.cache.Shutdown(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("tokens: register JWKS %s: %w", opts.JWKSURL, err)
	}
	return v, nil
}

// Ready reports whether the Verifier holds usable keys (for readiness probes).
func (v *Verifier) Ready() bool { return len(v.current().usable(v.now())) > 0 }

// Verify checks token and returns its claims. Every failure is an error wrapping ErrInvalidToken;
// no partial result is ever returned. The order matters: size and shape first, then the
// protected header, then the signature with the pinned key, and only then the claims.
func (v *Verifier) Verify(ctx context.Context, token string) (AccessClaims, error) {
	if token == "" {
		return AccessClaims{}, errATEmptyToken
	}
	if len(token) > MaxAccessTokenLength {
		return AccessClaims{}, errATTokenTooLong
	}
	if strings.Count(token, ".") != 2 {
		return AccessClaims{}, errATSegments
	}
	d1 := strings.IndexByte(token, '.')
	d2 := d1 + 1 + strings.IndexByte(token[d1+1:], '.')
	headerSeg, payloadSeg, sigSeg := token[:d1], token[d1+1:d2], token[d2+1:]
	if headerSeg == "" || payloadSeg == "" {
		return AccessClaims{}, errATSegments
	}
	if sigSeg == "" {
		return AccessClaims{}, errATNoSignature
	}

	h, err := parseProtectedHeader(headerSeg)
	if err != nil {
		return AccessClaims{}, err
	}
	if !v.algs[h.alg] {
		return AccessClaims{}, invalidAccessToken("alg %.20q is not allowed", h.alg)
	}
	if !strings.EqualFold(h.typ, TypeAccessToken) && !strings.EqualFold(h.typ, "application/"+TypeAccessToken) {
		return AccessClaims{}, invalidAccessToken("typ %.40q is not at+jwt", h.typ)
	}
	sig, err := joseB64.DecodeString(sigSeg)
	if err != nil {
		return AccessClaims{}, errATSignatureEncoding
	}
	key, err := v.key(ctx, h.kid)
	if err != nil {
		return AccessClaims{}, err
	}
	// The key's own alg, checked against its type and curve when its set was adopted, must be
	// the header's: an RS256 header on an EC key or ES384 on a P-256 key never reaches crypto.
	if key.alg != h.alg {
		return AccessClaims{}, invalidAccessToken("alg %s does not match the key's %s", h.alg, key.alg)
	}
	if len(sig) != key.sigLen {
		return AccessClaims{}, errATSignatureLength
	}
	if err := key.verify([]byte(token[:d2]), sig); err != nil {
		return AccessClaims{}, errATBadSignature
	}

	payload, err := joseB64.DecodeString(payloadSeg)
	if err != nil {
		return AccessClaims{}, errATPayloadEncoding
	}
	c, err := v.parseClaims(payload)
	if err != nil {
		return AccessClaims{}, err
	}
	if err := v.checkClaims(&c); err != nil {
		return AccessClaims{}, err
	}
	return c.AccessClaims, nil
}

// verifyError is an invalid token with its reason.
type verifyError struct{ reason string }

func (e *verifyError) Error() string { return "tokens: invalid access token: " + e.reason }
func (e *verifyError) Unwrap() error { return ErrInvalidToken }

func invalidAccessToken(format string, args ...any) error {
	return &verifyError{reason: fmt.Sprintf(format, args...)}
}

// Reasons without arguments are allocated once, so that refusing garbage costs nothing.
var (
	errATEmptyToken        = &verifyError{"empty token"}
	errATTokenTooLong      = &verifyError{"longer than 8 KiB"}
	errATSegments          = &verifyError{"not a JWS compact serialization of three segments"}
	errATNoSignature       = &verifyError{"no signature"}
	errATHeaderEncoding    = &verifyError{"protected header is not unpadded base64url"}
	errATHeaderJSON        = &verifyError{"protected header is not a strict JSON object"}
	errATNoKID             = &verifyError{"no kid"}
	errATBadKID            = &verifyError{"kid is not a short printable string"}
	errATUnknownKID        = &verifyError{"kid not in the issuer's key set"}
	errATSignatureEncoding = &verifyError{"signature is not unpadded base64url"}
	errATSignatureLength   = &verifyError{"signature length does not fit the key"}
	errATBadSignature      = &verifyError{"bad signature"}
	errATPayloadEncoding   = &verifyError{"payload is not unpadded base64url"}
	errATClaimsJSON        = &verifyError{"claims are not a strict JSON object"}
	errATIssuer            = &verifyError{"wrong iss"}
	errATAudience          = &verifyError{"aud does not name this resource server"}
	errATNoExp             = &verifyError{"no exp"}
	errATExpired           = &verifyError{"expired"}
	errATNotYetValid       = &verifyError{"nbf in the future"}
	errATIssuedInFuture    = &verifyError{"iat in the future"}
	errATNoSubject         = &verifyError{"no sub"}
	errATNoClientID        = &verifyError{"no client_id"}
	errATNoJTI             = &verifyError{"no jti"}
)

// joseB64 decodes JWS segments: base64url without padding, and no stray bits (RFC 7515 §2).
var joseB64 = base64.RawURLEncoding.Strict()

type protectedHeader struct{ alg, kid, typ string }

// parseProtectedHeader decodes the header strictly: one JSON object, no duplicate or unknown
// members, string values, valid UTF-8, nothing after it. Only alg, kid and typ are allowed, so
// jku, jwk, x5u, x5c (keys named by the token), crit, b64, zip, enc (JWE) and p2c never get a
// chance to mean anything.
func parseProtectedHeader(seg string) (protectedHeader, error) {
	raw, err := joseB64.DecodeString(seg)
	if err != nil {
		return protectedHeader{}, errATHeaderEncoding
	}
	if !utf8.Valid(raw) {
		return protectedHeader{}, errATHeaderJSON
	}
	var h protectedHeader
	var seen [3]bool
	dec := json.NewDecoder(bytes.NewReader(raw))
	if !jsonExpectDelim(dec, '{') {
		return h, errATHeaderJSON
	}
	for dec.More() {
		name, ok := jsonNextString(dec)
		if !ok {
			return h, errATHeaderJSON
		}
		var dst *string
		var i int
		switch name {
		case "alg":
			dst, i = &h.alg, 0
		case "kid":
			dst, i = &h.kid, 1
		case "typ":
			dst, i = &h.typ, 2
		default:
			return h, invalidAccessToken("header parameter %.20q is not allowed", name)
		}
		if seen[i] {
			return h, invalidAccessToken("duplicate header parameter %s", name)
		}
		seen[i] = true
		if *dst, ok = jsonNextString(dec); !ok {
			return h, invalidAccessToken("header parameter %s is not a string", name)
		}
	}
	if !jsonExpectDelim(dec, '}') || !jsonAtEOF(dec) {
		return h, errATHeaderJSON
	}
	if h.kid == "" {
		return h, errATNoKID
	}
	if len(h.kid) > maxKIDLength || strings.ContainsFunc(h.kid, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return h, errATBadKID
	}
	return h, nil
}

// accessTokenClaims is AccessClaims plus what is checked and not returned.
type accessTokenClaims struct {
	AccessClaims
	audiences []string // aud as an array; Audience holds it when it is a string
	audArray  bool
	notBefore int64
	present   uint16
}

const (
	claimIss = 1 << iota
	claimSub
	claimAud
	claimExp
	claimIat
	claimNbf
	claimJTI
	claimClientID
	claimScope
	claimOrg
	claimPerms
	claimSID
	claimAMR
	claimAuthTime
	claimOnce
)

// parseClaims decodes the payload strictly: member names match exactly (encoding/json alone
// would accept "ISS" for iss), a duplicate member is refused (no last-one-wins), every known
// claim has its JSON type (times are numbers: "exp":"…" is refused), and unknown claims are
// skipped.
func (v *Verifier) parseClaims(raw []byte) (accessTokenClaims, error) {
	var c accessTokenClaims
	if !utf8.Valid(raw) {
		return c, errATClaimsJSON
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if !jsonExpectDelim(dec, '{') {
		return c, errATClaimsJSON
	}
	var others map[string]bool
	for dec.More() {
		name, ok := jsonNextString(dec)
		if !ok {
			return c, errATClaimsJSON
		}
		var bit uint16
		switch name {
		case "iss":
			bit, ok = claimIss, jsonStringClaim(dec, &c.Issuer)
		case "sub":
			bit, ok = claimSub, jsonStringClaim(dec, &c.Subject)
		case "aud":
			bit, ok = claimAud, c.parseAudience(dec)
		case "exp":
			bit, ok = claimExp, jsonNumericDate(dec, &c.ExpiresAt)
		case "iat":
			bit, ok = claimIat, jsonNumericDate(dec, &c.IssuedAt)
		case "nbf":
			bit, ok = claimNbf, jsonNumericDate(dec, &c.notBefore)
		case "jti":
			bit, ok = claimJTI, jsonStringClaim(dec, &c.ID)
		case "client_id":
			bit, ok = claimClientID, jsonStringClaim(dec, &c.ClientID)
		case "scope":
			bit, ok = claimScope, jsonStringClaim(dec, &c.Scope)
		case "org":
			bit, ok = claimOrg, jsonStringClaim(dec, &c.Org)
		case "perms":
			bit, ok = claimPerms, jsonStringArray(dec, &c.Perms)
		case "sid":
			bit, ok = claimSID, jsonStringClaim(dec, &c.SessionID)
		case "amr":
			bit, ok = claimAMR, jsonStringArray(dec, &c.AMR)
		case "auth_time":
			bit, ok = claimAuthTime, jsonNumericDate(dec, &c.AuthTime)
		case "once":
			bit, ok = claimOnce, jsonBoolClaim(dec, &c.Once)
		default:
			if others == nil {
				others = make(map[string]bool)
			}
			if others[name] {
				return c, invalidAccessToken("duplicate claim %.20q", name)
			}
			others[name] = true
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return c, errATClaimsJSON
			}
			continue
		}
		if c.present&bit != 0 {
			return c, invalidAccessToken("duplicate claim %s", name)
		}
		if !ok {
			return c, invalidAccessToken("claim %s has the wrong type", name)
		}
		c.present |= bit
	}
	if !jsonExpectDelim(dec, '}') || !jsonAtEOF(dec) {
		return c, errATClaimsJSON
	}
	return c, nil
}

// checkClaims applies RFC 9068 §4 and RFC 7519 §4.1 after the signature has been verified; any
// failure is final (JW-03).
func (v *Verifier) checkClaims(c *accessTokenClaims) error {
	if c.present&claimIss == 0 || c.Issuer != v.issuer {
		return errATIssuer
	}
	if c.present&claimAud == 0 {
		return errATAudience
	}
	if c.audArray {
		found := false
		for _, a := range c.audiences {
			found = found || a == v.audience
		}
		if !found {
			return errATAudience
		}
		c.Audience = v.audience
	} else if c.Audience != v.audience {
		return errATAudience
	}
	now := v.now()
	if c.present&claimExp == 0 {
		return errATNoExp
	}
	if !time.Unix(c.ExpiresAt, 0).After(now.Add(-v.skew)) {
		return errATExpired
	}
	late := now.Add(v.skew)
	if c.present&claimNbf != 0 && time.Unix(c.notBefore, 0).After(late) {
		return errATNotYetValid
	}
	if c.present&claimIat != 0 && time.Unix(c.IssuedAt, 0).After(late) {
		return errATIssuedInFuture
	}
	switch {
	case c.Subject == "":
		return errATNoSubject
	case c.ClientID == "":
		return errATNoClientID
	case c.ID == "":
		return errATNoJTI
	}
	return nil
}

func (c *accessTokenClaims) parseAudience(dec *json.Decoder) bool {
	tok, err := dec.Token()
	if err != nil {
		return false
	}
	switch t := tok.(type) {
	case string:
		c.Audience = t
		return true
	case json.Delim:
		if t != '[' {
			return false
		}
		c.audArray = true
		for dec.More() {
			s, ok := jsonNextString(dec)
			if !ok {
				return false
			}
			c.audiences = append(c.audiences, s)
		}
		return jsonExpectDelim(dec, ']')
	}
	return false
}

func jsonExpectDelim(dec *json.Decoder, d json.Delim) bool {
	tok, err := dec.Token()
	return err == nil && tok == d
}

func jsonAtEOF(dec *json.Decoder) bool {
	_, err := dec.Token()
	return err == io.EOF
}

func jsonNextString(dec *json.Decoder) (string, bool) {
	tok, err := dec.Token()
	if err != nil {
		return "", false
	}
	s, ok := tok.(string)
	return s, ok
}

func jsonStringClaim(dec *json.Decoder, dst *string) bool {
	var ok bool
	*dst, ok = jsonNextString(dec)
	return ok
}

func jsonStringArray(dec *json.Decoder, dst *[]string) bool {
	if !jsonExpectDelim(dec, '[') {
		return false
	}
	out := []string{}
	for dec.More() {
		s, ok := jsonNextString(dec)
		if !ok {
			return false
		}
		out = append(out, s)
	}
	*dst = out
	return jsonExpectDelim(dec, ']')
}

func jsonBoolClaim(dec *json.Decoder, dst *bool) bool {
	tok, err := dec.Token()
	if err != nil {
		return false
	}
	b, ok := tok.(bool)
	*dst = b
	return ok
}

// jsonNumericDate reads a JSON number of seconds (RFC 7519 §2); a fraction is truncated toward
// the past, and anything else (a string, null, a number out of range) is refused.
func jsonNumericDate(dec *json.Decoder, dst *int64) bool {
	tok, err := dec.Token()
	if err != nil {
		return false
	}
	n, ok := tok.(json.Number)
	if !ok {
		return false
	}
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		*dst = i
		return true
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsNaN(f) || f < -(1<<62) || f > 1<<62 {
		return false
	}
	*dst = int64(math.Floor(f))
	return true
}

// signatureAlg says which key an algorithm needs and how to verify with it.
type signatureAlg struct {
	hash  crypto.Hash
	curve elliptic.Curve // ECDSA only
	rsa   bool
	pss   bool
	eddsa bool
}

var signatureAlgs = map[string]signatureAlg{
	"ES256": {hash: crypto.SHA256, curve: elliptic.P256()},
	"ES384": {hash: crypto.SHA384, curve: elliptic.P384()},
	"ES512": {hash: crypto.SHA512, curve: elliptic.P521()},
	"EdDSA": {eddsa: true},
	"RS256": {hash: crypto.SHA256, rsa: true},
	"RS384": {hash: crypto.SHA384, rsa: true},
	"RS512": {hash: crypto.SHA512, rsa: true},
	"PS256": {hash: crypto.SHA256, rsa: true, pss: true},
	"PS384": {hash: crypto.SHA384, rsa: true, pss: true},
	"PS512": {hash: crypto.SHA512, rsa: true, pss: true},
}

// newVerificationKey checks that a published key may verify alg: a public key of the matching
// type, curve and strength. jwx itself does not tie the curve to the algorithm (an ES384
// signature over a P-256 key verifies there), so this is where that binding lives.
func newVerificationKey(alg string, pub any) (*verificationKey, error) {
	spec := signatureAlgs[alg]
	switch {
	case spec.curve != nil:
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok || k.Curve != spec.curve {
			return nil, fmt.Errorf("%s needs a public %s key, not %T", alg, spec.curve.Params().Name, pub)
		}
		size := (spec.curve.Params().BitSize + 7) / 8
		return &verificationKey{alg: alg, sigLen: 2 * size, verify: func(input, sig []byte) error {
			return jwsbb.VerifyECDSA(k, input, sig, spec.hash)
		}}, nil
	case spec.eddsa:
		k, ok := pub.(ed25519.PublicKey)
		if !ok || len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%s needs a public Ed25519 key, not %T", alg, pub)
		}
		return &verificationKey{alg: alg, sigLen: ed25519.SignatureSize, verify: func(input, sig []byte) error {
			return jwsbb.VerifyEdDSA(k, input, sig)
		}}, nil
	case spec.rsa:
		k, ok := pub.(*rsa.PublicKey)
		if !ok || k.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("%s needs a public RSA key of at least %d bits", alg, minRSABits)
		}
		return &verificationKey{alg: alg, sigLen: k.Size(), verify: func(input, sig []byte) error {
			return jwsbb.VerifyRSA(k, input, sig, spec.hash, spec.pss)
		}}, nil
	}
	return nil, fmt.Errorf("algorithm %q is not supported", alg)
}

// buildKeys selects the usable keys of set: each needs a unique kid, use "sig" if use is given,
// an alg on the allowlist and public key material that fits it. The rest is reported, not used.
func (v *Verifier) buildKeys(set jwk.Set) (map[string]*verificationKey, []error) {
	published := make(map[string]int, set.Len())
	for i := range set.Len() {
		if k, ok := set.Key(i); ok {
			kid, _ := k.KeyID()
			published[kid]++
		}
	}
	keys := make(map[string]*verificationKey, set.Len())
	var problems []error
	for i := range set.Len() {
		k, ok := set.Key(i)
		if !ok {
			continue
		}
		kid, _ := k.KeyID()
		switch {
		case kid == "" || len(kid) > maxKIDLength:
			problems = append(problems, fmt.Errorf("key #%d: no usable kid", i))
			continue
		case published[kid] > 1:
			// Two keys under one kid: neither can be chosen safely.
			problems = append(problems, fmt.Errorf("key %.40q: kid published twice", kid))
			continue
		}
		key, err := v.verificationKey(k)
		if err != nil {
			problems = append(problems, fmt.Errorf("key %.40q: %w", kid, err))
			continue
		}
		keys[kid] = key
	}
	return keys, problems
}

func (v *Verifier) verificationKey(k jwk.Key) (*verificationKey, error) {
	if use, ok := k.KeyUsage(); ok && use != "sig" {
		return nil, fmt.Errorf("use %q is not sig", use)
	}
	a, ok := k.Algorithm()
	if !ok {
		return nil, errors.New("no alg")
	}
	alg := a.String()
	if !v.algs[alg] {
		return nil, fmt.Errorf("alg %q is not allowed", alg)
	}
	if private, err := jwk.IsPrivateKey(k); err != nil || private {
		return nil, errors.New("not a public asymmetric key")
	}
	var pub any
	if err := jwk.Export(k, &pub); err != nil {
		return nil, err
	}
	return newVerificationKey(alg, pub)
}

// current returns the snapshot of the set the cache holds now, adopting a newly fetched one.
func (v *Verifier) current() *keySnapshot {
	s := v.snap.Load()
	set := v.res.Resource()
	if set == nil || (s != nil && s.source == set) {
		return s
	}
	return v.adopt(set)
}

func (v *Verifier) adopt(set jwk.Set) *keySnapshot {
	v.adoptMu.Lock()
	defer v.adoptMu.Unlock()
	old := v.snap.Load()
	if old != nil && old.source == set {
		return old
	}
	keys, problems := v.buildKeys(set)
	// The set is refetched every few minutes; say what is wrong with it when that changes.
	if msg := fmt.Sprint(errors.Join(problems...)); msg != v.lastProblems {
		v.lastProblems = msg
		if len(problems) > 0 {
			v.log.Warn("JWKS: some keys are unusable", "url", v.logURL, "err", msg)
		}
	}
	s := &keySnapshot{source: set, keys: keys, loadedAt: v.now()}
	if len(keys) == 0 {
		// An empty or entirely unusable set is treated as a failed fetch: keep the last keys.
		v.log.Warn("JWKS has no usable key; keeping the last good key set", "url", v.logURL)
		s.keys = nil
		s.loadedAt = time.Time{}
		if old != nil {
			s.keys, s.loadedAt = old.keys, old.loadedAt
		}
	}
	v.snap.Store(s)
	return s
}

// usable returns the keys, or none once they are too old to trust.
func (s *keySnapshot) usable(now time.Time) map[string]*verificationKey {
	if s == nil || now.Sub(s.loadedAt) > jwksMaxStale {
		return nil
	}
	return s.keys
}

// key returns the key published under kid, refetching the JWKS once if the kid is unknown and
// the cool-down allows. kid is only ever a map key.
func (v *Verifier) key(ctx context.Context, kid string) (*verificationKey, error) {
	if k := v.current().usable(v.now())[kid]; k != nil {
		return k, nil
	}
	if !v.refetch(ctx) {
		return nil, errATUnknownKID
	}
	if k := v.current().usable(v.now())[kid]; k != nil {
		return k, nil
	}
	return nil, errATUnknownKID
}

// refetch fetches the JWKS now unless one was fetched on demand less than the cool-down ago; a
// fetch already under way is joined rather than repeated. It reports whether the caller should
// look again.
func (v *Verifier) refetch(ctx context.Context) bool {
	v.fetchMu.Lock()
	done := v.inflight
	if done == nil {
		now := v.now()
		if v.fetched && now.Sub(v.lastFetch) < v.cooldown {
			v.fetchMu.Unlock()
			return false
		}
		v.fetched, v.lastFetch = true, now
		done = make(chan struct{})
		v.inflight = done
		go v.fetch(done)
	}
	v.fetchMu.Unlock()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

// fetch runs one on-demand fetch detached from any request, so that a caller giving up does
// not cancel it for the others waiting on it.
func (v *Verifier) fetch(done chan struct{}) {
	ctx, cancel := context.WithTimeout(v.life, jwksFetchTimeout+time.Second)
	defer cancel()
	if _, err := v.cache.Refresh(ctx, v.url); err != nil && v.life.Err() == nil {
		v.log.WarnContext(ctx, "JWKS refetch failed; keeping the last good key set", "url", v.logURL, "err", err)
	}
	v.fetchMu.Lock()
	v.inflight = nil
	v.fetchMu.Unlock()
	close(done)
}

// jwksHTTPClient returns a copy of c (or a new client) with a timeout of at most 2s, jwx's
// redirect hardening, and a transport that fails responses larger than 64 KiB.
func jwksHTTPClient(c *http.Client) *http.Client {
	hc := &http.Client{}
	if c != nil {
		hc.Transport, hc.CheckRedirect, hc.Jar, hc.Timeout = c.Transport, c.CheckRedirect, c.Jar, c.Timeout
	}
	if hc.Timeout <= 0 || hc.Timeout > jwksFetchTimeout {
		hc.Timeout = jwksFetchTimeout
	}
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	hc.Transport = &jwksTransport{base: base}
	return jwk.WrapHTTPClientDefaults(hc)
}

var errJWKSTooLarge = fmt.Errorf("JWKS response larger than %d bytes", jwksMaxBody)

type jwksTransport struct{ base http.RoundTripper }

func (t *jwksTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > jwksMaxBody {
		resp.Body.Close()
		return nil, errJWKSTooLarge
	}
	resp.Body = &jwksBody{ReadCloser: resp.Body, left: jwksMaxBody}
	return resp, nil
}

// jwksBody fails the read, rather than truncating it, once more than the cap arrives.
type jwksBody struct {
	io.ReadCloser
	left int64
}

func (b *jwksBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		n, err := b.ReadCloser.Read(one[:])
		if n > 0 {
			return 0, errJWKSTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}
