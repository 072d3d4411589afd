package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-oauth2/oauth2/v4"
	oauth2errors "github.com/go-oauth2/oauth2/v4/errors"
	"github.com/go-oauth2/oauth2/v4/manage"
	oauth2server "github.com/go-oauth2/oauth2/v4/server"

	"github.com/portaria/portaria/identity"
	"github.com/portaria/portaria/internal/audit"
	"github.com/portaria/portaria/tokens"
)

// Grant types of the token endpoint.
const (
	grantClientCredentials = "client_credentials"
	grantPassword          = "password"
	grantRefreshToken      = "refresh_token"
	grantMFA               = "urn:portaria:grant-type:mfa"
)

// What the account API's cookie sessions count as, in metrics and audit events: they mint tokens
// without the token endpoint.
const (
	grantCookieLogin   = "cookie_login"
	grantCookieRefresh = "cookie_refresh"
)

// supportedGrants is what the token endpoint implements, and what discovery advertises.
var supportedGrants = []string{grantClientCredentials, grantPassword, grantRefreshToken, grantMFA}

// tokenEndpoint is POST /oauth/token. go-oauth2 runs the standard client_credentials flow
// (token info, lifetimes, the AccessGenerate hook) while this type closes its known traps:
// the client is authenticated first, by our constant-time check; errors carry RFC 6749 statuses
// and WWW-Authenticate; parameters are parsed strictly; lifetimes are clamped per client.
type tokenEndpoint struct {
	auditor
	log        *slog.Logger
	clients    ClientAuthenticator
	users      UserDirectory
	sessions   *tokens.Sessions
	oneTime    *tokens.OneTimeTokens
	issuer     *tokens.Issuer
	verifier   AccessVerifier
	logins     logins
	trusted    []netip.Prefix
	metrics    *Metrics
	oauth      *oauth2server.Server
	defaultTTL time.Duration
	maxTTL     time.Duration
	refreshTTL time.Duration
	now        func() time.Time
	// auditClientTokens: client_credentials tokens are audit events, not only access-log lines.
	auditClientTokens bool
}

func newTokenEndpoint(d Deps) *tokenEndpoint {
	m := manage.NewManager()
	m.MapClientStorage(authenticatedClients{})
	m.MapAccessGenerate(jwtGenerate{issuer: d.Tokens})
	m.MapTokenStorage(statelessTokens{})
	m.SetClientTokenCfg(&manage.Config{AccessTokenExp: d.DefaultAccessTTL})
	// Refresh tokens are ours (tokens.Sessions): go-oauth2 mints only the access token.
	m.SetPasswordTokenCfg(&manage.Config{AccessTokenExp: d.DefaultAccessTTL})
	srv := oauth2server.NewServer(&oauth2server.Config{
		TokenType:         "Bearer",
		AllowedGrantTypes: []oauth2.GrantType{oauth2.ClientCredentials, oauth2.PasswordCredentials},
	}, m)
	return &tokenEndpoint{
		auditor: newAuditor(d),
		log:     d.Logger, clients: d.Clients, users: d.Users, sessions: d.Sessions, oneTime: d.OneTime,
		issuer: d.Tokens, verifier: d.Verifier, oauth: srv, logins: d.logins(), trusted: d.TrustedProxies, metrics: d.Metrics, defaultTTL: d.DefaultAccessTTL, maxTTL: d.MaxAccessTTL,
		refreshTTL: d.DefaultRefreshTTL, now: d.now(), auditClientTokens: d.AuditClientTokens,
	}
}

func (e *tokenEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := e.serve(w, r); err != nil {
		writeOAuthError(w, r, e.log, err)
	}
}

