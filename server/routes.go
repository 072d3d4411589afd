package server

import "net/http"

// Body limits (SPEC §3): token endpoints and the API.
const (
	oauthBodyLimit = 64 << 10
	apiBodyLimit   = 1 << 20
)

// addRoutes maps the whole API. Every route of Portaria is in this one function.
func addRoutes(mux *http.ServeMux, d Deps) {
	mux.Handle("GET /healthz", handleHealthz())
	mux.Handle("GET /readyz", handleReadyz(d.Checks, d.Draining))
	auth := bearerAuth{verifier: d.Verifier, revoked: d.Revocations, burner: d.OneTime}

	if d.Role == RoleAll || d.Role == RoleToken {
		meta := handleMetadata(d)
		mux.Handle("GET /.well-known/openid-configuration", meta)
		mux.Handle("GET /.well-known/oauth-authorization-server", meta)
		mux.Handle("GET /.well-known/jwks.json", handleJWKS(d.Keys, d.Logger))
		te := newTokenEndpoint(d)
		// No method in these patterns: the handlers answer other methods with an RFC 6749 body.
		mux.Handle("/oauth/token", limitBody(oauthBodyLimit, te))
		mux.Handle("/oauth/revoke", limitBody(oauthBodyLimit, te.handleRevoke()))
		mux.Handle("/oauth/introspect", limitBody(oauthBodyLimit, te.handleIntrospect()))
		mux.Handle("GET /oauth/revocations", te.handleRevocations(d.RevocationFeed))
		userinfo := limitBody(oauthBodyLimit, handleUserinfo(auth, d.Users, d.Logger))
		mux.Handle("GET /oauth/userinfo", userinfo)
		mux.Handle("POST /oauth/userinfo", userinfo)
	}
	if d.Role == RoleAll || d.Role == RoleAPI {
		mux.Handle("GET /api/auth/me", limitBody(apiBodyLimit, handleMe(auth, d.Users, d.Logger)))
	}
}
