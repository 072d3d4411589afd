package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

const (
	baselineTTL   = 15 * time.Minute // Portaria's default access-token lifetime
	baselineScope = "api:read"       // the scope the scenario's client is registered with
	maxFormBytes  = 64 << 10
	// verifyTTL is the lifetime of the one token /verify is driven with: longer than any run.
	verifyTTL = 7 * 24 * time.Hour
)

// baseline is two endpoints reduced to the work no implementation can skip.
//
// POST /oauth/token: parse the form, verify the client's secret against a keyed hash, build the
// claims, sign one ES256 JWT. Anything Portaria does beyond this (routing, strict parsing,
// storage, logging, the OAuth library) is what the ratio measures.
//
// GET /verify: what a resource server does with a bearer token: check its ES256 signature with
// the public key in hand, decode the claims, check exp, iss and aud.
type baseline struct {
	issuer     string
	audience   string
	clientID   string
	pepper     []byte
	secretHash []byte
	key        *ecdsa.PrivateKey
	kid        string
	prefix     []byte // base64url(protected header) + "."
	now        func() time.Time
}

// accessClaims is the claim set of Portaria's access tokens: the first eight for
// client_credentials, the rest for a user's login.
type accessClaims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  string   `json:"aud"`
	ExpiresAt int64    `json:"exp"`
	IssuedAt  int64    `json:"iat"`
	ID        string   `json:"jti"`
	ClientID  string   `json:"client_id"`
	Scope     string   `json:"scope"`
	Perms     []string `json:"perms,omitempty"`
	SessionID string   `json:"sid,omitempty"`
	AMR       []string `json:"amr,omitempty"`
	AuthTime  int64    `json:"auth_time,omitempty"`
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope"`
}

// newBaseline returns a baseline that issues tokens as issuer to the client c, with a fresh key.
func newBaseline(issuer string, c credentials) (*baseline, error) {
	if c.ID == "" || c.Secret == "" {
		return nil, errors.New("baseline: want a client id and secret")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	pub, err := jwk.Import(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	thumb, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	pepper := make([]byte, 32)
	rand.Read(pepper)
	b := &baseline{
		issuer:   issuer,
		audience: issuer + "/api",
		clientID: c.ID,
		pepper:   pepper,
		key:      key,
		kid:      base64.RawURLEncoding.EncodeToString(thumb),
		now:      time.Now,
	}
	b.secretHash = b.hashSecret(c.Secret)
	hdr, err := json.Marshal(map[string]string{"alg": "ES256", "kid": b.kid, "typ": "at+jwt"})
	if err != nil {
		return nil, err
	}
	b.prefix = append(base64.RawURLEncoding.AppendEncode(nil, hdr), '.')
	return b, nil
}

func (b *baseline) hashSecret(secret string) []byte {
	m := hmac.New(sha256.New, b.pepper)
	io.WriteString(m, secret)
	return m.Sum(nil)
}

func (b *baseline) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/oauth/token":
		b.serveToken(w, r)
	case r.Method == http.MethodGet && r.URL.Path == "/verify":
		b.serveVerify(w, r)
	default:
		writeError(w, http.StatusNotFound, "invalid_request")
	}
}