func (e *tokenEndpoint) serve(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		oe := errInvalidRequest("the token endpoint accepts only POST")
		oe.status = http.StatusMethodNotAllowed
		return oe
	}
	form, err := parseTokenForm(w, r)
	if err != nil {
		return err
	}
	client, secret, err := e.authenticateClient(r, form)
	if err != nil {
		return err
	}
	grant := form.Get("grant_type")
	if grant == "" {
		return errInvalidRequest("grant_type is required")
	}
	if !isSupportedGrant(grant) {
		return errUnsupportedGrant()
	}
	if !client.AllowsGrant(grant) {
		return errUnauthorizedClient()
	}
	switch grant {
	case grantClientCredentials:
		return e.clientCredentials(w, r, client, secret, form)
	case grantPassword:
		return e.password(w, r, client, secret, form)
	case grantRefreshToken:
		return e.refresh(w, r, client, form)
	case grantMFA:
		return e.mfa(w, r, client, form)
	}
	return errUnsupportedGrant()
}

func isSupportedGrant(g string) bool {
	for _, s := range supportedGrants {
		if s == g {
			return true
		}
	}
	return false
}

// parseTokenForm reads the form body strictly (TE-01): only application/x-www-form-urlencoded,
// parameters from the body only, a repeated parameter is invalid_request, an empty one is absent.
// The cleaned form replaces r.Form so that every later reader sees the same values.
func parseTokenForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" { // the common case, without parsing
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/x-www-form-urlencoded" {
			return nil, errInvalidRequest("the body must be application/x-www-form-urlencoded")
		}
	}
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			oe := errInvalidRequest("the request body is too large")
			oe.status = http.StatusRequestEntityTooLarge
			return nil, oe
		}
		return nil, errInvalidRequest("the body is not a valid form")
	}
	form := url.Values{}
	for k, vs := range r.PostForm {
		if len(vs) > 1 {
			return nil, errInvalidRequest("a parameter is repeated")
		}
		if vs[0] != "" {
			form[k] = vs
		}
	}
	r.Form, r.PostForm = form, form
	return form, nil
}

// authenticateClient authenticates the client before anything else is looked at (RFC 6749
// §2.3.1): HTTP Basic with form-url-encoded id and secret, or client_id/client_secret in the
// body, never both; a public client sends only client_id.
func (e *tokenEndpoint) authenticateClient(r *http.Request, form url.Values) (identity.Client, string, error) {
	id, secret := form.Get("client_id"), form.Get("client_secret")
	if user, pass, ok := r.BasicAuth(); ok {
		if secret != "" {
			return identity.Client{}, "", errInvalidRequest("use one client authentication method")
		}
		u, err1 := url.QueryUnescape(user)
		p, err2 := url.QueryUnescape(pass)
		if err1 != nil || err2 != nil || u == "" || (id != "" && id != u) {
			return identity.Client{}, "", errInvalidClient()
		}
		id, secret = u, p
	} else if r.Header.Get("Authorization") != "" {
		return identity.Client{}, "", errInvalidClient()
	}
	if id == "" {
		return identity.Client{}, "", errInvalidClient()
	}
	c, err := e.clients.AuthenticateClient(r.Context(), id, secret)
	if err != nil {
		if errors.Is(err, identity.ErrInvalidClient) {
			return identity.Client{}, "", errInvalidClient()
		}
		return identity.Client{}, "", err
	}
	return c, secret, nil
}

// grantedScope checks the requested scope against the client's allowlist. No scope asks for
// everything the client is registered with.
func grantedScope(c identity.Client, requested string) ([]string, error) {
	if requested == "" {
		return c.Scopes, nil
	}
	var scope []string
	seen := map[string]bool{}
	for _, s := range strings.Split(requested, " ") {
		if s == "" || seen[s] {
			continue
		}
		seen[s] = true
		scope = append(scope, s)
	}
	if !c.AllowsScopes(scope) {
		return nil, errInvalidScope()
	}
	return scope, nil
}

// accessTTL is the lifetime of an access token: the client's maximum (or the server default),
// shortened by a valid expires_in parameter, never lengthened.
func (e *tokenEndpoint) accessTTL(c identity.Client, form url.Values) (time.Duration, error) {
	max := c.AccessTTL
	if max <= 0 {
		max = e.defaultTTL
	}
	if max > e.maxTTL {
		max = e.maxTTL
	}
	v := form.Get("expires_in")
	if v == "" {
		return max, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		return 0, errInvalidRequest("expires_in must be a positive number of seconds")
	}
	if n >= int64(max/time.Second) {
		return max, nil
	}
	return time.Duration(n) * time.Second, nil
}

