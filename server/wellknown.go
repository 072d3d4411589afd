package server

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
)

// handleMetadata serves RFC 8414 / OpenID discovery metadata. It lists only what works: every
// grant, auth method and endpoint named here is implemented (TE-05).
func handleMetadata(d Deps) http.Handler {
	doc := map[string]any{
		"issuer":                 d.Issuer,
		"token_endpoint":         d.Issuer + "/oauth/token",
		"revocation_endpoint":    d.Issuer + "/oauth/revoke",
		"introspection_endpoint": d.Issuer + "/oauth/introspect",
		"userinfo_endpoint":      d.Issuer + "/oauth/userinfo",
		"revocation_endpoint_auth_methods_supported":    []string{"client_secret_basic", "client_secret_post", "none"},
		"introspection_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post", "none"},
		"claims_supported":                      []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "amr", "sid", "email", "email_verified", "name"},
		"jwks_uri":                              d.Issuer + "/.well-known/jwks.json",
		"grant_types_supported":                 supportedGrants,
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post", "none"},
		// No authorization endpoint: Portaria has no front-channel flow, so no response type.
		"response_types_supported":              []string{},
		"scopes_supported":                      []string{"openid", "profile", "email"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{d.SigningAlg},
	}
	body, err := json.Marshal(doc)
	if err != nil {
		panic(fmt.Sprintf("encode metadata: %v", err)) // static data: cannot fail
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Write(body)
	})
}

// handleJWKS serves the public keys. Public and cacheable: resource servers cache it for
// max-age, which is why keys are published at least that long before they sign.
func handleJWKS(keys KeySet, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := keys.JWKS(r.Context())
		if err != nil {
			log.ErrorContext(r.Context(), "jwks", "err", err, "request_id", requestID(r.Context()))
			w.Header().Set("Retry-After", "1")
			http.Error(w, "key set unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(keys.MaxAge().Seconds())))
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Write(body)
	})
}
