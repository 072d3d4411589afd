// Package tokens holds the token lifecycle: minting JWT access tokens, refresh families,
// single-use and one-time tokens, revocation, introspection and offline verification.
package tokens

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Signer signs a JWS compact serialisation with the currently active key; *keys.Ring is one.
type Signer interface {
	Sign(ctx context.Context, typ string, payload []byte) (string, error)
}

// TypeAccessToken is the JOSE typ of access tokens (RFC 9068 §2.1); verifiers refuse any other.
const TypeAccessToken = "at+jwt"

// AccessClaims are the claims of an access token (RFC 9068 §2.2 plus Portaria's own). It is an
// allowlist: nothing else, and no personal data beyond identifiers, ever goes into a token.
type AccessClaims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  string   `json:"aud"`
	ExpiresAt int64    `json:"exp"`
	IssuedAt  int64    `json:"iat"`
	ID        string   `json:"jti"`
	ClientID  string   `json:"client_id"`
	Scope     string   `json:"scope"`
	Org       string   `json:"org,omitempty"`
	Perms     []string `json:"perms,omitempty"`
	SessionID string   `json:"sid,omitempty"`
	AMR       []string `json:"amr,omitempty"`
	AuthTime  int64    `json:"auth_time,omitempty"`
	Once      bool     `json:"once,omitempty"`
}

// AccessRequest says what an access token is for; the Issuer adds issuer, audience, times and id.
type AccessRequest struct {
	Subject   string // user id, or the client id for client_credentials
	ClientID  string
	Scope     []string
	TTL       time.Duration
	Once      bool // single use: resource servers accept it once
	Org       string
	Perms     []string
	SessionID string
	AMR       []string
	AuthTime  time.Time
}

// Issuer mints access tokens.
type Issuer struct {
	signer   Signer
	issuer   string
	audience string
	now      func() time.Time
}

// NewIssuer returns an Issuer that signs with signer and stamps issuer and audience.
func NewIssuer(signer Signer, issuer, audience string, now func() time.Time) *Issuer {
	return &Issuer{signer: signer, issuer: issuer, audience: audience, now: now}
}

// Access mints a signed access token.
func (i *Issuer) Access(ctx context.Context, req AccessRequest) (string, AccessClaims, error) {
	if req.TTL <= 0 {
		return "", AccessClaims{}, fmt.Errorf("mint access token: non-positive lifetime %s", req.TTL)
	}
	now := i.now()
	c := AccessClaims{
		Issuer:    i.issuer,
		Subject:   req.Subject,
		Audience:  i.audience,
		IssuedAt:  now.Unix(),
		ExpiresAt: now.Add(req.TTL).Unix(),
		ID:        RandomID(),
		ClientID:  req.ClientID,
		Scope:     strings.Join(req.Scope, " "),
		Org:       req.Org,
		Perms:     req.Perms,
		SessionID: req.SessionID,
		AMR:       req.AMR,
		Once:      req.Once,
	}
	if !req.AuthTime.IsZero() {
		c.AuthTime = req.AuthTime.Unix()
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", AccessClaims{}, fmt.Errorf("mint access token: %w", err)
	}
	tok, err := i.signer.Sign(ctx, TypeAccessToken, payload)
	if err != nil {
		return "", AccessClaims{}, fmt.Errorf("mint access token: %w", err)
	}
	return tok, c, nil
}

// RandomID returns 128 random bits, base64url: token ids, session ids, family ids.
func RandomID() string {
	var b [16]byte
	rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24): it crashes the program instead.
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// RandomSecret returns 256 random bits, base64url: refresh tokens and one-time tokens.
func RandomSecret() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// TypeIDToken is the JOSE typ of ID tokens; it differs from at+jwt so that an ID token is never
// accepted as an access token (JW-02).
const TypeIDToken = "JWT"

// IDRequest says what an OpenID Connect ID token asserts about a login.
type IDRequest struct {
	Subject       string
	ClientID      string // the audience
	TTL           time.Duration
	SessionID     string
	AMR           []string
	AuthTime      time.Time
	Email         string // with the "email" scope
	EmailVerified bool
	Name          string // with the "profile" scope
}

type idClaims struct {
	Issuer        string   `json:"iss"`
	Subject       string   `json:"sub"`
	Audience      string   `json:"aud"`
	ExpiresAt     int64    `json:"exp"`
	IssuedAt      int64    `json:"iat"`
	AuthTime      int64    `json:"auth_time,omitempty"`
	SessionID     string   `json:"sid,omitempty"`
	AMR           []string `json:"amr,omitempty"`
	AZP           string   `json:"azp"`
	Email         string   `json:"email,omitempty"`
	EmailVerified *bool    `json:"email_verified,omitempty"`
	Name          string   `json:"name,omitempty"`
}

// IDToken mints an OpenID Connect ID token (OIDC Core §2) for the client.
func (i *Issuer) IDToken(ctx context.Context, req IDRequest) (string, error) {
	now := i.now()
	c := idClaims{
		Issuer: i.issuer, Subject: req.Subject, Audience: req.ClientID, AZP: req.ClientID,
		IssuedAt: now.Unix(), ExpiresAt: now.Add(req.TTL).Unix(),
		SessionID: req.SessionID, AMR: req.AMR, Email: req.Email, Name: req.Name,
	}
	if !req.AuthTime.IsZero() {
		c.AuthTime = req.AuthTime.Unix()
	}
	if req.Email != "" {
		c.EmailVerified = &req.EmailVerified
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("mint id token: %w", err)
	}
	tok, err := i.signer.Sign(ctx, TypeIDToken, payload)
	if err != nil {
		return "", fmt.Errorf("mint id token: %w", err)
	}
	return tok, nil
}