func singleUse(form url.Values) (bool, error) {
	switch form.Get("single_use") {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	}
	return false, errInvalidRequest("single_use must be true or false")
}

func (e *tokenEndpoint) clientCredentials(w http.ResponseWriter, r *http.Request, c identity.Client, secret string, form url.Values) error {
	scope, err := grantedScope(c, form.Get("scope"))
	if err != nil {
		return err
	}
	ttl, err := e.accessTTL(c, form)
	if err != nil {
		return err
	}
	if _, err := singleUse(form); err != nil {
		return err
	}
	var claims tokens.AccessClaims
	ctx := context.WithValue(r.Context(), clientKey{}, authenticatedClient{client: c, secret: secret})
	ctx = context.WithValue(ctx, mintedKey{}, &claims)
	ti, err := e.oauth.GetAccessToken(ctx, oauth2.ClientCredentials, &oauth2.TokenGenerateRequest{
		ClientID:       c.ID,
		ClientSecret:   secret,
		Scope:          strings.Join(scope, " "),
		AccessTokenExp: ttl,
		Request:        r,
	})
	if err != nil {
		return fromOAuth2(err)
	}
	e.metrics.TokenIssued(grantClientCredentials)
	noteToken(r.Context(), c.ID, claims.ID)
	if e.auditClientTokens {
		ev := tokenEvent(audit.TokenIssued, grantClientCredentials, claims)
		ev.OrgID = c.OrgID // an organization's client is shown to its administrators
		e.security(r, ev)
	}
	writeTokenAnswer(w, tokenAnswer{
		AccessToken: ti.GetAccess(),
		TokenType:   "Bearer",
		ExpiresIn:   int64(ti.GetAccessExpiresIn() / time.Second),
		Scope:       ti.GetScope(), // always present, even when empty (SPEC §3)
	})
	return nil
}

// tokenAnswer is a successful token response (RFC 6749 §5.1).
type tokenAnswer struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope"`
	IDToken      string `json:"id_token,omitempty"`
}

// appendJSON appends a's JSON, byte for byte what json.Encoder writes (newline included), without
// its reflection, which cost the refresh grant about 2 % of its CPU. The values are tokens
// (base64url and dots), a number and scope-tokens, which need no escaping; one that does is
// written by encoding/json.
func (a tokenAnswer) appendJSON(b []byte) []byte {
	field := func(b []byte, sep byte, key, v string) []byte {
		b = append(append(append(b, sep, '"'), key...), '"', ':')
		if !plainJSON(v) {
			q, _ := json.Marshal(v) // a string always marshals
			return append(b, q...)
		}
		return append(append(append(b, '"'), v...), '"')
	}
	b = field(b, '{', "access_token", a.AccessToken)
	b = field(b, ',', "token_type", a.TokenType)
	b = strconv.AppendInt(append(b, `,"expires_in":`...), a.ExpiresIn, 10)
	if a.RefreshToken != "" {
		b = field(b, ',', "refresh_token", a.RefreshToken)
	}
	b = field(b, ',', "scope", a.Scope)
	if a.IDToken != "" {
		b = field(b, ',', "id_token", a.IDToken)
	}
	return append(b, '}', '\n')
}

