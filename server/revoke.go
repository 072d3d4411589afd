package server

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/portaria/portaria/identity"
	"github.com/portaria/portaria/internal/audit"
	"github.com/portaria/portaria/tokens"
)

// Token endpoints beside /oauth/token share its client authentication and form parsing.

// handleRevoke is POST /oauth/revoke (RFC 7009). A client may revoke only its own tokens; the
// answer is 200 whatever the token was, so it reveals nothing. A refresh token ends its family;
// an access token ends its session.
func (e *tokenEndpoint) handleRevoke() http.Handler {
	return e.clientHandler(func(w http.ResponseWriter, r *http.Request, c identity.Client, form url.Values) error {
		tok := form.Get("token")
		if tok == "" {
			return errInvalidRequest("token is required")
		}
		sid, err := e.sessionOf(r.Context(), c, tok, form.Get("token_type_hint"))
		if err != nil {
			return err
		}
		if sid != "" {
			if err := e.sessions.Revoke(r.Context(), sid); err != nil && !errors.Is(err, tokens.ErrSessionNotFound) {
				return err
			}
			e.security(r, audit.Event{Type: audit.TokenRevoked, Outcome: audit.OutcomeSuccess, ClientID: c.ID,
				Details: map[string]string{"family": sid, "reason": "client"}})
		}
		setTokenHeaders(w.Header())
		w.WriteHeader(http.StatusOK)
		return nil
	})
}

// sessionOf returns the session a token of client c belongs to, or "" when the token is unknown,
// invalid, has no session, or belongs to another client.
func (e *tokenEndpoint) sessionOf(ctx context.Context, c identity.Client, tok, hint string) (string, error) {
	if looksLikeJWT(tok) && hint != "refresh_token" || hint == "access_token" {
		claims, err := e.verifier.Verify(ctx, tok)
		if err != nil || claims.ClientID != c.ID {
			return "", nil
		}
		return claims.SessionID, nil
	}
	sess, err := e.sessions.SessionOf(ctx, tok)
	if errors.Is(err, tokens.ErrSessionNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if sess.ClientID != c.ID {
		return "", nil
	}
	return sess.ID, nil
}

func looksLikeJWT(tok string) bool { return strings.Count(tok, ".") == 2 }

// handleIntrospect is POST /oauth/introspect (RFC 7662), for authenticated clients. Anything
// inactive answers exactly {"active":false}. Introspecting a single-use access token consumes it;
// a refresh token is described only to the client it belongs to.
func (e *tokenEndpoint) handleIntrospect() http.Handler {
	return e.clientHandler(func(w http.ResponseWriter, r *http.Request, c identity.Client, form url.Values) error {
		tok := form.Get("token")
		if tok == "" {
			return errInvalidRequest("token is required")
		}
		ans, err := e.introspect(r.Context(), c, tok)
		if err != nil {
			return err
		}
		writeTokenJSON(w, http.StatusOK, ans)
		return nil
	})
}

func (e *tokenEndpoint) introspect(ctx context.Context, c identity.Client, tok string) (map[string]any, error) {
	inactive := map[string]any{"active": false}
	if looksLikeJWT(tok) {
		claims, err := e.verifier.Verify(ctx, tok)
		if err != nil {
			return inactive, nil
		}
		if claims.SessionID != "" {
			// The session itself, not the feed: the token server answers with what it knows now.
			if _, err := e.sessions.Get(ctx, claims.SessionID); errors.Is(err, tokens.ErrSessionNotFound) {
				return inactive, nil
			} else if err != nil {
				return nil, err
			}
		}
		if claims.Once {
			first, err := e.oneTime.Burn(ctx, claims.ID, time.Unix(claims.ExpiresAt, 0))
			if err != nil {
				return nil, err
			}
			if !first {
				return inactive, nil
			}
		}
		ans := map[string]any{
			"active": true, "token_type": "Bearer", "scope": claims.Scope, "client_id": claims.ClientID,
			"sub": claims.Subject, "exp": claims.ExpiresAt, "iat": claims.IssuedAt, "iss": claims.Issuer,
			"aud": claims.Audience, "jti": claims.ID,
		}
		if claims.SessionID != "" {
			ans["sid"] = claims.SessionID
		}
		if claims.Org != "" {
			ans["org"] = claims.Org
		}
		return ans, nil
	}
	sess, err := e.sessions.SessionOf(ctx, tok)
	if errors.Is(err, tokens.ErrSessionNotFound) {
		return inactive, nil
	} else if err != nil {
		return nil, err
	}
	if sess.ClientID != c.ID {
		return inactive, nil
	}
	return map[string]any{
		"active": true, "token_type": "refresh_token", "scope": strings.Join(sess.Scope, " "),
		"client_id": sess.ClientID, "sub": sess.UserID, "exp": sess.ExpiresAt.Unix(),
		"iat": sess.CreatedAt.Unix(), "sid": sess.ID,
	}, nil
}

// handleRevocations is GET /oauth/revocations?since=CURSOR: the feed of revoked sessions and
// per-user not-before marks that resource servers poll (SECURITY.md C3). Client-authenticated
// with HTTP Basic.
func (e *tokenEndpoint) handleRevocations(feed tokens.RevocationLog) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, _, err := e.authenticateClient(r, url.Values{}); err != nil {
			writeOAuthError(w, r, e.log, err)
			return
		}
		q := r.URL.Query()
		var cursor int64
		if s := q.Get("since"); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n < 0 {
				writeOAuthError(w, r, e.log, errInvalidRequest("since must be a cursor from an earlier answer"))
				return
			}
			cursor = n
		}
		// A page of 1,000 took about 1.2 MiB to read and write; SECURITY.md F13 bounds a request at 1 MiB.
		const limit = 500
		items, err := feed.Since(r.Context(), cursor, limit)
		if err != nil {
			writeOAuthError(w, r, e.log, err)
			return
		}
		next := cursor
		if len(items) > 0 {
			next = items[len(items)-1].Seq
		} else {
			items = []tokens.Revocation{}
		}
		writeTokenJSON(w, http.StatusOK, map[string]any{"items": items, "next_cursor": strconv.FormatInt(next, 10)})
	})
}

// clientHandler wraps a POST form endpoint that authenticates the client first.
func (e *tokenEndpoint) clientHandler(fn func(http.ResponseWriter, *http.Request, identity.Client, url.Values) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := func() error {
			if r.Method != http.MethodPost {
				w.Header().Set("Allow", http.MethodPost)
				oe := errInvalidRequest("the endpoint accepts only POST")
				oe.status = http.StatusMethodNotAllowed
				return oe
			}
			form, err := parseTokenForm(w, r)
			if err != nil {
				return err
			}
			c, _, err := e.authenticateClient(r, form)
			if err != nil {
				return err
			}
			return fn(w, r, c, form)
		}()
		if err != nil {
			writeOAuthError(w, r, e.log, err)
		}
	})
}