func (b *baseline) serveToken(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	if r.PostForm.Get("grant_type") != "client_credentials" {
		writeError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		writeError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	id, err1 := url.QueryUnescape(user)
	secret, err2 := url.QueryUnescape(pass)
	if err1 != nil || err2 != nil || id != b.clientID || !hmac.Equal(b.hashSecret(secret), b.secretHash) {
		writeError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	scope := r.PostForm.Get("scope")
	if scope == "" {
		scope = baselineScope
	}
	tok, err := b.sign(id, scope)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "server_error")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(tokenResponse{
		AccessToken: tok,
		TokenType:   "Bearer",
		ExpiresIn:   int64(baselineTTL / time.Second),
		Scope:       scope,
	})
}

func (b *baseline) sign(clientID, scope string) (string, error) {
	now := b.now()
	return b.signClaims(accessClaims{
		Issuer:    b.issuer,
		Subject:   clientID,
		Audience:  b.audience,
		ExpiresAt: now.Add(baselineTTL).Unix(),
		IssuedAt:  now.Unix(),
		ID:        randomToken(16),
		ClientID:  clientID,
		Scope:     scope,
	})
}

// userToken mints an access token shaped like the one Portaria issues at a user's password
// login with scope api, valid for verifyTTL.
func (b *baseline) userToken() (string, error) {
	now := b.now()
	return b.signClaims(accessClaims{
		Issuer:    b.issuer,
		Subject:   randomToken(16),
		Audience:  b.audience,
		ExpiresAt: now.Add(verifyTTL).Unix(),
		IssuedAt:  now.Unix(),
		ID:        randomToken(16),
		ClientID:  b.clientID,
		Scope:     "api",
		Perms:     []string{"platform:admin"},
		SessionID: randomToken(16),
		AMR:       []string{"pwd"},
		AuthTime:  now.Unix(),
	})
}

func (b *baseline) signClaims(c accessClaims) (string, error) {
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	// The irreducible signing work, done the cheapest way (a header encoded once, the standard
	// library's P-256): the baseline must not be slower than the server it judges.
	enc := base64.RawURLEncoding
	buf := append([]byte(nil), b.prefix...)
	buf = enc.AppendEncode(buf, payload)
	h := sha256.Sum256(buf)
	r, s, err := ecdsa.Sign(rand.Reader, b.key, h[:])
	if err != nil {
		return "", err
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig)
	return string(buf), nil
}

// verifyAnswer is what /verify answers: a few claims, as a resource server would use them.
type verifyAnswer struct {
	Subject   string `json:"sub"`
	ClientID  string `json:"client_id"`
	Scope     string `json:"scope"`
	SessionID string `json:"sid,omitempty"`
}

// serveVerify checks the bearer token as a resource server holding the issuer's public key would.
func (b *baseline) serveVerify(w http.ResponseWriter, r *http.Request) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		writeError(w, http.StatusUnauthorized, "invalid_request")
		return
	}
	payload, err := jws.Verify([]byte(tok), jws.WithKey(jwa.ES256(), &b.key.PublicKey))
	if err != nil {
		writeError(w, http.StatusUnauthorized, "invalid_token")
		return
	}
	var c accessClaims
	if err := json.Unmarshal(payload, &c); err != nil ||
		c.Issuer != b.issuer || c.Audience != b.audience || b.now().Unix() >= c.ExpiresAt {
		writeError(w, http.StatusUnauthorized, "invalid_token")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(verifyAnswer{Subject: c.Subject, ClientID: c.ClientID, Scope: c.Scope, SessionID: c.SessionID})
}

func writeError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":%q}`+"\n", code)
}

// newHTTPServer returns a server with the timeouts of a production one, so that the baseline
// pays for the same connection handling as the server it is compared with.
func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
}

// baselineReady is the first line the baseline prints on stdout, as JSON: the address it listens
// on (it may have been given port 0) and the one token /verify is to be driven with.
type baselineReady struct {
	Addr  string `json:"addr"`
	Token string `json:"token"`
}

// serveBaseline serves the baseline on addr, a loopback address, until ctx is done. It prints a
// baselineReady line on stdout once it listens.
func serveBaseline(ctx context.Context, addr string, c credentials, stdout io.Writer) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s is not a loopback address", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	b, err := newBaseline("http://"+ln.Addr().String(), c)
	if err != nil {
		ln.Close()
		return err
	}
	tok, err := b.userToken()
	if err != nil {
		ln.Close()
		return err
	}
	ready, err := json.Marshal(baselineReady{Addr: ln.Addr().String(), Token: tok})
	if err != nil {
		ln.Close()
		return err
	}
	srv := newHTTPServer(b)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "%s\n", ready)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}