// plainJSON reports whether s is printable ASCII that encoding/json writes as it is (no quote,
// backslash or HTML character).
func plainJSON(s string) bool {
	for i := range len(s) {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// fromOAuth2 maps go-oauth2's error values to our answers (its own statuses are not RFC 6749's).
func fromOAuth2(err error) error {
	switch err {
	case oauth2errors.ErrInvalidClient:
		return errInvalidClient()
	case oauth2errors.ErrInvalidScope:
		return errInvalidScope()
	case oauth2errors.ErrUnauthorizedClient:
		return errUnauthorizedClient()
	case oauth2errors.ErrUnsupportedGrantType:
		return errUnsupportedGrant()
	case oauth2errors.ErrInvalidRequest:
		return errInvalidRequest("the request is malformed")
	}
	return err
}

// clientKey carries the client authenticated by tokenEndpoint into go-oauth2's manager.
type clientKey struct{}

// authenticatedClients is go-oauth2's client store. It never looks a client up: it hands back
// the client this request already authenticated, so go-oauth2's own lookup and its string
// comparison of secrets never decide anything.
type authenticatedClients struct{}

func (authenticatedClients) GetByID(ctx context.Context, id string) (oauth2.ClientInfo, error) {
	c, ok := ctx.Value(clientKey{}).(authenticatedClient)
	if !ok || c.client.ID != id {
		return nil, oauth2errors.ErrInvalidClient
	}
	return c, nil
}

// authenticatedClient adapts identity.Client to go-oauth2. GetSecret is empty on purpose and
// VerifyPassword compares in constant time with the secret already verified.
type authenticatedClient struct {
	client identity.Client
	secret string
}

func (c authenticatedClient) GetID() string     { return c.client.ID }
func (c authenticatedClient) GetSecret() string { return "" }
func (c authenticatedClient) GetDomain() string { return "" }
func (c authenticatedClient) IsPublic() bool    { return c.client.Public }
func (c authenticatedClient) GetUserID() string { return "" }
func (c authenticatedClient) VerifyPassword(s string) bool {
	return subtle.ConstantTimeCompare([]byte(s), []byte(c.secret)) == 1
}

// jwtGenerate is go-oauth2's AccessGenerate: access tokens are signed JWTs (RFC 9068).
type jwtGenerate struct{ issuer *tokens.Issuer }

func (g jwtGenerate) Token(ctx context.Context, data *oauth2.GenerateBasic, _ bool) (string, string, error) {
	sub := data.UserID
	if sub == "" {
		sub = data.Client.GetID() // client_credentials: the client is the subject
	}
	var scope []string
	if s := data.TokenInfo.GetScope(); s != "" {
		scope = strings.Split(s, " ")
	}
	once, _ := singleUse(data.Request.Form) // validated before go-oauth2 was called
	req := tokens.AccessRequest{
		Subject:  sub,
		ClientID: data.Client.GetID(),
		Scope:    scope,
		TTL:      data.TokenInfo.GetAccessExpiresIn(),
		Once:     once,
	}
	if ul, ok := ctx.Value(userLoginKey{}).(userLogin); ok && ul.user.ID == data.UserID {
		ul.claims(&req)
	}
	tok, claims, err := g.issuer.Access(ctx, req)
	if minted, ok := ctx.Value(mintedKey{}).(*tokens.AccessClaims); ok && err == nil {
		*minted = claims
	}
	return tok, "", err
}

// mintedKey holds a *tokens.AccessClaims in which jwtGenerate leaves the claims of the token it
// signed, for the audit event of the grant that asked go-oauth2 for it.
type mintedKey struct{}

// statelessTokens is go-oauth2's token store: JWT access tokens need no server-side record.
// Single-use tokens are burnt by jti where they are used, not here.
type statelessTokens struct{}

func (statelessTokens) Create(context.Context, oauth2.TokenInfo) error { return nil }
func (statelessTokens) RemoveByCode(context.Context, string) error     { return nil }
func (statelessTokens) RemoveByAccess(context.Context, string) error   { return nil }
func (statelessTokens) RemoveByRefresh(context.Context, string) error  { return nil }
func (statelessTokens) GetByCode(context.Context, string) (oauth2.TokenInfo, error) {
	return nil, oauth2errors.ErrInvalidAuthorizeCode
}
func (statelessTokens) GetByAccess(context.Context, string) (oauth2.TokenInfo, error) {
	return nil, oauth2errors.ErrInvalidAccessToken
}
func (statelessTokens) GetByRefresh(context.Context, string) (oauth2.TokenInfo, error) {
	return nil, oauth2errors.ErrInvalidRefreshToken
}
