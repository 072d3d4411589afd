package server

import "net/http"

// Body limits (SPEC §3): token endpoints and the API.
const (
	oauthBodyLimit = 64 << 10
	apiBodyLimit   = 1 << 20
)

// route is one entry of the API. doc is the method the OpenAPI description lists for a pattern
// registered without one (its handler answers other methods itself).
type route struct {
	pattern string
	doc     string
	handler http.Handler
}

// routes lists the whole API. Every route of Portaria is in this one function.
func routes(d Deps) []route {
	auth := bearerAuth{verifier: d.Verifier, revoked: d.Revocations, burner: d.OneTime}
	rs := []route{
		{pattern: "GET /healthz", handler: handleHealthz()},
		{pattern: "GET /readyz", handler: handleReadyz(d.Checks, d.Draining)},
		{pattern: "GET /openapi.yaml", handler: handleOpenAPI(d.OpenAPI)},
	}
	if d.Role == RoleAll || d.Role == RoleToken {
		meta := handleMetadata(d)
		te := newTokenEndpoint(d)
		userinfo := limitBody(oauthBodyLimit, handleUserinfo(auth, d.Users, d.Logger))
		rs = append(rs,
			route{pattern: "GET /.well-known/openid-configuration", handler: meta},
			route{pattern: "GET /.well-known/oauth-authorization-server", handler: meta},
			route{pattern: "GET /.well-known/jwks.json", handler: handleJWKS(d.Keys, d.Logger)},
			// No method in these patterns: the handlers answer other methods with an RFC 6749 body.
			route{pattern: "/oauth/token", doc: "POST", handler: limitBody(oauthBodyLimit, te)},
			route{pattern: "/oauth/revoke", doc: "POST", handler: limitBody(oauthBodyLimit, te.handleRevoke())},
			route{pattern: "/oauth/introspect", doc: "POST", handler: limitBody(oauthBodyLimit, te.handleIntrospect())},
			route{pattern: "GET /oauth/revocations", handler: te.handleRevocations(d.RevocationFeed)},
			route{pattern: "GET /oauth/userinfo", handler: userinfo},
			route{pattern: "POST /oauth/userinfo", handler: userinfo},
		)
	}
	if d.Role == RoleAll || d.Role == RoleAPI {
		rs = append(rs, route{pattern: "GET /api/auth/me", handler: limitBody(apiBodyLimit, handleMe(auth, d.Users, d.Logger))})
	}
	return rs
}

func addRoutes(mux *http.ServeMux, d Deps) {
	for _, r := range routes(d) {
		mux.Handle(r.pattern, r.handler)
	}
}

// handleOpenAPI serves the OpenAPI description.
func handleOpenAPI(doc []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Write(doc)
	})
}
