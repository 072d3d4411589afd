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

	if d.Role == RoleAll || d.Role == RoleToken {
		meta := handleMetadata(d)
		mux.Handle("GET /.well-known/openid-configuration", meta)
		mux.Handle("GET /.well-known/oauth-authorization-server", meta)
		mux.Handle("GET /.well-known/jwks.json", handleJWKS(d.Keys, d.Logger))
		// No method in the pattern: the handler answers other methods with an RFC 6749 body.
		mux.Handle("/oauth/token", limitBody(oauthBodyLimit, newTokenEndpoint(d)))
	}
}
