package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"regexp"
	"runtime/debug"
	"strings"
	"time"

	"github.com/portaria/portaria/identity"
	"github.com/portaria/portaria/tokens"
)

type ctxKey int

const requestIDKey ctxKey = iota

// requestInfo is what the access log tells of a request besides its route and status: its id,
// the client a token endpoint authenticated and the jti of the machine token it issued (set by
// noteToken in the request's goroutine, read by the access log after the handler returns).
type requestInfo struct {
	id     string
	client string
	jti    string
}

func requestID(ctx context.Context) string {
	if info, ok := ctx.Value(requestIDKey).(*requestInfo); ok {
		return info.id
	}
	return ""
}

// noteToken names the client and the jti of the token issued in the request's access-log line:
// for client_credentials tokens, unless PORTARIA_AUDIT_CLIENT_TOKENS is set, that line is their
// record (docs/audit.md).
func noteToken(ctx context.Context, clientID, jti string) {
	if info, ok := ctx.Value(requestIDKey).(*requestInfo); ok {
		info.client, info.jti = clientID, jti
	}
}

var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// withRequestID gives every request an id, in the context, the logs and the X-Request-Id answer
// header. A well-formed incoming X-Request-Id (from a proxy or tracer) is kept so logs join up.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !validRequestID.MatchString(id) {
			var b [12]byte
			rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, &requestInfo{id: id})))
	})
}

// statusRecorder remembers the status and size of an answer for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// withAccessLog logs one line per request: never the query string, headers or body, which can
// carry credentials.
func withAccessLog(log *slog.Logger, metrics *Metrics, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		metrics.observe(route, r.Method, rec.status, time.Since(start))
		if !log.Enabled(r.Context(), slog.LevelInfo) {
			return
		}
		// A record without a caller PC: Logger.LogAttrs would unwind the stack on every request
		// for a source location that is always this line.
		entry := slog.NewRecord(time.Now(), slog.LevelInfo, "request", 0)
		entry.AddAttrs(
			slog.String("request_id", requestID(r.Context())),
			slog.String("method", r.Method),
			slog.String("route", route),
			slog.Int("status", rec.status),
			slog.Int64("bytes", rec.bytes),
			slog.Duration("duration", time.Since(start)),
		)
		if info, ok := r.Context().Value(requestIDKey).(*requestInfo); ok && info.client != "" {
			entry.AddAttrs(slog.String("client_id", info.client))
			if info.jti != "" {
				entry.AddAttrs(slog.String("jti", info.jti))
			}
		}
		log.Handler().Handle(r.Context(), entry)
	})
}

// withRecover turns a panic into a generic 500 and logs the stack with the request id.
func withRecover(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.ErrorContext(r.Context(), "panic", "request_id", requestID(r.Context()), "panic", v, "stack", string(debug.Stack()))
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Cache-Control", "no-store")
				w.WriteHeader(http.StatusInternalServerError)
				w.Write([]byte(`{"error":"server_error","error_description":"internal error"}` + "\n"))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// withSecurityHeaders sets the headers every answer carries (CK-05). Nothing Portaria serves is
// a page, so the content security policy allows nothing at all: an answer a browser is tricked
// into rendering runs no script, loads nothing and cannot be framed. HSTS is sent when the
// public issuer is https (behind a TLS-terminating proxy the request itself is plain HTTP); the
// server never redirects http to https, so a request sent in clear fails instead of being
// silently upgraded after its credentials crossed the network.
func withSecurityHeaders(hsts bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
		if hsts {
			h.Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
		}
		next.ServeHTTP(w, r)
	})
}

// limitBody caps the request body; reading past the limit fails with *http.MaxBytesError.
func limitBody(n int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, n)
		next.ServeHTTP(w, r)
	})
}

// isUnavailable reports whether err means a dependency (database, token store) is down, which
// is answered 503 with Retry-After instead of 500.
func isUnavailable(err error) bool {
	return errors.Is(err, tokens.ErrUnavailable) || errors.Is(err, identity.ErrUnavailable) ||
		errors.Is(err, context.DeadlineExceeded)
}

// clientIP is the address of the client: the connection's peer, or, when that peer is a trusted
// proxy, the right-most X-Forwarded-For entry that is not itself a trusted proxy. Entries left of
// the first untrusted hop are ignored: a client can write anything there (SECURITY.md §3 item 8).
func clientIP(r *http.Request, trusted []netip.Prefix) string {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	ip := peer.Addr().Unmap()
	if !isTrusted(ip, trusted) {
		return ip.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		ip = hop.Unmap()
		if !isTrusted(ip, trusted) {
			break
		}
	}
	return ip.String()
}

func isTrusted(ip netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
