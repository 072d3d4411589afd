package server

import (
	"net/http"
	"strings"
)

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
		{pattern: "GET /metrics", handler: d.Metrics.handler()},
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
	// me is served by both roles: it only verifies a token and reads the user.
	rs = append(rs, route{pattern: "GET /api/auth/me", handler: handleMe(auth, d.Users, d.Logger)})
	if d.Role == RoleAll || d.Role == RoleToken {
		// The account API mints cookies and changes credentials: it runs with the key ring.
		a := newAccountAPI(d, auth)
		rs = append(rs,
			route{pattern: "POST /api/auth/login", handler: a.unsafe(a.login)},
			route{pattern: "POST /api/auth/login/mfa", handler: a.unsafe(a.loginMFA)},
			route{pattern: "POST /api/auth/refresh", handler: a.unsafe(a.refresh)},
			route{pattern: "POST /api/auth/logout", handler: a.unsafe(a.logout)},
			route{pattern: "GET /api/auth/mfa-info", handler: a.handle(a.mfaInfo)},
			route{pattern: "POST /api/auth/signup", handler: a.unsafe(a.signup)},
			route{pattern: "POST /api/auth/verify-email", handler: a.unsafe(a.verifyEmail)},
			route{pattern: "POST /api/auth/password/forgot", handler: a.unsafe(a.forgot)},
			route{pattern: "POST /api/auth/password/reset", handler: a.unsafe(a.reset)},
			route{pattern: "POST /api/auth/password/change", handler: a.unsafe(a.change)},
			route{pattern: "POST /api/auth/mfa/totp/setup", handler: a.unsafe(a.totpSetup)},
			route{pattern: "POST /api/auth/mfa/totp/confirm", handler: a.unsafe(a.totpConfirm)},
			route{pattern: "POST /api/auth/mfa/totp/disable", handler: a.unsafe(a.totpDisable)},
			route{pattern: "GET /api/auth/sessions", handler: a.handle(a.listSessions)},
			route{pattern: "DELETE /api/auth/sessions/{sid}", handler: a.unsafe(a.deleteSession)},
			route{pattern: "POST /api/auth/sessions/revoke", handler: a.unsafe(a.revokeUserSessions)},
		)
	}
	if d.Role == RoleAll || d.Role == RoleAPI {
		// The resource API (SPEC §5) only verifies tokens offline: it runs without the key ring.
		a := newResourceAPI(d, auth)
		rs = append(rs,
			route{pattern: "POST /api/organizations", handler: a.unsafe(a.createOrganization)},
			route{pattern: "GET /api/organizations", handler: a.handle(a.listOrganizations)},
			route{pattern: "GET /api/organizations/{org}", handler: a.handle(a.getOrganization)},
			route{pattern: "PATCH /api/organizations/{org}", handler: a.unsafe(a.renameOrganization)},
			route{pattern: "POST /api/organizations/{org}/deactivate", handler: a.unsafe(a.deactivateOrganization)},
			route{pattern: "POST /api/organizations/{org}/fields", handler: a.unsafe(a.createField)},
			route{pattern: "GET /api/organizations/{org}/fields", handler: a.handle(a.listFields)},
			route{pattern: "GET /api/organizations/{org}/fields/{field}", handler: a.handle(a.getField)},
			route{pattern: "PATCH /api/organizations/{org}/fields/{field}", handler: a.unsafe(a.updateField)},
			route{pattern: "DELETE /api/organizations/{org}/fields/{field}", handler: a.unsafe(a.deleteField)},
			route{pattern: "POST /api/organizations/{org}/users", handler: a.unsafe(a.createUser)},
			route{pattern: "GET /api/organizations/{org}/users", handler: a.handle(a.listOrganizationUsers)},
			route{pattern: "GET /api/users", handler: a.handle(a.listUsers)},
			route{pattern: "GET /api/users/{user}", handler: a.handle(a.getUser)},
			route{pattern: "PATCH /api/users/{user}", handler: a.unsafe(a.updateUser)},
			route{pattern: "PUT /api/users/{user}/permissions", handler: a.unsafe(a.setPermissions)},
			route{pattern: "POST /api/users/{user}/password/expire", handler: a.unsafe(a.expirePassword)},
			route{pattern: "POST /api/users/{user}/deactivate", handler: a.unsafe(a.deactivateUser)},
			route{pattern: "POST /api/organizations/{org}/groups", handler: a.unsafe(a.createGroup)},
			route{pattern: "GET /api/organizations/{org}/groups", handler: a.handle(a.listGroups)},
			route{pattern: "GET /api/groups/{group}", handler: a.handle(a.getGroup)},
			route{pattern: "GET /api/groups/{group}/members", handler: a.handle(a.listGroupMembers)},
			route{pattern: "PATCH /api/groups/{group}", handler: a.unsafe(a.updateGroup)},
			route{pattern: "DELETE /api/groups/{group}", handler: a.unsafe(a.deleteGroup)},
			route{pattern: "PUT /api/groups/{group}/members/{user}", handler: a.unsafe(a.addGroupMember)},
			route{pattern: "DELETE /api/groups/{group}/members/{user}", handler: a.unsafe(a.removeGroupMember)},
			route{pattern: "PUT /api/groups/{group}/managers/{user}", handler: a.unsafe(a.addGroupManager)},
			route{pattern: "DELETE /api/groups/{group}/managers/{user}", handler: a.unsafe(a.removeGroupManager)},
			route{pattern: "GET /api/users/{user}/groups", handler: a.handle(a.listUserGroups)},
			route{pattern: "GET /api/users/{user}/managed-groups", handler: a.handle(a.listManagedGroups)},
		)
		// Tests, results and the audit log. Every result answer is marked no-store (DP-01).
		as := newAssessmentAPI(a, d)
		rs = append(rs,
			route{pattern: "POST /api/tests", handler: as.unsafe(as.createTest)},
			route{pattern: "GET /api/tests", handler: as.handle(as.listTests)},
			route{pattern: "GET /api/tests/{test}", handler: as.handle(as.getTest)},
			route{pattern: "PATCH /api/tests/{test}", handler: as.unsafe(as.updateTest)},
			route{pattern: "POST /api/tests/{test}/deactivate", handler: as.unsafe(as.deactivateTest)},
			route{pattern: "POST /api/results", handler: noStore(as.unsafe(as.createResult))},
			route{pattern: "GET /api/results/{result}", handler: noStore(as.handle(as.oneResult(as.getResult)))},
			route{pattern: "PATCH /api/results/{result}", handler: noStore(as.unsafe(as.oneResult(as.updateResult)))},
			route{pattern: "DELETE /api/results/{result}", handler: noStore(as.unsafe(as.oneResult(as.deleteResult)))},
			route{pattern: "GET /api/users/{user}/results", handler: noStore(as.handle(as.listUserResults))},
			route{pattern: "GET /api/groups/{group}/results", handler: noStore(as.handle(as.listGroupResults))},
			route{pattern: "PUT /api/results/{result}/feedback-date", handler: noStore(as.unsafe(as.oneResult(as.setFeedbackDate)))},
			route{pattern: "POST /api/results/feedback-date", handler: noStore(as.unsafe(as.setFeedbackDates))},
			route{pattern: "GET /api/audit", handler: noStore(as.handle(as.listAudit))},
		)
	}
	for i, r := range rs {
		if strings.Contains(r.pattern, " /api/") {
			rs[i].handler = withCORS(d.CORSOrigins, limitBody(apiBodyLimit, r.handler))
		}
	}
	// Browsers' CORS preflights for any API route: answered by withCORS itself. Any other
	// OPTIONS request is not a route, answered as every API error is.
	rs = append(rs, route{pattern: "OPTIONS /api/", handler: withCORS(d.CORSOrigins, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, d.Logger, errNotFound)
	}))})
	return rs
}

func newAccountAPI(d Deps, auth bearerAuth) *accountAPI {
	return &accountAPI{
		auditor: newAuditor(d),
		log:     d.Logger, issuerURL: d.Issuer, cors: d.CORSOrigins, secure: d.CookieSecure,
		accessTTL: d.DefaultAccessTTL, refreshTL: d.DefaultRefreshTTL, now: d.now(), auth: auth,
		logins: d.logins(), accounts: d.Accounts, sessions: d.Sessions, oneTime: d.OneTime,
		issuer: d.Tokens, mail: d.Mail, metrics: d.Metrics, trusted: d.TrustedProxies, signupOpen: d.Signup, decoyKey: d.DecoyKey,
		rate: d.RateLimit,
	}
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
