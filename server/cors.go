package server

import (
	"net/http"
	"net/url"
	"strings"
)

// CORS answers for the allowed browser origins (CK-04).
const (
	corsAllowMethods  = "GET, POST, PUT, PATCH, DELETE"
	corsAllowHeaders  = "Authorization, Content-Type, Accept-Language, X-Request-Id"
	corsExposeHeaders = "Location, Retry-After, X-Request-Id"
	corsMaxAge        = "600"
)

// withCORS lets the browser origins in allowed (PORTARIA_CORS_ORIGINS) call the API with
// credentials. The Origin header must equal one of them exactly, scheme and host compared
// without case: no suffix, prefix or pattern match, which is how reflected-origin bugs let
// https://app.example.com.evil.test in. Other origins, `null` included, get no CORS header at
// all, and their preflights a 403. The answer varies by Origin whatever it is, so caches never
// hand one origin's answer to another.
//
// Public endpoints that answer `Access-Control-Allow-Origin: *` (JWKS, metadata) may sit behind
// this middleware: a wildcard never goes out with Allow-Credentials.
func withCORS(allowed []string, next http.Handler) http.Handler {
	set := originSet(allowed)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Add("Vary", "Origin")
		origin, ok := requestOrigin(r)
		ok = ok && set[origin]
		preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
		if preflight {
			if !ok {
				w.WriteHeader(http.StatusForbidden)
				return
			}
			h.Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
			h.Set("Access-Control-Allow-Credentials", "true")
			h.Set("Access-Control-Allow-Methods", corsAllowMethods)
			h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
			h.Set("Access-Control-Max-Age", corsMaxAge)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if ok {
			h.Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
			h.Set("Access-Control-Allow-Credentials", "true")
			h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
			w = &corsWriter{ResponseWriter: w}
		}
		next.ServeHTTP(w, r)
	})
}

// corsWriter drops Allow-Credentials when the handler answered with the wildcard origin.
type corsWriter struct {
	http.ResponseWriter
	wrote bool
}

func (c *corsWriter) WriteHeader(code int) {
	if !c.wrote {
		c.wrote = true
		if h := c.Header(); h.Get("Access-Control-Allow-Origin") == "*" {
			h.Del("Access-Control-Allow-Credentials")
		}
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *corsWriter) Write(b []byte) (int, error) {
	if !c.wrote {
		c.WriteHeader(http.StatusOK)
	}
	return c.ResponseWriter.Write(b)
}

func (c *corsWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// checkOrigin refuses a state-changing request (POST, PUT, PATCH, DELETE) that a browser sent
// from another site: cookie-authenticated endpoints call it before doing anything (SPEC §4,
// CK-03). SameSite=Lax cookies already stay off cross-site POSTs in current browsers, but not
// in every browser, not on same-site subdomains, and a JSON-only API that skips this check is
// the Grafana CVE-2022-21703 pattern: a cross-origin form or fetch with a "simple" content type
// rides the victim's cookie. So:
//
//   - Sec-Fetch-Site: cross-site is always refused; an allowed origin on another site must use
//     bearer tokens, as its cookies would not be sent anyway;
//   - an Origin header (or, failing that, the origin of the Referer) must be the issuer's or one
//     of allowed; `null` and anything unparseable are refused;
//   - with neither header the request is let through only when Sec-Fetch-Site is absent or
//     same-origin/none: non-browser clients send neither, and current browsers send Origin
//     on these methods anyway.
//
// A refusal is a 403 problem with code csrf.
func checkOrigin(r *http.Request, issuer string, allowed []string) error {
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
	default:
		return nil
	}
	site := r.Header.Get("Sec-Fetch-Site")
	if strings.EqualFold(site, "cross-site") {
		return csrfProblem("cross-site requests cannot change state")
	}
	trusted := originSet(allowed)
	if o, ok := urlOrigin(issuer); ok {
		trusted[o] = true
	}
	if len(r.Header.Values("Origin")) > 0 {
		if o, ok := requestOrigin(r); ok && trusted[o] {
			return nil
		}
		return csrfProblem("the Origin header is not an allowed origin")
	}
	if refs := r.Header.Values("Referer"); len(refs) > 0 {
		if o, ok := urlOrigin(refs[0]); ok && len(refs) == 1 && trusted[o] {
			return nil
		}
		return csrfProblem("the Referer header is not from an allowed origin")
	}
	switch strings.ToLower(site) {
	case "", "same-origin", "none":
		return nil
	}
	return csrfProblem("a browser request that changes state must send an Origin header")
}

func csrfProblem(detail string) *problem {
	p := newProblem(http.StatusForbidden, "csrf", "The request did not come from an allowed origin.")
	p.Detail = detail
	return p
}

// originSet is the canonical form of each well-formed origin of list.
func originSet(list []string) map[string]bool {
	set := make(map[string]bool, len(list)+1)
	for _, o := range list {
		if c, ok := canonicalOrigin(o); ok {
			set[c] = true
		}
	}
	return set
}

// requestOrigin is the canonical form of the request's one Origin header.
func requestOrigin(r *http.Request) (string, bool) {
	v := r.Header.Values("Origin")
	if len(v) != 1 {
		return "", false
	}
	return canonicalOrigin(v[0])
}

// canonicalOrigin checks that s is a serialized origin, scheme://host[:port] with an http or
// https scheme and nothing else (no path, not even "/", no user, query or fragment), and lowers
// the case of scheme and host. Ports are kept as written: https://a and https://a:443 differ, as
// browsers never send the latter.
func canonicalOrigin(s string) (string, bool) {
	scheme, hostport, ok := strings.Cut(s, "://")
	if !ok || hostport == "" {
		return "", false
	}
	scheme = strings.ToLower(scheme)
	if scheme != "http" && scheme != "https" {
		return "", false
	}
	host, port := hostport, ""
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 && !strings.HasSuffix(hostport, "]") {
		host, port = hostport[:i], hostport[i+1:]
		if port == "" || len(port) > 5 {
			return "", false
		}
		for _, c := range port {
			if c < '0' || c > '9' {
				return "", false
			}
		}
	}
	if host == "" {
		return "", false
	}
	if host[0] == '[' {
		if host[len(host)-1] != ']' {
			return "", false
		}
		for _, c := range host[1 : len(host)-1] {
			if !(c == ':' || c == '.' || '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return "", false
			}
		}
	} else {
		for _, c := range host {
			if !(c == '.' || c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
				return "", false
			}
		}
	}
	out := scheme + "://" + strings.ToLower(host)
	if port != "" {
		out += ":" + port
	}
	return out, true
}

// urlOrigin is the canonical origin of an absolute http(s) URL, such as a Referer or the issuer.
func urlOrigin(s string) (string, bool) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return "", false
	}
	return canonicalOrigin(u.Scheme + "://" + u.Host)
}
